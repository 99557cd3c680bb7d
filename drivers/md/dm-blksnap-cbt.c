// SPDX-License-Identifier: GPL-2.0
/*
 * dm-blksnap change tracker.
 *
 * One tracker per real device, found through a registry keyed by dev_t. It
 * holds two maps of one byte per tracking block: the active map, where every
 * write stores the current change number C, and the snapshot map, a copy of
 * the active map made by the last take. A take records C as the snapshot's
 * number and increments it, so the blocks changed between take k and take
 * k+1 carry the value k+1 in the snapshot map of take k+1.
 *
 * Takes and resets must not race with writes in flight, or a write could
 * store the old C after the copy. The tracker therefore has a write gate: a
 * percpu_ref that every origin bio with data holds between map() and end_io
 * (reads too: a merge changes where they go). Closing the gate kills the ref
 * and waits for it to drain; bios that arrive while it is closed are parked
 * on a list and replayed when it opens. This is the block layer's queue
 * freeze, at the scope of one device, and costs the hot path a per-cpu
 * increment.
 */
#include <linux/module.h>
#include <linux/device-mapper.h>
#include <linux/vmalloc.h>
#include <linux/slab.h>
#include <linux/log2.h>
#include <linux/uuid.h>

#include "dm-blksnap.h"
#include "dm-blksnap-extents.h"
#include "dm-blksnap-meta.h"

static LIST_HEAD(tracker_list);
static DEFINE_MUTEX(tracker_mutex);
static struct workqueue_struct *gate_wq;
/* Where parked bios go when the gate opens: the origin target's map path. */
static blksnap_replay_fn gate_replay;

/*---- Maps ----*/

unsigned int blksnap_default_block_sectors(sector_t dev_sectors)
{
	unsigned int sectors = BLKSNAP_CBT_DEFAULT_MIN_SECTORS;

	while (DIV_ROUND_UP_SECTOR_T(dev_sectors, sectors) >
	       BLKSNAP_CBT_DEFAULT_MAX_BLOCKS)
		sectors <<= 1;
	return sectors;
}

/* Must be called with t->lock and t->map_lock held and the gate closed. */
static void __new_generation(struct blksnap_tracker *t, const char *why)
{
	blksnap_meta_new_generation(t, why);
	uuid_gen(&t->generation);
	memset(t->active, 0, t->nr_blocks);
	memset(t->snap_map, 0, t->nr_blocks);
	t->snap_taken = false;
	t->change_number = 1;
	t->snap_number = 0;
}

static void mark_map(u8 *map, unsigned long nr_blocks, unsigned int shift,
		     sector_t sector, sector_t nr_sectors, u8 value)
{
	unsigned long b, last;

	if (!nr_sectors)
		return;
	b = sector >> shift;
	last = (sector + nr_sectors - 1) >> shift;
	if (b >= nr_blocks)
		return;
	if (last >= nr_blocks)
		last = nr_blocks - 1;
	/* Skip the store when the value is there: overwrites stay read-only. */
	for (; b <= last; b++)
		if (READ_ONCE(map[b]) != value)
			WRITE_ONCE(map[b], value);
}

/* Mark a write to the origin. Lock-free: called between gate enter and exit. */
void blksnap_cbt_mark(struct blksnap_tracker *t, sector_t sector,
		      sector_t nr_sectors)
{
	mark_map(t->active, t->nr_blocks, t->block_shift, sector, nr_sectors,
		 READ_ONCE(t->change_number));
}

/* Mark a write to the image: the snapshot map gets the snapshot's number. */
void blksnap_cbt_mark_snapshot(struct blksnap_tracker *t, sector_t sector,
			       sector_t nr_sectors)
{
	if (READ_ONCE(t->snap_taken))
		mark_map(t->snap_map, t->nr_blocks, t->block_shift, sector,
			 nr_sectors, READ_ONCE(t->snap_number));
}

/*
 * A take in the CBT sense. Must be called with t->lock and t->map_lock held
 * and the gate closed. Returns the snapshot's number.
 */
