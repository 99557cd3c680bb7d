// SPDX-License-Identifier: GPL-2.0-or-later
/* Unit tests: the JSON writer, escaping included. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../userspace/blksnapctl/json.c"

struct mem {
	char *buf;
	size_t len;
	FILE *f;
};

static void mem_open(struct mem *m)
{
	m->buf = NULL;
	m->len = 0;
	m->f = open_memstream(&m->buf, &m->len);
	assert_non_null(m->f);
}

static void mem_close(struct mem *m)
{
	fclose(m->f);
}

static void escaped_is(const char *in, const char *want)
{
	struct mem m;

	mem_open(&m);
	bs_json_write_escaped(m.f, in);
	mem_close(&m);
	assert_string_equal(m.buf, want);
	free(m.buf);
}

static void test_escape(void **state)
{
	(void)state;
	escaped_is("", "\"\"");
	escaped_is("plain", "\"plain\"");
	escaped_is("a\"b", "\"a\\\"b\"");
	escaped_is("a\\b", "\"a\\\\b\"");
	escaped_is("/dev/mapper/x", "\"/dev/mapper/x\"");	/* '/' needs no escape */
	escaped_is("\n\r\t\b\f", "\"\\n\\r\\t\\b\\f\"");
	escaped_is("\x01\x1f", "\"\\u0001\\u001f\"");
	escaped_is("\x7f", "\"\\u007f\"");
	escaped_is("x\x1b[31m", "\"x\\u001b[31m\"");
	/* UTF-8 passes through byte for byte. */
	escaped_is("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
}

/*
 * A file name (a loop store's backing file, a device name) may be any bytes;
 * JSON text must be UTF-8 (RFC 8259, 8.1). Each byte of an ill-formed
 * sequence becomes U+FFFD, as a JSON reader would show it.
 */
#define FFFD "\xef\xbf\xbd"
static void test_escape_invalid_utf8(void **state)
{
	(void)state;
	escaped_is("a\xff" "b", "\"a" FFFD "b\"");			/* never a UTF-8 byte */
	escaped_is("\x80", "\"" FFFD "\"");				/* a lone continuation */
	escaped_is("\xc3", "\"" FFFD "\"");				/* cut at the end */
	escaped_is("\xc3(", "\"" FFFD "(\"");			/* cut by an ASCII byte */
	escaped_is("\xe2\x82", "\"" FFFD FFFD "\"");		/* three bytes, cut */
	escaped_is("\xc0\xaf", "\"" FFFD FFFD "\"");		/* overlong '/' */
	escaped_is("\xe0\x80\xaf", "\"" FFFD FFFD FFFD "\"");	/* overlong, 3 bytes */
	escaped_is("\xed\xa0\x80", "\"" FFFD FFFD FFFD "\"");	/* a surrogate */
	escaped_is("\xf4\x90\x80\x80", "\"" FFFD FFFD FFFD FFFD "\"");	/* past U+10FFFF */
	escaped_is("\xf5", "\"" FFFD "\"");
	/* The largest of each length is valid. */
	escaped_is("\x7f\xdf\xbf\xef\xbf\xbf\xf4\x8f\xbf\xbf",
		   "\"\\u007f\xdf\xbf\xef\xbf\xbf\xf4\x8f\xbf\xbf\"");
}

