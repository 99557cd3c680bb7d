// SPDX-License-Identifier: GPL-2.0
/*
 * dm-blksnap: block device snapshots with change-block tracking.
 *
 * blksnap-origin is stacked over a real device for good. Every write that
 * passes through it marks the change tracker (dm-blksnap-cbt.c) and, while a
 * snapshot image exists, waits until the old content of each chunk it
 * touches is safe in the store.
 *
 * blksnap-image shows the real device as it was at the image's first resume.
 * A chunk's old content lives in the store once copied (an "exception", as
 * in dm-snapshot); until then the image reads the chunk from the real device.
 *
 * Ordering rules (Documentation/dm-blksnap.rst has the long version):
 *  - An origin write to a chunk that is not copied waits on the chunk's
 *    pending copy. Origin writes to copied chunks pass without a lock: the
 *    copied bitmap is the fast path.
 *  - A chunk's copied bit is set only when its copy is in the store AND no
 *    image read of that chunk is still in flight to the real device; until
 *    then origin writes keep waiting, so an image read can never see data
 *    written after the point in time.
 *  - Image I/O goes to the store as soon as the chunk's exception exists.
 *  - Snapshot attach and detach happen with the tracker's write gate closed,
 *    so an origin write sees one snapshot pointer from map() to end_io.
 *
 * Merge rolls the origin back to the image. It starts with the gate closed
 * and copy-on-write drained; from then on the copied bitmap means "not merged
 * yet". A sweep copies the exceptions back to the real device in chunk order,
 * a few at a time; origin reads of an unmerged chunk go to the store, and an
 * origin write to one first merges it (the same pending/waiter machinery as
 * copy-on-write, in the other direction).
 *
 * See Documentation/dm-blksnap.rst for the tables, status lines and messages.
 */
#include <linux/module.h>
#include <linux/device-mapper.h>
#include <linux/dm-kcopyd.h>
#include <linux/hash.h>
#include <linux/kernfs.h>
#include <linux/log2.h>
#include <linux/mempool.h>
#include <linux/rbtree.h>
#include <linux/rhashtable.h>
#include <linux/vmalloc.h>

#include "dm-blksnap.h"

#define BLKSNAP_MIN_CHUNK	8U
#define BLKSNAP_MAX_CHUNK	131072U
#define PENDING_HASH_BITS	12
#define PENDING_POOL_MIN	64
/*
 * Image reads of chunks not copied are tracked in buckets, each with its
 * own lock, by region of 2^READ_REGION_SHIFT chunks: a tracked read lies in
 * one region, and reads of different regions do not share a lock.
 */
#define READ_REGION_SHIFT	10
#define READ_BUCKET_BITS	6
/*
 * One pass over an origin bio starts at most COW_BATCH copies of at most
 * COW_PASS_CHUNKS chunks in all, and looks at no more than COW_WINDOW
 * copies it needs, then waits for the first.
 */
#define COW_BATCH		16
#define COW_WINDOW		64
#define COW_PASS_CHUNKS		512U
/*
 * A copy covers a run of adjacent chunks that one bio needs copied, up to
 * COW_RUN_SECTORS (1 MiB) or one chunk if chunks are larger: one read of
 * the real device, one write of contiguous store space.
 */
#define COW_RUN_SECTORS		2048U
/*
 * Chunks with a copy in flight per snapshot: 64 MiB worth, but no fewer
 * than 64 nor more than 16384 (kcopyd splits large copies into bounded
 * sub-jobs, so memory stays bounded for large chunks too).
 */
#define COW_INFLIGHT_BYTES	(64U << 20)
#define COW_INFLIGHT_MIN	64U
#define COW_INFLIGHT_MAX	16384U
/* Chunks the merge sweep copies back at once. */
#define MERGE_INFLIGHT		8
/* The copied bitmap is limited like the CBT map: 2^31 chunks. */
#define BLKSNAP_MAX_CHUNKS	(1UL << 31)
/* A copy that has not settled after this many seconds fails the snapshot. */
#define COPY_TIMEOUT_DEFAULT	60U
#define COPY_TIMEOUT_MAX	86400U

static struct kmem_cache *exception_cache;
static struct kmem_cache *pending_cache;
static struct workqueue_struct *blksnap_wq;

/*---- Store pool ----*/

/*
 * One pool per store device, shared by every image that names it. Space is
 * handed out from the high-water mark upwards, or from extents that removed
 * images gave back; the device's size at the time of each allocation is the
 * limit, so a store that grows is used at once. The free extents live in an
 * rbtree by start, so that giving back the chunks of an image whose copies
 * interleave with another's costs O(log n) each, not a walk of the list.
 */
struct blksnap_store {
	struct list_head list;		/* store_list */
	struct kref kref;
	dev_t dev;
	spinlock_t lock;		/* protects the fields below */
	sector_t hwm;			/* never handed out at or above */
	sector_t used;			/* sectors in use */
	struct rb_root free;		/* struct store_extent, by start */
};

struct store_extent {
	struct rb_node node;
	sector_t start;
	sector_t len;
};

static LIST_HEAD(store_list);
static DEFINE_MUTEX(store_mutex);

static struct blksnap_store *store_get(dev_t dev)
{
	struct blksnap_store *st;

	mutex_lock(&store_mutex);
	list_for_each_entry(st, &store_list, list) {
		if (st->dev == dev) {
			kref_get(&st->kref);
			goto out;
		}
	}
	st = kzalloc(sizeof(*st), GFP_KERNEL);
	if (st) {
		kref_init(&st->kref);
		st->dev = dev;
		spin_lock_init(&st->lock);
		st->free = RB_ROOT;
		list_add(&st->list, &store_list);
	}
out:
	mutex_unlock(&store_mutex);
	return st;
}

/* Whether an image uses @dev as its store. */
static bool store_in_use(dev_t dev)
{
	struct blksnap_store *st;
	bool found = false;

	mutex_lock(&store_mutex);
	list_for_each_entry(st, &store_list, list)
		found |= st->dev == dev;
	mutex_unlock(&store_mutex);
	return found;
}

static void store_release(struct kref *kref)
{
	struct blksnap_store *st = container_of(kref, struct blksnap_store, kref);
	struct store_extent *e, *n;

	list_del(&st->list);
	rbtree_postorder_for_each_entry_safe(e, n, &st->free, node)
		kfree(e);
	kfree(st);
}

static void store_put(struct blksnap_store *st)
{
	mutex_lock(&store_mutex);
	kref_put(&st->kref, store_release);
	mutex_unlock(&store_mutex);
}

/*
 * Allocate @len sectors below @limit, the store's size now. Returns 0 and
 * *@start; -ENOSPC when the store is full; -ENODEV when it is smaller than
 * the space it has handed out, or empty: it shrank or went away (a deleted
 * disk's capacity drops to 0 before its I/O starts failing). Only requests
 * with @holes look at the free extents: those of single chunks. A run of
 * chunks takes space at the high-water mark, or none (its chunks are then
 * copied one by one), so that it never walks a tree of holes too small for
 * it.
 */
static int store_alloc(struct blksnap_store *st, sector_t len, sector_t limit,
		       bool holes, sector_t *start)
{
	struct store_extent *e;
	struct rb_node *n;
	int r = -ENOSPC;

	spin_lock(&st->lock);
	if (!limit || limit < st->hwm) {
		r = -ENODEV;
		goto out;
	}
	/* First fit, lowest first. */
	for (n = holes ? rb_first(&st->free) : NULL; n; n = rb_next(n)) {
		e = rb_entry(n, struct store_extent, node);
		if (e->start + len > limit)
			break;
		if (e->len < len)
			continue;
		*start = e->start;
		e->start += len;
		e->len -= len;
		if (!e->len) {
			rb_erase(&e->node, &st->free);
			kfree(e);
		}
		r = 0;
		goto out;
	}
	if (st->hwm + len <= limit) {
		*start = st->hwm;
		st->hwm += len;
		r = 0;
	}
out:
	if (!r)
		st->used += len;
	spin_unlock(&st->lock);
	return r;
}

/* Whether @len sectors fit at the high-water mark now. */
static bool store_room(struct blksnap_store *st, sector_t len, sector_t limit)
{
	bool room;

	spin_lock(&st->lock);
	room = limit >= st->hwm && st->hwm + len <= limit;
	spin_unlock(&st->lock);
	return room;
}

/*
 * Give back [@start, @start + @len). @spare is a preallocated extent the
 * function may consume; it returns it when it did not. Without a spare (an
 * allocation failed) space that would need an extent of its own stays in
 * use rather than being lost track of.
 */
static struct store_extent *store_free(struct blksnap_store *st, sector_t start,
				       sector_t len, struct store_extent *spare)
{
	struct rb_node **link = &st->free.rb_node, *parent = NULL;
	struct store_extent *e, *prev = NULL, *next = NULL;

	spin_lock(&st->lock);
	/* The neighbours: the last extent before @start, the first after it. */
	while (*link) {
		parent = *link;
		e = rb_entry(parent, struct store_extent, node);
		if (e->start < start) {
			prev = e;
			link = &parent->rb_right;
		} else {
			next = e;
			link = &parent->rb_left;
		}
	}
	if (prev && prev->start + prev->len == start) {
		e = prev;
		e->len += len;
		if (next && e->start + e->len == next->start) {
			e->len += next->len;
			rb_erase(&next->node, &st->free);
			kfree(next);
		}
	} else if (next && start + len == next->start) {
		e = next;
		e->start = start;
		e->len += len;
	} else if (start + len == st->hwm) {
		e = NULL;
		st->hwm = start;
	} else if (spare) {
		e = spare;
		spare = NULL;
		e->start = start;
		e->len = len;
		rb_link_node(&e->node, parent, link);
		rb_insert_color(&e->node, &st->free);
	} else {
		goto out;
	}
	st->used -= len;
	/* An extent that now ends at the high-water mark folds into it. */
	if (e && e->start + e->len == st->hwm) {
		st->hwm = e->start;
		rb_erase(&e->node, &st->free);
		kfree(e);
	}
out:
	spin_unlock(&st->lock);
	return spare;
}

/*---- Snapshot: copy-on-write state ----*/

enum snap_state { SNAP_VALID, SNAP_OVERFLOW, SNAP_FAILED };
static const char * const snap_state_names[] = { "valid", "overflow", "failed" };

/*
 * Where a merge is: waiting for copies started before it, copying chunks
 * back, flushing the real device, done.
 */
enum merge_phase { MERGE_START, MERGE_SWEEP, MERGE_FLUSH, MERGE_DONE };

struct blksnap_exception {
	struct rhash_head node;
	u64 chunk;
	u64 store_sector;
};

static const struct rhashtable_params exception_params = {
	.key_len = sizeof(u64),
	.key_offset = offsetof(struct blksnap_exception, chunk),
	.head_offset = offsetof(struct blksnap_exception, node),
	.automatic_shrinking = false,
};

struct blksnap_snap {
	struct blksnap_tracker *t;
	struct blksnap_store *store;
	struct block_device *real_bdev;
	struct block_device *store_bdev;
	struct dm_target *ti;		/* the image, for events */

	unsigned int chunk_shift;
	sector_t chunk_sectors;
	sector_t dev_sectors;
	unsigned long nr_chunks;
	unsigned long *copied;		/* origin writes to these pass */
	struct rhashtable exceptions;	/* chunk -> store sector */
	unsigned int max_inflight;	/* pendings at most */
	unsigned int run_max;		/* chunks per copy at most */
	unsigned int copy_timeout;	/* seconds */
	unsigned long last_progress;	/* jiffies of the last copy that ended */

	/* Irq-safe; protects the fields from here to merge_sweeping. */
	spinlock_t lock;
	struct hlist_head pending[1 << PENDING_HASH_BITS];
	unsigned int nr_pending;	/* in @pending */
	/*
	 * Copied pendings waiting for reads: under @lock, the number of
	 * copied pendings still hashed; it grows under the bucket lock of
	 * the read it waits for, so a read that ends after sees it non-zero.
	 */
	unsigned int draining;
	enum snap_state state;
	unsigned long copied_chunks;
	sector_t low_water;
	atomic_t low_armed;		/* a low-water event may be raised */
	struct bio_list retry_origin;	/* released by copies: map again */
	struct bio_list retry_image;
	/* Bios that found no room for a copy: the next copy to end retries them. */
	struct bio_list throttled_origin;
	struct bio_list throttled_image;
	struct bio_list written;	/* image writes of whole chunks that ended */
	bool image_closed;		/* a merge starts or runs: image I/O fails */