int __blksnap_cbt_take(struct blksnap_tracker *t)
{
	if (t->change_number == 255) {
		DMINFO("%u:%u: change number 255 reached, new CBT generation",
		       MAJOR(t->dev), MINOR(t->dev));
		__new_generation(t, "wrap");
	}
	memcpy(t->snap_map, t->active, t->nr_blocks);
	WRITE_ONCE(t->snap_number, t->change_number);
	WRITE_ONCE(t->snap_taken, true);
	WRITE_ONCE(t->change_number, t->change_number + 1);
	return t->snap_number;
}

int blksnap_cbt_take(struct blksnap_tracker *t, u8 *number)
{
	/* Answer at once while an image exists, even if @lock is busy. */
	if (READ_ONCE(t->image_claimed))
		return -EBUSY;
	mutex_lock(&t->lock);
	if (t->image_claimed) {
		mutex_unlock(&t->lock);
		return -EBUSY;
	}
	blksnap_gate_close(t);
	blksnap_meta_lock(t);
	mutex_lock(&t->map_lock);
	*number = __blksnap_cbt_take(t);
	mutex_unlock(&t->map_lock);
	blksnap_meta_take(t);
	blksnap_meta_unlock(t);
	blksnap_gate_open(t);
	mutex_unlock(&t->lock);
	return 0;
}

void blksnap_cbt_reset(struct blksnap_tracker *t)
{
	mutex_lock(&t->lock);
	blksnap_gate_close(t);
	blksnap_meta_lock(t);
	mutex_lock(&t->map_lock);
	__new_generation(t, "reset");
	mutex_unlock(&t->map_lock);
	blksnap_meta_sync_sb(t);
	blksnap_meta_unlock(t);
	blksnap_gate_open(t);
	mutex_unlock(&t->lock);
}

/*---- Write gate ----*/

static void writes_drained(struct percpu_ref *ref)
{
	struct blksnap_tracker *t = container_of(ref, struct blksnap_tracker, writes);

	wake_up_all(&t->drain_wq);
}

/*
 * Let a write in. Returns false when the gate is closed: the bio is then
 * parked and goes to the replay function of blksnap_cbt_init() once the
 * gate opens.
 */
bool blksnap_gate_enter(struct blksnap_tracker *t, struct bio *bio)
{
	unsigned long flags;

	if (likely(percpu_ref_tryget_live(&t->writes)))
		goto entered;

	spin_lock_irqsave(&t->deferred_lock, flags);
	if (!t->gate_closed) {
		/* The gate opened between the try and the lock. */
		spin_unlock_irqrestore(&t->deferred_lock, flags);
		if (percpu_ref_tryget_live(&t->writes))
			goto entered;
		spin_lock_irqsave(&t->deferred_lock, flags);
	}
	bio_list_add(&t->deferred, bio);
	spin_unlock_irqrestore(&t->deferred_lock, flags);
	if (!READ_ONCE(t->gate_closed))
		queue_work(gate_wq, &t->deferred_work);
	return false;

entered:
	/*
	 * The per-cpu tryget orders only loads that depend on the counter's
	 * address; pair with the release in percpu_ref_resurrect() so that
	 * the snapshot pointer and change number published with the gate
	 * closed are seen (free on x86, needed on arm64 and POWER).
	 */
	smp_rmb();
	return true;
}

void blksnap_gate_exit(struct blksnap_tracker *t)
{
	percpu_ref_put(&t->writes);
}

/* Must be called with t->lock held. Sleeps until no origin bio is in flight. */
void blksnap_gate_close(struct blksnap_tracker *t)
{
	lockdep_assert_held(&t->lock);
	spin_lock_irq(&t->deferred_lock);
	t->gate_closed = true;
	spin_unlock_irq(&t->deferred_lock);
	percpu_ref_kill(&t->writes);
	wait_event(t->drain_wq, percpu_ref_is_zero(&t->writes));
}

