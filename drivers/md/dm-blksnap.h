/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dm-blksnap: the interface between the targets (dm-blksnap.c) and the
 * change tracker (dm-blksnap-cbt.c).
 *
 * A tracker belongs to a real device, not to a table: the registry keys it by
 * dev_t and every blksnap-origin table on that device holds a reference, so a
 * reload keeps the change maps, the generation and any snapshot.
 */
#ifndef DM_BLKSNAP_H
#define DM_BLKSNAP_H

#include <linux/types.h>
#include <linux/kref.h>
#include <linux/mutex.h>
#include <linux/percpu-refcount.h>
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/uuid.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#define DM_MSG_PREFIX "blksnap"

/* The largest map we allocate: 256 MiB, i.e. 2^28 tracking blocks. */
#define BLKSNAP_CBT_MAX_BLOCKS		(1UL << 28)
/* Default block count limit and minimum block size of the contract. */
#define BLKSNAP_CBT_DEFAULT_MAX_BLOCKS	2097152UL
#define BLKSNAP_CBT_DEFAULT_MIN_SECTORS	128U
#define BLKSNAP_CBT_MIN_SECTORS		8U

struct mapped_device;
struct blksnap_snap;
struct blksnap_meta;
struct blksnap_meta_sb;

/*
 * Per-real-device state. The maps are written without locks on the I/O
 * path; everything that changes their meaning (take, reset, snapshot attach
 * and detach) runs under @lock with the write gate closed, i.e. with no origin
 * write between map() and end_io.
 */
struct blksnap_tracker {
	struct list_head list;		/* tracker_list, while tables > 0 */
	struct kref kref;
	unsigned int tables;		/* live origin tables (tracker_mutex) */
	dev_t dev;
	struct mapped_device *md;	/* the origin device: identity only */
	/* The origin device, copied at creation: @md may go before an image. */
	dev_t origin_dev;
	char origin_name[DISK_NAME_LEN];

	sector_t dev_sectors;
	unsigned int block_shift;
	unsigned long nr_blocks;

	/*
	 * @lock serialises what closes the gate (takes, resets, snapshot
	 * attach and detach, merge start); a gate close can wait for a copy
	 * as long as the copy timeout. @map_lock is only held for short
	 * stretches, so that status and the CBT messages that read stay
	 * answerable meanwhile: it protects the snapshot map and the
	 * numbers, the generation, @snap for readers, @event_ti and the
	 * merge_failed fields. Order: @lock, then @map_lock.
	 */
	struct mutex lock;
	struct mutex map_lock;
	u8 *active;			/* active map: value C for changed blocks */
	u8 *snap_map;			/* snapshot map: valid once taken */
	bool snap_taken;		/* snap_map holds a take of this generation */
	u8 change_number;		/* C, 1..255 */
	u8 snap_number;			/* number of the last take */
	uuid_t generation;

	/* The write gate: origin writes hold @writes from map to end_io. */
	struct percpu_ref writes;
	wait_queue_head_t drain_wq;
	spinlock_t deferred_lock;
	struct bio_list deferred;
	bool gate_closed;		/* under deferred_lock */
	struct work_struct deferred_work;

	/*
	 * Snapshot state owned by dm-blksnap.c. @snap changes only with the
	 * gate closed, under @lock and @map_lock.
	 */
	struct blksnap_snap *snap;
	bool image_claimed;		/* an image table exists (under @lock) */
	bool gone;			/* no origin table left (under @lock) */
	struct dm_target *event_ti;	/* the live origin target, for events */

	/*
	 * Persistent CBT (dm-blksnap-meta.c), or NULL: set before the
	 * tracker is registered, cleared when its last table is gone.
	 */
	struct blksnap_meta *meta;

	/* A merge that ended without finishing, kept for the status line. */
	bool merge_failed;
	unsigned long merge_done, merge_total;
};