	/* Merge; the fields change under @lock, @merging with the gate closed. */
	bool merging;			/* copied bitmap = chunks not merged */
	enum merge_phase merge_phase;
	unsigned long merge_cursor;	/* the sweep's next chunk */
	unsigned long merge_done, merge_total;
	unsigned int merge_sweeping;	/* sweep copies in flight */
	struct work_struct merge_work;
	struct work_struct merge_event_work;

	mempool_t pending_pool;
	struct dm_kcopyd_client *kc;
	atomic_t inflight;		/* pendings alive */
	atomic_t image_ios;		/* image bios remapped, not ended */
	struct work_struct retry_work;
	struct work_struct written_work;
	struct work_struct event_work;
	struct delayed_work timeout_work;

	/* Image reads in flight to real_bdev, by region (read_bucket()). */
	struct blksnap_reads {
		spinlock_t lock;	/* irq-safe; nests inside @lock */
		struct list_head list;
	} reads[1 << READ_BUCKET_BITS];
};

/*
 * A chunk whose copy is in flight, or whose copy waits for image reads of it
 * to end. A copy of several adjacent chunks is one job, started for the
 * first of them (the run's head, whose @run lists the others in chunk
 * order, with @run_len chunks in all); every chunk still has its own
 * pending, so that waiters and the draining of reads stay per chunk. @run
 * is used only until the job ends.
 */
struct blksnap_pending {
	struct hlist_node node;
	struct blksnap_snap *s;
	unsigned long chunk;
	sector_t store_sector;
	unsigned long started;		/* jiffies */
	struct list_head run;
	unsigned int run_len;		/* the head's; 0 for the others */
	bool copied;			/* exception in place, draining reads */
	bool sweep;			/* a merge copy started by the sweep */
	struct bio_list origin_waiters;
	struct bio_list image_waiters;
};

/* Per-bio data of the origin. */
struct origin_io {
	bool gated;			/* holds a reference of the write gate */
	unsigned long cursor;		/* chunks before it need no copy */
};

/* Per-bio data of the image. */
struct image_io {
	struct list_head node;		/* in a snap->reads bucket while tracked */
	unsigned long first, last;	/* chunks read from the real device */
	struct blksnap_pending *run;	/* whole chunks it writes, not copied */
	blk_status_t status;		/* of such a write, while it settles */
	bool tracked;
	bool counted;			/* in snap->image_ios */
};

static struct blksnap_pending *__pending_find(struct blksnap_snap *s,
					      unsigned long chunk)
{
	struct blksnap_pending *p;

	hlist_for_each_entry(p, &s->pending[hash_long(chunk, PENDING_HASH_BITS)], node)
		if (p->chunk == chunk)
			return p;
	return NULL;
}

static struct blksnap_exception *exception_find(struct blksnap_snap *s,
						unsigned long chunk)
{
	u64 key = chunk;

	return rhashtable_lookup_fast(&s->exceptions, &key, exception_params);
}

static struct blksnap_reads *read_bucket(struct blksnap_snap *s,
					 unsigned long chunk)
{
	return &s->reads[hash_long(chunk >> READ_REGION_SHIFT, READ_BUCKET_BITS)];
}

/* The last chunk of @chunk's region. */
static unsigned long read_region_last(unsigned long chunk)
{
	return chunk | ((1UL << READ_REGION_SHIFT) - 1);
}

/* Must be called with the bucket lock of @chunk held. */
static bool __reads_overlap(struct blksnap_reads *b, unsigned long chunk)
{
	struct image_io *io;

	list_for_each_entry(io, &b->list, node)
		if (io->first <= chunk && chunk <= io->last)
			return true;
	return false;
}

/*
 * Whether a tracked read still reads @chunk from the real device. With
 * @drain (a copy of the chunk ended), such a read keeps the pending
 * ("draining") until the last of them ends: @draining grows under the
 * bucket lock, so that a read that ends after this sees it. Must be called
 * with s->lock held (irqs off).
 */
static bool __chunk_read_busy(struct blksnap_snap *s, unsigned long chunk,
			      bool drain)
{
	struct blksnap_reads *b = read_bucket(s, chunk);
	bool busy;

	spin_lock(&b->lock);
	busy = __reads_overlap(b, chunk);
	if (busy && drain)
		WRITE_ONCE(s->draining, s->draining + 1);
	spin_unlock(&b->lock);
	return busy;
}

static void snap_event(struct work_struct *work)
{
	struct blksnap_snap *s = container_of(work, struct blksnap_snap, event_work);

	dm_table_event(s->ti->table);
}

/* A merge ended or failed: tell those who wait on the origin or the image. */
static void merge_event(struct work_struct *work)
{
	struct blksnap_snap *s = container_of(work, struct blksnap_snap,
					      merge_event_work);

	mutex_lock(&s->t->map_lock);
	if (s->t->event_ti)
		dm_table_event(s->t->event_ti->table);
	mutex_unlock(&s->t->map_lock);
	dm_table_event(s->ti->table);
}

/* Must be called with s->lock held. */
static void __release_waiters(struct blksnap_snap *s, struct blksnap_pending *p)
{
	bio_list_merge(&s->retry_origin, &p->origin_waiters);
	bio_list_init(&p->origin_waiters);
	bio_list_merge(&s->retry_image, &p->image_waiters);
	bio_list_init(&p->image_waiters);
}

/* Must be called with s->lock held. */
static void __release_throttled(struct blksnap_snap *s)
{
	bio_list_merge(&s->retry_origin, &s->throttled_origin);
	bio_list_init(&s->throttled_origin);
	bio_list_merge(&s->retry_image, &s->throttled_image);
	bio_list_init(&s->throttled_image);
}

/*
 * The snapshot stops being usable. No bio waits for a copy from now on,
 * however long the copies still in flight take: origin writes pass (while
 * merging, writes to chunks not merged fail), image I/O fails.
 * Must be called with s->lock held.
 */
static void __snap_invalidate(struct blksnap_snap *s, enum snap_state state,
			      const char *why)
{
	struct blksnap_pending *p;
	unsigned int i;

	if (s->state != SNAP_VALID)
		return;
	WRITE_ONCE(s->state, state);
	DMERR("%s: snapshot image %s: %s",
	      dm_device_name(dm_table_get_md(s->ti->table)),
	      snap_state_names[state], why);
	for (i = 0; i < ARRAY_SIZE(s->pending); i++)
		hlist_for_each_entry(p, &s->pending[i], node)
			__release_waiters(s, p);
	__release_throttled(s);
	queue_work(blksnap_wq, &s->retry_work);
	queue_work(blksnap_wq, &s->event_work);
	if (s->merging)
		queue_work(blksnap_wq, &s->merge_event_work);
	/* A merge starting waits for copies or for this. */
	wake_up_var(&s->inflight);
}

static void snap_invalidate(struct blksnap_snap *s, enum snap_state state,
			    const char *why)
{
	unsigned long flags;

	spin_lock_irqsave(&s->lock, flags);
	__snap_invalidate(s, state, why);
	spin_unlock_irqrestore(&s->lock, flags);
}

/*
 * The copy of @p's chunk is settled (done or abandoned): let the waiting
 * bios map again, and those that found no room for a copy. Must be called
 * with s->lock held; the caller queues the retry work and frees @p.
 */
static void __pending_release(struct blksnap_snap *s, struct blksnap_pending *p)
{
	if (p->copied)
		set_bit(p->chunk, s->copied);
	hlist_del(&p->node);
	s->nr_pending--;
	__release_waiters(s, p);
	__release_throttled(s);
}

static void pending_free(struct blksnap_snap *s, struct blksnap_pending *p)
{
	mempool_free(p, &s->pending_pool);
	/* The last access to @s: teardown waits on this counter. */
	if (atomic_dec_and_test(&s->inflight))
		wake_up_var(&s->inflight);
}

/* Give store space back, e.g. that of a copy that failed. */
static void snap_free_space(struct blksnap_snap *s, sector_t start, sector_t len)
{
	struct store_extent *spare = kmalloc(sizeof(*spare), GFP_NOIO);

	kfree(store_free(s->store, start, len, spare));
}

static void check_low_water(struct blksnap_snap *s)
{
	sector_t size = bdev_nr_sectors(s->store_bdev);
	sector_t used = READ_ONCE(s->store->used);
	sector_t free = size > used ? size - used : 0;

	/* Racing allocations may both see the crossing: one raises the event. */
	if (free < s->low_water) {
		if (atomic_cmpxchg(&s->low_armed, 1, 0) == 1)
			queue_work(blksnap_wq, &s->event_work);
	} else if (!atomic_read(&s->low_armed)) {
		atomic_set(&s->low_armed, 1);
	}
}

/*
 * Put the exceptions of @p's run in the table, in run order. Returns how many
 * went in: the first ones; space for the others goes back.
 */
static unsigned int run_exceptions(struct blksnap_snap *s,
				   struct blksnap_pending *p)
{
	struct blksnap_pending *q = p;
	struct blksnap_exception *e;
	unsigned int n = 0;

	do {
		e = kmem_cache_alloc(exception_cache, GFP_NOIO);
		if (!e)
			break;
		e->chunk = q->chunk;
		e->store_sector = q->store_sector;
		if (rhashtable_insert_fast(&s->exceptions, &e->node,
					   exception_params)) {
			kmem_cache_free(exception_cache, e);
			break;
		}
		n++;
		q = list_next_entry(q, run);
	} while (q != p);
	return n;
}

/* The copy of @p's run ended, well or not. */
static void copy_done(int read_err, unsigned long write_err, void *context)
{
	struct blksnap_pending *p = context, *q, *next;
	struct blksnap_snap *s = p->s;
	unsigned int len = p->run_len, stored = 0, i = 0;
	sector_t lost = p->store_sector;
	HLIST_HEAD(released);
	struct hlist_node *tmp;
	unsigned long flags;
	const char *why = NULL;

	WRITE_ONCE(s->last_progress, jiffies);
	if (read_err || write_err) {
		why = read_err ? "cannot read the real device" : "cannot write the store";
	} else if (READ_ONCE(s->state) == SNAP_VALID) {
		stored = run_exceptions(s, p);
		if (stored < len)
			why = "out of memory for the exception table";
	}
	lost += (sector_t)stored << s->chunk_shift;

	spin_lock_irqsave(&s->lock, flags);
	if (why)
		__snap_invalidate(s, SNAP_FAILED, why);
	q = p;
	do {
		next = list_next_entry(q, run);
		if (i++ < stored) {
			q->copied = true;
			s->copied_chunks++;
			if (__chunk_read_busy(s, q->chunk, true)) {
				/* The last tracked read of the chunk releases it. */
				q = next;
				continue;
			}
		}
		__pending_release(s, q);
		hlist_add_head(&q->node, &released);
		q = next;
	} while (q != p);
	spin_unlock_irqrestore(&s->lock, flags);
	/* Copies that are not in the exception table give their space back. */
	if (stored < len)
		snap_free_space(s, lost, (sector_t)(len - stored) << s->chunk_shift);
	if (!hlist_empty(&released))
		queue_work(blksnap_wq, &s->retry_work);
	hlist_for_each_entry_safe(q, tmp, &released, node)
		pending_free(s, q);
}

static void merge_copy_done(int read_err, unsigned long write_err, void *context);

/*
 * Copy @p's run of chunks from the real device to its place in the store,
 * or @p's chunk back for a merge.
 */
static void chunk_copy(struct blksnap_snap *s, struct blksnap_pending *p,
		       bool merge)
{
	sector_t start = (sector_t)p->chunk << s->chunk_shift;
	struct dm_io_region real = {
		.bdev = s->real_bdev,
		.sector = start,
		.count = min((sector_t)p->run_len << s->chunk_shift,
			     s->dev_sectors - start),
	};
	struct dm_io_region store = {
		.bdev = s->store_bdev,
		.sector = p->store_sector,
		.count = real.count,
	};

	if (merge)
		dm_kcopyd_copy(s->kc, &store, 1, &real, 0, merge_copy_done, p);
	else
		dm_kcopyd_copy(s->kc, &real, 1, &store, 0, copy_done, p);
}