/* Must be called with t->lock held, after blksnap_gate_close(). */
void blksnap_gate_open(struct blksnap_tracker *t)
{
	lockdep_assert_held(&t->lock);
	percpu_ref_resurrect(&t->writes);
	spin_lock_irq(&t->deferred_lock);
	t->gate_closed = false;
	spin_unlock_irq(&t->deferred_lock);
	queue_work(gate_wq, &t->deferred_work);
}

static void replay_deferred(struct work_struct *work)
{
	struct blksnap_tracker *t = container_of(work, struct blksnap_tracker,
						 deferred_work);
	struct bio_list bios;
	struct bio *bio;

	spin_lock_irq(&t->deferred_lock);
	if (t->gate_closed) {
		spin_unlock_irq(&t->deferred_lock);
		return;
	}
	bios = t->deferred;
	bio_list_init(&t->deferred);
	spin_unlock_irq(&t->deferred_lock);

	while ((bio = bio_list_pop(&bios)))
		gate_replay(t, bio);
}

/*---- Registry ----*/

static void tracker_free(struct kref *kref)
{
	struct blksnap_tracker *t = container_of(kref, struct blksnap_tracker, kref);

	cancel_work_sync(&t->deferred_work);
	WARN_ON(!bio_list_empty(&t->deferred));
	WARN_ON(t->meta);
	percpu_ref_exit(&t->writes);
	kvfree(t->active);
	kvfree(t->snap_map);
	kfree(t);
}

void blksnap_tracker_put(struct blksnap_tracker *t)
{
	kref_put(&t->kref, tracker_free);
}

static struct blksnap_tracker *__tracker_find(dev_t dev)
{
	struct blksnap_tracker *t;

	list_for_each_entry(t, &tracker_list, list)
		if (t->dev == dev)
			return t;
	return NULL;
}

/* A reference to the registered tracker of @dev, or NULL. */
struct blksnap_tracker *blksnap_tracker_lookup(dev_t dev)
{
	struct blksnap_tracker *t;

	mutex_lock(&tracker_mutex);
	t = __tracker_find(dev);
	if (t)
		kref_get(&t->kref);
	mutex_unlock(&tracker_mutex);
	return t;
}

static struct blksnap_tracker *tracker_create(dev_t dev, struct mapped_device *md,
					      sector_t dev_sectors,
					      unsigned int block_sectors,
					      char **error)
{
	struct blksnap_tracker *t;
	unsigned long nr_blocks = DIV_ROUND_UP_SECTOR_T(dev_sectors, block_sectors);

	if (nr_blocks > BLKSNAP_CBT_MAX_BLOCKS) {
		*error = "Tracking block too small: the change map would exceed 256 MiB";
		return ERR_PTR(-EINVAL);
	}
	t = kzalloc(sizeof(*t), GFP_KERNEL);
	if (!t)
		goto nomem;
	t->active = kvzalloc(nr_blocks, GFP_KERNEL);
	t->snap_map = kvzalloc(nr_blocks, GFP_KERNEL);
	if (!t->active || !t->snap_map)
		goto nomem;
	if (percpu_ref_init(&t->writes, writes_drained, PERCPU_REF_ALLOW_REINIT,
			    GFP_KERNEL))
		goto nomem;

	kref_init(&t->kref);
	INIT_LIST_HEAD(&t->list);
	t->dev = dev;
	t->md = md;
	t->origin_dev = disk_devt(dm_disk(md));
	strscpy(t->origin_name, dm_disk(md)->disk_name, sizeof(t->origin_name));
	t->dev_sectors = dev_sectors;
	t->block_shift = ilog2(block_sectors);
	t->nr_blocks = nr_blocks;
	mutex_init(&t->lock);
	mutex_init(&t->map_lock);
	init_waitqueue_head(&t->drain_wq);
	spin_lock_init(&t->deferred_lock);
	bio_list_init(&t->deferred);
	INIT_WORK(&t->deferred_work, replay_deferred);
	uuid_gen(&t->generation);
	t->change_number = 1;
	return t;

nomem:
	if (t) {
		kvfree(t->active);
		kvfree(t->snap_map);
		kfree(t);
	}
	*error = "Cannot allocate the change tracker";
	return ERR_PTR(-ENOMEM);
}

