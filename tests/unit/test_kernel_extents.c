// SPDX-License-Identifier: GPL-2.0
/*
 * The kernel's extent listing (drivers/md/dm-blksnap-extents.h), compiled
 * here in userspace and checked against a brute-force model; and
 * libblksnap's listing from a map read in pieces (the CBT iterator),
 * checked against the kernel's.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../drivers/md/dm-blksnap-extents.h"
#include "internal.h"

/* List extents the way the kernel's cbt_changes message does. */
static void list_extents(const unsigned char *map, unsigned long n,
			 unsigned char since, unsigned int shift,
			 unsigned long long dev_sectors, char *out, size_t len)
{
	unsigned long pos = 0, start, count;
	unsigned long long sector, sectors;
	size_t sz = 0;

	out[0] = '\0';
	while (blksnap_next_extent(map, n, since, &pos, &start, &count)) {
		blksnap_extent_sectors(start, count, shift, dev_sectors,
				       &sector, &sectors);
		sz += snprintf(out + sz, len - sz, "%s%llu+%llu", sz ? " " : "",
			       sector, sectors);
	}
}

/* The model: one block at a time, merging by hand. */
static void model_extents(const unsigned char *map, unsigned long n,
			  unsigned char since, unsigned int shift,
			  unsigned long long dev_sectors, char *out, size_t len)
{
	unsigned long long cur_start = 0, cur_end = 0;
	size_t sz = 0;
	int open = 0;

	out[0] = '\0';
	for (unsigned long b = 0; b <= n; b++) {
		int changed = b < n && map[b] > since;
		unsigned long long s = (unsigned long long)b << shift;
		unsigned long long e = s + (1ULL << shift);

		if (e > dev_sectors)
			e = dev_sectors;
		if (changed && open && s == cur_end) {
			cur_end = e;
		} else {
			if (open)
				sz += snprintf(out + sz, len - sz, "%s%llu+%llu",
					       sz ? " " : "", cur_start,
					       cur_end - cur_start);
			open = changed;
			cur_start = s;
			cur_end = e;
		}
	}
}

static void test_examples(void **state)
{
	unsigned char map[8] = { 1, 1, 0, 0, 0, 0, 1, 0 };
	char out[256];

	(void)state;
	list_extents(map, 8, 0, 7, 1024, out, sizeof(out));
	assert_string_equal(out, "0+256 768+128");
	list_extents(map, 8, 1, 7, 1024, out, sizeof(out));
	assert_string_equal(out, "");
	/* The last block is clipped to the device size. */
	map[7] = 3;
	list_extents(map, 8, 2, 7, 1000, out, sizeof(out));
	assert_string_equal(out, "896+104");
	list_extents(map, 8, 0, 7, 1000, out, sizeof(out));
	assert_string_equal(out, "0+256 768+232");
}

static void test_random_against_model(void **state)
{
	static unsigned char map[4096];
	static char got[65536], want[65536];

	(void)state;
	srand(12345);
	for (int round = 0; round < 200; round++) {
		unsigned long n = 1 + rand() % 4096;
		unsigned int shift = 3 + rand() % 6;
		unsigned long long dev = ((unsigned long long)n << shift) -
					 rand() % (1u << shift);
		unsigned char since = rand() % 4;

		for (unsigned long b = 0; b < n; b++)
			map[b] = rand() % 5;
		list_extents(map, n, since, shift, dev, got, sizeof(got));
		model_extents(map, n, since, shift, dev, want, sizeof(want));
		assert_string_equal(got, want);
	}
}

/*
 * The library's scan of @map fed in pieces of @piece bytes, emptied every
 * @room extents, printed like the kernel's reply.
 */
static void scan_extents(const unsigned char *map, unsigned long n, unsigned char since,
			 unsigned int shift, unsigned long long dev_sectors, size_t piece,
			 size_t room, char *out, size_t len)
{
	struct blksnap_extent ext[16];
	struct bs_map_scan s;
	size_t sz = 0, k, off = 0, pos = 0;
	bool ended = false;

	assert_true(room <= 16);
	out[0] = '\0';
	bs_map_scan_init(&s, since, 1ULL << shift, dev_sectors);
	while (!ended) {
		k = 0;
		while (k < room) {
			if (pos < off) {
				pos += bs_map_scan_feed(&s, map + pos, off - pos, ext, room, &k);
				continue;
			}
			if (off < n) {
				off = off + piece < n ? off + piece : n;
				continue;
			}
			ended = bs_map_scan_end(&s, ext, room, &k);
			break;
		}
		for (size_t i = 0; i < k; i++)
			sz += snprintf(out + sz, len - sz, "%s%llu+%llu", sz ? " " : "",
				       (unsigned long long)ext[i].start,
				       (unsigned long long)ext[i].sectors);
	}
}

static void test_pieces_against_kernel(void **state)
{
	static unsigned char map[4096];
	static char got[65536], want[65536];

	(void)state;
	srand(54321);
	for (int round = 0; round < 300; round++) {
		unsigned long n = 1 + rand() % 4096;
		unsigned int shift = 3 + rand() % 6;
		unsigned long long dev = ((unsigned long long)n << shift) -
					 rand() % (1u << shift);
		unsigned char since = rand() % 4;
		size_t piece = 1 + rand() % (round % 3 ? 64 : 5000);
		size_t room = 1 + rand() % 16;

		for (unsigned long b = 0; b < n; b++)
			map[b] = rand() % 5;
		/* Long runs too: they cross many pieces. */
		if (round % 4 == 0)
			for (unsigned long b = n / 4; b < n / 2; b++)
				map[b] = 4;
		list_extents(map, n, since, shift, dev, want, sizeof(want));
		scan_extents(map, n, since, shift, dev, piece, room, got, sizeof(got));
		assert_string_equal(got, want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_examples),
		cmocka_unit_test(test_random_against_model),
		cmocka_unit_test(test_pieces_against_kernel),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