/* @p's run got no store space: release its chunks, not copied. */
static void run_abandon(struct blksnap_snap *s, struct blksnap_pending *p)
{
	struct blksnap_pending *q, *next;
	HLIST_HEAD(released);
	struct hlist_node *tmp;

	spin_lock_irq(&s->lock);
	list_for_each_entry_safe(q, next, &p->run, run) {
		__pending_release(s, q);
		hlist_add_head(&q->node, &released);
	}
	__pending_release(s, p);
	hlist_add_head(&p->node, &released);
	spin_unlock_irq(&s->lock);
	queue_work(blksnap_wq, &s->retry_work);
	hlist_for_each_entry_safe(q, tmp, &released, node)
		pending_free(s, q);
}

/* @p's run got its store space: each chunk after the first gets its place. */
static void run_place(struct blksnap_snap *s, struct blksnap_pending *p)
{
	sector_t sector = p->store_sector;
	struct blksnap_pending *q;

	list_for_each_entry(q, &p->run, run) {
		sector += s->chunk_sectors;
		q->store_sector = sector;
	}
	check_low_water(s);
}

/*
 * Allocate contiguous store space for @p's run and start copying it there.
 * A run that does not fit is copied chunk by chunk: the store may still
 * have room for each.
 */
static void pending_start(struct blksnap_snap *s, struct blksnap_pending *p)
{
	struct blksnap_pending *q, *next;
	int r;

	r = store_alloc(s->store, (sector_t)p->run_len << s->chunk_shift,
			bdev_nr_sectors(s->store_bdev), p->run_len == 1,
			&p->store_sector);
	if (r == -ENOSPC && p->run_len > 1) {
		list_for_each_entry_safe(q, next, &p->run, run) {
			list_del_init(&q->run);
			q->run_len = 1;
			pending_start(s, q);
		}
		p->run_len = 1;
		pending_start(s, p);
		return;
	}
	if (r) {
		snap_invalidate(s, r == -ENOSPC ? SNAP_OVERFLOW : SNAP_FAILED,
				r == -ENOSPC ? "the store is full" :
				"the store is smaller than the space handed out, or went away");
		run_abandon(s, p);
		return;
	}
	run_place(s, p);
	chunk_copy(s, p, false);
}

static void merge_copy_done(int read_err, unsigned long write_err, void *context)
{
	struct blksnap_pending *p = context;
	struct blksnap_snap *s = p->s;
	sector_t start = (sector_t)p->chunk << s->chunk_shift;
	unsigned long flags;

	WRITE_ONCE(s->last_progress, jiffies);
	/* Every merged block changed the origin: the next backup copies it. */
	if (!read_err && !write_err)
		blksnap_cbt_mark(s->t, start,
				 min(s->chunk_sectors, s->dev_sectors - start));

	spin_lock_irqsave(&s->lock, flags);
	if (read_err || write_err) {
		__snap_invalidate(s, SNAP_FAILED, read_err ?
				  "merge cannot read the store" :
				  "merge cannot write the real device");
	} else {
		clear_bit(p->chunk, s->copied);
		s->merge_done++;
	}
	if (p->sweep)
		s->merge_sweeping--;
	__pending_release(s, p);
	spin_unlock_irqrestore(&s->lock, flags);
	queue_work(blksnap_wq, &s->retry_work);
	queue_work(blksnap_wq, &s->merge_work);
	pending_free(s, p);
}

/*
 * Register a pending copy of chunk @c (must be called with s->lock held; @p
 * comes from the pool): copy-on-write, or with @merge the merge of a chunk
 * that has an exception, started by the sweep if @sweep.
 */
static void __pending_add(struct blksnap_snap *s, struct blksnap_pending *p,
			  unsigned long c, bool merge, bool sweep)
{
	p->s = s;
	p->chunk = c;
	p->started = jiffies;
	p->copied = false;
	p->sweep = sweep;
	INIT_LIST_HEAD(&p->run);
	p->run_len = 1;
	if (merge)
		p->store_sector = exception_find(s, c)->store_sector;
	bio_list_init(&p->origin_waiters);
	bio_list_init(&p->image_waiters);
	hlist_add_head(&p->node, &s->pending[hash_long(c, PENDING_HASH_BITS)]);
	s->nr_pending++;
	atomic_inc(&s->inflight);
	if (sweep)
		s->merge_sweeping++;
	/* Copies are watched while any exists (a no-op when it is queued). */
	queue_delayed_work(blksnap_wq, &s->timeout_work, HZ);
}

/*
 * Add the chunks after @p's that @p's bio needs copied too, up to @last, to
 * its run, as long as each has no copy yet and there is room. Returns the
 * run's last chunk. Must be called with s->lock held.
 */
static unsigned long __run_extend(struct blksnap_snap *s,
				  struct blksnap_pending *p, unsigned long last,
				  unsigned int *budget)
{
	unsigned long c = p->chunk;
	struct blksnap_pending *q;

	while (c < last && p->run_len < s->run_max && *budget &&
	       s->nr_pending < s->max_inflight &&
	       !test_bit(c + 1, s->copied) && !__pending_find(s, c + 1)) {
		q = mempool_alloc(&s->pending_pool, GFP_NOWAIT);
		if (!q)
			break;
		__pending_add(s, q, ++c, false, false);
		list_add_tail(&q->run, &p->run);
		q->run_len = 0;
		p->run_len++;
		(*budget)--;
	}
	return c;
}

/*
 * Find or start the copies that chunks *@cursor..@last need and queue @bio
 * behind the lowest of them: copy-on-write of chunks not copied yet or,
 * while merging, the merge of chunks not merged yet. *@cursor moves to that
 * chunk (the ones before it need nothing), so that a bio over many chunks
 * is scanned once in all, a window of chunks per pass. Never sleeps for a
 * pool element: one is only taken for a copy that starts at once, and a bio
 * that finds no room for one (the pool or the snapshot's limit of copies in
 * flight) waits for the next copy to end, or for the timeout work's next
 * run (a pool element may come back after the releases that retry it).
 * Returns DM_MAPIO_SUBMITTED when @bio waits, DM_MAPIO_REMAPPED when no
 * chunk needs a copy (or the snapshot is no longer valid) and @bio may go
 * on, DM_MAPIO_KILL when a merge failed before reaching one of the chunks:
 * it holds neither point in time, so a write must not complete a mix.
 */
static int chunks_wait(struct blksnap_snap *s, struct bio *bio, bool image,
		       unsigned long *cursor, unsigned long last)
{
	struct blksnap_pending *started[COW_BATCH], *p, *wait = NULL;
	unsigned int nr_started = 0, seen = 0, budget = COW_PASS_CHUNKS, i;
	int r = DM_MAPIO_REMAPPED;
	unsigned long c;
	bool merging;

	spin_lock_irq(&s->lock);
	merging = s->merging;
	/* Image bios find the merge here only if it started meanwhile. */
	if ((!merging && s->state != SNAP_VALID) || (merging && image))
		goto unlock;
	for (c = *cursor; seen < COW_WINDOW && nr_started < COW_BATCH && budget;
	     c++) {
		/* The copied bitmap: copied chunks, or while merging, unmerged ones. */
		if (merging)
			c = find_next_bit(s->copied, last + 1, c);
		else
			c = find_next_zero_bit(s->copied, last + 1, c);
		if (c > last)
			break;
		if (s->state != SNAP_VALID) {
			r = DM_MAPIO_KILL;
			goto unlock;
		}
		p = __pending_find(s, c);
		if (!p) {
			if (s->nr_pending >= s->max_inflight)
				break;
			p = mempool_alloc(&s->pending_pool, GFP_NOWAIT);
			if (!p)
				break;
			__pending_add(s, p, c, merging, false);
			started[nr_started++] = p;
			budget--;
			if (!merging)
				c = __run_extend(s, p, last, &budget);
		}
		if (!wait) {
			wait = p;
			*cursor = p->chunk;
		}
		seen++;
	}
	if (wait) {
		bio_list_add(image ? &wait->image_waiters : &wait->origin_waiters, bio);
		r = DM_MAPIO_SUBMITTED;
	} else if (c <= last) {
		bio_list_add(image ? &s->throttled_image : &s->throttled_origin, bio);
		queue_delayed_work(blksnap_wq, &s->timeout_work, HZ);
		r = DM_MAPIO_SUBMITTED;
	}
unlock:
	spin_unlock_irq(&s->lock);
	/* Started even if the snapshot failed meanwhile: they are registered. */
	for (i = 0; i < nr_started; i++) {
		if (merging)
			chunk_copy(s, started[i], true);
		else
			pending_start(s, started[i]);
	}
	return r;
}

/*
 * An origin write while a snapshot exists. Returns DM_MAPIO_REMAPPED when the
 * bio may go to the real device now, DM_MAPIO_SUBMITTED when it waits.
 */
static int snap_origin_write(struct blksnap_snap *s, struct bio *bio,
			     unsigned long *cursor)
{
	sector_t sector = bio->bi_iter.bi_sector;
	unsigned long last;

	if (READ_ONCE(s->state) != SNAP_VALID || sector >= s->dev_sectors)
		return DM_MAPIO_REMAPPED;
	*cursor = max_t(unsigned long, *cursor, sector >> s->chunk_shift);
	last = min_t(sector_t, bio_end_sector(bio), s->dev_sectors) - 1;
	last >>= s->chunk_shift;
	if (find_next_zero_bit(s->copied, last + 1, *cursor) > last)
		return DM_MAPIO_REMAPPED;
	return chunks_wait(s, bio, false, cursor, last);
}

/* An image bio ended, or will not go on: a merge starting waits for the last. */
static void snap_image_io_done(struct blksnap_snap *s, struct image_io *io)
{
	io->counted = false;
	if (atomic_dec_and_test(&s->image_ios) && READ_ONCE(s->image_closed))
		wake_up_var(&s->image_ios);
}

/*
 * Count an image bio until its end, unless the image is no longer usable.
 * Counted first, then checked: snap_merge_start() sets image_closed, then
 * reads the count, each side with a full barrier in between, so that either
 * the merge sees this bio or this bio sees the merge.
 */
static bool snap_image_io_enter(struct blksnap_snap *s, struct image_io *io)
{
	atomic_inc(&s->image_ios);
	io->counted = true;
	/* Pairs with the smp_mb() in snap_merge_start(). */
	smp_mb__after_atomic();
	if (READ_ONCE(s->state) == SNAP_VALID && !READ_ONCE(s->image_closed))
		return true;
	snap_image_io_done(s, io);
	return false;
}

/*
 * Send an image bio whose first chunk has exception @e to the store, with as
 * many chunks as lie contiguously there. Exceptions stay until the snapshot
 * goes: no lock is needed.
 */
static int snap_image_to_store(struct blksnap_snap *s, struct bio *bio,
			       struct blksnap_exception *e, unsigned long first,
			       unsigned long last)
{
	sector_t sector = bio->bi_iter.bi_sector, end;
	struct blksnap_exception *e2;
	unsigned long c;

	for (c = first + 1; c <= last; c++) {
		e2 = exception_find(s, c);
		if (!e2 || e2->store_sector !=
		    e->store_sector + ((c - first) << s->chunk_shift))
			break;
	}
	end = (sector_t)c << s->chunk_shift;
	if (end < bio_end_sector(bio))
		dm_accept_partial_bio(bio, end - sector);
	if (bio_data_dir(bio) == WRITE)
		blksnap_cbt_mark_snapshot(s->t, sector, bio_sectors(bio));
	bio_set_dev(bio, s->store_bdev);
	bio->bi_iter.bi_sector = e->store_sector +
		(sector - ((sector_t)first << s->chunk_shift));
	return DM_MAPIO_REMAPPED;
}

/*
 * Copied chunks @first..@last whose pendings waited for image reads: those
 * that no tracked read overlaps any more go to @released. Must be called
 * with s->lock held.
 */