/*
 * The tracker of @dev for a new origin table on @md, created on first use
 * with blocks of @block_sectors (0: the default for the size).
 * A live tracker is shared by the tables of one origin device (a reload);
 * another dm device over the same real device is refused.
 */
/*
 * A new tracker, with its maps loaded from @meta_bdev when that is given.
 * The metadata I/O (bounded by metadata_timeout) runs outside
 * tracker_mutex.
 */
static struct blksnap_tracker *tracker_load(dev_t dev, struct mapped_device *md,
					    sector_t dev_sectors,
					    unsigned int block_sectors,
					    struct block_device *meta_bdev,
					    const char *meta_id, char **error)
{
	struct blksnap_meta_sb *sb = NULL;
	struct blksnap_meta *m = NULL;
	struct blksnap_tracker *t;
	int r;

	if (meta_bdev) {
		sb = kmalloc(sizeof(*sb), GFP_KERNEL);
		if (!sb) {
			*error = "Cannot allocate the metadata state";
			return ERR_PTR(-ENOMEM);
		}
		m = blksnap_meta_alloc(meta_bdev, meta_id, dev_sectors,
				       &block_sectors, sb, error);
		if (IS_ERR(m)) {
			kfree(sb);
			return ERR_CAST(m);
		}
	}
	if (!block_sectors)
		block_sectors = blksnap_default_block_sectors(dev_sectors);
	t = tracker_create(dev, md, dev_sectors, block_sectors, error);
	if (!IS_ERR(t) && m) {
		r = blksnap_meta_load(t, m, sb, error);
		if (r) {
			blksnap_tracker_put(t);
			t = ERR_PTR(r);
		}
	}
	if (IS_ERR(t) || !t->meta)
		blksnap_meta_discard(m);
	kfree(sb);
	return t;
}

struct blksnap_tracker *blksnap_tracker_get(dev_t dev, struct mapped_device *md,
					    sector_t dev_sectors,
					    unsigned int block_sectors,
					    struct block_device *meta_bdev,
					    const char *meta_id, char **error)
{
	struct blksnap_tracker *t, *created = NULL;

again:
	mutex_lock(&tracker_mutex);
	t = __tracker_find(dev);
	if (t) {
		if (t->md != md) {
			*error = "Device already has a blksnap-origin on another dm device";
			t = ERR_PTR(-EBUSY);
		} else if (block_sectors && block_sectors != (1U << t->block_shift)) {
			*error = "Tracking block size differs from the live tracker's";
			t = ERR_PTR(-EINVAL);
		} else if (dev_sectors > t->dev_sectors) {
			*error = "Origin is larger than its live tracker: remove and create it again";
			t = ERR_PTR(-EINVAL);
		} else if (!blksnap_meta_matches(t, meta_bdev, meta_id)) {
			*error = "The metadata options differ from the live tracker's";
			t = ERR_PTR(-EINVAL);
		} else {
			t->tables++;
			kref_get(&t->kref);
		}
	} else if (created) {
		t = created;
		created = NULL;
		t->tables = 1;
		list_add(&t->list, &tracker_list);
	}
	mutex_unlock(&tracker_mutex);
	if (created) {
		/*
		 * Another table of the device won the race: the metadata
		 * that was loaded says "replaced", as at a removal.
		 */
		blksnap_meta_release(created);
		blksnap_tracker_put(created);
	}
	if (t)
		return t;
	created = tracker_load(dev, md, dev_sectors, block_sectors, meta_bdev,
			       meta_id, error);
	if (IS_ERR(created))
		return created;
	goto again;
}

/* Whether a live tracker has @dev as its real device or its origin. */
bool blksnap_tracker_uses(dev_t dev)
{
	struct blksnap_tracker *t;
	bool found = false;

	mutex_lock(&tracker_mutex);
	list_for_each_entry(t, &tracker_list, list)
		found |= t->dev == dev || t->origin_dev == dev;
	mutex_unlock(&tracker_mutex);
	return found;
}

