/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A tiny streaming JSON writer for blksnapctl's --json output.
 *
 *	struct bs_json j;
 *	bs_json_init(&j, stdout, true);
 *	bs_json_begin_object(&j, NULL);
 *	bs_json_string(&j, "name", "snap-1");
 *	bs_json_u64(&j, "chunk_sectors", 8);
 *	bs_json_end_object(&j);
 *	r = bs_json_finish(&j);
 *
 * Keys are given inside objects and must be NULL inside arrays. Strings
 * are escaped as RFC 8259 requires (quote, backslash and every control
 * character); well-formed UTF-8 passes through unchanged, and each byte of
 * an ill-formed sequence (a file name may hold any bytes) is written as
 * U+FFFD, so that the output is always valid JSON text.
 */
#ifndef BLKSNAPCTL_JSON_H
#define BLKSNAPCTL_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define BS_JSON_MAX_DEPTH 32

struct bs_json {
	FILE *f;
	bool pretty;
	int depth;
	bool error;			/* misuse or a write error */
	bool first[BS_JSON_MAX_DEPTH];	/* no member written yet at this level */
	char kind[BS_JSON_MAX_DEPTH];	/* '{' or '[' */
};

void bs_json_init(struct bs_json *j, FILE *f, bool pretty);
void bs_json_begin_object(struct bs_json *j, const char *key);
void bs_json_end_object(struct bs_json *j);
void bs_json_begin_array(struct bs_json *j, const char *key);
void bs_json_end_array(struct bs_json *j);
/* A NULL @val writes null. */
void bs_json_string(struct bs_json *j, const char *key, const char *val);
void bs_json_u64(struct bs_json *j, const char *key, uint64_t val);
void bs_json_bool(struct bs_json *j, const char *key, bool val);
void bs_json_null(struct bs_json *j, const char *key);
/* Write @s as a JSON string literal, quotes included. */
void bs_json_write_escaped(FILE *f, const char *s);
/* 0 if the document is complete and was written, -EINVAL or -EIO. */
int bs_json_finish(struct bs_json *j);

#endif /* BLKSNAPCTL_JSON_H */
