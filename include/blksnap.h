/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libblksnap: snapshots and change-block tracking with dm-blksnap.
 *
 * The library behind blksnapctl. It builds the device-mapper tables of the
 * blksnap-origin and blksnap-image targets, runs the suspend/resume sequences
 * that make a snapshot coherent, manages the difference storage ("store") and
 * talks to the origin's change tracker. The v1 interface contract
 * (tables, status lines, messages) is described in Documentation/ and in
 * blksnapctl(8).
 *
 * Conventions
 *  - Every call that can fail returns 0 (or a count) on success and a
 *    negative errno on failure. The context then holds a one-line message
 *    that names the cause and, where there is one, the remedy; read it with
 *    blksnap_errmsg(). A NULL context is allowed wherever the function
 *    needs no device-mapper access (parsers); the message is then lost.
 *  - Sizes called "bytes" are bytes; everything else is in 512-byte sectors.
 *  - Strings and arrays returned inside result structures are owned by the
 *    structure and released by its _free() function.
 *  - Not thread-safe: use one context per thread.
 *
 * Naming of the device-mapper devices (see blksnapctl(8)):
 *  origin over a dm device <name>:   <name> (reloaded), real device <name>-real
 *  origin over a disk <kname>:       blksnap-<kname>
 *  image of origin <o> in snap <s>:  <o>-<s>            /dev/mapper/<o>-<s>
 *  store of snapshot <s>:            <s>-store          (dm-linear over parts)
 *  dm UUIDs: BLKSNAP-ORIGIN-<name>, BLKSNAP-REAL-<name>,
 *            BLKSNAP-IMAGE-<snap>-<origin>, BLKSNAP-STORE-<snap>
 */
#ifndef BLKSNAP_H
#define BLKSNAP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BLKSNAP_SECTOR_SIZE 512

/*---- Context and errors ----*/

struct blksnap_ctx;

enum blksnap_log_level {
	BLKSNAP_LOG_ERROR,
	BLKSNAP_LOG_WARN,
	BLKSNAP_LOG_INFO,
	BLKSNAP_LOG_DEBUG,
};

/* Receives progress and warning lines (no trailing newline). */
typedef void (*blksnap_log_fn)(enum blksnap_log_level level, const char *msg,
			       void *data);

/* Allocate a context. Returns 0 or -ENOMEM. */
int blksnap_ctx_new(struct blksnap_ctx **ctx);
/* Release a context; NULL is ignored. */
void blksnap_ctx_free(struct blksnap_ctx *ctx);
/* The message of the last failure in @ctx, "" if none. Never NULL. */
const char *blksnap_errmsg(const struct blksnap_ctx *ctx);
/* Route warnings and progress lines to @fn (default: dropped). */
void blksnap_set_log(struct blksnap_ctx *ctx, blksnap_log_fn fn, void *data);
/* The library version, e.g. "0.1.0". */
const char *blksnap_version(void);

/*---- Sizes and extents ----*/

/*
 * Parse a size: a decimal number of bytes with an optional binary suffix
 * K, M, G, T, P or E (case-insensitive), optionally followed by "iB" or "B"
 * ("4K" = "4KiB" = "4KB" = 4096), or a bare "B". Strict: no sign, blanks,
 * fractions or trailing garbage. -EINVAL on bad input, -ERANGE on overflow.
 */
int blksnap_parse_size(struct blksnap_ctx *ctx, const char *s, uint64_t *bytes);

/*
 * Format @bytes for people ("512 B", "64 MiB", "1.5 GiB") into @buf and
 * return @buf. 16 bytes are always enough.
 */
char *blksnap_format_size(uint64_t bytes, char *buf, size_t len);

/* A range of sectors. */
struct blksnap_extent {
	uint64_t start;
	uint64_t sectors;
};

