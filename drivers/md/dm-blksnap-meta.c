// SPDX-License-Identifier: GPL-2.0
/*
 * dm-blksnap persistent change tracking: the CBT maps of a real device kept
 * on a metadata device (format: dm-blksnap-meta.h; design and guarantees:
 * Documentation/dm-blksnap.rst, "Persistent change tracking").
 *
 * Marks before writes. The tracking blocks of one map block form a region;
 * a write may reach the real device once the intent bit of every region it
 * touches is on disk. A region whose bit is committed costs a bit test: the
 * steady state needs no metadata I/O. A bio that touches an uncommitted
 * region is held (it keeps its place in the write gate), its bits join the
 * next commit, and the commit worker writes the whole intent bitmap, with
 * FUA, into the copy that did not hold the last commit, then lets every
 * held bio go on. Takes and cbt_close write the exact map blocks of the
 * committed regions, then a superblock, then clear the intent bits, all
 * with the gate closed. On load, a region whose bit is set has all its
 * entries raised to the superblock's change number: a crash over-reports,
 * never under-reports.
 *
 * Every metadata I/O is bounded by metadata_timeout, and so is the time
 * a bio is held (a timer, since the commit worker may wait behind a take's
 * I/O first): one that fails or does not end in time turns persistence off
 * for the session ("failed", sticky, written to the superblock before or,
 * after a timeout, when the device answers) and lets the held bios go on.
 * The origin never waits longer than that for its maps.
 *
 * Lock order: t->lock, the write gate, m->io_mutex, t->map_lock, m->lock.
 */
#include <linux/module.h>
#include <linux/device-mapper.h>
#include <linux/random.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include "dm-blksnap.h"
#include "dm-blksnap-meta.h"

static unsigned int metadata_timeout = 60;
module_param(metadata_timeout, uint, 0644);
MODULE_PARM_DESC(metadata_timeout,
		 "Seconds a metadata I/O may take before persistent CBT fails (0: no limit)");

/* Blocks read or written by one bio, and read at once at load. */
#define META_IO_BLOCKS	256U
#define META_BLOCK_SECTORS	(BLKSNAP_META_BLOCK >> SECTOR_SHIFT)

static struct workqueue_struct *meta_wq;
/* Batches not freed yet: their bios may end after a timeout. */
static atomic_t meta_batches = ATOMIC_INIT(0);
/* Metadata devices in use: one tracker each. */
static LIST_HEAD(meta_list);
static DEFINE_MUTEX(meta_list_mutex);
static blksnap_replay_fn meta_continue;
static u32 crc_table[256];

static const char * const state_names[] = {
	[BLKSNAP_META_NEW] = "new", [BLKSNAP_META_OPEN] = "open",
	[BLKSNAP_META_CLOSED] = "closed", [BLKSNAP_META_REPLACED] = "replaced",
	[BLKSNAP_META_DETACHED] = "detached", [BLKSNAP_META_FAILED] = "failed",
};

enum meta_mode { META_OK, META_FAILED, META_DETACHED };

struct blksnap_meta {
	struct list_head list;		/* meta_list */
	struct blksnap_tracker *t;
	struct block_device *bdev;
	char id[BLKSNAP_META_ID_LEN];

	/* Layout, in 4 KiB blocks. */
	unsigned long regions;		/* map blocks per map */
	unsigned int intent_blocks;	/* per copy */
	sector_t intent[2], active, snap[2];

	/* Under io_mutex: the metadata I/O and what it writes. */
	struct mutex io_mutex;
	u64 epoch;
	u64 sb_seq;
	u64 intent_seq;
	u8 sb_block;			/* the block of the current superblock */
	u8 sb_state;			/* what the next superblock says */
	u8 snap_slot;			/* the snapshot map holding the last take */
	bool closed;			/* cbt_close, and no write since */
	unsigned long *staged;		/* the bits being committed */

	/*
	 * @lock (irq-safe: bios are held from map()) protects @pending, the
	 * held lists and @mode; @committed is set under it and read without.
	 */
	spinlock_t lock;
	unsigned long *committed;	/* intent bit on disk */
	unsigned long *pending;		/* wanted by a held bio or a cover */
	struct bio_list held;		/* for the next commit */
	struct bio_list committing;	/* for the commit being written */
	unsigned long held_since, committing_since;	/* jiffies */
	bool queued;
	enum meta_mode mode;		/* sticky once not OK */
	const char *why;		/* why this generation started, or NULL */
	struct work_struct commit_work;
	struct delayed_work hold_work;
};

/*---- Checksums and blocks ----*/

