// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libblksnap: the metadata device of persistent change tracking, in
 * userspace. Its layout, the checksums, formatting a device or file and
 * reading its superblock back (drivers/md/dm-blksnap-meta.h has the format, shared with the module).
 * The kernel keeps it up to date but never formats it: attach with a CBT
 * metadata device formats it here first (pcbt.c).
 */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "meta.h"

_Static_assert(sizeof(struct blksnap_meta_sb) <= BLKSNAP_META_BLOCK,
	       "the superblock fits one block");
_Static_assert(sizeof(struct blksnap_meta_hdr) == 32, "32-byte block header");

static uint32_t crc_table[256];

static void crc_table_init(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		crc_table[n] = c;
	}
}

/* CRC-32C, reflected polynomial 0x82f63b78, a byte at a time. */
uint32_t bs_crc32c(const void *buf, size_t len)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	const uint8_t *p = buf;
	uint32_t crc = ~0u;
	size_t i;

	pthread_once(&once, crc_table_init);
	for (i = 0; i < len; i++)
		crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
	return ~crc;
}

int bs_meta_layout(uint64_t nr_blocks, struct bs_meta_layout *l)
{
	if (!nr_blocks || nr_blocks > (1ull << 40))
		return -EINVAL;
	memset(l, 0, sizeof(*l));
	l->nr_blocks = nr_blocks;
	l->map_blocks = (nr_blocks + BLKSNAP_META_ENTRIES - 1) / BLKSNAP_META_ENTRIES;
	l->intent_blocks = (l->map_blocks + BLKSNAP_META_INTENT_BITS - 1) /
		BLKSNAP_META_INTENT_BITS;
	l->intent[0] = 2;
	l->intent[1] = l->intent[0] + l->intent_blocks;
	l->active = l->intent[1] + l->intent_blocks;
	l->snap[0] = l->active + l->map_blocks;
	l->snap[1] = l->snap[0] + l->map_blocks;
	l->total = l->snap[1] + l->map_blocks;
	return 0;
}

/* The checksum of @block with its 4-byte checksum field at @off zeroed. */
static uint32_t block_csum(const uint8_t *block, size_t off)
{
	uint8_t copy[BLKSNAP_META_BLOCK];

	memcpy(copy, block, sizeof(copy));
	memset(copy + off, 0, 4);
	return bs_crc32c(copy, sizeof(copy));
}

void bs_meta_seal_sb(void *block)
{
	struct blksnap_meta_sb *sb = block;

	sb->csum = htole32(block_csum(block, offsetof(struct blksnap_meta_sb, csum)));
}

void bs_meta_seal_hdr(void *block)
{
	struct blksnap_meta_hdr *h = block;

	h->csum = htole32(block_csum(block, offsetof(struct blksnap_meta_hdr, csum)));
}

int bs_meta_check_sb(const void *block)
{
	const struct blksnap_meta_sb *sb = block;

	if (memcmp(sb->magic, BLKSNAP_META_SB_MAGIC, sizeof(sb->magic)))
		return -EINVAL;
	if (le32toh(sb->csum) != block_csum(block, offsetof(struct blksnap_meta_sb, csum)))
		return -EBADMSG;
	if (le32toh(sb->version) != BLKSNAP_META_VERSION)
		return -EPROTONOSUPPORT;
	if (sb->state >= BLKSNAP_META_NR_STATES || sb->snap_map > 1 ||
	    !sb->change_number || sb->metadata_id[BLKSNAP_META_ID_LEN - 1])
		return -EBADMSG;
	return 0;
}

int bs_meta_check_hdr(const void *block, uint32_t magic, uint64_t epoch,
		      uint32_t index)
{
	const struct blksnap_meta_hdr *h = block;

	if (le32toh(h->magic) != magic || le32toh(h->index) != index)
		return -EINVAL;
	if (le32toh(h->csum) != block_csum(block, offsetof(struct blksnap_meta_hdr, csum)))
		return -EBADMSG;
	/* Valid, but of another generation: it reads as zeros. */
	if (le64toh(h->epoch) != epoch)
		return -ESTALE;
	return 0;
}

int bs_meta_pick_sb(const void *b0, const void *b1)
{
	const struct blksnap_meta_sb *s0 = b0, *s1 = b1;
	bool ok0 = !bs_meta_check_sb(b0), ok1 = !bs_meta_check_sb(b1);

	if (ok0 && ok1)
		return le64toh(s1->seq) > le64toh(s0->seq);
	return ok0 ? 0 : ok1 ? 1 : -1;
}

