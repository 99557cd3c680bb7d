/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libblksnap private: the metadata device of persistent change tracking
 * (meta.c; the format is drivers/md/dm-blksnap-meta.h).
 */
#ifndef BLKSNAP_META_H
#define BLKSNAP_META_H

#include <stdint.h>

/* The kernel's name for it, which the shared format header uses. */
#ifndef __packed
#define __packed __attribute__((__packed__))
#endif
#include "dm-blksnap-meta.h"
#include "internal.h"

#pragma GCC visibility push(hidden)

/* Where each area starts, in 4 KiB blocks, for @nr_blocks tracking blocks. */
struct bs_meta_layout {
	uint64_t nr_blocks;
	uint64_t map_blocks;	/* per map, = regions */
	uint64_t intent_blocks;	/* per copy */
	uint64_t intent[2];
	uint64_t active;
	uint64_t snap[2];
	uint64_t total;		/* blocks the device needs */
};

struct bs_meta_params {
	uint64_t dev_sectors;		/* the real device */
	unsigned int block_shift;	/* log2 of the tracking block in sectors */
	const char *metadata_id;	/* the real device's identity, no blanks */
	uint8_t generation[16];		/* the first generation's UUID */
	uint64_t epoch;			/* its epoch (random) */
};

/* CRC-32C (Castagnoli) of @buf, as iSCSI and the metadata use it. */
uint32_t bs_crc32c(const void *buf, size_t len);
/* 0, or -EINVAL when @nr_blocks is 0 or absurd. */
int bs_meta_layout(uint64_t nr_blocks, struct bs_meta_layout *l);
/* Set the checksum of a superblock / a map or intent block. */
void bs_meta_seal_sb(void *block);
void bs_meta_seal_hdr(void *block);
/*
 * 0 if @block is a sound superblock; -EINVAL: no magic, -EBADMSG: checksum
 * or fields, -EPROTONOSUPPORT: another format version.
 */
int bs_meta_check_sb(const void *block);
/*
 * 0 if @block is a sound map or intent block of @epoch with @magic and
 * @index; -ESTALE for a sound block of another epoch (it reads as zeros);
 * -EINVAL, -EBADMSG as above.
 */
int bs_meta_check_hdr(const void *block, uint32_t magic, uint64_t epoch,
		      uint32_t index);
/* The current superblock of blocks 0 and 1: 0, 1, or -1 if neither holds. */
int bs_meta_pick_sb(const void *b0, const void *b1);
/*
 * Write the whole metadata for @p on @fd (of @size bytes): both intent
 * copies, the three maps, both superblocks (state NEW), then fsync.
 */
int bs_meta_format(struct blksnap_ctx *ctx, int fd, uint64_t size,
		   const struct bs_meta_params *p);
/* Read the current superblock into @out; returns its block (0 or 1). */
int bs_meta_read_sb(struct blksnap_ctx *ctx, int fd, struct blksnap_meta_sb *out);

#pragma GCC visibility pop

#endif