/* Parse "<start>+<sectors>" (sectors > 0, no overflow of start + sectors). */
int blksnap_parse_extent(struct blksnap_ctx *ctx, const char *s,
			 struct blksnap_extent *ext);

/*---- Status lines ----*/

enum blksnap_origin_state {
	BLKSNAP_ORIGIN_IDLE,	/* "-": no image */
	BLKSNAP_ORIGIN_SNAP,	/* "snap": an image exists */
	BLKSNAP_ORIGIN_MERGE,	/* "merge <done>/<total>": running, or done */
	BLKSNAP_ORIGIN_MERGE_FAILED,	/* "merge_failed <done>/<total>" */
};

/* The INFO status of a blksnap-origin target. */
struct blksnap_origin_status {
	uint64_t tracking_block_sectors;
	uint64_t tracking_blocks;
	char generation_uuid[37];
	unsigned int change_number;	/* 1..255 */
	enum blksnap_origin_state state;
	uint64_t merge_done_chunks;	/* only in the MERGE states */
	uint64_t merge_total_chunks;
};

enum blksnap_image_state {
	BLKSNAP_IMAGE_VALID,
	BLKSNAP_IMAGE_OVERFLOW,
	BLKSNAP_IMAGE_FAILED,
	BLKSNAP_IMAGE_MERGING,	/* merged into its origin: no I/O */
};

/* The INFO status of a blksnap-image target. */
struct blksnap_image_status {
	uint64_t used_sectors;		/* of the whole store pool */
	uint64_t store_sectors;
	uint64_t chunk_sectors;
	uint64_t copied_chunks;		/* of this image */
	enum blksnap_image_state state;
};

/* Parse a status line strictly; -EINVAL with a message on any deviation. */
int blksnap_parse_origin_status(struct blksnap_ctx *ctx, const char *line,
				struct blksnap_origin_status *st);
int blksnap_parse_image_status(struct blksnap_ctx *ctx, const char *line,
			       struct blksnap_image_status *st);
/* "-", "snap", "merge", "merge_failed"; "valid", "overflow", "failed", "merging". */
const char *blksnap_origin_state_name(enum blksnap_origin_state state);
const char *blksnap_image_state_name(enum blksnap_image_state state);

/*---- Origins ----*/

/* An attached device. */
struct blksnap_origin {
	char *name;		/* dm name of the origin */
	char *path;		/* /dev/mapper/<name>: use this device */
	char *real_name;	/* <name>-real, or the disk's kernel name */
	char *real_path;	/* /dev/mapper/<name>-real or /dev/<kname> */
	uint32_t real_major, real_minor;
	bool layered;		/* attach reloaded an existing dm device */
	uint64_t size_sectors;
	bool status_valid;	/* false if the status line was unreadable */
	struct blksnap_origin_status status;
	char *snapshot;		/* snapshot with an image on it, or NULL */
	char *image;		/* that image's dm name, or NULL */
	char *fs_type;		/* filesystem found on the origin, or NULL */
	char *fs_uuid;
};

/*
 * Attach @device (a path, UUID=..., LABEL=... or a dm name): put a
 * blksnap-origin in front of it. @tracking_block_bytes 0 picks the
 * contract's default. On success *@out (if not NULL) describes the origin.
 */
int blksnap_attach(struct blksnap_ctx *ctx, const char *device,
		   uint64_t tracking_block_bytes, struct blksnap_origin **out);
/* Undo attach; refused while a snapshot image exists on the origin. */
int blksnap_detach(struct blksnap_ctx *ctx, const char *device);
/* Describe the origin on @device (the origin, its real device or the disk). */
int blksnap_origin_get(struct blksnap_ctx *ctx, const char *device,
		       struct blksnap_origin **out);
void blksnap_origin_free(struct blksnap_origin *origin);

/*---- Attaching at boot: /etc/blksnap/blksnaptab ----*/

#define BLKSNAP_TAB_DEFAULT "/etc/blksnap/blksnaptab"