static int write_block(struct blksnap_ctx *ctx, int fd, uint64_t nr,
		       const void *block)
{
	const uint8_t *p = block;
	size_t done = 0;

	while (done < BLKSNAP_META_BLOCK) {
		ssize_t n = pwrite(fd, p + done, BLKSNAP_META_BLOCK - done,
				   (off_t)(nr * BLKSNAP_META_BLOCK + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return bs_err(ctx, n < 0 ? errno : EIO,
				      "cannot write metadata block %llu: %s",
				      (unsigned long long)nr,
				      strerror(n < 0 ? errno : EIO));
		done += (size_t)n;
	}
	return 0;
}

static int fill_area(struct blksnap_ctx *ctx, int fd, uint64_t first,
		     uint64_t count, uint32_t magic, uint64_t epoch)
{
	uint8_t block[BLKSNAP_META_BLOCK];
	struct blksnap_meta_hdr *h = (void *)block;
	uint64_t i;
	int r;

	for (i = 0; i < count; i++) {
		memset(block, 0, sizeof(block));
		h->magic = htole32(magic);
		h->epoch = htole64(epoch);
		h->index = htole32((uint32_t)i);
		bs_meta_seal_hdr(block);
		r = write_block(ctx, fd, first + i, block);
		if (r)
			return r;
	}
	return 0;
}

int bs_meta_format(struct blksnap_ctx *ctx, int fd, uint64_t size,
		   const struct bs_meta_params *p)
{
	uint8_t block[BLKSNAP_META_BLOCK];
	struct blksnap_meta_sb *sb = (void *)block;
	struct bs_meta_layout l;
	uint64_t nr_blocks, epoch;
	int r;

	if (p->block_shift < 3 || p->block_shift > 40 || !p->dev_sectors)
		return bs_err(ctx, EINVAL, "tracking block or device size out of range");
	if (strlen(p->metadata_id) >= BLKSNAP_META_ID_LEN || strchr(p->metadata_id, ' '))
		return bs_err(ctx, EINVAL, "device identity '%s': at most %d characters, no blanks",
			      p->metadata_id, BLKSNAP_META_ID_LEN - 1);
	nr_blocks = (p->dev_sectors + (1ull << p->block_shift) - 1) >> p->block_shift;
	if (bs_meta_layout(nr_blocks, &l))
		return bs_err(ctx, EINVAL, "%llu tracking blocks are too many",
			      (unsigned long long)nr_blocks);
	if (size / BLKSNAP_META_BLOCK < l.total)
		return bs_err(ctx, ENOSPC,
			      "the metadata needs %llu KiB, the device has %llu KiB",
			      (unsigned long long)(l.total * (BLKSNAP_META_BLOCK / 1024)),
			      (unsigned long long)(size / 1024));
	epoch = p->epoch;

	/* Every block is written, so that no later write needs new space. */
	r = 0;
	for (int k = 0; !r && k < 2; k++)
		r = fill_area(ctx, fd, l.intent[k], l.intent_blocks,
			      BLKSNAP_META_INTENT_MAGIC, epoch);
	for (int k = 0; !r && k < 3; k++)
		r = fill_area(ctx, fd, l.active + k * l.map_blocks, l.map_blocks,
			      BLKSNAP_META_MAP_MAGIC, epoch);
	if (r)
		return r;

	memset(block, 0, sizeof(block));
	memcpy(sb->magic, BLKSNAP_META_SB_MAGIC, sizeof(sb->magic));
	sb->version = htole32(BLKSNAP_META_VERSION);
	sb->epoch = htole64(epoch);
	memcpy(sb->generation, p->generation, sizeof(sb->generation));
	sb->change_number = 1;
	sb->state = BLKSNAP_META_NEW;
	sb->block_shift = htole32(p->block_shift);
	sb->nr_blocks = htole64(nr_blocks);
	sb->dev_sectors = htole64(p->dev_sectors);
	strncpy(sb->metadata_id, p->metadata_id, sizeof(sb->metadata_id) - 1);
	/* Block 1 first (seq 0): a cut before block 0 leaves one valid copy. */
	for (int k = 1; k >= 0; k--) {
		sb->seq = htole64((uint64_t)(1 - k));
		bs_meta_seal_sb(block);
		r = write_block(ctx, fd, (uint64_t)k, block);
		if (r)
			return r;
	}
	if (fsync(fd))
		return bs_err(ctx, errno, "cannot flush the metadata: %s", strerror(errno));
	return 0;
}

int bs_meta_read_sb(struct blksnap_ctx *ctx, int fd, struct blksnap_meta_sb *out)
{
	uint8_t blocks[2][BLKSNAP_META_BLOCK];
	int k;

	for (k = 0; k < 2; k++) {
		ssize_t n = pread(fd, blocks[k], BLKSNAP_META_BLOCK,
				  (off_t)k * BLKSNAP_META_BLOCK);

		if (n < 0)
			return bs_err(ctx, errno, "cannot read metadata superblock %d: %s",
				      k, strerror(errno));
		if (n != BLKSNAP_META_BLOCK)
			memset(blocks[k], 0, BLKSNAP_META_BLOCK);
	}
	k = bs_meta_pick_sb(blocks[0], blocks[1]);
	if (k < 0)
		return bs_err(ctx, EINVAL, "no valid blksnap CBT metadata superblock");
	memcpy(out, blocks[k], sizeof(*out));
	return k;
}