static void test_document_compact(void **state)
{
	struct bs_json j;
	struct mem m;

	(void)state;
	mem_open(&m);
	bs_json_init(&j, m.f, false);
	bs_json_begin_object(&j, NULL);
	bs_json_string(&j, "name", "snap-1");
	bs_json_u64(&j, "big", UINT64_MAX);
	bs_json_bool(&j, "ok", true);
	bs_json_bool(&j, "bad", false);
	bs_json_null(&j, "none");
	bs_json_string(&j, "nul", NULL);
	bs_json_begin_array(&j, "list");
	bs_json_u64(&j, NULL, 1);
	bs_json_begin_object(&j, NULL);
	bs_json_end_object(&j);
	bs_json_begin_array(&j, NULL);
	bs_json_end_array(&j);
	bs_json_end_array(&j);
	bs_json_begin_object(&j, "k\"ey");
	bs_json_u64(&j, "x", 0);
	bs_json_end_object(&j);
	bs_json_end_object(&j);
	assert_int_equal(bs_json_finish(&j), 0);
	mem_close(&m);
	assert_string_equal(m.buf,
		"{\"name\":\"snap-1\",\"big\":18446744073709551615,\"ok\":true,\"bad\":false,"
		"\"none\":null,\"nul\":null,\"list\":[1,{},[]],\"k\\\"ey\":{\"x\":0}}\n");
	free(m.buf);
}

static void test_document_pretty(void **state)
{
	struct bs_json j;
	struct mem m;

	(void)state;
	mem_open(&m);
	bs_json_init(&j, m.f, true);
	bs_json_begin_object(&j, NULL);
	bs_json_string(&j, "a", "b");
	bs_json_begin_array(&j, "c");
	bs_json_u64(&j, NULL, 1);
	bs_json_u64(&j, NULL, 2);
	bs_json_end_array(&j);
	bs_json_begin_array(&j, "e");
	bs_json_end_array(&j);
	bs_json_end_object(&j);
	assert_int_equal(bs_json_finish(&j), 0);
	mem_close(&m);
	assert_string_equal(m.buf,
		"{\n  \"a\": \"b\",\n  \"c\": [\n    1,\n    2\n  ],\n  \"e\": []\n}\n");
	free(m.buf);
}

static void test_misuse(void **state)
{
	struct bs_json j;
	struct mem m;

	(void)state;
	mem_open(&m);

	bs_json_init(&j, m.f, false);		/* nothing written */
	assert_int_equal(bs_json_finish(&j), -EINVAL);

	bs_json_init(&j, m.f, false);		/* unclosed */
	bs_json_begin_object(&j, NULL);
	assert_int_equal(bs_json_finish(&j), -EINVAL);

	bs_json_init(&j, m.f, false);		/* key missing in an object */
	bs_json_begin_object(&j, NULL);
	bs_json_u64(&j, NULL, 1);
	bs_json_end_object(&j);
	assert_int_equal(bs_json_finish(&j), -EINVAL);

	bs_json_init(&j, m.f, false);		/* key inside an array */
	bs_json_begin_array(&j, NULL);
	bs_json_u64(&j, "k", 1);
	bs_json_end_array(&j);
	assert_int_equal(bs_json_finish(&j), -EINVAL);

	bs_json_init(&j, m.f, false);		/* wrong closer */
	bs_json_begin_array(&j, NULL);
	bs_json_end_object(&j);
	assert_int_equal(bs_json_finish(&j), -EINVAL);

	bs_json_init(&j, m.f, false);		/* two top-level values */
	bs_json_u64(&j, NULL, 1);
	bs_json_u64(&j, NULL, 2);
	assert_int_equal(bs_json_finish(&j), -EINVAL);

	bs_json_init(&j, m.f, false);		/* too deep */
	for (int i = 0; i < BS_JSON_MAX_DEPTH + 1; i++)
		bs_json_begin_array(&j, NULL);
	assert_int_equal(bs_json_finish(&j), -EINVAL);

	mem_close(&m);
	free(m.buf);
}

static void test_write_error(void **state)
{
	struct bs_json j;
	FILE *f = fopen("/dev/full", "w");

	(void)state;
	if (!f)
		skip();
	bs_json_init(&j, f, false);
	bs_json_string(&j, NULL, "x");
	assert_int_equal(bs_json_finish(&j), -EIO);
	fclose(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_escape_invalid_utf8),
		cmocka_unit_test(test_document_compact),
		cmocka_unit_test(test_document_pretty),
		cmocka_unit_test(test_misuse),
		cmocka_unit_test(test_write_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
