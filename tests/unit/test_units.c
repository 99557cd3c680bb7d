// SPDX-License-Identifier: GPL-2.0-or-later
/* Unit tests: size parsing and formatting, decimal and device numbers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"

static struct blksnap_ctx ctx;

static uint64_t size_ok(const char *s)
{
	uint64_t v = 12345;

	assert_int_equal(blksnap_parse_size(&ctx, s, &v), 0);
	return v;
}

static int size_err(const char *s)
{
	uint64_t v = 777;
	int r;

	ctx.errmsg[0] = '\0';
	r = blksnap_parse_size(&ctx, s, &v);
	assert_true(r < 0);
	assert_int_equal(v, 777);	/* untouched on failure */
	assert_true(strlen(ctx.errmsg) > 0);
	return r;
}

static void test_size_plain(void **state)
{
	(void)state;
	assert_int_equal(size_ok("0"), 0);
	assert_int_equal(size_ok("512"), 512);
	assert_int_equal(size_ok("00512"), 512);
	assert_int_equal(size_ok("512B"), 512);
	assert_int_equal(size_ok("512b"), 512);
	assert_true(size_ok("18446744073709551615") == UINT64_MAX);
}

static void test_size_suffixes(void **state)
{
	(void)state;
	assert_int_equal(size_ok("4K"), 4096);
	assert_int_equal(size_ok("4k"), 4096);
	assert_int_equal(size_ok("4KiB"), 4096);
	assert_int_equal(size_ok("4KB"), 4096);
	assert_int_equal(size_ok("4kib"), 4096);
	assert_int_equal(size_ok("64M"), 64ULL << 20);
	assert_int_equal(size_ok("64MiB"), 64ULL << 20);
	assert_true(size_ok("1G") == 1ULL << 30);
	assert_true(size_ok("2T") == 2ULL << 40);
	assert_true(size_ok("3P") == 3ULL << 50);
	assert_true(size_ok("15E") == 15ULL << 60);
	/* Fractions, as lvcreate takes them, when they give whole bytes. */
	assert_true(size_ok("1.5G") == 3ULL << 29);
	assert_true(size_ok("1.5GiB") == 3ULL << 29);
	assert_int_equal(size_ok("0.5K"), 512);
	assert_int_equal(size_ok("2.25M"), 9ULL << 18);
	assert_int_equal(size_ok("1.0K"), 1024);
	assert_int_equal(size_ok("3.0B"), 3);
	assert_true(size_ok("15.5E") == 31ULL << 59);
}

static void test_size_bad(void **state)
{
	(void)state;
	assert_int_equal(size_err(""), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "empty"));
	assert_int_equal(blksnap_parse_size(&ctx, NULL, &(uint64_t){ 0 }), -EINVAL);
	assert_int_equal(size_err("K"), -EINVAL);
	assert_int_equal(size_err("4X"), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "unknown suffix 'X'"));
	assert_int_equal(size_err("4KiBx"), -EINVAL);
	assert_int_equal(size_err("4iB"), -EINVAL);
	assert_int_equal(size_err("4Ki"), -EINVAL);
	assert_int_equal(size_err("4KK"), -EINVAL);
	assert_int_equal(size_err("4BB"), -EINVAL);
	assert_int_equal(size_err(" 4K"), -EINVAL);
	assert_int_equal(size_err("4K "), -EINVAL);
	assert_int_equal(size_err("4 K"), -EINVAL);
	assert_int_equal(size_err("-1"), -EINVAL);
	assert_int_equal(size_err("+1"), -EINVAL);
	assert_int_equal(size_err("1.5"), -EINVAL);		/* not a whole byte */
	assert_non_null(strstr(ctx.errmsg, "whole number of bytes"));
	assert_int_equal(size_err("0.3K"), -EINVAL);
	assert_int_equal(size_err("1.K"), -EINVAL);
	assert_int_equal(size_err(".5K"), -EINVAL);
	assert_int_equal(size_err("1..5K"), -EINVAL);
	assert_int_equal(size_err("1.5.0K"), -EINVAL);
	assert_int_equal(size_err("1,5K"), -EINVAL);
	assert_int_equal(size_err("0x10"), -EINVAL);
	assert_int_equal(size_err("4\nK"), -EINVAL);
}

static void test_size_overflow(void **state)
{
	(void)state;
	assert_int_equal(size_err("18446744073709551616"), -ERANGE);
	assert_non_null(strstr(ctx.errmsg, "too large"));
	assert_int_equal(size_err("99999999999999999999999999"), -ERANGE);
	assert_int_equal(size_err("16E"), -ERANGE);
	assert_int_equal(size_err("16777216T"), -ERANGE);
	assert_int_equal(size_err("17179869184G"), -ERANGE);
	/* The largest that fits. */
	assert_true(size_ok("17179869183G") == 17179869183ULL << 30);
	assert_int_equal(size_err("15.99E"), -EINVAL);		/* not whole bytes */
	assert_int_equal(size_err("15.9999999999999999999E"), -EINVAL);	/* too many digits */
}

static void test_size_null_ctx(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(blksnap_parse_size(NULL, "4Q", &v), -EINVAL);
	assert_int_equal(blksnap_parse_size(NULL, "8K", &v), 0);
	assert_int_equal(v, 8192);
}

