// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * cbt-meta: the tests' view of a persistent CBT metadata device, through
 * libblksnap's format code (what blksnapctl attach uses).
 *
 *   cbt-meta format DEV DEV_SECTORS BLOCK_SECTORS ID
 *   cbt-meta sb DEV     print the current superblock as key=value words
 *   cbt-meta layout DEV_SECTORS BLOCK_SECTORS
 *                       print the areas' first blocks and the blocks needed
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "blksnap.h"
#include "meta.h"

static const char *const states[] = { "new", "open", "closed", "replaced",
				       "detached", "failed" };

static unsigned int shift_of(const char *s)
{
	unsigned long v = strtoul(s, NULL, 10);
	unsigned int k = 0;

	while (v > 1) {
		v >>= 1;
		k++;
	}
	return k;
}

int main(int argc, char **argv)
{
	struct blksnap_ctx *ctx;
	int fd, r;

	if (argc == 4 && !strcmp(argv[1], "layout")) {
		uint64_t sectors = strtoull(argv[2], NULL, 10);
		unsigned int shift = shift_of(argv[3]);
		struct bs_meta_layout l;

		if (bs_meta_layout((sectors + (1ull << shift) - 1) >> shift, &l))
			return 1;
		printf("intent0=%" PRIu64 " intent1=%" PRIu64 " active=%" PRIu64
		       " snap0=%" PRIu64 " snap1=%" PRIu64 " total=%" PRIu64
		       " map_blocks=%" PRIu64 "\n", l.intent[0], l.intent[1],
		       l.active, l.snap[0], l.snap[1], l.total, l.map_blocks);
		return 0;
	}
	if (argc < 3 || blksnap_ctx_new(&ctx))
		return 2;
	fd = open(argv[2], argc == 6 ? O_RDWR : O_RDONLY);
	if (fd < 0) {
		perror(argv[2]);
		return 1;
	}
	if (argc == 6 && !strcmp(argv[1], "format")) {
		struct bs_meta_params p = {
			.dev_sectors = strtoull(argv[3], NULL, 10),
			.block_shift = shift_of(argv[4]),
			.metadata_id = argv[5],
		};
		off_t size = lseek(fd, 0, SEEK_END);

		if (getrandom(p.generation, sizeof(p.generation), 0) < 0 ||
		    getrandom(&p.epoch, sizeof(p.epoch), 0) < 0)
			return 1;
		r = bs_meta_format(ctx, fd, (uint64_t)size, &p);
	} else if (argc == 3 && !strcmp(argv[1], "sb")) {
		struct blksnap_meta_sb sb;

		r = bs_meta_read_sb(ctx, fd, &sb);
		if (r >= 0) {
			printf("block=%d state=%s seq=%" PRIu64 " C=%u snap=%u taken=%u slot=%u id=%s gen=",
			       r, sb.state < 6 ? states[sb.state] : "?",
			       (uint64_t)le64toh(sb.seq), sb.change_number,
			       sb.snap_number, sb.snap_taken, sb.snap_map,
			       sb.metadata_id);
			for (int i = 0; i < 16; i++)
				printf("%s%02x", i == 4 || i == 6 || i == 8 || i == 10 ? "-" : "",
				       sb.generation[i]);
			printf("\n");
			r = 0;
		}
	} else {
		return 2;
	}
	if (r)
		fprintf(stderr, "cbt-meta: %s\n", blksnap_errmsg(ctx));
	close(fd);
	blksnap_ctx_free(ctx);
	return r ? 1 : 0;
}
