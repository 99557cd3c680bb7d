// SPDX-License-Identifier: GPL-2.0-or-later
/* Unit tests: extents ("<start>+<sectors>"), merging, CBT map hex decoding. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"

static struct blksnap_ctx ctx;

static void test_parse_one(void **state)
{
	struct blksnap_extent e;

	(void)state;
	assert_int_equal(blksnap_parse_extent(&ctx, "2048+8", &e), 0);
	assert_int_equal(e.start, 2048);
	assert_int_equal(e.sectors, 8);
	assert_int_equal(blksnap_parse_extent(&ctx, "0+1", &e), 0);
	assert_int_equal(blksnap_parse_extent(&ctx, "18446744073709551614+1", &e), 0);
	assert_int_equal(blksnap_parse_extent(&ctx, "18446744073709551615+1", &e), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "within 2^64"));
	assert_int_equal(blksnap_parse_extent(&ctx, "2048+0", &e), -EINVAL);
	assert_int_equal(blksnap_parse_extent(&ctx, "2048", &e), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "<start>+<sectors>"));
	assert_int_equal(blksnap_parse_extent(&ctx, "+8", &e), -EINVAL);
	assert_int_equal(blksnap_parse_extent(&ctx, "8+", &e), -EINVAL);
	assert_int_equal(blksnap_parse_extent(&ctx, "", &e), -EINVAL);
	assert_int_equal(blksnap_parse_extent(&ctx, "1+2+3", &e), -EINVAL);
	assert_int_equal(blksnap_parse_extent(&ctx, "-1+2", &e), -EINVAL);
	assert_int_equal(blksnap_parse_extent(&ctx, "1 +2", &e), -EINVAL);
	assert_int_equal(blksnap_parse_extent(&ctx, "1+99999999999999999999999", &e), -EINVAL);
}

static void test_parse_list(void **state)
{
	struct blksnap_extent *e;
	size_t n;

	(void)state;
	assert_int_equal(bs_parse_extent_list(&ctx, "", &e, &n), 0);
	assert_int_equal(n, 0);
	assert_null(e);
	assert_int_equal(bs_parse_extent_list(&ctx, "\n", &e, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(bs_parse_extent_list(&ctx, "0+128 1024+256 4096+7", &e, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(e[0].start, 0);
	assert_int_equal(e[0].sectors, 128);
	assert_int_equal(e[1].start, 1024);
	assert_int_equal(e[2].sectors, 7);
	free(e);
	assert_int_equal(bs_parse_extent_list(&ctx, "0+128\n", &e, &n), 0);
	assert_int_equal(n, 1);
	free(e);
}

static void list_bad(const char *s)
{
	struct blksnap_extent *e = (void *)1;
	size_t n = 99;

	assert_int_equal(bs_parse_extent_list(&ctx, s, &e, &n), -EINVAL);
	assert_null(e);
	assert_int_equal(n, 0);
	assert_non_null(strstr(ctx.errmsg, "cbt_changes"));
}

static void test_parse_list_bad(void **state)
{
	(void)state;
	list_bad(" ");
	list_bad("0+128 ");
	list_bad(" 0+128");
	list_bad("0+128  8+8");
	list_bad("0+128,8+8");
	list_bad("0+0");
	list_bad("garbage");
	list_bad("0+128 x");
	list_bad("0+128\n\n");
}

static void test_merge(void **state)
{
	struct blksnap_extent e[] = {
		{ 100, 10 }, { 0, 8 }, { 8, 8 }, { 105, 2 }, { 50, 10 }, { 110, 5 }, { 200, 1 },
	};
	size_t n;

	(void)state;
	n = bs_extents_merge(e, sizeof(e) / sizeof(e[0]));
	assert_int_equal(n, 4);
	assert_int_equal(e[0].start, 0);
	assert_int_equal(e[0].sectors, 16);	/* adjacent: merged */
	assert_int_equal(e[1].start, 50);
	assert_int_equal(e[1].sectors, 10);
	assert_int_equal(e[2].start, 100);
	assert_int_equal(e[2].sectors, 15);	/* contained and adjacent */
	assert_int_equal(e[3].start, 200);
	assert_int_equal(bs_extents_merge(e, 0), 0);
}

static void test_merge_contained(void **state)
{
	struct blksnap_extent e[] = { { 0, 100 }, { 10, 5 }, { 0, 50 } };

	(void)state;
	assert_int_equal(bs_extents_merge(e, 3), 1);
	assert_int_equal(e[0].start, 0);
	assert_int_equal(e[0].sectors, 100);
}

static void test_hex(void **state)
{
	uint8_t out[4];

	(void)state;
	assert_int_equal(bs_hex_decode("00ff0a7f", out, 4), 0);
	assert_int_equal(out[0], 0x00);
	assert_int_equal(out[1], 0xff);
	assert_int_equal(out[2], 0x0a);
	assert_int_equal(out[3], 0x7f);
	assert_int_equal(bs_hex_decode("01\n", out, 1), 0);
	assert_int_equal(out[0], 1);
	assert_int_equal(bs_hex_decode("00FF", out, 2), -EINVAL);	/* lowercase only */
	assert_int_equal(bs_hex_decode("00f", out, 2), -EINVAL);
	assert_int_equal(bs_hex_decode("00ff00", out, 2), -EINVAL);
	assert_int_equal(bs_hex_decode("0g", out, 1), -EINVAL);
	assert_int_equal(bs_hex_decode("", out, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_one),
		cmocka_unit_test(test_parse_list),
		cmocka_unit_test(test_parse_list_bad),
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_merge_contained),
		cmocka_unit_test(test_hex),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