/*
 * The tracker never calls the targets: a bio parked at the closed gate goes
 * back through the function given here, the origin target's.
 */
typedef void (*blksnap_replay_fn)(struct blksnap_tracker *t, struct bio *bio);

int blksnap_cbt_init(blksnap_replay_fn replay);
void blksnap_cbt_exit(void);

struct blksnap_tracker *blksnap_tracker_get(dev_t dev, struct mapped_device *md,
					    sector_t dev_sectors,
					    unsigned int block_sectors,
					    struct block_device *meta_bdev,
					    const char *meta_id, char **error);
bool blksnap_tracker_drop_table(struct blksnap_tracker *t);
bool blksnap_tracker_uses(dev_t dev);
struct blksnap_tracker *blksnap_tracker_lookup(dev_t dev);
void blksnap_tracker_put(struct blksnap_tracker *t);
unsigned int blksnap_default_block_sectors(sector_t dev_sectors);

/*
 * The write gate; parked bios go back to the replay function. Reads pass it
 * too, so that a merge can start between two of them.
 */
bool blksnap_gate_enter(struct blksnap_tracker *t, struct bio *bio);
void blksnap_gate_exit(struct blksnap_tracker *t);
void blksnap_gate_close(struct blksnap_tracker *t);
void blksnap_gate_open(struct blksnap_tracker *t);

/* Change tracking. */
void blksnap_cbt_mark(struct blksnap_tracker *t, sector_t sector,
		      sector_t nr_sectors);
void blksnap_cbt_mark_snapshot(struct blksnap_tracker *t, sector_t sector,
			       sector_t nr_sectors);
int __blksnap_cbt_take(struct blksnap_tracker *t);
int blksnap_cbt_take(struct blksnap_tracker *t, u8 *number);
void blksnap_cbt_reset(struct blksnap_tracker *t);
int blksnap_cbt_message(struct blksnap_tracker *t, unsigned int argc,
			char **argv, char *result, unsigned int maxlen);

/*
 * Persistent change tracking (dm-blksnap-meta.c). A held origin write goes
 * on through the continue function given to blksnap_meta_init().
 */
int blksnap_meta_init(blksnap_replay_fn cont);
void blksnap_meta_exit(void);
struct blksnap_meta *blksnap_meta_alloc(struct block_device *bdev,
					const char *id, sector_t dev_sectors,
					unsigned int *block_sectors,
					struct blksnap_meta_sb *sb, char **error);
int blksnap_meta_load(struct blksnap_tracker *t, struct blksnap_meta *m,
		      const struct blksnap_meta_sb *sb, char **error);
void blksnap_meta_discard(struct blksnap_meta *m);
void blksnap_meta_release(struct blksnap_tracker *t);
bool blksnap_meta_matches(struct blksnap_tracker *t, struct block_device *bdev,
			  const char *id);
bool blksnap_meta_in_use(struct block_device *bdev);
bool blksnap_meta_write(struct blksnap_tracker *t, struct bio *bio);
void blksnap_meta_cover(struct blksnap_tracker *t, sector_t sector, sector_t nr);
void blksnap_meta_commit(struct blksnap_tracker *t);
void blksnap_meta_lock(struct blksnap_tracker *t);
void blksnap_meta_unlock(struct blksnap_tracker *t);
void blksnap_meta_take(struct blksnap_tracker *t);
void blksnap_meta_new_generation(struct blksnap_tracker *t, const char *why);
void blksnap_meta_sync_sb(struct blksnap_tracker *t);
void blksnap_meta_mark_dirty(struct blksnap_tracker *t, sector_t sector,
			     sector_t nr);
int blksnap_meta_close(struct blksnap_tracker *t);
int blksnap_meta_detach(struct blksnap_tracker *t);
unsigned int blksnap_meta_status(struct blksnap_tracker *t, char *result,
				 unsigned int sz, unsigned int maxlen);

#endif /* DM_BLKSNAP_H */
