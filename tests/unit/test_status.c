// SPDX-License-Identifier: GPL-2.0-or-later
/* Unit tests: parsing of the blksnap-origin and blksnap-image status lines. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"

#define UUID "0123abcd-4567-89ef-abcd-0123456789ab"

static struct blksnap_ctx ctx;

static void origin_bad(const char *line);
static void image_bad(const char *line);

static void test_origin_idle(void **state)
{
	struct blksnap_origin_status st = { .size = sizeof(st) };

	(void)state;
	assert_int_equal(blksnap_parse_origin_status(&ctx, "128 16384 " UUID " 1 -", &st), 0);
	assert_int_equal(st.tracking_block_sectors, 128);
	assert_int_equal(st.tracking_blocks, 16384);
	assert_string_equal(st.generation_uuid, UUID);
	assert_int_equal(st.change_number, 1);
	assert_int_equal(st.snapshot_number, 0);	/* no snapshot yet */
	assert_int_equal(st.state, BLKSNAP_ORIGIN_IDLE);
	assert_string_equal(blksnap_origin_state_name(st.state), "-");
}

/*
 * A later minor version of the target may append fields: dm's convention
 * is to ignore them. The contract's fields stay strict.
 */
static void test_trailing_fields(void **state)
{
	struct blksnap_origin_status st = { .size = sizeof(st) };
	struct blksnap_image_status ist = { .size = sizeof(ist) };

	(void)state;
	assert_int_equal(blksnap_parse_origin_status(&ctx, "128 16384 " UUID " 4 - 60 extra", &st), 0);
	assert_int_equal(st.state, BLKSNAP_ORIGIN_IDLE);
	assert_int_equal(st.change_number, 4);
	assert_int_equal(blksnap_parse_origin_status(&ctx, "128 16384 " UUID " 4 snap x", &st), 0);
	assert_int_equal(st.state, BLKSNAP_ORIGIN_SNAP);
	assert_int_equal(blksnap_parse_origin_status(&ctx, "128 16384 " UUID " 4 merge 1/2 3", &st), 0);
	assert_int_equal(st.state, BLKSNAP_ORIGIN_MERGE);
	assert_int_equal(st.merge_total_chunks, 2);
	assert_int_equal(blksnap_parse_image_status(&ctx, "1024/2097152 8 128 valid 60 x", &ist), 0);
	assert_int_equal(ist.state, BLKSNAP_IMAGE_VALID);
	assert_int_equal(ist.copied_chunks, 128);
	/* An extra field does not make a malformed one right. */
	origin_bad("128 16384 " UUID " 1 merge x/2 3");
	image_bad("1024/2097152 8 128 Valid 60");
}

/* change_number is the next snapshot's number; the last one's is one less. */
static void test_snapshot_number(void **state)
{
	struct blksnap_origin_status st = { .size = sizeof(st) };

	(void)state;
	for (unsigned int c = 1; c <= 255; c++) {
		char line[128];

		snprintf(line, sizeof(line), "128 16384 " UUID " %u snap", c);
		assert_int_equal(blksnap_parse_origin_status(&ctx, line, &st), 0);
		assert_int_equal(st.change_number, c);
		assert_int_equal(st.snapshot_number, c - 1);
	}
}