static void __release_drained(struct blksnap_snap *s, unsigned long first,
			      unsigned long last, struct hlist_head *released)
{
	struct blksnap_pending *p;
	unsigned long c;

	for (c = first; s->draining && c <= last; c++) {
		p = __pending_find(s, c);
		if (!p || !p->copied || __chunk_read_busy(s, c, false))
			continue;
		WRITE_ONCE(s->draining, s->draining - 1);
		__pending_release(s, p);
		hlist_add_head(&p->node, released);
	}
}

/* Free the pendings of __release_drained(); their waiters map again. */
static void pendings_free(struct blksnap_snap *s, struct hlist_head *released)
{
	struct blksnap_pending *p;
	struct hlist_node *tmp;

	if (hlist_empty(released))
		return;
	queue_work(blksnap_wq, &s->retry_work);
	hlist_for_each_entry_safe(p, tmp, released, node)
		pending_free(s, p);
}

/*
 * A tracked read stopped reading chunks @first..@last (its bucket lock
 * taken and dropped since): release the copies of them it held up. A copy
 * that saw the read counted itself in @draining under that lock, so a zero
 * here means that none waits, and s->lock is not needed.
 */
static void release_drained(struct blksnap_snap *s, unsigned long first,
			    unsigned long last)
{
	HLIST_HEAD(released);
	unsigned long flags;

	if (!READ_ONCE(s->draining))
		return;
	spin_lock_irqsave(&s->lock, flags);
	__release_drained(s, first, last, &released);
	spin_unlock_irqrestore(&s->lock, flags);
	pendings_free(s, &released);
}

/*
 * An image write that covers whole chunks from the first one on, none of
 * them copied nor being copied: their old content is never needed again, so
 * the bio goes to new store space at once instead of waiting for a copy.
 * The chunks get pendings, a run as for a copy, so that origin writes and
 * other image writes to them wait, and image reads go on reading the real
 * device, until the write ends; then copy_done() puts their exceptions in
 * place, or on an error gives the space back and fails the image; the
 * bio completes after that (image_end_io()), so that a read after it finds
 * the exceptions. Returns DM_MAPIO_REMAPPED with @bio sent to the store (cut
 * to the run if @split), or -1 when @bio takes the copy path (also when the
 * store has no room for the run: that path copies chunk by chunk).
 */
static int snap_image_write_whole(struct blksnap_snap *s, struct bio *bio,
				  struct image_io *io, bool split)
{
	sector_t sector = bio->bi_iter.bi_sector, end = bio_end_sector(bio);
	unsigned long first = sector >> s->chunk_shift, last;
	struct blksnap_pending *p;
	unsigned int budget;
	int r;

	if (bio_op(bio) != REQ_OP_WRITE || !bio_sectors(bio) ||
	    sector & (s->chunk_sectors - 1))
		return -1;
	/* The last chunk of the device may be short. */
	if (end < s->dev_sectors)
		end &= ~(s->chunk_sectors - 1);
	else
		end = round_up(s->dev_sectors, s->chunk_sectors);
	if (end <= sector)
		return -1;
	last = ((end - 1) >> s->chunk_shift);
	if (!split && last != first)
		return -1;
	/*
	 * A run goes to the high-water mark; without room there, one chunk
	 * (from a hole, if any) and the rest of the bio after it, so that a
	 * full store is not asked for every shorter run in turn.
	 */
	budget = min_t(unsigned long, last - first + 1, s->run_max);
	if (budget > 1 && !store_room(s->store, (sector_t)budget << s->chunk_shift,
				      bdev_nr_sectors(s->store_bdev)))
		budget = 1;

	spin_lock_irq(&s->lock);
	if (s->state != SNAP_VALID || s->merging || test_bit(first, s->copied) ||
	    __pending_find(s, first) || s->nr_pending >= s->max_inflight) {
		spin_unlock_irq(&s->lock);
		return -1;
	}
	p = mempool_alloc(&s->pending_pool, GFP_NOWAIT);
	if (!p) {
		spin_unlock_irq(&s->lock);
		return -1;
	}
	__pending_add(s, p, first, false, false);
	budget--;
	last = __run_extend(s, p, last, &budget);
	spin_unlock_irq(&s->lock);

	r = store_alloc(s->store, (sector_t)p->run_len << s->chunk_shift,
			bdev_nr_sectors(s->store_bdev), p->run_len == 1,
			&p->store_sector);
	if (r) {
		run_abandon(s, p);
		return -1;
	}
	run_place(s, p);
	end = (sector_t)(last + 1) << s->chunk_shift;
	if (end < bio_end_sector(bio))
		dm_accept_partial_bio(bio, end - sector);
	io->run = p;
	blksnap_cbt_mark_snapshot(s->t, sector, bio_sectors(bio));
	bio_set_dev(bio, s->store_bdev);
	bio->bi_iter.bi_sector = p->store_sector;
	return DM_MAPIO_REMAPPED;
}

/*
 * Map an image bio. Called from map() and again for bios that waited for a
 * copy; only map() may split, and bios that wait were limited to one chunk.
 * Bios to copied chunks take no lock; a read of a chunk not copied is cut
 * at its region's end and takes its region's bucket lock once here and
 * once at its end, to be tracked (s->lock only if copies wait for reads).
 */
static int snap_image_map(struct blksnap_snap *s, struct bio *bio,
			  bool from_map)
{
	struct image_io *io = dm_per_bio_data(bio, sizeof(*io));
	sector_t sector = bio->bi_iter.bi_sector;
	unsigned long first = sector >> s->chunk_shift;
	unsigned long last = (bio_end_sector(bio) - 1) >> s->chunk_shift;
	struct blksnap_exception *e;
	struct blksnap_reads *b;
	unsigned long c, rlast;
	sector_t end;

	io->tracked = false;
	io->counted = false;
	io->run = NULL;
	/* A merge takes the image's data: its I/O fails from the start. */
	if (!snap_image_io_enter(s, io))
		return DM_MAPIO_KILL;
	if (!bio_sectors(bio)) {
		/* An empty flush: the image's data lives in the store. */
		bio_set_dev(bio, s->store_bdev);
		return DM_MAPIO_REMAPPED;
	}

	e = exception_find(s, first);
	if (e)
		return snap_image_to_store(s, bio, e, first, last);

	if (bio_data_dir(bio) == WRITE) {
		if (snap_image_write_whole(s, bio, io, from_map) == DM_MAPIO_REMAPPED)
			return DM_MAPIO_REMAPPED;
		/* Copy the chunk first, then write it in the store. */
		snap_image_io_done(s, io);
		end = (sector_t)(first + 1) << s->chunk_shift;
		if (end < bio_end_sector(bio)) {
			if (WARN_ON_ONCE(!from_map))
				return DM_MAPIO_KILL;
			dm_accept_partial_bio(bio, end - sector);
		}
		c = first;
		if (chunks_wait(s, bio, true, &c, first) == DM_MAPIO_SUBMITTED)
			return DM_MAPIO_SUBMITTED;
		/* Copied meanwhile, or the snapshot failed: look again. */
		return snap_image_map(s, bio, from_map);
	}

	/*
	 * Not copied: read the real device, tracked until the read ends. A
	 * copy that ends from now on sees the read and waits for it; one
	 * that ended before put its exception in the table before it took
	 * the lock. The rest of the bio is looked up after, unlocked, and
	 * where it is cut short the chunks after the cut stop being tracked
	 * again: a copy of them that saw the read is released, or a stream
	 * of such reads could hold it for ever.
	 */
	b = read_bucket(s, first);
	rlast = min(last, read_region_last(first));
	spin_lock_irq(&b->lock);
	e = exception_find(s, first);
	if (!e) {
		io->first = first;
		io->last = rlast;
		io->tracked = true;
		list_add(&io->node, &b->list);
	}
	spin_unlock_irq(&b->lock);
	if (e)
		return snap_image_to_store(s, bio, e, first, last);
	for (c = first + 1; c <= rlast; c++)
		if (exception_find(s, c))
			break;
	if (c <= rlast) {
		spin_lock_irq(&b->lock);
		io->last = c - 1;
		spin_unlock_irq(&b->lock);
		release_drained(s, c, rlast);
	}
	end = (sector_t)c << s->chunk_shift;
	if (end < bio_end_sector(bio))
		dm_accept_partial_bio(bio, end - sector);
	bio_set_dev(bio, s->real_bdev);
	return DM_MAPIO_REMAPPED;
}

/*
 * An image read from the real device ended: release the copies it held up.
 * Returns false when the snapshot is no longer valid: origin writes stopped
 * waiting for copies, so the read may hold data newer than the image's.
 */
static bool snap_image_read_done(struct blksnap_snap *s, struct image_io *io)
{
	struct blksnap_reads *b = read_bucket(s, io->first);
	unsigned long flags;

	spin_lock_irqsave(&b->lock, flags);
	list_del(&io->node);
	spin_unlock_irqrestore(&b->lock, flags);
	release_drained(s, io->first, io->last);
	/*
	 * An origin write released by __snap_invalidate() can overwrite
	 * what this read got only after the store of the state: a read that
	 * completed after such a write sees the state, as it did under
	 * s->lock before.
	 */
	smp_mb();
	return READ_ONCE(s->state) == SNAP_VALID;
}

/*
 * Copies that do not settle: a store that stops answering (a suspended dm
 * device, a dead disk behind a path that queues) must not hold origin
 * writes for ever. When a copy is older than the copy timeout and no copy
 * at all has ended for that long (a slow store that makes progress, with
 * copies queued behind each other, does not count), or a copy is older
 * than four times the timeout, the snapshot fails, which releases every
 * bio that waits; the copy itself is left to end when it does (teardown
 * waits for it). A copy that has ended and only waits for an image read of
 * its chunk ("draining") does not count: the read waits for the real
 * device, as the origin write itself would.
 *
 * The work is also what retries whatever found no pool element: it runs
 * every second while copies exist, or bios that found no room for one, or
 * a merge sweep, and hands those bios back and runs the sweep again, in
 * case a pool element came back after the last release that retried them.
 */
static void snap_timeout(struct work_struct *work)
{
	struct blksnap_snap *s = container_of(to_delayed_work(work),
					      struct blksnap_snap, timeout_work);
	unsigned long limit = (unsigned long)s->copy_timeout * HZ;
	struct blksnap_pending *p, *late = NULL;
	bool throttled, sweep, busy, stalled;
	unsigned int i;

	spin_lock_irq(&s->lock);
	if (s->state != SNAP_VALID) {
		/* Nobody waits for a copy any more. */
		spin_unlock_irq(&s->lock);
		return;
	}
	throttled = !bio_list_empty(&s->throttled_origin) ||
		!bio_list_empty(&s->throttled_image);
	sweep = s->merging && s->merge_phase == MERGE_SWEEP;
	busy = s->nr_pending || throttled || sweep;
	if (throttled) {
		__release_throttled(s);
		queue_work(blksnap_wq, &s->retry_work);
	}
	if (sweep)
		queue_work(blksnap_wq, &s->merge_work);
	stalled = time_after(jiffies, READ_ONCE(s->last_progress) + limit);
	for (i = 0; !late && i < ARRAY_SIZE(s->pending); i++) {
		hlist_for_each_entry(p, &s->pending[i], node) {
			if (!p->copied && time_after(jiffies, p->started + limit) &&
			    (stalled || time_after(jiffies, p->started + 4 * limit))) {
				late = p;
				break;
			}
		}
	}
	if (late) {
		DMERR("%s: the copy of chunk %lu has not ended after %u s",
		      dm_device_name(dm_table_get_md(s->ti->table)),
		      late->chunk, jiffies_to_msecs(jiffies - late->started) / 1000);
		__snap_invalidate(s, SNAP_FAILED,
				  "a copy did not end within copy_timeout: the store or the real device does not answer");
	}
	spin_unlock_irq(&s->lock);
	if (busy && !late)
		queue_delayed_work(blksnap_wq, &s->timeout_work, HZ);
}

/*---- Merge ----*/

/*
 * Merge progress for the status: done reaches total once the merge is
 * durable, and never while it starts (a total of 0 is shown as 0/1 then).
 */
static void __merge_progress(struct blksnap_snap *s, unsigned long *done,
			     unsigned long *total)
{
	*total = s->merge_total;
	*done = s->merge_done;
	if (s->merge_phase == MERGE_DONE)
		return;
	if (!*total)
		*total = 1;
	if (*done >= *total)
		*done = *total - 1;
}

