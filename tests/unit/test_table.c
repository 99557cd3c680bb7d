// SPDX-License-Identifier: GPL-2.0-or-later
/* Unit tests: table construction, validation, table parsing and dm names. */
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

static void test_default_tracking_block(void **state)
{
	(void)state;
	assert_int_equal(bs_default_tracking_block(0), 128);
	assert_int_equal(bs_default_tracking_block(2048), 128);
	/* 128 * 2^21 sectors = 128 GiB is the last size with 64 KiB blocks. */
	assert_int_equal(bs_default_tracking_block(128ULL << 21), 128);
	assert_int_equal(bs_default_tracking_block((128ULL << 21) + 1), 256);
	assert_int_equal(bs_default_tracking_block(256ULL << 21), 256);
	assert_int_equal(bs_default_tracking_block(1ULL << 40), 1ULL << 19);
}

static void test_check_tracking_block(void **state)
{
	(void)state;
	assert_int_equal(bs_check_tracking_block(&ctx, 8, 0), 0);
	assert_int_equal(bs_check_tracking_block(&ctx, 128, 2048), 0);
	assert_int_equal(bs_check_tracking_block(&ctx, 4, 0), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "power of two"));
	assert_int_equal(bs_check_tracking_block(&ctx, 24, 0), -EINVAL);
	assert_int_equal(bs_check_tracking_block(&ctx, 0, 0), -EINVAL);
	/* Too many blocks: the message names the smallest that works. */
	assert_int_equal(bs_check_tracking_block(&ctx, 8, 8ULL * 2097152 + 1), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "use at least 8 KiB"));
	assert_int_equal(bs_check_tracking_block(&ctx, 8, 8ULL * 2097152), 0);
}

static void test_check_chunk(void **state)
{
	(void)state;
	assert_int_equal(bs_check_chunk(&ctx, 8), 0);
	assert_int_equal(bs_check_chunk(&ctx, 131072), 0);
	assert_int_equal(bs_check_chunk(&ctx, 4), -EINVAL);
	assert_int_equal(bs_check_chunk(&ctx, 262144), -EINVAL);
	assert_int_equal(bs_check_chunk(&ctx, 24), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "power of two from 4 KiB"));
}

static void test_default_chunk(void **state)
{
	(void)state;
	assert_int_equal(bs_default_chunk(0), 8);
	assert_int_equal(bs_default_chunk(2048), 8);
	/* 2^28 chunks of 4 KiB = 1 TiB is the last size with 4 KiB chunks. */
	assert_int_equal(bs_default_chunk(8ULL << 28), 8);
	assert_int_equal(bs_default_chunk((8ULL << 28) + 1), 16);
	/* 8 TiB, the first size the kernel refuses at 4 KiB. */
	assert_int_equal(bs_default_chunk(1ULL << 34), 64);
	/* 64 TiB: 256 KiB chunks, a 32 MiB bitmap. */
	assert_int_equal(bs_default_chunk(1ULL << 37), 512);
	/* Never past the largest chunk. */
	assert_int_equal(bs_default_chunk(UINT64_MAX / 2), 131072);
	/* Up to 128 PiB, where 64 MiB chunks reach the 2^31 limit. */
	for (uint64_t d = 1; d <= (1ULL << 48); d = d * 3 + 7) {
		uint64_t c = bs_default_chunk(d);

		assert_true((d + c - 1) / c <= (1ULL << 28) || c == 131072);
		assert_int_equal(bs_check_chunk_count(&ctx, c, d), 0);
	}
}

static void test_check_chunk_count(void **state)
{
	(void)state;
	assert_int_equal(bs_check_chunk_count(&ctx, 8, 8ULL << 31), 0);
	assert_int_equal(bs_check_chunk_count(&ctx, 8, (8ULL << 31) + 1), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "use at least 8 KiB"));
	assert_int_equal(bs_check_chunk_count(&ctx, 8, 1ULL << 37), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "use at least 32 KiB"));
	assert_int_equal(bs_check_chunk_count(&ctx, 64, 1ULL << 37), 0);
}