/* The pcbt=/why= words of an origin with metadata, after any state. */
static void test_origin_pcbt(void **state)
{
	struct blksnap_origin_status st = { .size = sizeof(st) };
	struct bs_origin_pcbt p;

	(void)state;
	/* Without them: an in-memory origin. */
	memset(&p, 0x5a, sizeof(p));
	assert_int_equal(bs_parse_origin_info(&ctx, "128 16384 " UUID " 1 -", &st, &p), 0);
	assert_int_equal(p.state, BLKSNAP_PERSIST_NONE);
	assert_string_equal(p.why, "");
	assert_int_equal(bs_parse_origin_info(&ctx, "128 16384 " UUID " 1 - pcbt=ok why=-", &st, &p), 0);
	assert_int_equal(st.state, BLKSNAP_ORIGIN_IDLE);
	assert_int_equal(p.state, BLKSNAP_PERSIST_OK);
	assert_string_equal(p.why, "");
	assert_int_equal(bs_parse_origin_info(&ctx, "128 16384 " UUID " 4 snap pcbt=ok why=replaced", &st, &p), 0);
	assert_int_equal(st.state, BLKSNAP_ORIGIN_SNAP);
	assert_string_equal(p.why, "replaced");
	assert_int_equal(bs_parse_origin_info(&ctx, "128 16384 " UUID " 2 merge 3/5 pcbt=failed why=new", &st, &p), 0);
	assert_int_equal(st.state, BLKSNAP_ORIGIN_MERGE);
	assert_int_equal(st.merge_done_chunks, 3);
	assert_int_equal(st.merge_total_chunks, 5);
	assert_int_equal(p.state, BLKSNAP_PERSIST_FAILED);
	assert_string_equal(p.why, "new");
	assert_int_equal(bs_parse_origin_info(&ctx, "128 16384 " UUID " 2 merge_failed 3/5 pcbt=detached why=checksum", &st, &p), 0);
	assert_int_equal(st.state, BLKSNAP_ORIGIN_MERGE_FAILED);
	assert_int_equal(p.state, BLKSNAP_PERSIST_DETACHED);
	assert_string_equal(p.why, "checksum");
	/* An unknown reason is an opaque word, cut to fit. */
	assert_int_equal(bs_parse_origin_info(&ctx, "128 16384 " UUID " 1 - pcbt=ok why=some_reason_that_is_much_too_long_to_fit", &st, &p), 0);
	assert_string_equal(p.why, "some_reason_that_is_much_to");
	/* Later fields after them are ignored; the public parser takes the line too. */
	assert_int_equal(bs_parse_origin_info(&ctx, "128 16384 " UUID " 1 - pcbt=ok why=device more", &st, &p), 0);
	assert_string_equal(p.why, "device");
	assert_int_equal(blksnap_parse_origin_status(&ctx, "128 16384 " UUID " 2 merge 3/5 pcbt=ok why=-", &st), 0);
	assert_int_equal(bs_parse_origin_info(&ctx, "128 16384 " UUID " 1 -", &st, NULL), 0);
	/* Broken pcbt words. */
	origin_bad("128 16384 " UUID " 1 - pcbt=ok");
	origin_bad("128 16384 " UUID " 1 - pcbt=ok why=");
	origin_bad("128 16384 " UUID " 1 - pcbt=ok reason=new");
	origin_bad("128 16384 " UUID " 1 - pcbt=maybe why=-");
	origin_bad("128 16384 " UUID " 2 merge 3/5 pcbt= why=-");
	assert_string_equal(blksnap_persistence_name(BLKSNAP_PERSIST_NONE), "none");
	assert_string_equal(blksnap_persistence_name(BLKSNAP_PERSIST_OK), "ok");
	assert_string_equal(blksnap_persistence_name(BLKSNAP_PERSIST_FAILED), "failed");
	assert_string_equal(blksnap_persistence_name(BLKSNAP_PERSIST_DETACHED), "detached");
}

/* The caller's size: a struct of an older, smaller layout is refused. */
static void test_struct_size(void **state)
{
	struct blksnap_origin_status st;
	struct blksnap_image_status ist;

	(void)state;
	memset(&st, 0x5a, sizeof(st));
	st.size = 0;
	assert_int_equal(blksnap_parse_origin_status(&ctx, "128 16384 " UUID " 1 -", &st), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "sizeof(struct blksnap_origin_status)"));
	assert_int_equal(st.change_number, 0x5a5a5a5a);
	memset(&ist, 0, sizeof(ist));
	assert_int_equal(blksnap_parse_image_status(&ctx, "0/0 16 0 failed", &ist), -EINVAL);
	/* A larger caller (a later header) gets what this library knows. */
	struct {
		struct blksnap_origin_status st;
		char more[64];
	} big;
	memset(&big, 0x5a, sizeof(big));
	big.st.size = sizeof(big);
	assert_int_equal(blksnap_parse_origin_status(&ctx, "128 16384 " UUID " 3 -", &big.st), 0);
	assert_int_equal(big.st.change_number, 3);
	assert_int_equal(big.st.size, sizeof(big));
	assert_int_equal((unsigned char)big.more[0], 0x5a);
}