/*
 * Drop a table's count, not its memory reference (blksnap_tracker_put()).
 * The last table unregisters the tracker and returns true: the caller then
 * fails a snapshot that still uses it, whose image outlives the origin.
 */
bool blksnap_tracker_drop_table(struct blksnap_tracker *t)
{
	bool last;

	mutex_lock(&tracker_mutex);
	last = !--t->tables;
	if (last)
		list_del_init(&t->list);
	mutex_unlock(&tracker_mutex);
	return last;
}

/*---- Messages ----*/

static int parse_u64(const char *what, const char *arg, u64 *v)
{
	if (kstrtoull(arg, 10, v)) {
		DMWARN_LIMIT("%s: '%s' is not a decimal number", what, arg);
		return -EINVAL;
	}
	return 0;
}

/* cbt_read <offset> <count>: bytes of the snapshot map as lowercase hex. */
static int msg_cbt_read(struct blksnap_tracker *t, char **argv, char *result,
			unsigned int maxlen)
{
	unsigned int sz = 0;
	u64 offset, count, i;
	int r = 0;

	if (parse_u64("cbt_read offset", argv[1], &offset) ||
	    parse_u64("cbt_read count", argv[2], &count))
		return -EINVAL;
	mutex_lock(&t->map_lock);
	if (!t->snap_taken) {
		DMWARN_LIMIT("cbt_read: no snapshot taken in this generation");
		r = -ENODATA;
	} else if (offset > t->nr_blocks || count > t->nr_blocks - offset) {
		DMWARN_LIMIT("cbt_read: bytes %llu+%llu are past the end of the %lu-byte map",
			     offset, count, t->nr_blocks);
		r = -EINVAL;
	} else if (count * 2 >= maxlen) {
		/* Too long for the buffer: have libdevmapper retry with more. */
		DMEMIT("%*s", maxlen, "");
		r = 1;
	} else {
		for (i = 0; i < count; i++)
			DMEMIT("%02x", t->snap_map[offset + i]);
		r = 1;
	}
	mutex_unlock(&t->map_lock);
	return r;
}

/* cbt_changes <since>: extents of the snapshot map with values > since. */
static int msg_cbt_changes(struct blksnap_tracker *t, char **argv,
			   char *result, unsigned int maxlen)
{
	unsigned long pos = 0, start, count;
	unsigned long long sector, sectors;
	unsigned int sz = 0;
	u8 since;

	if (kstrtou8(argv[1], 10, &since)) {
		DMWARN_LIMIT("cbt_changes: '%s' is not a change number (0..255)", argv[1]);
		return -EINVAL;
	}
	mutex_lock(&t->map_lock);
	if (!t->snap_taken) {
		mutex_unlock(&t->map_lock);
		DMWARN_LIMIT("cbt_changes: no snapshot taken in this generation");
		return -ENODATA;
	}
	while (blksnap_next_extent(t->snap_map, t->nr_blocks, since, &pos,
				   &start, &count)) {
		blksnap_extent_sectors(start, count, t->block_shift,
				       t->dev_sectors, &sector, &sectors);
		DMEMIT("%s%llu+%llu", sz ? " " : "", sector, sectors);
	}
	mutex_unlock(&t->map_lock);
	return 1;
}

/* cbt_mark_dirty <start_sector> <sectors>: mark changed in both maps. */
static int msg_cbt_mark_dirty(struct blksnap_tracker *t, char **argv)
{
	u64 sector, sectors;

	if (parse_u64("cbt_mark_dirty start", argv[1], &sector) ||
	    parse_u64("cbt_mark_dirty sectors", argv[2], &sectors))
		return -EINVAL;
	if (!sectors || sector >= t->dev_sectors ||
	    sectors > t->dev_sectors - sector) {
		DMWARN_LIMIT("cbt_mark_dirty: %llu+%llu is not inside the %llu-sector device",
			     sector, sectors, (unsigned long long)t->dev_sectors);
		return -EINVAL;
	}
	/*
	 * A take copies the map under @map_lock: one side of it or the
	 * other; with persistent CBT the metadata lock keeps takes out until
	 * the marks are on disk.
	 */
	blksnap_meta_lock(t);
	mutex_lock(&t->map_lock);
	blksnap_cbt_mark(t, sector, sectors);
	blksnap_cbt_mark_snapshot(t, sector, sectors);
	mutex_unlock(&t->map_lock);
	blksnap_meta_mark_dirty(t, sector, sectors);
	blksnap_meta_unlock(t);
	return 0;
}