static void test_origin_params(void **state)
{
	char *p = NULL;

	(void)state;
	assert_int_equal(bs_origin_params(&ctx, "253:1", 0, &p), 0);
	assert_string_equal(p, "253:1");
	free(p);
	assert_int_equal(bs_origin_params(&ctx, "/dev/vdb", 256, &p), 0);
	assert_string_equal(p, "/dev/vdb 2 tracking_block_sectors 256");
	free(p);
	p = NULL;
	assert_int_equal(bs_origin_params(&ctx, "/dev/vdb", 100, &p), -EINVAL);
	assert_null(p);
	assert_int_equal(bs_origin_params(&ctx, "", 0, &p), -EINVAL);
	assert_int_equal(bs_origin_params(&ctx, "a b", 0, &p), -EINVAL);
	assert_int_equal(bs_origin_params(&ctx, NULL, 0, &p), -EINVAL);
}

static void test_image_params(void **state)
{
	char *p = NULL;

	(void)state;
	assert_int_equal(bs_image_params(&ctx, "8:16", "253:4", 8, 0, &p), 0);
	assert_string_equal(p, "8:16 253:4 8");
	free(p);
	assert_int_equal(bs_image_params(&ctx, "8:16", "253:4", 131072, 4096, &p), 0);
	assert_string_equal(p, "8:16 253:4 131072 2 low_water 4096");
	free(p);
	p = NULL;
	assert_int_equal(bs_image_params(&ctx, "8:16", "8:16", 8, 0, &p), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "must not be the real device"));
	assert_int_equal(bs_image_params(&ctx, "8:16", "253:4", 12, 0, &p), -EINVAL);
	assert_int_equal(bs_image_params(&ctx, "8:16", "253:4", 262144, 0, &p), -EINVAL);
	assert_int_equal(bs_image_params(&ctx, "8:16", "", 8, 0, &p), -EINVAL);
	assert_null(p);
}

static void test_linear(void **state)
{
	const struct bs_segment segs[] = { { 7, 0, 2048, 0 }, { 8, 32, 4096, 0 } };
	const struct bs_segment more = { 7, 1, 100, 8 };
	const struct bs_segment empty = { 7, 2, 0, 0 };
	struct bs_target *t = NULL;
	size_t n = 0;
	uint32_t ma, mi;
	uint64_t off;

	(void)state;
	assert_int_equal(bs_linear_append(&ctx, &t, &n, segs, 2), 0);
	assert_int_equal(n, 2);
	assert_int_equal(t[0].start, 0);
	assert_int_equal(t[0].len, 2048);
	assert_string_equal(t[0].type, "linear");
	assert_string_equal(t[0].params, "7:0 0");
	assert_int_equal(t[1].start, 2048);
	assert_int_equal(t[1].len, 4096);
	assert_string_equal(t[1].params, "8:32 0");
	/* store add: a segment after the existing ones */
	assert_int_equal(bs_linear_append(&ctx, &t, &n, &more, 1), 0);
	assert_int_equal(n, 3);
	assert_int_equal(t[2].start, 6144);
	assert_string_equal(t[2].params, "7:1 8");	/* a device part: after its marker */
	assert_int_equal(bs_linear_append(&ctx, &t, &n, &empty, 1), -EINVAL);
	assert_int_equal(n, 3);
	assert_int_equal(bs_parse_linear_params(&ctx, t[1].params, &ma, &mi, &off), 0);
	assert_int_equal(ma, 8);
	assert_int_equal(mi, 32);
	assert_int_equal(off, 0);
	bs_targets_free(t, n);

	assert_int_equal(bs_parse_linear_params(&ctx, "8:32", &ma, &mi, &off), -EINVAL);
	assert_int_equal(bs_parse_linear_params(&ctx, "8:32 0 1", &ma, &mi, &off), -EINVAL);
	assert_int_equal(bs_parse_linear_params(&ctx, "/dev/sdb 0", &ma, &mi, &off), -EINVAL);
}