static void test_origin_snap_merge(void **state)
{
	struct blksnap_origin_status st = { .size = sizeof(st) };

	(void)state;
	assert_int_equal(blksnap_parse_origin_status(&ctx, "8 2097152 " UUID " 255 snap", &st), 0);
	assert_int_equal(st.change_number, 255);
	assert_int_equal(st.state, BLKSNAP_ORIGIN_SNAP);
	assert_int_equal(blksnap_parse_origin_status(&ctx, "256 3 " UUID " 7 merge 10/4096", &st), 0);
	assert_int_equal(st.state, BLKSNAP_ORIGIN_MERGE);
	assert_int_equal(st.merge_done_chunks, 10);
	assert_int_equal(st.merge_total_chunks, 4096);
	assert_int_equal(blksnap_parse_origin_status(&ctx, "256 3 " UUID " 7 merge 0/0", &st), 0);
	assert_string_equal(blksnap_origin_state_name(BLKSNAP_ORIGIN_MERGE), "merge");
	assert_int_equal(blksnap_parse_origin_status(&ctx, "256 3 " UUID " 7 merge_failed 3/9", &st), 0);
	assert_int_equal(st.state, BLKSNAP_ORIGIN_MERGE_FAILED);
	assert_int_equal(st.merge_done_chunks, 3);
	assert_int_equal(st.merge_total_chunks, 9);
	assert_string_equal(blksnap_origin_state_name(st.state), "merge_failed");
}

static void origin_bad(const char *line)
{
	struct blksnap_origin_status st = { .size = sizeof(st) };

	memset(&st, 0x5a, sizeof(st));
	st.size = sizeof(st);
	ctx.errmsg[0] = '\0';
	assert_int_equal(blksnap_parse_origin_status(&ctx, line, &st), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "blksnap-origin status"));
	assert_int_equal(st.change_number, 0x5a5a5a5a);	/* untouched */
}

static void test_origin_malformed(void **state)
{
	(void)state;
	origin_bad("");
	origin_bad("garbage");
	origin_bad("128 16384 " UUID " 1");			/* missing state */
	origin_bad("128 16384 " UUID);
	origin_bad("128  16384 " UUID " 1 -");			/* double blank */
	origin_bad(" 128 16384 " UUID " 1 -");
	origin_bad("128 16384 " UUID " 1 - ");
	origin_bad("128\t16384 " UUID " 1 -");
	origin_bad("128 16384 " UUID " 1 merged");
	origin_bad("128 16384 " UUID " 1 merge");
	origin_bad("128 16384 " UUID " 1 merge 5");
	origin_bad("128 16384 " UUID " 1 merge 5/");
	origin_bad("128 16384 " UUID " 1 merge /5");
	origin_bad("128 16384 " UUID " 1 merge 6/5");		/* done > total */
	origin_bad("128 16384 " UUID " 1 merge_failed");
	origin_bad("128 16384 " UUID " 1 merge_failed 4/3");
	origin_bad("128 16384 " UUID " 1 merge_fail 1/3");
	origin_bad("128 16384 " UUID " 1 merge_failed_ 1/3");
	origin_bad("128 16384 " UUID " 1 SNAP");
}

static void test_origin_fields(void **state)
{
	(void)state;
	origin_bad("127 16384 " UUID " 1 -");			/* not a power of two */
	origin_bad("4 16384 " UUID " 1 -");			/* below 8 */
	origin_bad("0 16384 " UUID " 1 -");
	origin_bad("128 0 " UUID " 1 -");
	origin_bad("128 16384 " UUID " 0 -");			/* change 1..255 */
	origin_bad("128 16384 " UUID " 256 -");
	origin_bad("128 16384 " UUID " -1 -");
	origin_bad("-128 16384 " UUID " 1 -");
	origin_bad("128 16384 0123ABCD-4567-89ef-abcd-0123456789ab 1 -");	/* uppercase */
	origin_bad("128 16384 0123abcd04567-89ef-abcd-0123456789ab 1 -");
	origin_bad("128 16384 0123abcd-4567-89ef-abcd-0123456789a 1 -");	/* short */
	origin_bad("128 16384 0123abcd-4567-89ef-abcd-0123456789abc 1 -");	/* long */
	origin_bad("128 16384 0123abcg-4567-89ef-abcd-0123456789ab 1 -");
}