/*
 * Every chunk is merged: flush the real device before the merge reports
 * completion (userspace then drops the store, the only other copy). A
 * failed flush is a failed merge.
 */
static void merge_finish(struct blksnap_snap *s)
{
	int r = blkdev_issue_flush(s->real_bdev);
	bool done = false;

	spin_lock_irq(&s->lock);
	if (r) {
		__snap_invalidate(s, SNAP_FAILED, "merge cannot flush the real device");
	} else if (s->state == SNAP_VALID) {
		s->merge_phase = MERGE_DONE;
		done = true;
	}
	spin_unlock_irq(&s->lock);
	if (done) {
		DMINFO("%s: merge complete, %lu chunks",
		       dm_device_name(dm_table_get_md(s->ti->table)),
		       s->merge_total);
		queue_work(blksnap_wq, &s->merge_event_work);
	}
}

/*
 * The sweep: start merge copies in chunk order, at most MERGE_INFLIGHT at a
 * time; each completion runs it again. It notices the end of the merge.
 * Like chunks_wait() it never sleeps for a pool element: when the pool is
 * empty, the next merge copy to end runs it again, or the timeout work (the
 * last copy may queue the sweep before its element is back in the pool).
 */
static void merge_sweep(struct work_struct *work)
{
	struct blksnap_snap *s = container_of(work, struct blksnap_snap, merge_work);
	struct blksnap_pending *started[MERGE_INFLIGHT], *p;
	unsigned int nr = 0, i;
	bool finish = false;
	unsigned long c;

	spin_lock_irq(&s->lock);
	while (s->merging && s->state == SNAP_VALID &&
	       s->merge_phase == MERGE_SWEEP &&
	       s->merge_sweeping < MERGE_INFLIGHT) {
		c = find_next_bit(s->copied, s->nr_chunks, s->merge_cursor);
		if (c >= s->nr_chunks) {
			/* Chunks merged for writes may still be on the way. */
			if (find_first_bit(s->copied, s->nr_chunks) >= s->nr_chunks) {
				s->merge_phase = MERGE_FLUSH;
				finish = true;
			}
			break;
		}
		if (__pending_find(s, c)) {
			s->merge_cursor = c + 1;
			continue;
		}
		p = mempool_alloc(&s->pending_pool, GFP_NOWAIT);
		if (!p) {
			/* Under s->lock, valid: snap_destroy() cancels it. */
			queue_delayed_work(blksnap_wq, &s->timeout_work, HZ);
			break;
		}
		s->merge_cursor = c + 1;
		__pending_add(s, p, c, true, true);
		started[nr++] = p;
	}
	spin_unlock_irq(&s->lock);
	for (i = 0; i < nr; i++)
		chunk_copy(s, started[i], true);
	if (finish)
		merge_finish(s);
}

/*
 * An origin bio while merging. Reads of unmerged chunks go to the store
 * (map() only: a bio replayed later cannot be split, so it waits for the
 * merge of its chunks like a write).
 */
static int merge_origin_bio(struct blksnap_snap *s, struct bio *bio,
			    bool from_map, unsigned long *cursor)
{
	sector_t sector = bio->bi_iter.bi_sector, end;
	struct blksnap_exception *e;
	unsigned long first, last, c;

	if (sector >= s->dev_sectors)
		return DM_MAPIO_REMAPPED;
	first = sector >> s->chunk_shift;
	last = (min_t(sector_t, bio_end_sector(bio), s->dev_sectors) - 1) >>
		s->chunk_shift;
	*cursor = max(*cursor, first);
	c = find_next_bit(s->copied, last + 1, *cursor);
	if (c > last)
		return DM_MAPIO_REMAPPED;
	if (bio_data_dir(bio) == WRITE || !from_map)
		return chunks_wait(s, bio, false, cursor, last);

	if (c > first) {
		/* Merged chunks first: read them from the real device. */
		dm_accept_partial_bio(bio, ((sector_t)c << s->chunk_shift) - sector);
		return DM_MAPIO_REMAPPED;
	}
	/* The exception stays until the snapshot goes, merged or not. */
	e = exception_find(s, first);
	if (WARN_ON_ONCE(!e))
		return DM_MAPIO_KILL;
	end = (sector_t)(first + 1) << s->chunk_shift;
	if (end < bio_end_sector(bio))
		dm_accept_partial_bio(bio, end - sector);
	bio_set_dev(bio, s->store_bdev);
	bio->bi_iter.bi_sector = e->store_sector +
		(sector - ((sector_t)first << s->chunk_shift));
	return DM_MAPIO_REMAPPED;
}

/* An origin bio that passed the gate, while @s is attached. */
static int snap_origin_bio(struct blksnap_snap *s, struct bio *bio,
			   bool from_map)
{
	struct origin_io *io = dm_per_bio_data(bio, sizeof(*io));

	if (READ_ONCE(s->merging))
		return merge_origin_bio(s, bio, from_map, &io->cursor);
	if (bio_data_dir(bio) == WRITE)
		return snap_origin_write(s, bio, &io->cursor);
	return DM_MAPIO_REMAPPED;
}

/*
 * Start merging: called with t->lock held. Image I/O is stopped and drained
 * first, so that no image write lands in the store behind the sweep. Then
 * the gate stays closed until copy-on-write has drained, so the origin
 * reads as the image from here on. Each wait is bounded by the copy
 * timeout: a copy that does not end fails the snapshot.
 */
static int snap_merge_start(struct blksnap_tracker *t, struct blksnap_snap *s,
			    const char **why)
{
	unsigned long timeout = (unsigned long)s->copy_timeout * HZ;
	unsigned long total, c;
	int r = 0;

	spin_lock_irq(&s->lock);
	if (s->state != SNAP_VALID)
		r = -EINVAL;
	else
		WRITE_ONCE(s->image_closed, true);
	spin_unlock_irq(&s->lock);
	if (r) {
		*why = "the snapshot image is not valid";
		return r;
	}
	/* Pairs with snap_image_io_enter(): closed, then the count read. */
	smp_mb();
	if (!wait_var_event_timeout(&s->image_ios, !atomic_read(&s->image_ios),
				    timeout)) {
		spin_lock_irq(&s->lock);
		WRITE_ONCE(s->image_closed, false);
		spin_unlock_irq(&s->lock);
		*why = "I/O to the image did not end within copy_timeout";
		return -EBUSY;
	}

	blksnap_gate_close(t);
	/* At most this many: copies that end meanwhile set more bits. */
	total = bitmap_weight(s->copied, s->nr_chunks);
	spin_lock_irq(&s->lock);
	if (s->state != SNAP_VALID) {
		r = -EIO;
	} else {
		s->merge_total = total + s->nr_pending;
		s->merge_done = 0;
		s->merge_phase = MERGE_START;
		WRITE_ONCE(s->merging, true);
	}
	spin_unlock_irq(&s->lock);
	if (r)
		goto out;
	/* Copies started by image writes; none can start any more. */
	wait_var_event(&s->inflight, !atomic_read(&s->inflight) ||
		       READ_ONCE(s->state) != SNAP_VALID);
	/*
	 * The sweep will write every copied chunk of the real device: mark
	 * them now (as a write would) and, with persistent CBT, commit their
	 * intent before the sweep can start, so that a power cut or a
	 * cbt_close during the merge leaves them marked.
	 */
	for_each_set_bit(c, s->copied, s->nr_chunks) {
		blksnap_cbt_mark(t, (sector_t)c << s->chunk_shift,
				 (sector_t)1 << s->chunk_shift);
		blksnap_meta_cover(t, (sector_t)c << s->chunk_shift,
				   (sector_t)1 << s->chunk_shift);
	}
	blksnap_meta_commit(t);
	total = bitmap_weight(s->copied, s->nr_chunks);
	spin_lock_irq(&s->lock);
	if (s->state != SNAP_VALID) {
		WRITE_ONCE(s->merging, false);
		r = -EIO;
	} else {
		s->merge_total = total;
		s->merge_cursor = 0;
		s->merge_phase = MERGE_SWEEP;
	}
	spin_unlock_irq(&s->lock);
	if (!r) {
		mutex_lock(&t->map_lock);
		t->merge_failed = false;
		mutex_unlock(&t->map_lock);
		DMINFO("%s: merging %lu chunks back into the origin",
		       dm_device_name(dm_table_get_md(s->ti->table)),
		       s->merge_total);
		queue_work(blksnap_wq, &s->merge_work);
	}
out:
	if (r)
		*why = "the snapshot image failed";
	blksnap_gate_open(t);
	return r;
}

/*
 * A merge that has not finished stops before its snapshot is detached, so
 * that no merge copy still in flight writes the real device after origin
 * writes went on without it. Waits for those copies, however long the
 * store takes. Must be called with t->lock held.
 */
static void snap_merge_stop(struct blksnap_snap *s, const char *why)
{
	spin_lock_irq(&s->lock);
	if (s->merging && s->merge_phase != MERGE_DONE)
		__snap_invalidate(s, SNAP_FAILED, why);
	spin_unlock_irq(&s->lock);
	if (!READ_ONCE(s->merging))
		return;
	wait_var_event(&s->inflight, !atomic_read(&s->inflight));
	cancel_work_sync(&s->merge_work);
}

/* Bios whose copy settled: map them again and send them on. */
static void snap_retry(struct work_struct *work)
{
	struct blksnap_snap *s = container_of(work, struct blksnap_snap, retry_work);
	struct bio_list origin, image;
	struct bio *bio;

	spin_lock_irq(&s->lock);
	origin = s->retry_origin;
	image = s->retry_image;
	bio_list_init(&s->retry_origin);
	bio_list_init(&s->retry_image);
	spin_unlock_irq(&s->lock);

	while ((bio = bio_list_pop(&origin))) {
		switch (snap_origin_bio(s, bio, false)) {
		case DM_MAPIO_REMAPPED:
			dm_submit_bio_remap(bio, NULL);
			break;
		case DM_MAPIO_KILL:
			bio_io_error(bio);
			break;
		}
	}
	while ((bio = bio_list_pop(&image))) {
		switch (snap_image_map(s, bio, false)) {
		case DM_MAPIO_REMAPPED:
			dm_submit_bio_remap(bio, NULL);
			break;
		case DM_MAPIO_KILL:
			bio_io_error(bio);
			break;
		}
	}
}

/*
 * Image writes of whole chunks that ended: their chunks count as copied
 * from now on (or, after an error, the image fails), then the bios end,
 * through image_end_io() once more.
 */
static void snap_written(struct work_struct *work)
{
	struct blksnap_snap *s = container_of(work, struct blksnap_snap,
					      written_work);
	struct blksnap_pending *p;
	struct image_io *io;
	struct bio_list list;
	struct bio *bio;

	spin_lock_irq(&s->lock);
	list = s->written;
	bio_list_init(&s->written);
	spin_unlock_irq(&s->lock);

	while ((bio = bio_list_pop(&list))) {
		io = dm_per_bio_data(bio, sizeof(*io));
		p = io->run;
		io->run = NULL;
		copy_done(0, io->status ? 1 : 0, p);
		bio->bi_status = io->status;
		bio_endio(bio);
	}
}

/* rhashtable_free_and_destroy()'s callback: the chunk's space goes back. */
struct return_space {
	struct blksnap_snap *s;
	struct store_extent *spare;
};

static void exception_free(void *ptr, void *arg)
{
	struct blksnap_exception *e = ptr;
	struct return_space *rs = arg;

	if (!rs->spare)
		rs->spare = kmalloc(sizeof(*rs->spare), GFP_NOIO | __GFP_NOFAIL);
	rs->spare = store_free(rs->s->store, e->store_sector,
			       rs->s->chunk_sectors, rs->spare);
	kmem_cache_free(exception_cache, e);
}