static void test_parse_origin_table(void **state)
{
	struct bs_origin_table t;

	(void)state;
	assert_int_equal(bs_parse_origin_params(&ctx, "253:1", &t), 0);
	assert_int_equal(t.major, 253);
	assert_int_equal(t.minor, 1);
	assert_int_equal(t.tracking, 0);
	assert_int_equal(bs_parse_origin_params(&ctx, "8:16 2 tracking_block_sectors 256", &t), 0);
	assert_int_equal(t.tracking, 256);
	assert_int_equal(bs_parse_origin_params(&ctx, "8:16 2 tracking_block_sectors", &t), -EINVAL);
	assert_int_equal(bs_parse_origin_params(&ctx, "8:16 3 tracking_block_sectors 256", &t), -EINVAL);
	assert_int_equal(bs_parse_origin_params(&ctx, "8:16 2 tracking_block_sectors x", &t), -EINVAL);
	assert_int_equal(bs_parse_origin_params(&ctx, "", &t), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "blksnap-origin table"));
}

/* Persistent CBT: build, parse back, and the refusals. */
static void test_origin_table_pcbt(void **state)
{
	struct bs_origin_opts o = { .tracking = 128, .metadata = "8:32", .metadata_id = "wwn-0x5000c500a1b2c3d4" };
	struct bs_origin_table t;
	char *params = NULL, id[200];

	(void)state;
	assert_int_equal(bs_origin_params_opts(&ctx, "8:16", &o, &params), 0);
	assert_string_equal(params, "8:16 6 tracking_block_sectors 128 metadata 8:32 metadata_id wwn-0x5000c500a1b2c3d4");
	assert_int_equal(bs_parse_origin_params(&ctx, params, &t), 0);
	free(params);
	assert_int_equal(t.major, 8);
	assert_int_equal(t.minor, 16);
	assert_int_equal(t.tracking, 128);
	assert_true(t.has_metadata);
	assert_int_equal(t.meta_major, 8);
	assert_int_equal(t.meta_minor, 32);
	assert_string_equal(t.metadata_id, "wwn-0x5000c500a1b2c3d4");

	/* Without metadata: as before, and has_metadata false. */
	assert_int_equal(bs_origin_params_opts(&ctx, "8:16", &(struct bs_origin_opts){ .tracking = 256 }, &params), 0);
	assert_string_equal(params, "8:16 2 tracking_block_sectors 256");
	assert_int_equal(bs_parse_origin_params(&ctx, params, &t), 0);
	free(params);
	assert_false(t.has_metadata);
	assert_string_equal(t.metadata_id, "");

	/* Options in any order; unknown ones (a later minor version) are skipped. */
	assert_int_equal(bs_parse_origin_params(&ctx, "253:1 6 metadata_id LVM-abc metadata 253:7 tracking_block_sectors 64", &t), 0);
	assert_int_equal(t.tracking, 64);
	assert_int_equal(t.meta_minor, 7);
	assert_string_equal(t.metadata_id, "LVM-abc");
	assert_int_equal(bs_parse_origin_params(&ctx, "253:1 4 future_opt x tracking_block_sectors 64", &t), 0);
	assert_int_equal(t.tracking, 64);

	/* Refused by the parser: one without the other, duplicates, a bad device, too long. */
	assert_int_equal(bs_parse_origin_params(&ctx, "8:16 4 tracking_block_sectors 128 metadata 8:32", &t), -EINVAL);
	assert_int_equal(bs_parse_origin_params(&ctx, "8:16 4 tracking_block_sectors 128 metadata_id x", &t), -EINVAL);
	assert_int_equal(bs_parse_origin_params(&ctx, "8:16 4 tracking_block_sectors 128 tracking_block_sectors 64", &t), -EINVAL);
	assert_int_equal(bs_parse_origin_params(&ctx, "8:16 8 metadata 8:32 metadata_id x metadata 8:33 tracking_block_sectors 8", &t), -EINVAL);
	assert_int_equal(bs_parse_origin_params(&ctx, "8:16 8 metadata 8:32 metadata_id x metadata_id y tracking_block_sectors 8", &t), -EINVAL);
	assert_int_equal(bs_parse_origin_params(&ctx, "8:16 4 metadata sdc metadata_id x", &t), -EINVAL);
	assert_int_equal(bs_parse_origin_params(&ctx, "8:16 5 metadata 8:32 metadata_id x", &t), -EINVAL);
	memset(id, 'a', 128);
	id[128] = '\0';
	params = bs_strdupf("8:16 4 metadata 8:32 metadata_id %s", id);
	assert_int_equal(bs_parse_origin_params(&ctx, params, &t), -EINVAL);
	free(params);
	id[127] = '\0';
	params = bs_strdupf("8:16 4 metadata 8:32 metadata_id %s", id);
	assert_int_equal(bs_parse_origin_params(&ctx, params, &t), 0);
	free(params);
	assert_int_equal(strlen(t.metadata_id), 127);

	/* Refused by the builder. */
	params = (char *)&ctx;
	o.metadata_id = NULL;
	assert_int_equal(bs_origin_params_opts(&ctx, "8:16", &o, &params), -EINVAL);
	assert_null(params);
	assert_non_null(strstr(ctx.errmsg, "go together"));
	o.metadata_id = "has blank";
	assert_int_equal(bs_origin_params_opts(&ctx, "8:16", &o, &params), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "blank"));
	o.metadata_id = "tab\there";
	assert_int_equal(bs_origin_params_opts(&ctx, "8:16", &o, &params), -EINVAL);
	o.metadata_id = "back\\slash";
	assert_int_equal(bs_origin_params_opts(&ctx, "8:16", &o, &params), -EINVAL);
	o.metadata_id = "";
	assert_int_equal(bs_origin_params_opts(&ctx, "8:16", &o, &params), -EINVAL);
	o.metadata_id = id;	/* 127 characters: the longest */
	assert_int_equal(bs_origin_params_opts(&ctx, "8:16", &o, &params), 0);
	free(params);
	id[127] = 'a';		/* 128 */
	assert_int_equal(bs_origin_params_opts(&ctx, "8:16", &o, &params), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "longer than 127"));
	o.metadata_id = "ok";
	o.tracking = 0;		/* the superblock's block size must be the table's */
	assert_int_equal(bs_origin_params_opts(&ctx, "8:16", &o, &params), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "explicit tracking block"));
	o.tracking = 128;
	o.metadata = "8:32 x";
	assert_int_equal(bs_origin_params_opts(&ctx, "8:16", &o, &params), -EINVAL);
	o.metadata = NULL;
	assert_int_equal(bs_origin_params_opts(&ctx, "8:16", &o, &params), -EINVAL);
}