static void crc_init(void)
{
	u32 n, c;
	int k;

	for (n = 0; n < 256; n++) {
		c = n;
		for (k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78 : c >> 1;
		crc_table[n] = c;
	}
}

/* CRC-32C of a block with its 4-byte checksum field at @off taken as 0. */
static u32 block_csum(const u8 *p, unsigned int off)
{
	u32 crc = ~0U;
	unsigned int i;
	u8 b;

	for (i = 0; i < BLKSNAP_META_BLOCK; i++) {
		b = (i >= off && i < off + 4) ? 0 : p[i];
		crc = crc_table[(crc ^ b) & 0xff] ^ (crc >> 8);
	}
	return ~crc;
}

#define SB_CSUM_OFF	offsetof(struct blksnap_meta_sb, csum)
#define HDR_CSUM_OFF	offsetof(struct blksnap_meta_hdr, csum)

static bool sb_valid(const void *p)
{
	const struct blksnap_meta_sb *sb = p;

	return !memcmp(sb->magic, BLKSNAP_META_SB_MAGIC, sizeof(sb->magic)) &&
	       le32_to_cpu(sb->csum) == block_csum(p, SB_CSUM_OFF);
}

/* 0: sound block of @epoch; -ESTALE: sound, another epoch; -EBADMSG. */
static int hdr_check(const void *p, u32 magic, u64 epoch, unsigned long index)
{
	const struct blksnap_meta_hdr *h = p;

	if (le32_to_cpu(h->magic) != magic || le32_to_cpu(h->index) != index ||
	    le32_to_cpu(h->csum) != block_csum(p, HDR_CSUM_OFF))
		return -EBADMSG;
	return le64_to_cpu(h->epoch) == epoch ? 0 : -ESTALE;
}

static void hdr_seal(void *p, u32 magic, u64 epoch, u64 seq,
		     unsigned long index)
{
	struct blksnap_meta_hdr *h = p;

	h->magic = cpu_to_le32(magic);
	h->csum = 0;
	h->epoch = cpu_to_le64(epoch);
	h->seq = cpu_to_le64(seq);
	h->index = cpu_to_le32(index);
	h->reserved = 0;
	h->csum = cpu_to_le32(block_csum(p, HDR_CSUM_OFF));
}

/*---- Bounded I/O ----*/

/*
 * The pages of one batch of metadata I/O belong to the batch, not to the
 * caller: a caller that stops waiting at the timeout leaves them to the
 * last bio to end.
 */
struct meta_batch {
	refcount_t ref;
	atomic_t pending;
	struct completion done;
	blk_status_t status;
	unsigned int nr;
	struct page *pages[];
};

static void batch_put(struct meta_batch *b)
{
	unsigned int i;

	if (!refcount_dec_and_test(&b->ref))
		return;
	for (i = 0; i < b->nr; i++)
		if (b->pages[i])
			__free_page(b->pages[i]);
	kfree(b);
	if (atomic_dec_and_test(&meta_batches))
		wake_up_var(&meta_batches);
}

static struct meta_batch *batch_alloc(unsigned int nr)
{
	struct meta_batch *b;
	unsigned int i;

	b = kzalloc(struct_size(b, pages, nr), GFP_NOIO);
	if (!b)
		return NULL;
	atomic_inc(&meta_batches);
	b->nr = nr;
	refcount_set(&b->ref, 1);
	atomic_set(&b->pending, 1);
	init_completion(&b->done);
	for (i = 0; i < nr; i++) {
		b->pages[i] = alloc_page(GFP_NOIO | __GFP_ZERO);
		if (!b->pages[i]) {
			batch_put(b);
			return NULL;
		}
	}
	return b;
}

static void *batch_block(struct meta_batch *b, unsigned int i)
{
	return page_address(b->pages[i]);
}

static void batch_end(struct meta_batch *b)
{
	if (atomic_dec_and_test(&b->pending))
		complete(&b->done);
	batch_put(b);
}

static void batch_end_io(struct bio *bio)
{
	struct meta_batch *b = bio->bi_private;

	if (bio->bi_status)
		WRITE_ONCE(b->status, bio->bi_status);
	bio_uninit(bio);
	kfree(bio);
	batch_end(b);
}

/*
 * I/O of @count pages from @first to the blocks from @block on. The bios
 * come from kmalloc, not a bio_set: bios stuck on a stalled metadata
 * device must not hold a reserve that the next commit waits for. A failed
 * allocation fails the batch.
 */
static void batch_add(struct blksnap_meta *m, struct meta_batch *b,
		      unsigned int first, unsigned int count, sector_t block,
		      blk_opf_t opf)
{
	struct bio *bio;
	unsigned int i;

	while (count) {
		unsigned int n = min(count, META_IO_BLOCKS);

		bio = bio_kmalloc(n, GFP_NOIO);
		if (!bio) {
			WRITE_ONCE(b->status, BLK_STS_RESOURCE);
			return;
		}
		bio_init(bio, m->bdev, bio->bi_inline_vecs, n, opf);
		bio->bi_iter.bi_sector = block * META_BLOCK_SECTORS;
		for (i = 0; i < n; i++)
			__bio_add_page(bio, b->pages[first + i],
				       BLKSNAP_META_BLOCK, 0);
		bio->bi_private = b;
		bio->bi_end_io = batch_end_io;
		refcount_inc(&b->ref);
		atomic_inc(&b->pending);
		submit_bio(bio);
		first += n;
		block += n;
		count -= n;
	}
}

static unsigned long meta_timeout(void)
{
	unsigned int tmo = READ_ONCE(metadata_timeout);

	return tmo ? (unsigned long)min(tmo, 86400U) * HZ : MAX_SCHEDULE_TIMEOUT;
}

/* Wait for the batch's I/O: 0, -EIO or -ETIMEDOUT. The batch stays. */
static int batch_wait(struct meta_batch *b)
{
	if (atomic_dec_and_test(&b->pending))
		complete(&b->done);
	if (!wait_for_completion_io_timeout(&b->done, meta_timeout()))
		return -ETIMEDOUT;
	return READ_ONCE(b->status) ? -EIO : 0;
}

/* Let the batch go without waiting for it. */
static void batch_abandon(struct meta_batch *b)
{
	if (atomic_dec_and_test(&b->pending))
		complete(&b->done);
	batch_put(b);
}

/*---- Writing ----*/

static bool meta_off(struct blksnap_meta *m)
{
	return READ_ONCE(m->mode) != META_OK;
}

static void fill_sb(struct blksnap_meta *m, void *p, u64 seq)
{
	struct blksnap_tracker *t = m->t;
	struct blksnap_meta_sb *sb = p;

	memset(p, 0, BLKSNAP_META_BLOCK);
	memcpy(sb->magic, BLKSNAP_META_SB_MAGIC, sizeof(sb->magic));
	sb->version = cpu_to_le32(BLKSNAP_META_VERSION);
	sb->seq = cpu_to_le64(seq);
	sb->epoch = cpu_to_le64(m->epoch);
	memcpy(sb->generation, &t->generation, sizeof(sb->generation));
	sb->change_number = t->change_number;
	sb->snap_number = t->snap_number;
	sb->snap_map = m->snap_slot;
	sb->state = m->sb_state;
	sb->snap_taken = t->snap_taken;
	sb->block_shift = cpu_to_le32(t->block_shift);
	sb->nr_blocks = cpu_to_le64(t->nr_blocks);
	sb->dev_sectors = cpu_to_le64(t->dev_sectors);
	strscpy(sb->metadata_id, m->id, sizeof(sb->metadata_id));
	sb->csum = cpu_to_le32(block_csum(p, SB_CSUM_OFF));
}

static void fill_map(struct blksnap_meta *m, void *p, const u8 *map,
		     unsigned long index)
{
	unsigned long first = index * BLKSNAP_META_ENTRIES;
	unsigned long n = min_t(unsigned long, BLKSNAP_META_ENTRIES,
				m->t->nr_blocks - first);

	memset(p, 0, BLKSNAP_META_BLOCK);
	memcpy(p + sizeof(struct blksnap_meta_hdr), map + first, n);
	hdr_seal(p, BLKSNAP_META_MAP_MAGIC, m->epoch, 0, index);
}

/* The intent bitmap @bits into its copy for the next commit sequence. */
static void fill_intent(struct blksnap_meta *m, struct meta_batch *b,
			unsigned int first, const unsigned long *bits)
{
	unsigned long r;
	unsigned int i;

	for (i = 0; i < m->intent_blocks; i++)
		memset(batch_block(b, first + i), 0, BLKSNAP_META_BLOCK);
	for_each_set_bit(r, bits, m->regions) {
		u8 *p = batch_block(b, first + r / BLKSNAP_META_INTENT_BITS);
		unsigned long bit = r % BLKSNAP_META_INTENT_BITS;

		p[sizeof(struct blksnap_meta_hdr) + bit / 8] |= 1 << (bit % 8);
	}
	for (i = 0; i < m->intent_blocks; i++)
		hdr_seal(batch_block(b, first + i), BLKSNAP_META_INTENT_MAGIC,
			 m->epoch, m->intent_seq, i);
}

static const char *mode_error(int r)
{
	return r == -ETIMEDOUT ? "did not end within metadata_timeout" :
	       r == -ENOMEM ? "could not allocate memory" : "failed";
}

/* Submit the next superblock into the block that is not the current one. */
static struct meta_batch *submit_sb(struct blksnap_meta *m)
{
	struct meta_batch *b = batch_alloc(1);

	if (!b)
		return NULL;
	fill_sb(m, batch_block(b, 0), m->sb_seq + 1);
	batch_add(m, b, 0, 1, m->sb_block ^ 1,
		  REQ_OP_WRITE | REQ_PREFLUSH | REQ_FUA);
	return b;
}

/*
 * Write the superblock; io_mutex held. A block that failed is written
 * again next time: the other one is the sound one.
 */
static int write_sb(struct blksnap_meta *m)
{
	struct meta_batch *b = submit_sb(m);
	int r;

	if (!b)
		return -ENOMEM;
	r = batch_wait(b);
	batch_put(b);
	if (!r) {
		m->sb_seq++;
		m->sb_block ^= 1;
	}
	return r;
}

/*
 * Persistence ends for this session. The superblock says so before any
 * write goes on untracked, if the device still takes a write; after a
 * timeout it is submitted without waiting, to land if the device comes
 * back. A device that takes neither is the case Documentation/dm-blksnap.rst
 * lists as not detected. io_mutex held.
 */
static void meta_fail(struct blksnap_meta *m, const char *what, int r)
{
	struct meta_batch *b;

	/* Once; the hold timer may have turned the mode off already. */
	if (m->sb_state == BLKSNAP_META_FAILED ||
	    READ_ONCE(m->mode) == META_DETACHED)
		return;
	DMERR("%u:%u: persistent CBT off: metadata %s %s; the next load starts a new generation",
	      MAJOR(m->t->dev), MINOR(m->t->dev), what, mode_error(r));
	m->sb_state = BLKSNAP_META_FAILED;
	if (r == -ETIMEDOUT) {
		b = submit_sb(m);
		if (b)
			batch_abandon(b);
	} else {
		write_sb(m);
	}
	spin_lock_irq(&m->lock);
	m->mode = META_FAILED;
	spin_unlock_irq(&m->lock);
}

/* Write the intent bitmap @bits as the next commit; io_mutex held. */
static int write_intent(struct blksnap_meta *m, const unsigned long *bits)
{
	struct meta_batch *b = batch_alloc(m->intent_blocks);
	int r;

	if (!b)
		return -ENOMEM;
	m->intent_seq++;
	fill_intent(m, b, 0, bits);
	batch_add(m, b, 0, m->intent_blocks, m->intent[m->intent_seq & 1],
		  REQ_OP_WRITE | REQ_FUA);
	r = batch_wait(b);
	batch_put(b);
	return r;
}

/*
 * Write map blocks of @map into the area at @area: those of the regions
 * set in @only, or all of them when @only is NULL. io_mutex held.
 */
static int write_map(struct blksnap_meta *m, const u8 *map, sector_t area,
		     const unsigned long *only)
{
	unsigned long i, n;
	struct meta_batch *b;
	int r = 0;

	for (i = 0; i < m->regions && !r; i += n) {
		unsigned int k, run;

		n = min_t(unsigned long, META_IO_BLOCKS, m->regions - i);
		if (only && find_next_bit(only, i + n, i) >= i + n)
			continue;
		b = batch_alloc(n);
		if (!b)
			return -ENOMEM;
		for (k = 0; k < n; k++)
			fill_map(m, batch_block(b, k), map, i + k);
		/* Runs of wanted blocks, one bio each. */
		for (k = 0; k < n; k += run) {
			for (run = 0; k + run < n &&
			     (!only || test_bit(i + k + run, only)); run++)
				;
			if (run)
				batch_add(m, b, k, run, area + i + k, REQ_OP_WRITE);
			else
				run = 1;
		}
		r = batch_wait(b);
		batch_put(b);
	}
	return r;
}

/*---- Commits ----*/

/* Hold @bio for the next commit; m->lock held. */
static void __hold(struct blksnap_meta *m, struct bio *bio)
{
	if (bio_list_empty(&m->held)) {
		m->held_since = jiffies;
		if (metadata_timeout)
			queue_delayed_work(meta_wq, &m->hold_work, meta_timeout());
	}
	bio_list_add(&m->held, bio);
	if (!m->queued) {
		m->queued = true;
		queue_work(meta_wq, &m->commit_work);
	}
}

/*
 * Commit the pending bits and let the held bios go on; io_mutex held. The
 * first commit after cbt_close writes "open" first: the close no longer
 * describes the device.
 */
static void meta_commit(struct blksnap_meta *m)
{
	struct bio_list bios;
	struct bio *bio;
	bool off, any;
	int r = 0;

	spin_lock_irq(&m->lock);
	m->queued = false;
	if (!bio_list_empty(&m->held)) {
		if (bio_list_empty(&m->committing))
			m->committing_since = m->held_since;
		bio_list_merge(&m->committing, &m->held);
		bio_list_init(&m->held);
	}
	off = m->mode != META_OK;
	any = !bitmap_empty(m->pending, m->regions);
	bitmap_or(m->staged, m->committed, m->pending, m->regions);
	bitmap_zero(m->pending, m->regions);
	spin_unlock_irq(&m->lock);

	if (!off && any) {
		if (m->closed) {
			m->sb_state = BLKSNAP_META_OPEN;
			r = write_sb(m);
			if (!r)
				m->closed = false;
		}
		if (!r)
			r = write_intent(m, m->staged);
		if (r)
			meta_fail(m, "intent write", r);
	}
	spin_lock_irq(&m->lock);
	if (!off && any && !r)
		bitmap_or(m->committed, m->committed, m->staged, m->regions);
	bios = m->committing;
	bio_list_init(&m->committing);
	spin_unlock_irq(&m->lock);
	while ((bio = bio_list_pop(&bios)))
		meta_continue(m->t, bio);
}

static void commit_work(struct work_struct *work)
{
	struct blksnap_meta *m = container_of(work, struct blksnap_meta,
					      commit_work);

	mutex_lock(&m->io_mutex);
	meta_commit(m);
	mutex_unlock(&m->io_mutex);
}

/*
 * A bio held for metadata_timeout: persistence is off and every held bio
 * goes on, whatever the commit worker waits for (an intent write, or a
 * take's I/O before it).
 */
static void hold_timeout(struct work_struct *work)
{
	struct blksnap_meta *m = container_of(to_delayed_work(work),
					      struct blksnap_meta, hold_work);
	unsigned long oldest, tmo = meta_timeout();
	struct bio_list bios;
	struct bio *bio;
	bool failed = false;

	spin_lock_irq(&m->lock);
	if (bio_list_empty(&m->held) && bio_list_empty(&m->committing)) {
		spin_unlock_irq(&m->lock);
		return;
	}
	oldest = bio_list_empty(&m->committing) ? m->held_since :
		 m->committing_since;
	if (time_before(jiffies, oldest + tmo)) {
		queue_delayed_work(meta_wq, &m->hold_work, oldest + tmo - jiffies);
		spin_unlock_irq(&m->lock);
		return;
	}
	if (m->mode == META_OK) {
		m->mode = META_FAILED;
		failed = true;
	}
	bios = m->committing;
	bio_list_merge(&bios, &m->held);
	bio_list_init(&m->committing);
	bio_list_init(&m->held);
	spin_unlock_irq(&m->lock);
	if (failed)
		DMERR("%u:%u: persistent CBT off: a write waited metadata_timeout for its mark; the next load starts a new generation",
		      MAJOR(m->t->dev), MINOR(m->t->dev));
	while ((bio = bio_list_pop(&bios)))
		meta_continue(m->t, bio);
}

static void region_range(struct blksnap_meta *m, sector_t sector,
			 sector_t nr_sectors, unsigned long *first,
			 unsigned long *last)
{
	struct blksnap_tracker *t = m->t;
	unsigned long b = sector >> t->block_shift;
	unsigned long e = (sector + nr_sectors - 1) >> t->block_shift;

	if (e >= t->nr_blocks)
		e = t->nr_blocks - 1;
	*first = b / BLKSNAP_META_ENTRIES;
	*last = e / BLKSNAP_META_ENTRIES;
}

/* Mark the regions of a range pending; true when one was not committed. */
static bool __cover(struct blksnap_meta *m, sector_t sector, sector_t nr)
{
	unsigned long r, first, last;
	bool missing = false;

	region_range(m, sector, nr, &first, &last);
	for (r = first; r <= last; r++)
		if (!test_bit(r, m->committed)) {
			__set_bit(r, m->pending);
			missing = true;
		}
	return missing;
}

/*
 * An origin write between gate enter and exit. True: it may go on. False:
 * it is held until its regions' intent is on disk, then goes to the
 * continue function of blksnap_meta_init().
 */
bool blksnap_meta_write(struct blksnap_tracker *t, struct bio *bio)
{
	struct blksnap_meta *m = t->meta;
	sector_t sector = bio->bi_iter.bi_sector;
	unsigned long r, first, last, flags;

	if (!m || meta_off(m) || sector >= t->dev_sectors)
		return true;
	region_range(m, sector, bio_sectors(bio), &first, &last);
	for (r = first; r <= last; r++)
		if (!test_bit(r, m->committed))
			break;
	if (r > last)
		return true;

	spin_lock_irqsave(&m->lock, flags);
	if (m->mode != META_OK || !__cover(m, sector, bio_sectors(bio))) {
		spin_unlock_irqrestore(&m->lock, flags);
		return true;
	}
	__hold(m, bio);
	spin_unlock_irqrestore(&m->lock, flags);
	return false;
}

/*
 * The intent of @sector..+@nr joins the next commit; blksnap_meta_commit()
 * writes it (a merge writes the real device from the store).
 */
void blksnap_meta_cover(struct blksnap_tracker *t, sector_t sector, sector_t nr)
{
	struct blksnap_meta *m = t->meta;

	if (!m || meta_off(m) || !nr || sector >= t->dev_sectors)
		return;
	spin_lock_irq(&m->lock);
	__cover(m, sector, nr);
	spin_unlock_irq(&m->lock);
}

/* Commit what is pending before returning. Errors turn persistence off. */
void blksnap_meta_commit(struct blksnap_tracker *t)
{
	struct blksnap_meta *m = t->meta;

	if (!m)
		return;
	mutex_lock(&m->io_mutex);
	meta_commit(m);
	mutex_unlock(&m->io_mutex);
}

/*
 * m->io_mutex, for a take, reset or cbt_mark_dirty: their change in memory
 * and its metadata I/O are one section, so that no commit or other write
 * interleaves (taken after the gate closed, before t->map_lock).
 */
void blksnap_meta_lock(struct blksnap_tracker *t)
{
	if (t->meta)
		mutex_lock(&t->meta->io_mutex);
}

void blksnap_meta_unlock(struct blksnap_tracker *t)
{
	if (t->meta)
		mutex_unlock(&t->meta->io_mutex);
}

/*
 * The maps of the committed regions to disk, then the superblock, then
 * the intent cleared: a crash before the superblock leaves the last one
 * intact. Gate closed (no write in flight), io_mutex held.
 */
static int __sync_all(struct blksnap_meta *m, bool snap)
{
	struct blksnap_tracker *t = m->t;
	u8 slot = m->snap_slot;
	int r;

	r = write_map(m, t->active, m->active, m->committed);
	if (!r && snap) {
		slot = !m->snap_slot;
		r = write_map(m, t->snap_map, m->snap[slot], NULL);
	}
	if (r)
		return r;
	m->snap_slot = slot;
	r = write_sb(m);
	if (r)
		return r;
	bitmap_zero(m->staged, m->regions);
	r = write_intent(m, m->staged);
	if (!r) {
		spin_lock_irq(&m->lock);
		bitmap_zero(m->committed, m->regions);
		spin_unlock_irq(&m->lock);
	}
	return r;
}

/*
 * After a take (in memory: t->snap_map holds it), with the gate still
 * closed, t->lock and blksnap_meta_lock() held; a new generation that came
 * with it is in memory too (blksnap_meta_new_generation()).
 */
void blksnap_meta_take(struct blksnap_tracker *t)
{
	struct blksnap_meta *m = t->meta;
	int r;

	if (!m || meta_off(m))
		return;
	r = __sync_all(m, true);
	if (r)
		meta_fail(m, "write at a take", r);
}

/*
 * A new generation in memory: a new epoch, so that every map and intent
 * block on disk reads as zeros from the next superblock on. The snapshot
 * slot stays: the next take writes the other one, never the one the
 * superblock on disk names. Gate closed, blksnap_meta_lock() and
 * t->map_lock held; the caller writes the superblock after (a take, or
 * blksnap_meta_sync_sb()).
 */
void blksnap_meta_new_generation(struct blksnap_tracker *t, const char *why)
{
	struct blksnap_meta *m = t->meta;

	if (!m)
		return;
	get_random_bytes(&m->epoch, sizeof(m->epoch));
	spin_lock_irq(&m->lock);
	bitmap_zero(m->committed, m->regions);
	bitmap_zero(m->pending, m->regions);
	m->why = why;
	spin_unlock_irq(&m->lock);
}

/* The superblock after a reset; gate closed, blksnap_meta_lock() held. */
void blksnap_meta_sync_sb(struct blksnap_tracker *t)
{
	struct blksnap_meta *m = t->meta;
	int r;

	if (!m || meta_off(m))
		return;
	r = write_sb(m);
	if (r)
		meta_fail(m, "superblock write", r);
}

/*
 * cbt_mark_dirty, after its marks in memory, blksnap_meta_lock() held: the
 * active marks are committed like a write's, and the snapshot map's blocks
 * of the range are written with FUA before the reply.
 */
void blksnap_meta_mark_dirty(struct blksnap_tracker *t, sector_t sector,
			     sector_t nr)
{
	struct blksnap_meta *m = t->meta;
	unsigned long i, n, first, last;
	struct meta_batch *b;
	unsigned int k;
	int r = 0;

	if (!m)
		return;
	blksnap_meta_cover(t, sector, nr);
	meta_commit(m);
	if (meta_off(m) || !t->snap_taken)
		return;
	region_range(m, sector, nr, &first, &last);
	for (i = first; i <= last && !r; i += n) {
		n = min_t(unsigned long, META_IO_BLOCKS, last + 1 - i);
		b = batch_alloc(n);
		if (!b) {
			r = -ENOMEM;
			break;
		}
		/* Filled under the lock, written without it: status answers. */
		mutex_lock(&t->map_lock);
		for (k = 0; k < n; k++)
			fill_map(m, batch_block(b, k), t->snap_map, i + k);
		mutex_unlock(&t->map_lock);
		batch_add(m, b, 0, n, m->snap[m->snap_slot] + i,
			  REQ_OP_WRITE | REQ_FUA);
		r = batch_wait(b);
		batch_put(b);
	}
	if (r)
		meta_fail(m, "snapshot map write", r);
}

/* cbt_close: everything on disk, state closed. Gate closed, t->lock held. */
int blksnap_meta_close(struct blksnap_tracker *t)
{
	struct blksnap_meta *m = t->meta;
	int r = 0;

	if (!m)
		return -EINVAL;
	mutex_lock(&m->io_mutex);
	if (meta_off(m)) {
		r = -EIO;
	} else {
		m->sb_state = BLKSNAP_META_CLOSED;
		r = __sync_all(m, false);
		if (r) {
			meta_fail(m, "write at cbt_close", r);
			r = -EIO;
		} else {
			m->closed = true;
		}
	}
	mutex_unlock(&m->io_mutex);
	return r;
}

/*
 * cbt_detach: the next load starts a new generation. The superblock says
 * so before any write goes on untracked.
 */
int blksnap_meta_detach(struct blksnap_tracker *t)
{
	struct blksnap_meta *m = t->meta;
	int r = 0;

	if (!m)
		return -EINVAL;
	mutex_lock(&m->io_mutex);
	if (!meta_off(m)) {
		m->sb_state = BLKSNAP_META_DETACHED;
		r = write_sb(m);
		if (r) {
			meta_fail(m, "superblock write at cbt_detach", r);
		} else {
			spin_lock_irq(&m->lock);
			m->mode = META_DETACHED;
			spin_unlock_irq(&m->lock);
		}
	}
	mutex_unlock(&m->io_mutex);
	return r ? -EIO : 0;
}

/* " pcbt=<mode> why=<reason>" for the status line; t->map_lock held. */
unsigned int blksnap_meta_status(struct blksnap_tracker *t, char *result,
				 unsigned int sz, unsigned int maxlen)
{
	static const char * const modes[] = { "ok", "failed", "detached" };
	struct blksnap_meta *m = t->meta;

	if (m)
		DMEMIT(" pcbt=%s why=%s", modes[READ_ONCE(m->mode)],
		       READ_ONCE(m->why) ?: "-");
	return sz;
}

bool blksnap_meta_matches(struct blksnap_tracker *t, struct block_device *bdev,
			  const char *id)
{
	struct blksnap_meta *m = t->meta;

	if (!m)
		return !bdev;
	return bdev && bdev == m->bdev && !strcmp(id, m->id);
}

/* Whether @bdev is the metadata device of a tracker. */
bool blksnap_meta_in_use(struct block_device *bdev)
{
	struct blksnap_meta *m;
	bool found = false;

	mutex_lock(&meta_list_mutex);
	list_for_each_entry(m, &meta_list, list)
		found |= m->bdev == bdev;
	mutex_unlock(&meta_list_mutex);
	return found;
}

/*---- Load and release ----*/

static void meta_free(struct blksnap_meta *m)
{
	mutex_lock(&meta_list_mutex);
	list_del(&m->list);
	mutex_unlock(&meta_list_mutex);
	bitmap_free(m->committed);
	bitmap_free(m->pending);
	bitmap_free(m->staged);
	kfree(m);
}

/* Read the blocks @block..+@n into a new batch: 0, or the error. */
static int read_blocks(struct blksnap_meta *m, sector_t block, unsigned int n,
		       struct meta_batch **out)
{
	struct meta_batch *b = batch_alloc(n);
	int r;

	if (!b)
		return -ENOMEM;
	batch_add(m, b, 0, n, block, REQ_OP_READ);
	r = batch_wait(b);
	if (r) {
		batch_put(b);
		return r;
	}
	*out = b;
	return 0;
}

/* The intent bitmap: per block, the sound copy of the later commit. */
static int load_intent(struct blksnap_meta *m)
{
	struct meta_batch *b;
	unsigned int i, k;
	unsigned long r;
	int err;

	err = read_blocks(m, m->intent[0], 2 * m->intent_blocks, &b);
	if (err)
		return err;
	for (i = 0; i < m->intent_blocks; i++) {
		const struct blksnap_meta_hdr *h;
		int pick = -1, ok[2];
		const u8 *p;

		for (k = 0; k < 2; k++) {
			p = batch_block(b, k * m->intent_blocks + i);
			ok[k] = hdr_check(p, BLKSNAP_META_INTENT_MAGIC, m->epoch, i);
			if (ok[k])
				continue;
			/* Only this epoch's: the next commit must not overwrite them. */
			h = (const void *)p;
			m->intent_seq = max(m->intent_seq, le64_to_cpu(h->seq));
			if (pick < 0 || le64_to_cpu(h->seq) >
			    le64_to_cpu(((struct blksnap_meta_hdr *)
				batch_block(b, pick * m->intent_blocks + i))->seq))
				pick = k;
		}
		if (pick < 0) {
			/*
			 * A copy that does not verify may be this epoch's,
			 * torn: every region of the block may have writes.
			 */
			if (ok[0] == -EBADMSG || ok[1] == -EBADMSG)
				for (r = i * BLKSNAP_META_INTENT_BITS;
				     r < m->regions &&
				     r < (i + 1) * BLKSNAP_META_INTENT_BITS; r++)
					__set_bit(r, m->committed);
			continue;
		}
		p = batch_block(b, pick * m->intent_blocks + i) +
		    sizeof(struct blksnap_meta_hdr);
		for (r = i * BLKSNAP_META_INTENT_BITS;
		     r < m->regions && r < (i + 1) * BLKSNAP_META_INTENT_BITS; r++) {
			unsigned long bit = r % BLKSNAP_META_INTENT_BITS;

			if (p[bit / 8] & (1 << (bit % 8)))
				__set_bit(r, m->committed);
		}
	}
	batch_put(b);
	return 0;
}

/*
 * Read a map area into @map. Regions set in @raise (the active map's
 * intent) read as C whatever the block holds; a block of an older epoch
 * reads as zeros in the active map only (a take writes the whole snapshot
 * map). -EBADMSG when a block that must be sound is not, or holds an entry
 * above @limit.
 */
static int load_map(struct blksnap_meta *m, u8 *map, sector_t area,
		    const unsigned long *raise, bool active, u8 limit)
{
	unsigned long i, first, len, j;
	struct meta_batch *b;
	unsigned int k, n;
	int r = 0;

	for (i = 0; i < m->regions && !r; i += n) {
		n = min_t(unsigned long, META_IO_BLOCKS, m->regions - i);
		r = read_blocks(m, area + i, n, &b);
		if (r)
			return r;
		for (k = 0; k < n && !r; k++) {
			const u8 *p = batch_block(b, k);
			int c;

			first = (i + k) * BLKSNAP_META_ENTRIES;
			len = min_t(unsigned long, BLKSNAP_META_ENTRIES,
				    m->t->nr_blocks - first);
			if (raise && test_bit(i + k, raise)) {
				memset(map + first, limit, len);
				continue;
			}
			c = hdr_check(p, BLKSNAP_META_MAP_MAGIC, m->epoch, i + k);
			if (c == -ESTALE && active) {
				memset(map + first, 0, len);
				continue;
			}
			if (c) {
				r = -EBADMSG;
				break;
			}
			p += sizeof(struct blksnap_meta_hdr);
			for (j = 0; j < len; j++)
				if (p[j] > limit)
					r = -EBADMSG;
			memcpy(map + first, p, len);
		}
		batch_put(b);
	}
	return r;
}

/*
 * Read the superblock and check that it describes this device's layout.
 * Sets *@block_sectors when it is 0. Returns the superblock's batch.
 */
static int read_sb(struct blksnap_meta *m, sector_t dev_sectors,
		   unsigned int *block_sectors, struct blksnap_meta_sb *out,
		   char **error)
{
	struct meta_batch *b;
	int r, k, pick = -1;

	r = read_blocks(m, 0, 2, &b);
	if (r) {
		*error = "Cannot read the metadata device";
		return r;
	}
	for (k = 0; k < 2; k++) {
		const struct blksnap_meta_sb *sb = batch_block(b, k);

		if (!sb_valid(sb))
			continue;
		if (pick < 0 || le64_to_cpu(sb->seq) >
		    le64_to_cpu(((struct blksnap_meta_sb *)batch_block(b, pick))->seq))
			pick = k;
	}
	if (pick >= 0) {
		memcpy(out, batch_block(b, pick), sizeof(*out));
		m->sb_block = pick;
	}
	batch_put(b);
	if (pick < 0) {
		*error = "No blksnap CBT metadata on the device (blksnapctl attach formats it)";
		return -EINVAL;
	}
	if (le32_to_cpu(out->version) != BLKSNAP_META_VERSION) {
		*error = "The metadata has another format version";
		return -EINVAL;
	}
	if (le32_to_cpu(out->block_shift) < 3 || le32_to_cpu(out->block_shift) >= 32) {
		*error = "The metadata's tracking block size is out of range";
		return -EINVAL;
	}
	if (!*block_sectors)
		*block_sectors = 1U << le32_to_cpu(out->block_shift);
	if (le64_to_cpu(out->dev_sectors) != dev_sectors ||
	    le32_to_cpu(out->block_shift) != ilog2(*block_sectors) ||
	    out->state >= BLKSNAP_META_NR_STATES || out->snap_map > 1 ||
	    !out->change_number) {
		*error = "The metadata was formatted for another device size or tracking block size";
		return -EINVAL;
	}
	return 0;
}

/*
 * The first table of a real device names @bdev as its metadata: read the
 * superblock (before the tracker exists: it may set the block size).
 */
struct blksnap_meta *blksnap_meta_alloc(struct block_device *bdev,
					const char *id, sector_t dev_sectors,
					unsigned int *block_sectors,
					struct blksnap_meta_sb *sb, char **error)
{
	struct blksnap_meta *m, *other;
	int r = 0;

	if (strlen(id) >= BLKSNAP_META_ID_LEN || strchr(id, ' ')) {
		*error = "metadata_id: at most 127 characters, no blanks";
		return ERR_PTR(-EINVAL);
	}
	m = kzalloc(sizeof(*m), GFP_KERNEL);
	if (!m) {
		*error = "Cannot allocate the metadata state";
		return ERR_PTR(-ENOMEM);
	}
	m->bdev = bdev;
	strscpy(m->id, id, sizeof(m->id));
	mutex_lock(&meta_list_mutex);
	list_for_each_entry(other, &meta_list, list)
		if (other->bdev == bdev)
			break;
	if (list_entry_is_head(other, &meta_list, list))
		list_add(&m->list, &meta_list);
	else
		r = -EBUSY;
	mutex_unlock(&meta_list_mutex);
	if (r) {
		kfree(m);
		*error = "The metadata device is in use by another blksnap-origin";
		return ERR_PTR(r);
	}
	mutex_init(&m->io_mutex);
	spin_lock_init(&m->lock);
	bio_list_init(&m->held);
	bio_list_init(&m->committing);
	INIT_WORK(&m->commit_work, commit_work);
	INIT_DELAYED_WORK(&m->hold_work, hold_timeout);
	r = read_sb(m, dev_sectors, block_sectors, sb, error);
	if (r) {
		meta_free(m);
		return ERR_PTR(r);
	}
	return m;
}

/*
 * Load the maps into the new tracker @t (not yet registered) and commit
 * "open": continue the superblock's generation, or start a new one and
 * say why.
 */
int blksnap_meta_load(struct blksnap_tracker *t, struct blksnap_meta *m,
		      const struct blksnap_meta_sb *sb, char **error)
{
	sector_t need;
	const char *why = NULL;
	int r;

	m->t = t;
	m->regions = DIV_ROUND_UP(t->nr_blocks, BLKSNAP_META_ENTRIES);
	m->intent_blocks = DIV_ROUND_UP(m->regions, BLKSNAP_META_INTENT_BITS);
	m->intent[0] = 2;
	m->intent[1] = 2 + m->intent_blocks;
	m->active = m->intent[1] + m->intent_blocks;
	m->snap[0] = m->active + m->regions;
	m->snap[1] = m->snap[0] + m->regions;
	need = m->snap[1] + m->regions;
	if (bdev_nr_sectors(m->bdev) / META_BLOCK_SECTORS < need) {
		*error = "The metadata device is too small";
		return -ENOSPC;
	}
	m->committed = bitmap_zalloc(m->regions, GFP_KERNEL);
	m->pending = bitmap_zalloc(m->regions, GFP_KERNEL);
	m->staged = bitmap_zalloc(m->regions, GFP_KERNEL);
	if (!m->committed || !m->pending || !m->staged) {
		*error = "Cannot allocate the metadata state";
		return -ENOMEM;
	}
	m->epoch = le64_to_cpu(sb->epoch);
	m->sb_seq = le64_to_cpu(sb->seq);
	m->snap_slot = sb->snap_map;

	if (sb->state != BLKSNAP_META_OPEN && sb->state != BLKSNAP_META_CLOSED)
		why = state_names[sb->state];
	else if (strncmp(sb->metadata_id, m->id, sizeof(sb->metadata_id)))
		why = "device";
	if (!why) {
		memcpy(&t->generation, sb->generation, sizeof(t->generation));
		t->change_number = sb->change_number;
		t->snap_number = sb->snap_number;
		t->snap_taken = sb->snap_taken;
		r = load_intent(m);
		if (!r)
			r = load_map(m, t->active, m->active, m->committed,
				     true, t->change_number);
		if (!r && t->snap_taken)
			r = load_map(m, t->snap_map, m->snap[m->snap_slot], NULL,
				     false, t->snap_number);
		if (r == -EBADMSG) {
			why = "checksum";
		} else if (r) {
			*error = "Cannot read the metadata device";
			return r;
		}
	}
	if (why) {
		/* Keep the generation of a formatted device: it is new. */
		if (sb->state != BLKSNAP_META_NEW)
			uuid_gen(&t->generation);
		else
			memcpy(&t->generation, sb->generation, sizeof(t->generation));
		memset(t->active, 0, t->nr_blocks);
		memset(t->snap_map, 0, t->nr_blocks);
		t->snap_taken = false;
		t->change_number = 1;
		t->snap_number = 0;
		get_random_bytes(&m->epoch, sizeof(m->epoch));
		bitmap_zero(m->committed, m->regions);
		m->intent_seq = 0;
		m->why = why;
		DMINFO("%u:%u: new CBT generation %pUb: %s", MAJOR(t->dev),
		       MINOR(t->dev), &t->generation, why);
	} else {
		DMINFO("%u:%u: CBT generation %pUb continues at change number %u",
		       MAJOR(t->dev), MINOR(t->dev), &t->generation,
		       t->change_number);
	}
	m->sb_state = BLKSNAP_META_OPEN;
	r = write_sb(m);
	if (r) {
		*error = "Cannot write the metadata device";
		return r;
	}
	t->meta = m;
	return 0;
}

/*
 * The last table of the device is gone (no origin bio can come): unless
 * cbt_close ran, the device may be written through another table now, so
 * the next load starts a new generation.
 */
void blksnap_meta_release(struct blksnap_tracker *t)
{
	struct blksnap_meta *m = t->meta;
	int r;

	if (!m)
		return;
	flush_work(&m->commit_work);
	cancel_delayed_work_sync(&m->hold_work);
	mutex_lock(&m->io_mutex);
	if (!m->closed || m->mode == META_FAILED) {
		if (m->sb_state != BLKSNAP_META_DETACHED &&
		    m->sb_state != BLKSNAP_META_FAILED)
			m->sb_state = m->mode == META_FAILED ?
				BLKSNAP_META_FAILED : BLKSNAP_META_REPLACED;
		r = write_sb(m);
		if (r)
			DMERR("%u:%u: metadata superblock write at removal %s",
			      MAJOR(t->dev), MINOR(t->dev), mode_error(r));
	}
	mutex_unlock(&m->io_mutex);
	t->meta = NULL;
	meta_free(m);
}

/* A metadata state that blksnap_meta_load() did not take. */
void blksnap_meta_discard(struct blksnap_meta *m)
{
	if (m)
		meta_free(m);
}

int blksnap_meta_init(blksnap_replay_fn cont)
{
	crc_init();
	meta_continue = cont;
	meta_wq = alloc_workqueue("blksnap_meta", WQ_MEM_RECLAIM, 0);
	return meta_wq ? 0 : -ENOMEM;
}

/* No table is left; metadata bios that outlived a timeout still end here. */
void blksnap_meta_exit(void)
{
	wait_var_event(&meta_batches, !atomic_read(&meta_batches));
	destroy_workqueue(meta_wq);
}
