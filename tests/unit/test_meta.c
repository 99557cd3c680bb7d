// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests: the persistent CBT metadata format in userspace (layout,
 * CRC-32C, sealing and checking blocks, picking the superblock, formatting
 * a file and reading it back, a torn superblock).
 */
#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "meta.h"

static struct blksnap_ctx ctx;

static void test_crc32c(void **state)
{
	static const uint8_t zeros[32];

	(void)state;
	/* The check values of CRC-32C (RFC 3720, B.4). */
	assert_int_equal(bs_crc32c("123456789", 9), 0xe3069283u);
	assert_int_equal(bs_crc32c(zeros, sizeof(zeros)), 0x8a9136aau);
	assert_int_equal(bs_crc32c("", 0), 0);
}

static void test_layout(void **state)
{
	struct bs_meta_layout l;

	(void)state;
	assert_int_equal(bs_meta_layout(0, &l), -EINVAL);
	assert_int_equal(bs_meta_layout(1, &l), 0);
	assert_int_equal(l.map_blocks, 1);
	assert_int_equal(l.intent_blocks, 1);
	assert_int_equal(l.intent[0], 2);
	assert_int_equal(l.intent[1], 3);
	assert_int_equal(l.active, 4);
	assert_int_equal(l.snap[0], 5);
	assert_int_equal(l.snap[1], 6);
	assert_int_equal(l.total, 7);
	assert_int_equal(bs_meta_layout(BLKSNAP_META_ENTRIES, &l), 0);
	assert_int_equal(l.map_blocks, 1);
	assert_int_equal(bs_meta_layout(BLKSNAP_META_ENTRIES + 1, &l), 0);
	assert_int_equal(l.map_blocks, 2);
	assert_int_equal(l.total, 2 + 2 + 3 * 2);
	/* The largest tracker (2^28 blocks): 66053 regions, 3 intent blocks. */
	assert_int_equal(bs_meta_layout(1ull << 28, &l), 0);
	assert_int_equal(l.map_blocks, 66053);
	assert_int_equal(l.intent_blocks, 3);
	assert_int_equal(l.active, 2 + 6);
	assert_int_equal(l.total, 2 + 6 + 3 * 66053);
}

static void make_sb(uint8_t *block, uint64_t seq)
{
	struct blksnap_meta_sb *sb = (void *)block;

	memset(block, 0, BLKSNAP_META_BLOCK);
	memcpy(sb->magic, BLKSNAP_META_SB_MAGIC, sizeof(sb->magic));
	sb->version = htole32(BLKSNAP_META_VERSION);
	sb->seq = htole64(seq);
	sb->change_number = 1;
	strcpy(sb->metadata_id, "wwn-0x5000c500a1b2c3d4");
	bs_meta_seal_sb(block);
}

static void test_sb_check(void **state)
{
	uint8_t block[BLKSNAP_META_BLOCK];
	struct blksnap_meta_sb *sb = (void *)block;

	(void)state;
	make_sb(block, 7);
	assert_int_equal(bs_meta_check_sb(block), 0);
	/* Any byte of the block counts, also past the fields. */
	block[BLKSNAP_META_BLOCK - 1] ^= 1;
	assert_int_equal(bs_meta_check_sb(block), -EBADMSG);
	make_sb(block, 7);
	sb->change_number = 2;
	assert_int_equal(bs_meta_check_sb(block), -EBADMSG);
	make_sb(block, 7);
	sb->magic[0] = 'X';
	assert_int_equal(bs_meta_check_sb(block), -EINVAL);
	make_sb(block, 7);
	sb->version = htole32(BLKSNAP_META_VERSION + 1);
	bs_meta_seal_sb(block);
	assert_int_equal(bs_meta_check_sb(block), -EPROTONOSUPPORT);
	/* Sealed, but fields no kernel writes. */
	make_sb(block, 7);
	sb->state = BLKSNAP_META_NR_STATES;
	bs_meta_seal_sb(block);
	assert_int_equal(bs_meta_check_sb(block), -EBADMSG);
	make_sb(block, 7);
	sb->change_number = 0;
	bs_meta_seal_sb(block);
	assert_int_equal(bs_meta_check_sb(block), -EBADMSG);
}

static void test_hdr_check(void **state)
{
	uint8_t block[BLKSNAP_META_BLOCK] = { 0 };
	struct blksnap_meta_hdr *h = (void *)block;

	(void)state;
	h->magic = htole32(BLKSNAP_META_MAP_MAGIC);
	h->epoch = htole64(0x1122334455667788ull);
	h->index = htole32(5);
	block[100] = 3;
	bs_meta_seal_hdr(block);
	assert_int_equal(bs_meta_check_hdr(block, BLKSNAP_META_MAP_MAGIC,
					   0x1122334455667788ull, 5), 0);
	assert_int_equal(bs_meta_check_hdr(block, BLKSNAP_META_MAP_MAGIC, 1, 5), -ESTALE);
	assert_int_equal(bs_meta_check_hdr(block, BLKSNAP_META_MAP_MAGIC,
					   0x1122334455667788ull, 6), -EINVAL);
	assert_int_equal(bs_meta_check_hdr(block, BLKSNAP_META_INTENT_MAGIC,
					   0x1122334455667788ull, 5), -EINVAL);
	/* A torn write: the second half of the entries is older. */
	memset(block + BLKSNAP_META_BLOCK / 2, 7, BLKSNAP_META_BLOCK / 2);
	assert_int_equal(bs_meta_check_hdr(block, BLKSNAP_META_MAP_MAGIC,
					   0x1122334455667788ull, 5), -EBADMSG);
}