static void test_parse_image_table(void **state)
{
	struct bs_image_table t;

	(void)state;
	assert_int_equal(bs_parse_image_params(&ctx, "8:16 253:4 8", &t), 0);
	assert_int_equal(t.real_major, 8);
	assert_int_equal(t.real_minor, 16);
	assert_int_equal(t.store_major, 253);
	assert_int_equal(t.store_minor, 4);
	assert_int_equal(t.chunk, 8);
	assert_int_equal(t.low_water, 0);
	assert_int_equal(bs_parse_image_params(&ctx, "8:16 253:4 8 2 low_water 99", &t), 0);
	assert_int_equal(t.low_water, 99);
	assert_int_equal(bs_parse_image_params(&ctx, "8:16 253:4", &t), -EINVAL);
	assert_int_equal(bs_parse_image_params(&ctx, "8:16 253:4 x", &t), -EINVAL);
	assert_int_equal(bs_parse_image_params(&ctx, "8:16 253:4 8 1 low_water", &t), -EINVAL);
}

static void test_snapshot_names(void **state)
{
	char buf[32], *name, *uuid, long_name[80];

	(void)state;
	assert_int_equal(bs_check_snapshot_name(&ctx, "snap-20240101-120000"), 0);
	assert_int_equal(bs_check_snapshot_name(&ctx, "nightly_1.2+x"), 0);
	assert_int_equal(bs_check_snapshot_name(&ctx, ""), -EINVAL);
	assert_int_equal(bs_check_snapshot_name(&ctx, "-x"), -EINVAL);
	assert_int_equal(bs_check_snapshot_name(&ctx, ".x"), -EINVAL);
	assert_int_equal(bs_check_snapshot_name(&ctx, "a/b"), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "contains '/'"));
	assert_int_equal(bs_check_snapshot_name(&ctx, "a b"), -EINVAL);
	assert_int_equal(bs_check_snapshot_name(&ctx, "caf\xc3\xa9"), -EINVAL);
	memset(long_name, 'a', 65);
	long_name[65] = '\0';
	assert_int_equal(bs_check_snapshot_name(&ctx, long_name), -ENAMETOOLONG);
	long_name[64] = '\0';
	assert_int_equal(bs_check_snapshot_name(&ctx, long_name), 0);

	assert_int_equal(bs_default_snapshot_name(0, buf, sizeof(buf)), 0);
	assert_int_equal(strlen(buf), strlen("snap-YYYYMMDD-HHMMSS"));
	assert_memory_equal(buf, "snap-19", 7);	/* 1969 or 1970, by time zone */
	assert_int_equal(bs_default_snapshot_name(0, buf, 8), -ENAMETOOLONG);

	assert_int_equal(bs_image_names(&ctx, "vg-lv", "snap-1", &name, &uuid), 0);
	assert_string_equal(name, "vg-lv-snap-1");
	assert_string_equal(uuid, "BLKSNAP-IMAGE-snap-1-vg-lv");
	free(name);
	free(uuid);
	memset(long_name, 'o', 70);
	long_name[70] = '\0';
	assert_int_equal(bs_image_names(&ctx, long_name, "snap-1", &name, &uuid), 0);
	free(name);
	free(uuid);
	long_name[65] = '\0';
	assert_int_equal(bs_image_names(&ctx, long_name, long_name, &name, &uuid), -ENAMETOOLONG);
	assert_null(name);
	assert_null(uuid);
	assert_non_null(strstr(ctx.errmsg, "--name"));
}