/*
 * cbt_close: the maps on disk, the superblock "closed", so that the next
 * load continues the generation (the shutdown unit sends it); tracking
 * goes on meanwhile.
 */
static int msg_cbt_close(struct blksnap_tracker *t)
{
	int r;

	if (!t->meta) {
		DMWARN_LIMIT("cbt_close: the origin has no metadata device");
		return -EINVAL;
	}
	mutex_lock(&t->lock);
	blksnap_gate_close(t);
	r = blksnap_meta_close(t);
	blksnap_gate_open(t);
	mutex_unlock(&t->lock);
	if (r)
		DMWARN_LIMIT("cbt_close: the metadata device failed: persistent CBT is off");
	return r;
}

/* cbt_detach: untracked writes follow on purpose; the next load starts anew. */
static int msg_cbt_detach(struct blksnap_tracker *t)
{
	if (!t->meta) {
		DMWARN_LIMIT("cbt_detach: the origin has no metadata device");
		return -EINVAL;
	}
	return blksnap_meta_detach(t);
}

static int msg_cbt_take(struct blksnap_tracker *t, char *result,
			unsigned int maxlen)
{
	unsigned int sz = 0;
	u8 number;
	int r;

	r = blksnap_cbt_take(t, &number);
	if (r) {
		DMWARN_LIMIT("cbt_take: refused while a snapshot image exists");
		return r;
	}
	DMEMIT("%u", number);
	return 1;
}

/*
 * Messages about change tracking. Returns 1 when @result holds text, 0 on
 * success without text, a negative errno on failure, -ENOTTY if @argv is not
 * a CBT message.
 */
int blksnap_cbt_message(struct blksnap_tracker *t, unsigned int argc,
			char **argv, char *result, unsigned int maxlen)
{
	static const struct {
		const char *name;
		unsigned int argc;
	} msgs[] = {
		{ "cbt_read", 3 }, { "cbt_changes", 2 }, { "cbt_mark_dirty", 3 },
		{ "cbt_reset", 1 }, { "cbt_take", 1 }, { "cbt_close", 1 },
		{ "cbt_detach", 1 },
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(msgs); i++)
		if (!strcasecmp(argv[0], msgs[i].name))
			break;
	if (i == ARRAY_SIZE(msgs))
		return -ENOTTY;
	if (argc != msgs[i].argc) {
		DMWARN_LIMIT("%s takes %u argument(s), got %u", msgs[i].name,
			     msgs[i].argc - 1, argc - 1);
		return -EINVAL;
	}
	switch (i) {
	case 0:
		return msg_cbt_read(t, argv, result, maxlen);
	case 1:
		return msg_cbt_changes(t, argv, result, maxlen);
	case 2:
		return msg_cbt_mark_dirty(t, argv);
	case 3:
		blksnap_cbt_reset(t);
		return 0;
	case 4:
		return msg_cbt_take(t, result, maxlen);
	case 5:
		return msg_cbt_close(t);
	default:
		return msg_cbt_detach(t);
	}
}

/*---- Module ----*/

int blksnap_cbt_init(blksnap_replay_fn replay)
{
	gate_replay = replay;
	gate_wq = alloc_workqueue("blksnap_gate", WQ_MEM_RECLAIM, 0);
	return gate_wq ? 0 : -ENOMEM;
}

void blksnap_cbt_exit(void)
{
	destroy_workqueue(gate_wq);
	WARN_ON(!list_empty(&tracker_list));
}