static void test_pick(void **state)
{
	uint8_t b0[BLKSNAP_META_BLOCK], b1[BLKSNAP_META_BLOCK];

	(void)state;
	make_sb(b0, 4);
	make_sb(b1, 5);
	assert_int_equal(bs_meta_pick_sb(b0, b1), 1);
	make_sb(b0, 6);
	assert_int_equal(bs_meta_pick_sb(b0, b1), 0);
	b0[200] ^= 0x80;	/* the newer one is torn: the older holds */
	assert_int_equal(bs_meta_pick_sb(b0, b1), 1);
	b1[9] ^= 1;
	assert_int_equal(bs_meta_pick_sb(b0, b1), -1);
}

static int temp_file(void)
{
	char path[] = "/tmp/test_meta.XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	return fd;
}

static void test_format(void **state)
{
	/* 64 GiB with 64 KiB tracking blocks: 2^20 blocks, 259 regions. */
	struct bs_meta_params p = {
		.dev_sectors = 64ull << 21, .block_shift = 7,
		.metadata_id = "wwn-0x5000c500a1b2c3d4", .epoch = 0xabcdef0123456789ull,
		.generation = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 },
	};
	uint8_t block[BLKSNAP_META_BLOCK];
	struct blksnap_meta_sb sb;
	struct bs_meta_layout l;
	uint64_t i, size;
	int fd = temp_file();

	(void)state;
	assert_int_equal(bs_meta_layout(1ull << 20, &l), 0);
	assert_int_equal(l.map_blocks, 259);
	size = l.total * BLKSNAP_META_BLOCK;
	assert_int_equal(bs_meta_format(&ctx, fd, size - 1, &p), -ENOSPC);
	assert_non_null(strstr(ctx.errmsg, "needs 3124 KiB"));
	assert_int_equal(bs_meta_format(&ctx, fd, size, &p), 0);
	assert_int_equal(lseek(fd, 0, SEEK_END), (off_t)size);

	assert_int_equal(bs_meta_read_sb(&ctx, fd, &sb), 0);
	assert_int_equal(le64toh(sb.seq), 1);
	assert_int_equal(sb.state, BLKSNAP_META_NEW);
	assert_int_equal(sb.change_number, 1);
	assert_int_equal(sb.snap_taken, 0);
	assert_int_equal(le64toh(sb.nr_blocks), 1ull << 20);
	assert_int_equal(le64toh(sb.dev_sectors), 64ull << 21);
	assert_int_equal(le32toh(sb.block_shift), 7);
	assert_int_equal(le64toh(sb.epoch), p.epoch);
	assert_memory_equal(sb.generation, p.generation, 16);
	assert_string_equal(sb.metadata_id, p.metadata_id);

	/* Every block of every area is sound, with its index in its area. */
	for (i = 0; i < l.total - 2; i++) {
		uint64_t nr = 2 + i, index;
		uint32_t magic;

		if (nr < l.active) {
			magic = BLKSNAP_META_INTENT_MAGIC;
			index = (nr - l.intent[0]) % l.intent_blocks;
		} else {
			magic = BLKSNAP_META_MAP_MAGIC;
			index = (nr - l.active) % l.map_blocks;
		}
		assert_int_equal(pread(fd, block, sizeof(block),
				       (off_t)(nr * BLKSNAP_META_BLOCK)), (ssize_t)sizeof(block));
		assert_int_equal(bs_meta_check_hdr(block, magic, p.epoch, (uint32_t)index), 0);
	}

	/* A superblock 0 torn by a power cut: block 1 (seq 0) is current. */
	assert_int_equal(pread(fd, block, sizeof(block), 0), (ssize_t)sizeof(block));
	memset(block + 2048, 0, 2048);
	block[60] ^= 0xff;
	assert_int_equal(pwrite(fd, block, sizeof(block), 0), (ssize_t)sizeof(block));
	assert_int_equal(bs_meta_read_sb(&ctx, fd, &sb), 1);
	assert_int_equal(le64toh(sb.seq), 0);
	/* Both gone: an error that says so. */
	memset(block, 0, sizeof(block));
	assert_int_equal(pwrite(fd, block, sizeof(block), BLKSNAP_META_BLOCK),
			 (ssize_t)sizeof(block));
	assert_int_equal(bs_meta_read_sb(&ctx, fd, &sb), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "no valid"));
	close(fd);
}

static void test_format_bad(void **state)
{
	struct bs_meta_params p = {
		.dev_sectors = 1 << 20, .block_shift = 7, .metadata_id = "has blank",
	};
	int fd = temp_file();

	(void)state;
	assert_int_equal(bs_meta_format(&ctx, fd, 1 << 20, &p), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "no blanks"));
	p.metadata_id = "ok";
	p.block_shift = 2;
	assert_int_equal(bs_meta_format(&ctx, fd, 1 << 20, &p), -EINVAL);
	p.block_shift = 7;
	p.dev_sectors = 0;
	assert_int_equal(bs_meta_format(&ctx, fd, 1 << 20, &p), -EINVAL);
	/* Nothing written by a refused format. */
	assert_int_equal(lseek(fd, 0, SEEK_END), 0);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c),
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_sb_check),
		cmocka_unit_test(test_hdr_check),
		cmocka_unit_test(test_pick),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_format_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