static void test_prefix(void **state)
{
	(void)state;
	assert_string_equal(bs_prefix("BLKSNAP-STORE-s1", BS_UUID_STORE), "s1");
	assert_null(bs_prefix("LVM-abc", BS_UUID_STORE));
	assert_null(bs_prefix(NULL, BS_UUID_STORE));
	assert_string_equal(bs_prefix("BLKSNAP-STORE-", BS_UUID_STORE), "");
}

/* The targets' versions this library drives: 1.1 and later 1.x. */
static void test_target_version(void **state)
{
	(void)state;
	assert_true(bs_target_version_ok((uint32_t[]){ 1, 1, 0 }));
	assert_true(bs_target_version_ok((uint32_t[]){ 1, 1, 1 }));
	assert_true(bs_target_version_ok((uint32_t[]){ 1, 2, 0 }));
	assert_true(bs_target_version_ok((uint32_t[]){ 1, 99, 3 }));
	assert_false(bs_target_version_ok((uint32_t[]){ 1, 0, 9 }));
	assert_false(bs_target_version_ok((uint32_t[]){ 0, 9, 0 }));
	assert_false(bs_target_version_ok((uint32_t[]){ 2, 0, 0 }));
	assert_false(bs_target_version_ok((uint32_t[]){ 2, 1, 0 }));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_target_version),
		cmocka_unit_test(test_default_tracking_block),
		cmocka_unit_test(test_check_tracking_block),
		cmocka_unit_test(test_check_chunk),
		cmocka_unit_test(test_default_chunk),
		cmocka_unit_test(test_check_chunk_count),
		cmocka_unit_test(test_origin_params),
		cmocka_unit_test(test_image_params),
		cmocka_unit_test(test_linear),
		cmocka_unit_test(test_parse_origin_table),
		cmocka_unit_test(test_origin_table_pcbt),
		cmocka_unit_test(test_parse_image_table),
		cmocka_unit_test(test_snapshot_names),
		cmocka_unit_test(test_prefix),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