/*
 * One line "<device> [<options>]" of a blksnaptab. <device> is a path, a dm
 * name or UUID=, LABEL=, PARTUUID=, PARTLABEL=<value>; <options> is "-" or
 * comma-separated, so far only tracking-block=SIZE. '#' starts a comment.
 */
struct blksnap_tab_entry {
	char *device;
	uint64_t tracking_block_bytes;	/* 0: the default */
	unsigned int line;		/* its line number */
};

struct blksnap_tab {
	size_t n;
	struct blksnap_tab_entry *entries;
};

/*
 * Parse the text of a blksnaptab called @name (for messages; NULL: the
 * default path). Strict: the first bad line fails the whole table with
 * -EINVAL and a message "<name>:<line>: <cause>".
 */
int blksnap_tab_parse(struct blksnap_ctx *ctx, const char *text, const char *name,
		      struct blksnap_tab **out);
/* Read and parse the file @path (NULL: BLKSNAP_TAB_DEFAULT). */
int blksnap_tab_read(struct blksnap_ctx *ctx, const char *path,
		     struct blksnap_tab **out);
void blksnap_tab_free(struct blksnap_tab *tab);

/* What blksnap_attach_tab() did with one entry. */
struct blksnap_tab_result {
	char *device;		/* the entry's <device> */
	unsigned int line;
	char *origin;		/* the origin's path, NULL if the entry failed */
	bool attached;		/* attached now; false: it was attached already */
	char *error;		/* "<file>:<line>: <device>: <cause>" or NULL */
};

/*
 * Attach the devices of the blksnaptab @path (NULL: BLKSNAP_TAB_DEFAULT)
 * with their options: every entry, or with @device only the entries that
 * name it, by path or dm name, or by a tag that it carries (a low-level
 * probe). A device already attached is left as it is. A tag in the
 * all-entries mode must match exactly one device, not counting devices of
 * blksnapctl (images carry their origin's UUID) nor devices another one is
 * stacked on (multipath paths). @device being one of those, or named by no
 * entry, is no error: nothing is done. Every entry is tried; *@results
 * (*@n of them, free with blksnap_tab_results_free) says what happened to
 * each, also when some failed, when the call returns the first failure's
 * error with a message counting the failures. A bad table fails before
 * anything is attached, with no results.
 */
int blksnap_attach_tab(struct blksnap_ctx *ctx, const char *path,
		       const char *device, struct blksnap_tab_result **results,
		       size_t *n);
void blksnap_tab_results_free(struct blksnap_tab_result *results, size_t n);

/*---- Snapshots ----*/

struct blksnap_image {
	char *name;		/* dm name <origin>-<snapshot> */
	char *path;		/* /dev/mapper/<name> */
	char *origin;		/* dm name of the origin */
	char *origin_path;
	uint64_t size_sectors;
	bool status_valid;
	struct blksnap_image_status status;
};

struct blksnap_store_part {
	char *device;		/* /dev/loopN, /dev/sdc, ... */
	char *backing_file;	/* for a loop device: its (unlinked) file */
	uint64_t sectors;
};

struct blksnap_snapshot {
	char *name;
	char *store_name;	/* <name>-store, NULL if the store is gone */
	char *store_path;
	uint64_t store_sectors;	/* size of the store device */
	uint64_t used_sectors;	/* from the images' status, 0 if none */
	size_t n_parts;
	struct blksnap_store_part *parts;
	size_t n_images;
	struct blksnap_image *images;
};

struct blksnap_create_params {
	const char *name;		/* NULL: snap-YYYYMMDD-HHMMSS */
	const char *const *devices;	/* attached devices, >= 1 */
	size_t n_devices;
	const char *const *stores;	/* block devices or directories, >= 1 */
	size_t n_stores;
	uint64_t store_size;		/* bytes for each directory store */
	uint64_t chunk_size;		/* bytes, 0: 4 KiB */
};