static void test_origin_huge(void **state)
{
	struct blksnap_origin_status st = { .size = sizeof(st) };

	(void)state;
	assert_int_equal(blksnap_parse_origin_status(&ctx,
		"9223372036854775808 18446744073709551615 " UUID " 1 -", &st), 0);
	assert_true(st.tracking_blocks == UINT64_MAX);
	origin_bad("128 18446744073709551616 " UUID " 1 -");
	origin_bad("128 99999999999999999999999 " UUID " 1 -");
	origin_bad("128 16384 " UUID " 4294967297 -");		/* would wrap to 1 */
	origin_bad("128 16384 " UUID " 1 merge 1/18446744073709551616");
}

static void test_image_ok(void **state)
{
	struct blksnap_image_status st = { .size = sizeof(st) };

	(void)state;
	assert_int_equal(blksnap_parse_image_status(&ctx, "1024/2097152 8 128 valid", &st), 0);
	assert_int_equal(st.used_sectors, 1024);
	assert_int_equal(st.store_sectors, 2097152);
	assert_int_equal(st.chunk_sectors, 8);
	assert_int_equal(st.copied_chunks, 128);
	assert_int_equal(st.state, BLKSNAP_IMAGE_VALID);
	assert_int_equal(blksnap_parse_image_status(&ctx, "2048/2048 131072 0 overflow", &st), 0);
	assert_int_equal(st.state, BLKSNAP_IMAGE_OVERFLOW);
	assert_int_equal(blksnap_parse_image_status(&ctx, "0/0 16 0 failed", &st), 0);
	assert_int_equal(st.state, BLKSNAP_IMAGE_FAILED);
	assert_int_equal(blksnap_parse_image_status(&ctx, "64/4096 8 8 merging", &st), 0);
	assert_int_equal(st.state, BLKSNAP_IMAGE_MERGING);
	assert_string_equal(blksnap_image_state_name(st.state), "merging");
	assert_string_equal(blksnap_image_state_name(BLKSNAP_IMAGE_OVERFLOW), "overflow");
	assert_string_equal(blksnap_image_state_name(BLKSNAP_IMAGE_FAILED), "failed");
	assert_string_equal(blksnap_image_state_name(BLKSNAP_IMAGE_VALID), "valid");
}

static void image_bad(const char *line)
{
	struct blksnap_image_status st = { .size = sizeof(st) };

	memset(&st, 0x5a, sizeof(st));
	st.size = sizeof(st);
	ctx.errmsg[0] = '\0';
	assert_int_equal(blksnap_parse_image_status(&ctx, line, &st), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "blksnap-image status"));
	assert_int_equal(st.state, 0x5a5a5a5a);
}

static void test_image_malformed(void **state)
{
	(void)state;
	image_bad("");
	image_bad("valid");
	image_bad("1024/2097152 8 128");			/* missing state */
	image_bad("1024/2097152 8 valid");
	image_bad("1024 2097152 8 128 valid");			/* no slash */
	image_bad("1024/ 8 128 valid");
	image_bad("/2048 8 128 valid");
	image_bad("1024/2048/4096 8 128 valid");
	image_bad("4096/2048 8 128 valid");			/* used > store */
	image_bad("1024/2097152 4 128 valid");			/* chunk < 8 */
	image_bad("1024/2097152 262144 128 valid");		/* chunk > 64 MiB */
	image_bad("1024/2097152 24 128 valid");			/* not a power of two */
	image_bad("1024/2097152 8 -1 valid");
	image_bad("1024/2097152 8 128 Valid");
	image_bad("1024/2097152 8 128 invalid");
	image_bad("1024/2097152  8 128 valid");
	image_bad("1024/18446744073709551616 8 128 valid");
	image_bad("1024/2097152 8 18446744073709551616 valid");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_origin_idle),
		cmocka_unit_test(test_origin_snap_merge),
		cmocka_unit_test(test_origin_malformed),
		cmocka_unit_test(test_trailing_fields),
		cmocka_unit_test(test_snapshot_number),
		cmocka_unit_test(test_origin_pcbt),
		cmocka_unit_test(test_struct_size),
		cmocka_unit_test(test_origin_fields),
		cmocka_unit_test(test_origin_huge),
		cmocka_unit_test(test_image_ok),
		cmocka_unit_test(test_image_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
