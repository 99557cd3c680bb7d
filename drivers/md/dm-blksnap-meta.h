/* SPDX-License-Identifier: GPL-2.0 OR LGPL-2.1-or-later */
/*
 * The on-disk format of persistent change tracking: the metadata device of
 * a blksnap-origin (Documentation/dm-blksnap.rst, "Persistent change
 * tracking"). Shared by the kernel module and libblksnap, which formats
 * and inspects it. Every block is 4 KiB, little endian, and carries a
 * CRC-32C (Castagnoli, the iSCSI one) over the block with its checksum
 * field zeroed.
 *
 * Layout, in blocks:
 *   0, 1                two superblocks, written alternately; the valid
 *                       one with the higher seq is current
 *   intent copy 0, 1    the write-intent bitmap, one bit per region (the
 *                       tracking blocks of one map block), twice
 *   active map          BLKSNAP_META_ENTRIES entries per block
 *   snapshot map A, B   the same format; the superblock says which holds
 *                       the last take
 */
#ifndef DM_BLKSNAP_META_H
#define DM_BLKSNAP_META_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/compiler.h>
typedef __le32 bsm_le32;
typedef __le64 bsm_le64;
#else
#include <stdint.h>
typedef uint8_t __u8;
typedef uint32_t bsm_le32;
typedef uint64_t bsm_le64;
#ifndef __packed
#error "define __packed first (userspace/lib/meta.h does)"
#endif
#endif

#define BLKSNAP_META_BLOCK	4096
#define BLKSNAP_META_VERSION	1
#define BLKSNAP_META_SB_MAGIC	"BSNAPCBT"	/* 8 bytes, no NUL */
#define BLKSNAP_META_MAP_MAGIC	0x504d5342u	/* "BSMP" */
#define BLKSNAP_META_INTENT_MAGIC 0x4e495342u	/* "BSIN" */
#define BLKSNAP_META_ID_LEN	128

/* Superblock states (Documentation/dm-blksnap.rst, "States"). */
enum blksnap_meta_state {
	BLKSNAP_META_NEW = 0,		/* formatted, never loaded */
	BLKSNAP_META_OPEN = 1,		/* loaded: tracking */
	BLKSNAP_META_CLOSED = 2,	/* closed by cbt_close: trusted */
	BLKSNAP_META_REPLACED = 3,	/* last table gone without a close */
	BLKSNAP_META_DETACHED = 4,	/* detached by intent */
	BLKSNAP_META_FAILED = 5,	/* a metadata write failed */
	BLKSNAP_META_NR_STATES
};

struct blksnap_meta_sb {
	__u8 magic[8];
	bsm_le32 csum;
	bsm_le32 version;
	bsm_le64 seq;
	bsm_le64 epoch;		/* random per generation */
	__u8 generation[16];	/* the generation UUID */
	__u8 change_number;	/* C */
	__u8 snap_number;	/* the last take's number */
	__u8 snap_map;		/* 0: A, 1: B holds the last take */
	__u8 state;		/* enum blksnap_meta_state */
	__u8 snap_taken;	/* a take happened in this generation */
	__u8 pad[3];
	bsm_le32 block_shift;	/* log2 of the tracking block in sectors */
	bsm_le64 nr_blocks;	/* tracking blocks */
	bsm_le64 dev_sectors;	/* the real device's size */
	char metadata_id[BLKSNAP_META_ID_LEN]; /* NUL-padded */
} __packed;

/* The header of map and intent blocks. */
struct blksnap_meta_hdr {
	bsm_le32 magic;
	bsm_le32 csum;
	bsm_le64 epoch;		/* a block of another epoch reads as zeros */
	bsm_le64 seq;		/* intent blocks: the commit sequence */
	bsm_le32 index;		/* the block's index in its area */
	bsm_le32 reserved;
} __packed;

#define BLKSNAP_META_ENTRIES \
	(BLKSNAP_META_BLOCK - sizeof(struct blksnap_meta_hdr))
#define BLKSNAP_META_INTENT_BITS (BLKSNAP_META_ENTRIES * 8)

#endif /* DM_BLKSNAP_META_H */