/* Tear down a snapshot that no origin write or image bio can reach. */
static void snap_destroy(struct blksnap_snap *s)
{
	struct return_space rs = { .s = s };

	/* A merge still running stops starting copies. */
	spin_lock_irq(&s->lock);
	WRITE_ONCE(s->state, SNAP_FAILED);
	spin_unlock_irq(&s->lock);
	/* Copies still in flight hold @s, however long the store takes. */
	wait_var_event(&s->inflight, !atomic_read(&s->inflight));
	cancel_delayed_work_sync(&s->timeout_work);
	cancel_work_sync(&s->merge_work);
	flush_work(&s->retry_work);
	flush_work(&s->written_work);
	cancel_work_sync(&s->event_work);
	cancel_work_sync(&s->merge_event_work);
	if (s->kc)
		dm_kcopyd_client_destroy(s->kc);
	/* Every exception's store space goes back to the pool. */
	rhashtable_free_and_destroy(&s->exceptions, exception_free, &rs);
	kfree(rs.spare);
	mempool_exit(&s->pending_pool);
	kvfree(s->copied);
	store_put(s->store);
	kvfree(s);
}

static struct blksnap_snap *snap_create(struct dm_target *ti,
					struct blksnap_tracker *t,
					struct block_device *real_bdev,
					struct block_device *store_bdev,
					unsigned int chunk_sectors,
					sector_t low_water,
					unsigned int copy_timeout)
{
	struct blksnap_snap *s;
	unsigned int i;

	s = kvzalloc(sizeof(*s), GFP_KERNEL);
	if (!s)
		return ERR_PTR(-ENOMEM);
	s->t = t;
	s->ti = ti;
	s->real_bdev = real_bdev;
	s->store_bdev = store_bdev;
	s->chunk_shift = ilog2(chunk_sectors);
	s->chunk_sectors = chunk_sectors;
	s->dev_sectors = t->dev_sectors;
	s->nr_chunks = DIV_ROUND_UP_SECTOR_T(t->dev_sectors, chunk_sectors);
	s->max_inflight = clamp(COW_INFLIGHT_BYTES >> (s->chunk_shift + SECTOR_SHIFT),
				COW_INFLIGHT_MIN, COW_INFLIGHT_MAX);
	s->run_max = max(COW_RUN_SECTORS >> s->chunk_shift, 1U);
	s->copy_timeout = copy_timeout;
	s->last_progress = jiffies;
	s->low_water = low_water;
	atomic_set(&s->low_armed, 1);
	spin_lock_init(&s->lock);
	for (i = 0; i < ARRAY_SIZE(s->pending); i++)
		INIT_HLIST_HEAD(&s->pending[i]);
	for (i = 0; i < ARRAY_SIZE(s->reads); i++) {
		spin_lock_init(&s->reads[i].lock);
		INIT_LIST_HEAD(&s->reads[i].list);
	}
	bio_list_init(&s->retry_origin);
	bio_list_init(&s->retry_image);
	bio_list_init(&s->throttled_origin);
	bio_list_init(&s->throttled_image);
	bio_list_init(&s->written);
	atomic_set(&s->inflight, 0);
	atomic_set(&s->image_ios, 0);
	INIT_WORK(&s->retry_work, snap_retry);
	INIT_WORK(&s->written_work, snap_written);
	INIT_WORK(&s->event_work, snap_event);
	INIT_WORK(&s->merge_work, merge_sweep);
	INIT_WORK(&s->merge_event_work, merge_event);
	INIT_DELAYED_WORK(&s->timeout_work, snap_timeout);

	if (s->nr_chunks > BLKSNAP_MAX_CHUNKS) {
		kvfree(s);
		return ERR_PTR(-E2BIG);
	}
	s->store = store_get(store_bdev->bd_dev);
	if (!s->store) {
		kvfree(s);
		return ERR_PTR(-ENOMEM);
	}
	s->copied = kvcalloc(BITS_TO_LONGS(s->nr_chunks), sizeof(long), GFP_KERNEL);
	if (!s->copied ||
	    mempool_init_slab_pool(&s->pending_pool, PENDING_POOL_MIN, pending_cache))
		goto nomem;
	if (rhashtable_init(&s->exceptions, &exception_params)) {
		mempool_exit(&s->pending_pool);
		goto nomem;
	}
	s->kc = dm_kcopyd_client_create(NULL);
	if (IS_ERR(s->kc)) {
		int r = PTR_ERR(s->kc);

		s->kc = NULL;
		rhashtable_destroy(&s->exceptions);
		mempool_exit(&s->pending_pool);
		kvfree(s->copied);
		store_put(s->store);
		kvfree(s);
		return ERR_PTR(r);
	}
	return s;

nomem:
	kvfree(s->copied);
	store_put(s->store);
	kvfree(s);
	return ERR_PTR(-ENOMEM);
}

/*---- Origin target ----*/

/*
 * Whether @bdev is a device stacked directly on the block device named
 * @name (a dm-linear onto the origin, say), from the holder links that the
 * block layer keeps in the disk's "slaves" directory.
 */
static bool stacked_on(struct block_device *bdev, const char *name)
{
	struct kobject *dir;
	struct kernfs_node *kn;

	/* A disk being deleted drops its holder directory. */
	if (!disk_live(bdev->bd_disk))
		return false;
	dir = READ_ONCE(bdev->bd_disk->slave_dir);
	if (!dir || !dir->sd)
		return false;
	kn = kernfs_find_and_get(dir->sd, name);
	kernfs_put(kn);
	return kn;
}

struct origin_c {
	struct dm_dev *dev;
	struct blksnap_tracker *t;
	unsigned int block_sectors;	/* as given in the table, 0 if not */
	struct dm_dev *meta;		/* persistent CBT, or NULL */
	char *meta_id;
};

static int origin_snap_bio(struct blksnap_tracker *t, struct bio *bio,
			   bool from_map);

/*
 * A bio that has entered the gate: a write is marked in the change map
 * (and, with persistent CBT, may be held until its mark is on disk), then
 * held back until its chunks are copied (or merged). Returns the
 * DM_MAPIO_* verdict.
 */
static int origin_bio(struct blksnap_tracker *t, struct bio *bio, bool from_map)
{
	struct origin_io *io = dm_per_bio_data(bio, sizeof(*io));

	io->gated = true;
	if (bio_data_dir(bio) == WRITE) {
		blksnap_cbt_mark(t, bio->bi_iter.bi_sector, bio_sectors(bio));
		if (!blksnap_meta_write(t, bio))
			return DM_MAPIO_SUBMITTED;
	}
	return origin_snap_bio(t, bio, from_map);
}

static int origin_snap_bio(struct blksnap_tracker *t, struct bio *bio,
			   bool from_map)
{
	struct blksnap_snap *s;

	/* Stable until the bio ends: it changes only with the gate closed. */
	s = READ_ONCE(t->snap);
	if (!s)
		return DM_MAPIO_REMAPPED;
	if (bio_op(bio) == REQ_OP_DISCARD &&
	    (READ_ONCE(s->merging) || READ_ONCE(s->state) == SNAP_VALID)) {
		/*
		 * While a snapshot holds the device, a discard is marked in
		 * the change map and completes without reaching it: data
		 * after a discard is unspecified, and passing it down would
		 * copy free space into the store (fstrim during a backup).
		 * The space is trimmed by the next fstrim after the snapshot.
		 */
		bio_endio(bio);
		return DM_MAPIO_SUBMITTED;
	}
	return snap_origin_bio(s, bio, from_map);
}

static void origin_submit(struct bio *bio, int verdict)
{
	switch (verdict) {
	case DM_MAPIO_REMAPPED:
		dm_submit_bio_remap(bio, NULL);
		break;
	case DM_MAPIO_KILL:
		bio_io_error(bio);
		break;
	}
}

/* A bio parked while the gate was closed, handed back from the worker. */
static void origin_replay(struct blksnap_tracker *t, struct bio *bio)
{
	if (blksnap_gate_enter(t, bio))
		origin_submit(bio, origin_bio(t, bio, false));
}

/* A write whose change mark is on disk now (persistent CBT). */
static void origin_continue(struct blksnap_tracker *t, struct bio *bio)
{
	origin_submit(bio, origin_snap_bio(t, bio, false));
}

/* The last origin table went away: a snapshot still attached fails. */
static void origin_gone(struct blksnap_tracker *t)
{
	struct blksnap_snap *s;

	mutex_lock(&t->lock);
	t->gone = true;
	s = t->snap;
	if (s) {
		snap_merge_stop(s, "the origin was removed during the merge");
		blksnap_gate_close(t);
		mutex_lock(&t->map_lock);
		WRITE_ONCE(t->snap, NULL);
		mutex_unlock(&t->map_lock);
		blksnap_gate_open(t);
		snap_invalidate(s, SNAP_FAILED, "the origin was removed");
	}
	mutex_unlock(&t->lock);
}

static int origin_map(struct dm_target *ti, struct bio *bio)
{
	struct origin_c *oc = ti->private;
	struct origin_io *io = dm_per_bio_data(bio, sizeof(*io));
	int r;

	io->gated = false;
	io->cursor = 0;
	bio_set_dev(bio, oc->dev->bdev);
	bio->bi_iter.bi_sector = dm_target_offset(ti, bio->bi_iter.bi_sector);

	/* Empty flushes change nothing and go to the real device. */
	if (!bio_sectors(bio))
		return DM_MAPIO_REMAPPED;
	if (!blksnap_gate_enter(oc->t, bio))
		return DM_MAPIO_SUBMITTED;
	r = origin_bio(oc->t, bio, true);
	if (r == DM_MAPIO_KILL) {
		/* dm does not call end_io for a bio killed in map(). */
		io->gated = false;
		blksnap_gate_exit(oc->t);
	}
	return r;
}

static int origin_end_io(struct dm_target *ti, struct bio *bio,
			 blk_status_t *error)
{
	struct origin_c *oc = ti->private;
	struct origin_io *io = dm_per_bio_data(bio, sizeof(*io));

	if (io->gated)
		blksnap_gate_exit(oc->t);
	return DM_ENDIO_DONE;
}

/* An optional table argument: a key and a decimal (or a string) value. */
struct blksnap_opt {
	const char *key;
	bool string;
	unsigned long long value;
	const char *str;
	bool given;
};

/*
 * Parse the optional arguments "[<#opts> <key> <value>...]" against the
 * @nr keys of @opts: each at most once, each with a decimal value.
 */
static int parse_opts(struct dm_target *ti, struct dm_arg_set *as,
		      struct blksnap_opt *opts, unsigned int nr)
{
	struct dm_arg group = { 0, 2 * nr, "Invalid number of optional arguments" };
	unsigned int nr_opts, i;
	const char *key;
	int r;

	if (!as->argc)
		return 0;
	r = dm_read_arg_group(&group, as, &nr_opts, &ti->error);
	if (r)
		return r;
	if (nr_opts % 2) {
		ti->error = "Optional argument without a value";
		return -EINVAL;
	}
	for (; nr_opts; nr_opts -= 2) {
		key = dm_shift_arg(as);
		for (i = 0; i < nr && strcasecmp(key, opts[i].key); i++)
			;
		if (i == nr) {
			ti->error = "Unknown optional argument";
			return -EINVAL;
		}
		if (opts[i].given) {
			ti->error = "Optional argument given twice";
			return -EINVAL;
		}
		if (opts[i].string) {
			opts[i].str = dm_shift_arg(as);
		} else if (kstrtoull(dm_shift_arg(as), 10, &opts[i].value)) {
			ti->error = "Optional argument value is not a number";
			return -EINVAL;
		}
		opts[i].given = true;
	}
	if (as->argc) {
		ti->error = "Too many arguments";
		return -EINVAL;
	}
	return 0;
}

/*
 * The metadata device of persistent CBT: not the real device, nor a device
 * stacked on it or on the origin (a partition of the same disk cannot be
 * opened: dm opens its devices exclusively).
 */