/*
 * Take one coherent snapshot of all devices: create the store and the
 * images, suspend every origin with lockfs, resume the images, resume the
 * origins. Any failure removes everything created and resumes every origin.
 * SIGINT, SIGTERM, SIGHUP and SIGQUIT are held during the critical section.
 */
int blksnap_create(struct blksnap_ctx *ctx,
		   const struct blksnap_create_params *params,
		   struct blksnap_snapshot **out);
/* Remove the snapshot's images and its store. */
int blksnap_destroy(struct blksnap_ctx *ctx, const char *name);
/* Describe one snapshot; -ENOENT if there is none of that name. */
int blksnap_snapshot_get(struct blksnap_ctx *ctx, const char *name,
			 struct blksnap_snapshot **out);
void blksnap_snapshot_free(struct blksnap_snapshot *snap);
/*
 * Grow the snapshot's store by a block device or by an unlinked file of
 * @size bytes in a directory (required for a directory, ignored otherwise).
 */
int blksnap_store_add(struct blksnap_ctx *ctx, const char *name,
		      const char *store, uint64_t size);

struct blksnap_monitor_params {
	uint64_t grow_by;		/* bytes per growth, 0: the initial store size */
	uint64_t limit;			/* bytes, largest store size, 0: none */
	const char *store_dir;		/* NULL: the snapshot's last directory */
};

/*
 * Watch the snapshot's images through their dm events (no polling) and
 * grow the store on low water. Returns 0 when the snapshot is destroyed,
 * -ENOSPC on overflow, -EIO when an image failed. One log line per action
 * goes to the context's log function at BLKSNAP_LOG_INFO.
 */
int blksnap_monitor(struct blksnap_ctx *ctx, const char *name,
		    const struct blksnap_monitor_params *params);

/* Called with the merge's progress, summed over the snapshot's origins. */
typedef void (*blksnap_progress_fn)(uint64_t done, uint64_t total, void *data);

/*
 * Roll the snapshot's origins back to its images (image writes included).
 * Refused (-EBUSY, naming the holder) while an origin or an image is open,
 * and for an image that is not valid. Without @wait: starts the merge and
 * returns; calling it again once the merge is complete cleans up. With
 * @wait: reports progress to @fn (may be NULL) about twice a second until
 * the merge ends, then removes the images and the store. A failed merge
 * returns -EIO and leaves everything in place for inspection (see
 * blksnapctl(8)). The origins stay usable throughout.
 */
int blksnap_merge(struct blksnap_ctx *ctx, const char *name, bool wait,
		  blksnap_progress_fn fn, void *data);

struct blksnap_list {
	size_t n_origins;
	struct blksnap_origin *origins;
	size_t n_snapshots;
	struct blksnap_snapshot *snapshots;
};

/* Every origin and snapshot on the system. */
int blksnap_list(struct blksnap_ctx *ctx, struct blksnap_list **out);
void blksnap_list_free(struct blksnap_list *list);

/*---- Change-block tracking ----*/

/*
 * The extents whose snapshot-map value is greater than @since (0..255),
 * sorted and merged. *@st (if not NULL) receives the origin status read
 * before the changes; -ESTALE if the generation changed meanwhile.
 */
int blksnap_cbt_changes(struct blksnap_ctx *ctx, const char *device,
			unsigned int since, struct blksnap_extent **ext,
			size_t *n, struct blksnap_origin_status *st);
/*
 * Write the snapshot CBT map (one byte per tracking block) to @fd.
 * -ENODATA before the first snapshot.
 */
int blksnap_cbt_read(struct blksnap_ctx *ctx, const char *device, int fd,
		     uint64_t *bytes);
/* Mark the sectors of @ext changed in both maps. */
int blksnap_cbt_mark_dirty(struct blksnap_ctx *ctx, const char *device,
			   const struct blksnap_extent *ext, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* BLKSNAP_H */