static void test_format_size(void **state)
{
	char buf[16];

	(void)state;
	assert_string_equal(blksnap_format_size(0, buf, sizeof(buf)), "0 B");
	assert_string_equal(blksnap_format_size(512, buf, sizeof(buf)), "512 B");
	assert_string_equal(blksnap_format_size(1023, buf, sizeof(buf)), "1023 B");
	assert_string_equal(blksnap_format_size(4096, buf, sizeof(buf)), "4 KiB");
	assert_string_equal(blksnap_format_size(64ULL << 20, buf, sizeof(buf)), "64 MiB");
	assert_string_equal(blksnap_format_size(3ULL << 29, buf, sizeof(buf)), "1.5 GiB");
	/* Rounded down: never shows more than there is. */
	assert_string_equal(blksnap_format_size((2ULL << 30) - 1, buf, sizeof(buf)), "1.9 GiB");
	assert_string_equal(blksnap_format_size(UINT64_MAX, buf, sizeof(buf)), "15.9 EiB");
}

static void test_parse_u64(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(bs_parse_u64("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(bs_parse_u64("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(bs_parse_u64("18446744073709551616", &v), -ERANGE);
	assert_int_equal(bs_parse_u64("", &v), -EINVAL);
	assert_int_equal(bs_parse_u64(NULL, &v), -EINVAL);
	assert_int_equal(bs_parse_u64("1 ", &v), -EINVAL);
	assert_int_equal(bs_parse_u64("-1", &v), -EINVAL);
}

static void test_parse_devno(void **state)
{
	uint32_t ma, mi;

	(void)state;
	assert_int_equal(bs_parse_devno("253:7", &ma, &mi), 0);
	assert_int_equal(ma, 253);
	assert_int_equal(mi, 7);
	assert_int_equal(bs_parse_devno("8:1048575", &ma, &mi), 0);
	assert_int_equal(bs_parse_devno("8:1048576", &ma, &mi), -ERANGE);
	assert_int_equal(bs_parse_devno("4096:0", &ma, &mi), -ERANGE);
	assert_int_equal(bs_parse_devno("/dev/vdb", &ma, &mi), -EINVAL);
	assert_int_equal(bs_parse_devno("253:", &ma, &mi), -EINVAL);
	assert_int_equal(bs_parse_devno(":1", &ma, &mi), -EINVAL);
	assert_int_equal(bs_parse_devno("1:2:3", &ma, &mi), -EINVAL);
}

static void test_pow2(void **state)
{
	(void)state;
	assert_false(bs_is_pow2(0));
	assert_true(bs_is_pow2(1));
	assert_true(bs_is_pow2(8));
	assert_false(bs_is_pow2(12));
	assert_true(bs_is_pow2(1ULL << 63));
	assert_false(bs_is_pow2(UINT64_MAX));
}

/* The checks behind every size option: messages in bytes, never sectors. */
static void test_check_size(void **state)
{
	(void)state;
	assert_int_equal(blksnap_check_size(&ctx, BLKSNAP_SIZE_CHUNK, 4096), 0);
	assert_int_equal(blksnap_check_size(&ctx, BLKSNAP_SIZE_CHUNK, 64ULL << 20), 0);
	assert_int_equal(blksnap_check_size(&ctx, BLKSNAP_SIZE_CHUNK, 3072), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "chunk size 3 KiB"));
	assert_null(strstr(ctx.errmsg, "sectors"));
	assert_int_equal(blksnap_check_size(&ctx, BLKSNAP_SIZE_CHUNK, 128ULL << 20), -EINVAL);
	assert_int_equal(blksnap_check_size(&ctx, BLKSNAP_SIZE_CHUNK, 3ULL << 29), -EINVAL);
	assert_int_equal(blksnap_check_size(&ctx, BLKSNAP_SIZE_TRACKING_BLOCK, 1ULL << 40), 0);
	assert_int_equal(blksnap_check_size(&ctx, BLKSNAP_SIZE_TRACKING_BLOCK, 2048), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "tracking block 2 KiB"));
	assert_int_equal(blksnap_check_size(&ctx, BLKSNAP_SIZE_TRACKING_BLOCK, 12288), -EINVAL);
	assert_int_equal(blksnap_check_size(&ctx, BLKSNAP_SIZE_STORE, 4096 + 512), 0);
	assert_int_equal(blksnap_check_size(&ctx, BLKSNAP_SIZE_STORE, 4097), -EINVAL);
	assert_int_equal(blksnap_check_size(&ctx, BLKSNAP_SIZE_STORE, 2048), -EINVAL);
	assert_int_equal(blksnap_check_size(&ctx, BLKSNAP_SIZE_GROW, 8192), 0);
	assert_int_equal(blksnap_check_size(&ctx, BLKSNAP_SIZE_GROW, 1000), -EINVAL);
	assert_int_equal(blksnap_check_size(&ctx, (enum blksnap_size_use)99, 4096), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size_plain),
		cmocka_unit_test(test_size_suffixes),
		cmocka_unit_test(test_size_bad),
		cmocka_unit_test(test_size_overflow),
		cmocka_unit_test(test_size_null_ctx),
		cmocka_unit_test(test_format_size),
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_parse_devno),
		cmocka_unit_test(test_pow2),
		cmocka_unit_test(test_check_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
