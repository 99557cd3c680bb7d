// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * blksnapctl: a tiny JSON writer (see json.h).
 */
#include <errno.h>
#include <inttypes.h>

#include "json.h"

void bs_json_init(struct bs_json *j, FILE *f, bool pretty)
{
	j->f = f;
	j->pretty = pretty;
	j->depth = 0;
	j->error = false;
	j->first[0] = true;
	j->kind[0] = 0;
}

/*
 * The length of the well-formed UTF-8 sequence at @p (Unicode's table 3-7:
 * no overlong forms, no surrogates, nothing past U+10FFFF), 0 if there is none.
 */
static size_t utf8_len(const unsigned char *p)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (*p < 0x80)
		return 1;
	if (*p >= 0xc2 && *p <= 0xdf)
		n = 2;
	else if (*p >= 0xe0 && *p <= 0xef)
		n = 3;
	else if (*p >= 0xf0 && *p <= 0xf4)
		n = 4;
	else
		return 0;
	if (*p == 0xe0)
		lo = 0xa0;
	else if (*p == 0xed)
		hi = 0x9f;
	else if (*p == 0xf0)
		lo = 0x90;
	else if (*p == 0xf4)
		hi = 0x8f;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

void bs_json_write_escaped(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p >= 0x80) {
			size_t n = utf8_len(p);

			if (n) {
				fwrite(p, 1, n, f);
				p += n - 1;
			} else {
				fputs("\xef\xbf\xbd", f);	/* U+FFFD for this byte */
			}
			continue;
		}
		switch (*p) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\b':
			fputs("\\b", f);
			break;
		case '\f':
			fputs("\\f", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}

static void json_indent(struct bs_json *j)
{
	if (!j->pretty)
		return;
	fputc('\n', j->f);
	for (int i = 0; i < j->depth; i++)
		fputs("  ", j->f);
}

/* Separator, indentation and key of the next value. */
static void json_member(struct bs_json *j, const char *key)
{
	bool in_object = j->depth > 0 && j->kind[j->depth] == '{';

	if (j->depth == 0 && !j->first[0]) {
		j->error = true;	/* a second top-level value */
		return;
	}
	if ((key != NULL) != in_object) {
		j->error = true;
		return;
	}
	if (j->depth > 0) {
		if (!j->first[j->depth])
			fputc(',', j->f);
		json_indent(j);
	}
	j->first[j->depth] = false;
	if (key) {
		bs_json_write_escaped(j->f, key);
		fputs(j->pretty ? ": " : ":", j->f);
	}
}

static void json_begin(struct bs_json *j, const char *key, char kind)
{
	json_member(j, key);
	if (j->error)
		return;
	if (j->depth + 1 >= BS_JSON_MAX_DEPTH) {
		j->error = true;
		return;
	}
	fputc(kind, j->f);
	j->depth++;
	j->kind[j->depth] = kind;
	j->first[j->depth] = true;
}

static void json_end(struct bs_json *j, char kind)
{
	bool empty;

	if (j->error)
		return;
	if (j->depth == 0 || j->kind[j->depth] != kind) {
		j->error = true;
		return;
	}
	empty = j->first[j->depth];
	j->depth--;
	if (!empty)
		json_indent(j);
	fputc(kind == '{' ? '}' : ']', j->f);
}

void bs_json_begin_object(struct bs_json *j, const char *key)
{
	json_begin(j, key, '{');
}

void bs_json_end_object(struct bs_json *j)
{
	json_end(j, '{');
}

void bs_json_begin_array(struct bs_json *j, const char *key)
{
	json_begin(j, key, '[');
}

void bs_json_end_array(struct bs_json *j)
{
	json_end(j, '[');
}

void bs_json_string(struct bs_json *j, const char *key, const char *val)
{
	json_member(j, key);
	if (j->error)
		return;
	if (val)
		bs_json_write_escaped(j->f, val);
	else
		fputs("null", j->f);
}

void bs_json_u64(struct bs_json *j, const char *key, uint64_t val)
{
	json_member(j, key);
	if (!j->error)
		fprintf(j->f, "%" PRIu64, val);
}

void bs_json_bool(struct bs_json *j, const char *key, bool val)
{
	json_member(j, key);
	if (!j->error)
		fputs(val ? "true" : "false", j->f);
}

void bs_json_null(struct bs_json *j, const char *key)
{
	bs_json_string(j, key, NULL);
}

int bs_json_finish(struct bs_json *j)
{
	if (j->error || j->depth != 0 || j->first[0])
		return -EINVAL;
	fputc('\n', j->f);
	if (fflush(j->f) || ferror(j->f))
		return -EIO;
	return 0;
}