static int origin_get_meta(struct dm_target *ti, struct origin_c *oc,
			   const char *path, const char *id)
{
	struct mapped_device *md = dm_table_get_md(ti->table);
	int r;

	r = dm_get_device(ti, path, dm_table_get_mode(ti->table), &oc->meta);
	if (r) {
		ti->error = "Metadata device lookup failed";
		return r;
	}
	if (oc->meta->bdev == oc->dev->bdev ||
	    disk_devt(oc->meta->bdev->bd_disk) == disk_devt(dm_disk(md)) ||
	    stacked_on(oc->meta->bdev, oc->dev->bdev->bd_disk->disk_name) ||
	    stacked_on(oc->meta->bdev, dm_disk(md)->disk_name)) {
		ti->error = "The metadata device cannot be the real device, the origin, or a device mapped onto either";
		return -EINVAL;
	}
	if (store_in_use(oc->meta->bdev->bd_dev) ||
	    blksnap_tracker_uses(oc->meta->bdev->bd_dev)) {
		ti->error = "The metadata device is a store, or the real device or origin of a blksnap-origin";
		return -EINVAL;
	}
	oc->meta_id = kstrdup(id, GFP_KERNEL);
	if (!oc->meta_id) {
		ti->error = "Cannot allocate origin context";
		return -ENOMEM;
	}
	return 0;
}

/*
 * Construct a blksnap-origin: <real-dev> [<#opts> <opt>...] with the
 * options tracking_block_sectors <n>, metadata <dev> and metadata_id <id>
 * (the last two together).
 */
static int origin_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct dm_arg_set as = { .argc = argc, .argv = argv };
	struct blksnap_opt opts[] = {
		{ .key = "tracking_block_sectors" },
		{ .key = "metadata", .string = true },
		{ .key = "metadata_id", .string = true },
	};
	struct origin_c *oc;
	char *error = NULL;
	unsigned long long v;
	int r;

	if (argc < 1) {
		ti->error = "Missing the real device argument";
		return -EINVAL;
	}
	oc = kzalloc(sizeof(*oc), GFP_KERNEL);
	if (!oc) {
		ti->error = "Cannot allocate origin context";
		return -ENOMEM;
	}

	r = dm_get_device(ti, dm_shift_arg(&as), dm_table_get_mode(ti->table),
			  &oc->dev);
	if (r) {
		ti->error = "Real device lookup failed";
		goto bad;
	}
	r = parse_opts(ti, &as, opts, ARRAY_SIZE(opts));
	if (r)
		goto bad;
	v = opts[0].value;
	if (opts[0].given) {
		if (v < BLKSNAP_CBT_MIN_SECTORS || v > UINT_MAX || !is_power_of_2(v)) {
			ti->error = "tracking_block_sectors must be a power of two >= 8";
			r = -EINVAL;
			goto bad;
		}
		oc->block_sectors = v;
	}
	if (ti->len > bdev_nr_sectors(oc->dev->bdev)) {
		ti->error = "Real device is smaller than the origin";
		r = -EINVAL;
		goto bad;
	}
	if (blksnap_meta_in_use(oc->dev->bdev)) {
		ti->error = "The real device is the metadata device of a blksnap-origin";
		r = -EINVAL;
		goto bad;
	}
	if (opts[1].given != opts[2].given) {
		ti->error = "metadata and metadata_id go together";
		r = -EINVAL;
		goto bad;
	}
	if (opts[1].given) {
		r = origin_get_meta(ti, oc, opts[1].str, opts[2].str);
		if (r)
			goto bad;
	}

	oc->t = blksnap_tracker_get(oc->dev->bdev->bd_dev,
				    dm_table_get_md(ti->table), ti->len,
				    oc->block_sectors,
				    oc->meta ? oc->meta->bdev : NULL,
				    oc->meta_id, &error);
	if (IS_ERR(oc->t)) {
		r = PTR_ERR(oc->t);
		ti->error = error;
		goto bad;
	}

	ti->private = oc;
	ti->num_flush_bios = 1;
	ti->num_discard_bios = 1;
	ti->num_write_zeroes_bios = 1;
	ti->per_io_data_size = sizeof(struct origin_io);
	return 0;

bad:
	if (oc->meta)
		dm_put_device(ti, oc->meta);
	kfree(oc->meta_id);
	if (oc->dev)
		dm_put_device(ti, oc->dev);
	kfree(oc);
	return r;
}

static void origin_dtr(struct dm_target *ti)
{
	struct origin_c *oc = ti->private;

	mutex_lock(&oc->t->map_lock);
	if (oc->t->event_ti == ti)
		oc->t->event_ti = NULL;
	mutex_unlock(&oc->t->map_lock);
	if (blksnap_tracker_drop_table(oc->t)) {
		origin_gone(oc->t);
		blksnap_meta_release(oc->t);
	}
	blksnap_tracker_put(oc->t);
	if (oc->meta)
		dm_put_device(ti, oc->meta);
	kfree(oc->meta_id);
	dm_put_device(ti, oc->dev);
	kfree(oc);
}

/* The live table's target raises the merge events. */
static void origin_resume(struct dm_target *ti)
{
	struct origin_c *oc = ti->private;

	mutex_lock(&oc->t->map_lock);
	oc->t->event_ti = ti;
	mutex_unlock(&oc->t->map_lock);
}

/* The origin's state word; t->map_lock held. */
static unsigned int origin_state(struct blksnap_tracker *t, char *result,
				 unsigned int sz, unsigned int maxlen)
{
	struct blksnap_snap *s = t->snap;
	unsigned long done, total;
	bool failed;

	if (s && READ_ONCE(s->merging)) {
		spin_lock_irq(&s->lock);
		__merge_progress(s, &done, &total);
		failed = s->state != SNAP_VALID;
		spin_unlock_irq(&s->lock);
	} else if (t->merge_failed) {
		done = t->merge_done;
		total = t->merge_total;
		failed = true;
	} else {
		DMEMIT("%s", s ? "snap" : "-");
		return sz;
	}
	DMEMIT("%s %lu/%lu", failed ? "merge_failed" : "merge", done, total);
	return sz;
}

/*
 * Status INFO:
 *   <tracking_block_sectors> <tracking_blocks> <generation_uuid>
 *   <change_number> <state>
 * with state "-" (no image), "snap" (an image exists), "merge <done>/<total>"
 * (merging, or merged while the image exists) or "merge_failed <done>/<total>"
 * (a merge that stopped: see Documentation/dm-blksnap.rst).
 *
 * Status TABLE: <real-dev> [2 tracking_block_sectors <n>], as constructed.
 */
static void origin_status(struct dm_target *ti, status_type_t type,
			  unsigned int status_flags, char *result,
			  unsigned int maxlen)
{
	struct origin_c *oc = ti->private;
	struct blksnap_tracker *t = oc->t;
	unsigned int sz = 0;

	switch (type) {
	case STATUSTYPE_INFO:
		/* Not t->lock: a gate close may hold it for a copy timeout. */
		mutex_lock(&t->map_lock);
		DMEMIT("%u %lu %pUb %u ", 1U << t->block_shift, t->nr_blocks,
		       &t->generation, t->change_number);
		sz = origin_state(t, result, sz, maxlen);
		sz = blksnap_meta_status(t, result, sz, maxlen);
		mutex_unlock(&t->map_lock);
		break;
	case STATUSTYPE_TABLE:
		DMEMIT("%s", oc->dev->name);
		if (oc->block_sectors || oc->meta)
			DMEMIT(" %u", (oc->block_sectors ? 2 : 0) + (oc->meta ? 4 : 0));
		if (oc->block_sectors)
			DMEMIT(" tracking_block_sectors %u", oc->block_sectors);
		if (oc->meta)
			DMEMIT(" metadata %s metadata_id %s", oc->meta->name,
			       oc->meta_id);
		break;
	case STATUSTYPE_IMA:
		DMEMIT_TARGET_NAME_VERSION(ti->type);
		DMEMIT(",real_dev=%s,tracking_block_sectors=%u;", oc->dev->name,
		       1U << t->block_shift);
		break;
	}
}

/* merge: roll the origin back to its snapshot image. */
static int origin_merge_message(struct dm_target *ti, unsigned int argc)
{
	struct origin_c *oc = ti->private;
	struct blksnap_tracker *t = oc->t;
	const char *name = dm_device_name(dm_table_get_md(ti->table));
	struct blksnap_snap *s;
	const char *why = NULL;
	int r;

	if (argc != 1) {
		DMWARN_LIMIT("merge takes no arguments");
		return -EINVAL;
	}
	mutex_lock(&t->lock);
	s = t->snap;
	if (!s) {
		DMWARN_LIMIT("%s: merge: no snapshot image to merge", name);
		r = -ENOENT;
	} else if (s->merging) {
		DMWARN_LIMIT("%s: merge: already merging", name);
		r = -EBUSY;
	} else {
		r = snap_merge_start(t, s, &why);
		if (r)
			DMWARN_LIMIT("%s: merge: %s", name, why);
	}
	mutex_unlock(&t->lock);
	return r;
}

static int origin_message(struct dm_target *ti, unsigned int argc, char **argv,
			  char *result, unsigned int maxlen)
{
	struct origin_c *oc = ti->private;
	int r;

	if (!argc)
		return -EINVAL;
	if (!strcasecmp(argv[0], "merge"))
		return origin_merge_message(ti, argc);
	r = blksnap_cbt_message(oc->t, argc, argv, result, maxlen);
	if (r == -ENOTTY) {
		DMWARN_LIMIT("%s: unknown message '%s'",
			     dm_device_name(dm_table_get_md(ti->table)), argv[0]);
		r = -EINVAL;
	}
	return r;
}

static int origin_iterate_devices(struct dm_target *ti,
				  iterate_devices_callout_fn fn, void *data)
{
	struct origin_c *oc = ti->private;

	return fn(ti, oc->dev, 0, ti->len, data);
}

static struct target_type origin_target = {
	.name = "blksnap-origin",
	.version = {1, 3, 0},
	.module = THIS_MODULE,
	.ctr = origin_ctr,
	.dtr = origin_dtr,
	.map = origin_map,
	.end_io = origin_end_io,
	.resume = origin_resume,
	.status = origin_status,
	.message = origin_message,
	.iterate_devices = origin_iterate_devices,
};

/*---- Image target ----*/

struct image_c {
	struct dm_dev *real;
	struct dm_dev *store;
	struct blksnap_tracker *t;
	struct blksnap_snap *s;
	unsigned int chunk_sectors;
	/* The optional arguments, as given: low_water, copy_timeout. */
	struct blksnap_opt opts[2];
	sector_t low_water;
	bool attached;			/* the snapshot was taken */
};

enum { IMAGE_OPT_LOW_WATER, IMAGE_OPT_COPY_TIMEOUT };

static void image_release(struct dm_target *ti, struct image_c *ic)
{
	if (ic->t) {
		mutex_lock(&ic->t->lock);
		WRITE_ONCE(ic->t->image_claimed, false);
		mutex_unlock(&ic->t->lock);
		blksnap_tracker_put(ic->t);
	}
	if (ic->store)
		dm_put_device(ti, ic->store);
	if (ic->real)
		dm_put_device(ti, ic->real);
	kfree(ic);
}

/*
 * Construct a blksnap-image:
 *   <real-dev> <store-dev> <chunk_sectors>
 *   [<#opts> [low_water <sectors>] [copy_timeout <seconds>]]
 */
static int image_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct dm_arg_set as = { .argc = argc, .argv = argv };
	struct block_device *store;
	struct image_c *ic;
	unsigned int copy_timeout = COPY_TIMEOUT_DEFAULT;
	int r;

	if (argc < 3) {
		ti->error = "Need <real-dev> <store-dev> <chunk_sectors>";
		return -EINVAL;
	}
	ic = kzalloc(sizeof(*ic), GFP_KERNEL);
	if (!ic) {
		ti->error = "Cannot allocate image context";
		return -ENOMEM;
	}

	r = dm_get_device(ti, dm_shift_arg(&as), dm_table_get_mode(ti->table),
			  &ic->real);
	if (r) {
		ti->error = "Real device lookup failed";
		goto bad;
	}
	r = dm_get_device(ti, dm_shift_arg(&as), dm_table_get_mode(ti->table),
			  &ic->store);
	if (r) {
		ti->error = "Store device lookup failed";
		goto bad;
	}
	if (kstrtouint(dm_shift_arg(&as), 10, &ic->chunk_sectors) ||
	    ic->chunk_sectors < BLKSNAP_MIN_CHUNK ||
	    ic->chunk_sectors > BLKSNAP_MAX_CHUNK ||
	    !is_power_of_2(ic->chunk_sectors)) {
		ti->error = "chunk_sectors must be a power of two from 8 to 131072";
		r = -EINVAL;
		goto bad;
	}
	ic->opts[IMAGE_OPT_LOW_WATER].key = "low_water";
	ic->opts[IMAGE_OPT_COPY_TIMEOUT].key = "copy_timeout";
	r = parse_opts(ti, &as, ic->opts, ARRAY_SIZE(ic->opts));
	if (r)
		goto bad;
	ic->low_water = ic->opts[IMAGE_OPT_LOW_WATER].value;
	if (ic->opts[IMAGE_OPT_COPY_TIMEOUT].given) {
		if (!ic->opts[IMAGE_OPT_COPY_TIMEOUT].value ||
		    ic->opts[IMAGE_OPT_COPY_TIMEOUT].value > COPY_TIMEOUT_MAX) {
			ti->error = "copy_timeout must be 1 to 86400 seconds";
			r = -EINVAL;
			goto bad;
		}
		copy_timeout = ic->opts[IMAGE_OPT_COPY_TIMEOUT].value;
	}

	ic->t = blksnap_tracker_lookup(ic->real->bdev->bd_dev);
	if (!ic->t) {
		ti->error = "No blksnap-origin on the real device";
		DMERR("no blksnap-origin on %s", ic->real->name);
		r = -EINVAL;
		goto bad;
	}
	store = ic->store->bdev;
	if (store->bd_dev == ic->real->bdev->bd_dev ||
	    store->bd_dev == ic->t->origin_dev ||
	    stacked_on(store, kobject_name(bdev_kobj(ic->real->bdev))) ||
	    stacked_on(store, ic->t->origin_name)) {
		ti->error = "The store cannot be the real device, its origin, or a device mapped onto either";
		r = -EINVAL;
		goto bad_tracker;
	}
	if (blksnap_meta_in_use(store)) {
		ti->error = "The store is the metadata device of a blksnap-origin";
		r = -EINVAL;
		goto bad_tracker;
	}
	if (ti->len > ic->t->dev_sectors) {
		ti->error = "Image is larger than its origin";
		r = -EINVAL;
		goto bad_tracker;
	}

	mutex_lock(&ic->t->lock);
	if (ic->t->image_claimed || ic->t->gone) {
		mutex_unlock(&ic->t->lock);
		ti->error = ic->t->gone ? "The origin is being removed" :
			"The origin already has a snapshot image";
		r = ic->t->gone ? -ENODEV : -EBUSY;
		goto bad_tracker;
	}
	WRITE_ONCE(ic->t->image_claimed, true);
	mutex_unlock(&ic->t->lock);

	if (!ic->opts[IMAGE_OPT_LOW_WATER].given)
		ic->low_water = bdev_nr_sectors(store) / 4;
	ic->s = snap_create(ti, ic->t, ic->real->bdev, store,
			    ic->chunk_sectors, ic->low_water, copy_timeout);
	if (IS_ERR(ic->s)) {
		r = PTR_ERR(ic->s);
		ic->s = NULL;
		ti->error = r == -E2BIG ? "Chunk too small for this device" :
			"Cannot allocate the snapshot";
		image_release(ti, ic);
		return r;
	}

	ti->private = ic;
	ti->num_flush_bios = 1;
	ti->per_io_data_size = sizeof(struct image_io);
	return 0;

bad_tracker:
	blksnap_tracker_put(ic->t);
	ic->t = NULL;
bad:
	image_release(ti, ic);
	return r;
}

/*
 * An image goes away: a merge it did not finish leaves the origin with the
 * image's data in the merged chunks only. Keep that in the origin's status.
 * Must be called with t->map_lock held, after the detach.
 */
static void image_note_merge(struct blksnap_tracker *t, struct blksnap_snap *s)
{
	bool unfinished;

	spin_lock_irq(&s->lock);
	unfinished = s->merging && s->merge_phase != MERGE_DONE;
	if (unfinished) {
		t->merge_failed = true;
		__merge_progress(s, &t->merge_done, &t->merge_total);
	}
	spin_unlock_irq(&s->lock);
	if (unfinished)
		DMERR("%s: merge stopped after %lu of %lu chunks: the origin holds the image's data in those chunks only",
		      dm_device_name(dm_table_get_md(s->ti->table)),
		      t->merge_done, t->merge_total);
}

static void image_dtr(struct dm_target *ti)
{
	struct image_c *ic = ti->private;
	struct blksnap_tracker *t = ic->t;

	/* Detach: once the gate drains, no origin bio can reach the snapshot. */
	mutex_lock(&t->lock);
	if (t->snap == ic->s) {
		snap_merge_stop(ic->s, "the image was removed during the merge");
		blksnap_gate_close(t);
		mutex_lock(&t->map_lock);
		WRITE_ONCE(t->snap, NULL);
		mutex_unlock(&t->map_lock);
		blksnap_gate_open(t);
	}
	mutex_lock(&t->map_lock);
	image_note_merge(t, ic->s);
	mutex_unlock(&t->map_lock);
	mutex_unlock(&t->lock);
	snap_destroy(ic->s);
	image_release(ti, ic);
}

/*
 * The first resume is the snapshot's point in time: with the origin's write
 * gate closed, take the CBT snapshot and start copy-on-write.
 */
static int image_preresume(struct dm_target *ti)
{
	struct image_c *ic = ti->private;
	struct blksnap_tracker *t = ic->t;
	int r = 0;

	if (ic->attached)
		return 0;
	mutex_lock(&t->lock);
	if (t->gone) {
		DMERR("%s: the origin was removed before the snapshot was taken",
		      dm_device_name(dm_table_get_md(ti->table)));
		r = -ENODEV;
	} else {
		blksnap_gate_close(t);
		blksnap_meta_lock(t);
		mutex_lock(&t->map_lock);
		__blksnap_cbt_take(t);
		WRITE_ONCE(t->snap, ic->s);
		t->merge_failed = false;
		mutex_unlock(&t->map_lock);
		blksnap_meta_take(t);
		blksnap_meta_unlock(t);
		blksnap_gate_open(t);
		ic->attached = true;
	}
	mutex_unlock(&t->lock);
	return r;
}

static int image_map(struct dm_target *ti, struct bio *bio)
{
	struct image_c *ic = ti->private;

	bio->bi_iter.bi_sector = dm_target_offset(ti, bio->bi_iter.bi_sector);
	return snap_image_map(ic->s, bio, true);
}

static int image_end_io(struct dm_target *ti, struct bio *bio,
			blk_status_t *error)
{
	struct image_c *ic = ti->private;
	struct image_io *io = dm_per_bio_data(bio, sizeof(*io));

	if (io->run) {
		/* Whole chunks written to new store space: settle them first. */
		unsigned long flags;

		io->status = *error;
		spin_lock_irqsave(&ic->s->lock, flags);
		bio_list_add(&ic->s->written, bio);
		spin_unlock_irqrestore(&ic->s->lock, flags);
		queue_work(blksnap_wq, &ic->s->written_work);
		return DM_ENDIO_INCOMPLETE;
	}
	if (io->tracked) {
		io->tracked = false;
		/* Ended after the image failed: it may hold newer data. */
		if (!snap_image_read_done(ic->s, io) && !*error)
			*error = BLK_STS_IOERR;
	}
	if (io->counted)
		snap_image_io_done(ic->s, io);
	return DM_ENDIO_DONE;
}

/*
 * Status INFO:
 *   <used_sectors>/<store_sectors> <chunk_sectors> <copied_chunks> <state>
 * with state valid, overflow or failed.
 *
 * Status TABLE: <real-dev> <store-dev> <chunk_sectors>
 *   [<#opts> [low_water <n>] [copy_timeout <s>]], the options as given.
 */
static void image_status(struct dm_target *ti, status_type_t type,
			 unsigned int status_flags, char *result,
			 unsigned int maxlen)
{
	struct image_c *ic = ti->private;
	struct blksnap_snap *s = ic->s;
	unsigned int sz = 0, nr = 0, i;

	switch (type) {
	case STATUSTYPE_INFO:
		spin_lock_irq(&s->lock);
		DMEMIT("%llu/%llu %u %lu %s",
		       (unsigned long long)READ_ONCE(s->store->used),
		       (unsigned long long)bdev_nr_sectors(s->store_bdev),
		       ic->chunk_sectors, s->copied_chunks,
		       s->merging && s->state == SNAP_VALID ? "merging" :
		       snap_state_names[s->state]);
		spin_unlock_irq(&s->lock);
		break;
	case STATUSTYPE_TABLE:
		DMEMIT("%s %s %u", ic->real->name, ic->store->name,
		       ic->chunk_sectors);
		for (i = 0; i < ARRAY_SIZE(ic->opts); i++)
			nr += ic->opts[i].given ? 2 : 0;
		if (nr)
			DMEMIT(" %u", nr);
		for (i = 0; i < ARRAY_SIZE(ic->opts); i++)
			if (ic->opts[i].given)
				DMEMIT(" %s %llu", ic->opts[i].key, ic->opts[i].value);
		break;
	case STATUSTYPE_IMA:
		DMEMIT_TARGET_NAME_VERSION(ti->type);
		DMEMIT(",real_dev=%s,store_dev=%s,chunk_sectors=%u,copy_timeout=%u,state=%s;",
		       ic->real->name, ic->store->name, ic->chunk_sectors,
		       s->copy_timeout, snap_state_names[READ_ONCE(s->state)]);
		break;
	}
}

/*
 * Both devices: a read of a copied chunk goes to the store, so the image's
 * limits stack the store's too. A 4Kn store under a 512-byte real device
 * makes a 4096-byte image, rather than one whose 512-byte reads of copied
 * chunks fail on the store (dm-snapshot does the same with its COW device).
 */
static int image_iterate_devices(struct dm_target *ti,
				 iterate_devices_callout_fn fn, void *data)
{
	struct image_c *ic = ti->private;
	int r;

	r = fn(ti, ic->real, 0, ti->len, data);
	if (!r)
		r = fn(ti, ic->store, 0, bdev_nr_sectors(ic->store->bdev), data);
	return r;
}

static struct target_type image_target = {
	.name = "blksnap-image",
	.version = {1, 2, 0},
	.module = THIS_MODULE,
	.ctr = image_ctr,
	.dtr = image_dtr,
	.map = image_map,
	.end_io = image_end_io,
	.preresume = image_preresume,
	.status = image_status,
	.iterate_devices = image_iterate_devices,
};

/*---- Module ----*/

static int __init dm_blksnap_init(void)
{
	int r = -ENOMEM;

	exception_cache = KMEM_CACHE(blksnap_exception, 0);
	pending_cache = KMEM_CACHE(blksnap_pending, 0);
	blksnap_wq = alloc_workqueue("blksnap", WQ_MEM_RECLAIM, 0);
	if (!exception_cache || !pending_cache || !blksnap_wq)
		goto bad;
	r = blksnap_cbt_init(origin_replay);
	if (r)
		goto bad;
	r = blksnap_meta_init(origin_continue);
	if (r) {
		blksnap_cbt_exit();
		goto bad;
	}
	r = dm_register_target(&origin_target);
	if (r)
		goto bad_cbt;
	r = dm_register_target(&image_target);
	if (r)
		goto bad_origin;
	return 0;

bad_origin:
	dm_unregister_target(&origin_target);
bad_cbt:
	blksnap_meta_exit();
	blksnap_cbt_exit();
bad:
	if (blksnap_wq)
		destroy_workqueue(blksnap_wq);
	kmem_cache_destroy(pending_cache);
	kmem_cache_destroy(exception_cache);
	DMERR("module init failed %d", r);
	return r;
}

static void __exit dm_blksnap_exit(void)
{
	dm_unregister_target(&image_target);
	dm_unregister_target(&origin_target);
	blksnap_meta_exit();
	blksnap_cbt_exit();
	destroy_workqueue(blksnap_wq);
	kmem_cache_destroy(pending_cache);
	kmem_cache_destroy(exception_cache);
}

module_init(dm_blksnap_init);
module_exit(dm_blksnap_exit);

MODULE_DESCRIPTION(DM_NAME " block device snapshots with change tracking");
MODULE_LICENSE("GPL");
/* dm loads "dm-<target>" when a table names a target it does not know. */
MODULE_ALIAS("dm-blksnap-origin");
MODULE_ALIAS("dm-blksnap-image");
