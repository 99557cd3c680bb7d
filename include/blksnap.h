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
 *    Errors that mean the same in every call:
 *      -EACCES   not root (device-mapper needs CAP_SYS_ADMIN)
 *      -ENODEV   device-mapper is not available (dm_mod not loaded), or the
 *                device named is not attached
 *      -EOPNOTSUPP  the dm-blksnap module (its targets) is not loaded
 *      -EPROTONOSUPPORT  the loaded targets have a version this library
 *                does not support (see BLKSNAP_TARGET_MAJOR)
 *      -EBUSY    a device is in use; the message names the holder
 *      -ENOMEM   out of memory, and nothing else
 *  - Sizes called "bytes" are bytes; everything else is in 512-byte sectors.
 *  - Strings and arrays returned inside result structures are owned by the
 *    structure and released by its _free() function.
 *
 * ABI (soname libblksnap.so.1, symbol versions LIBBLKSNAP_1.0 and, for
 * what persistent change tracking added, LIBBLKSNAP_1.1)
 *  - A struct with a "size" member is allocated by the caller, who sets
 *    size = sizeof(struct ...) before passing it (the library reads and
 *    writes only that many bytes, so that a later library can add members
 *    at the end). Zero-initialise the rest, e.g.
 *        struct blksnap_create_params p = { .size = sizeof(p), ... };
 *    A size below the first version's is refused with -EINVAL.
 *  - Structs the library allocates and returns in arrays (origins, images,
 *    store parts, snapshots, blksnaptab entries and results) keep their
 *    layout; their "reserved" members are zero and may gain a meaning.
 *  - struct blksnap_extent is a pair of sectors and stays one.
 *  - Opaque handles (context, watch, CBT iterator) change freely.
 *
 * Threads
 *  A context belongs to one thread at a time; threads with a context each
 *  may call the library at the same time. Process-wide, and so shared by
 *  every context and by any other user of libdevmapper in the process:
 *  - libdevmapper's log function. libblksnap installs its own once, at the
 *    first blksnap_ctx_new(), and routes libdevmapper's lines to the
 *    context of the calling thread; a program that has a log function of
 *    its own installed (libcryptsetup, LVM's library) calls
 *    blksnap_keep_dm_log() before its first context, and libblksnap then
 *    leaves libdevmapper's logging alone (its error messages are then less
 *    specific).
 *  - libdevmapper's state (its control descriptor, the pending /dev
 *    node operations): libblksnap serialises its own libdevmapper calls
 *    with one mutex, which does not protect against other libdevmapper
 *    users in the process calling it at the same time.
 *  - blksnap_set_udev_sync().
 *  - Signals: blksnap_create() blocks SIGINT, SIGTERM, SIGHUP and SIGQUIT in
 *    the calling thread while the origins are suspended; in a program with
 *    several threads, block them in the other threads too (and handle them
 *    in one thread), or one of them can end the process in that window.
 *
 * Locking
 *  Calls that change devices (attach, detach, create, destroy, store add,
 *  merge, CBT take and reset, and the monitor's growth) serialise with one
 *  another, also across processes, with flock(2) on files in
 *  /run/lock/blksnap/: one per snapshot ("snapshot-<name>") and one per
 *  origin ("origin-<major>:<minor>" of the device that was attached). A call
 *  takes the snapshot lock first, then the origin locks in ascending
 *  device-number order, and never a second snapshot lock, so that calls
 *  cannot deadlock. A call that finds a lock held waits for it (and says so
 *  at BLKSNAP_LOG_INFO). Calls that only read (list, status, CBT queries)
 *  take no lock.
 *
 * Naming of the device-mapper devices (see blksnapctl(8)):
 *  origin over a dm device <name>:   <name> (reloaded), real device <name>-bsreal
 *                                    (<name>-real when attached by 0.1.0)
 *  origin over a disk <kname>:       blksnap-<kname>
 *  image of origin <o> in snap <s>:  <o>-<s>            /dev/mapper/<o>-<s>
 *  store of snapshot <s>:            <s>-store          (dm-linear over parts)
 *  dm UUIDs: BLKSNAP-ORIGIN-<kname>, BLKSNAP-REAL-<name>,
 *            BLKSNAP-IMAGE-<snap>-<origin>, BLKSNAP-STORE-<snap>
 */
#ifndef BLKSNAP_H
#define BLKSNAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*---- Versions ----*/

/* The version of this header; blksnap_version() gives the library's. */
#define BLKSNAP_VERSION_MAJOR 0
#define BLKSNAP_VERSION_MINOR 2
#define BLKSNAP_VERSION_MICRO 0
#define BLKSNAP_VERSION_STRING "0.2.0"
/* True when this header is at least version a.b.c. */
#define BLKSNAP_VERSION_AT_LEAST(a, b, c)				\
	(BLKSNAP_VERSION_MAJOR > (a) ||					\
	 (BLKSNAP_VERSION_MAJOR == (a) && (BLKSNAP_VERSION_MINOR > (b) ||	\
	  (BLKSNAP_VERSION_MINOR == (b) && BLKSNAP_VERSION_MICRO >= (c)))))

/*
 * The kernel targets this library drives: blksnap-origin and blksnap-image
 * of major version BLKSNAP_TARGET_MAJOR, minor version at least
 * BLKSNAP_TARGET_MINOR_MIN (a later minor version only adds). Anything
 * else is refused with -EPROTONOSUPPORT.
 */
#define BLKSNAP_TARGET_MAJOR 1
#define BLKSNAP_TARGET_MINOR_MIN 1

#define BLKSNAP_SECTOR_SIZE 512

/*---- Context and errors ----*/

struct blksnap_ctx;

enum blksnap_log_level {
	BLKSNAP_LOG_ERROR,
	BLKSNAP_LOG_WARN,
	BLKSNAP_LOG_INFO,
	BLKSNAP_LOG_DEBUG,	/* every device-mapper call, and libdevmapper's own lines */
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
/*
 * Route log lines up to @max_level (BLKSNAP_LOG_INFO by default) to @fn
 * (default: dropped).
 */
void blksnap_set_log(struct blksnap_ctx *ctx, blksnap_log_fn fn, void *data);
void blksnap_set_log_level(struct blksnap_ctx *ctx, enum blksnap_log_level max_level);
/* The library version, e.g. "0.2.0". */
const char *blksnap_version(void);
/*
 * Leave libdevmapper's process-wide log function as it is (see Threads
 * above). Call before the first blksnap_ctx_new().
 */
void blksnap_keep_dm_log(void);
/*
 * Whether device-mapper calls wait for udev to process their events
 * (default: yes, when udev runs). Process-wide. A program that runs inside
 * a udev event (a RUN+= of a udev rule) must turn it off: the event of a
 * device it reloads waits behind the one being processed.
 */
void blksnap_set_udev_sync(bool sync);

/*---- Sizes and extents ----*/

/*
 * Parse a size: a decimal number of bytes, possibly with a fraction
 * ("1.5G"), with an optional binary suffix K, M, G, T, P or E
 * (case-insensitive), optionally followed by "iB" or "B"
 * ("4K" = "4KiB" = "4KB" = 4096, as in LVM), or a bare "B". The result must
 * be a whole number of bytes. Strict: no sign, blanks or trailing garbage.
 * -EINVAL on bad input, -ERANGE on overflow.
 */
int blksnap_parse_size(struct blksnap_ctx *ctx, const char *s, uint64_t *bytes);

/*
 * Format @bytes for people ("512 B", "64 MiB", "1.5 GiB") into @buf and
 * return @buf. 16 bytes are always enough.
 */
char *blksnap_format_size(uint64_t bytes, char *buf, size_t len);

/* What a size is for, for blksnap_check_size(). */
enum blksnap_size_use {
	BLKSNAP_SIZE_CHUNK,		/* a power of two, 4 KiB .. 64 MiB */
	BLKSNAP_SIZE_TRACKING_BLOCK,	/* a power of two, >= 4 KiB */
	BLKSNAP_SIZE_STORE,		/* a multiple of 512 bytes, >= 4 KiB */
	BLKSNAP_SIZE_GROW,		/* a multiple of 4 KiB */
};

/*
 * Check @bytes for @use before any device is touched; -EINVAL with a
 * message in bytes ("3 KiB is not a power of two ...").
 */
int blksnap_check_size(struct blksnap_ctx *ctx, enum blksnap_size_use use,
		       uint64_t bytes);

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

/*
 * The INFO status of a blksnap-origin target, and the CBT numbers: each
 * snapshot (or CBT take) of a generation gets the current change number as
 * its snapshot number, and the change number goes up by one. So
 * change_number is the number the *next* snapshot will get, and
 * snapshot_number (change_number - 1) the number of the last one, 0 if
 * there was none in this generation. `cbt changes --since N` lists what
 * changed after snapshot N up to the last snapshot.
 */
struct blksnap_origin_status {
	size_t size;			/* sizeof(struct blksnap_origin_status) */
	uint64_t tracking_block_sectors;
	uint64_t tracking_blocks;
	char generation_uuid[37];
	unsigned int change_number;	/* 1..255: the next snapshot's number */
	unsigned int snapshot_number;	/* the last snapshot's number, 0: none */
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
	size_t size;			/* sizeof(struct blksnap_image_status) */
	uint64_t used_sectors;		/* of the whole store pool */
	uint64_t store_sectors;
	uint64_t chunk_sectors;
	uint64_t copied_chunks;		/* of this image */
	enum blksnap_image_state state;
};

/*
 * Parse a status line into *@st (whose size the caller set). The fields
 * of the contract are checked strictly (-EINVAL with a message on any
 * deviation); fields after them, which later versions of the targets may
 * add, are ignored, as is dm's convention.
 */
int blksnap_parse_origin_status(struct blksnap_ctx *ctx, const char *line,
				struct blksnap_origin_status *st);
int blksnap_parse_image_status(struct blksnap_ctx *ctx, const char *line,
			       struct blksnap_image_status *st);
/* "-", "snap", "merge", "merge_failed"; "valid", "overflow", "failed", "merging". */
const char *blksnap_origin_state_name(enum blksnap_origin_state state);

/*
 * Persistent change tracking: an origin attached with a CBT metadata
 * device keeps its maps there, so that they survive reboots and crashes.
 * Its status line has two more words, "pcbt=<state> why=<reason>".
 */
enum blksnap_persistence {
	BLKSNAP_PERSIST_NONE,		/* no metadata device: the maps are in memory */
	BLKSNAP_PERSIST_OK,		/* "pcbt=ok" */
	BLKSNAP_PERSIST_FAILED,		/* "pcbt=failed": a metadata write failed;
					   the next load starts a new generation */
	BLKSNAP_PERSIST_DETACHED,	/* "pcbt=detached": cbt_detach was sent */
};
/* "none", "ok", "failed", "detached" (LIBBLKSNAP_1.1). */
const char *blksnap_persistence_name(enum blksnap_persistence p);
const char *blksnap_image_state_name(enum blksnap_image_state state);

/*---- Origins ----*/

/* An attached device. */
struct blksnap_origin {
	char *name;		/* dm name of the origin */
	char *path;		/* /dev/mapper/<name>: use this device */
	char *real_name;	/* <name>-bsreal, or the disk's kernel name */
	char *real_path;	/* /dev/mapper/<name>-bsreal or /dev/<kname> */
	uint32_t real_major, real_minor;
	bool layered;		/* attach reloaded an existing dm device */
	uint64_t size_sectors;
	bool status_valid;	/* false if the status line was unreadable */
	struct blksnap_origin_status status;
	char *snapshot;		/* snapshot with an image on it, or NULL */
	char *image;		/* that image's dm name, or NULL */
	char *fs_type;		/* filesystem found on the origin, or NULL */
	char *fs_uuid;
	union {
		/*
		 * Persistent change tracking (LIBBLKSNAP_1.1, in what were
		 * reserved words: a 1.0 library leaves them zero, which reads
		 * as NONE). new_generation_reason is "" when the generation
		 * continued from the metadata device (or without one), else
		 * the kernel's word for why a new one started: "new",
		 * "device", "checksum", "detached", "replaced", "failed" or
		 * another short word (treat it as an opaque string).
		 */
		struct {
			uint32_t persistence;	/* enum blksnap_persistence */
			char new_generation_reason[28];
		} pcbt;
		uint64_t reserved[4];
	};
};

/*
 * Attach @device (a path, UUID=..., LABEL=... or a dm name): put a
 * blksnap-origin in front of it. @tracking_block_bytes 0 picks the
 * contract's default. On success *@out (if not NULL) describes the origin.
 * Attaching a device by hand also lifts a detach's hold on the blksnaptab
 * (see blksnap_detach()).
 */
int blksnap_attach(struct blksnap_ctx *ctx, const char *device,
		   uint64_t tracking_block_bytes, struct blksnap_origin **out);

/* Flags of blksnap_attach_options. */
#define BLKSNAP_ATTACH_FORCE 0x1	/* see cbt_metadata below */

/* The options of blksnap_attach_opts() (LIBBLKSNAP_1.1). */
struct blksnap_attach_options {
	size_t size;			/* sizeof(struct blksnap_attach_options) */
	unsigned int flags;		/* BLKSNAP_ATTACH_FORCE */
	uint64_t tracking_block_bytes;	/* 0: the default, or the metadata's */
	/*
	 * Persistent change tracking: a block device (path, UUID=, LABEL=
	 * ..., or a dm name) for the CBT maps, NULL: in memory only. It must
	 * not be, overlap or be stacked on the device attached (nor be a
	 * loop device over a file on it), be in use, or be another origin's
	 * metadata. Without valid metadata on it, it is formatted (refused
	 * with -EEXIST when it carries a signature, unless
	 * BLKSNAP_ATTACH_FORCE); metadata of this device for another size or
	 * tracking block size is formatted again (a new generation); metadata
	 * of another device is refused with -EEXIST unless
	 * BLKSNAP_ATTACH_FORCE. Too small: -ENOSPC, naming the size needed.
	 * Or a directory (LIBBLKSNAP_1.1, 0.2.0): the metadata is the file
	 * <dir>/blksnap-cbt-<id>.meta (a '/' of the id as '_'), created or
	 * grown and fully allocated, behind a new autoclear loop device that
	 * goes with the origin. The directory must be writable by its owner
	 * only (the caller; else -EPERM), on a block device that is not and
	 * does not overlap the device attached (-EINVAL; -ENODEV when no block
	 * device holds it, as for tmpfs); the file a regular file of the
	 * caller's with one link (-EPERM), in no other loop device (-EBUSY).
	 * blksnap_attach_tab() uses such a file, never creates it (-ENOENT).
	 */
	const char *cbt_metadata;
	/*
	 * The device's identity kept in the metadata (at most 127 printable
	 * characters, no blanks), NULL: the dm UUID of a dm device, else its
	 * /dev/disk/by-id name (wwn-, then nvme-eui./nvme-uuid., then any
	 * other); -EINVAL when there is none.
	 */
	const char *cbt_metadata_id;
};

/*
 * blksnap_attach() with options (@opts NULL: the defaults). Unknown flags,
 * and a larger struct (a later header) with a member set that this
 * library does not know, are refused with -EINVAL.
 */
int blksnap_attach_opts(struct blksnap_ctx *ctx, const char *device,
			const struct blksnap_attach_options *opts,
			struct blksnap_origin **out);

/*
 * Write the CBT maps of the origin on @device to its metadata device and
 * mark them clean: what a shutdown does before device-mapper is torn down
 * (blksnap-cbt-close.service). Tracking goes on; a later write reopens the
 * metadata. -EINVAL for an origin without a metadata device.
 * (LIBBLKSNAP_1.1)
 */
int blksnap_cbt_close(struct blksnap_ctx *ctx, const char *device);
/*
 * blksnap_cbt_close() for every origin with a metadata device; *@closed
 * (if not NULL) their number. Every origin is tried; the first failure is
 * returned, with a message counting the failures. (LIBBLKSNAP_1.1)
 */
int blksnap_cbt_close_all(struct blksnap_ctx *ctx, size_t *closed);
/*
 * Undo attach; refused while a snapshot image exists on the origin. An
 * origin with a CBT metadata device is sent cbt_detach first, so that the
 * next attach starts a new generation: the device is written untracked
 * meanwhile. A
 * detached dm device that the blksnaptab lists is not attached again by
 * blksnap_attach_tab() for that device alone (what the udev rule runs)
 * until it is attached by hand or the system restarts: the note is kept
 * in /run/blksnap/detached/ (by dm UUID, else dm name; a plain disk's
 * detach sends no event on the disk and needs none).
 */
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
 * comma-separated: tracking-block=SIZE, cbt-metadata=DEV (persistent change
 * tracking, see blksnap_attach_options) and cbt-metadata-id=ID (only with
 * cbt-metadata). '#' starts a comment.
 */
struct blksnap_tab_entry {
	char *device;
	uint64_t tracking_block_bytes;	/* 0: the default */
	unsigned int line;		/* its line number */
	union {
		/* cbt-metadata=DEV and cbt-metadata-id=ID, or NULL (LIBBLKSNAP_1.1) */
		struct {
			char *cbt_metadata;
			char *cbt_metadata_id;
		} pcbt;
		uint64_t reserved[2];
	};
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
	uint64_t reserved[2];
};

/*
 * Attach the devices of the blksnaptab @path (NULL: BLKSNAP_TAB_DEFAULT)
 * with their options: every entry, or with @device only the entries that
 * name it, by path or dm name, or by a tag that it carries (a low-level
 * probe). A device already attached is left as it is. A tag in the
 * all-entries mode must match exactly one device, not counting devices of
 * blksnapctl (images carry their origin's UUID) nor devices another one is
 * stacked on (multipath paths). @device being one of those, named by no
 * entry, or detached by hand since the system started (see
 * blksnap_detach()), is no error: nothing is done. Every entry is tried;
 * *@results (*@n of them, free with blksnap_tab_results_free) says what
 * happened to each, also when some failed, when the call returns the first
 * failure's error with a message counting the failures. A bad table fails
 * before anything is attached, with no results.
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
	/*
	 * The snapshot's CBT numbers on its origin: record both with a backup
	 * made from this image, and pass them to blksnap_cbt_changes() at the
	 * next one. snapshot_number 0 (and an empty UUID): unknown, e.g. the
	 * origin's CBT was reset since.
	 */
	unsigned int snapshot_number;
	char generation_uuid[37];
	uint64_t reserved[4];
};

struct blksnap_store_part {
	char *device;		/* /dev/loopN, /dev/sdc, ... */
	char *backing_file;	/* for a loop device: its (unlinked) file */
	uint64_t sectors;
	uint64_t reserved[2];
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
	uint64_t reserved[4];
};

/* Flags of blksnap_create_params and blksnap_store_add(). */
#define BLKSNAP_STORE_FORCE 0x1	/* use a store device that carries a signature */

struct blksnap_create_params {
	size_t size;			/* sizeof(struct blksnap_create_params) */
	unsigned int flags;		/* BLKSNAP_STORE_FORCE */
	const char *name;		/* NULL: snap-YYYYMMDD-HHMMSS */
	const char *const *devices;	/* attached devices, >= 1 */
	size_t n_devices;
	const char *const *stores;	/* block devices or directories, >= 1 */
	size_t n_stores;
	uint64_t store_size;		/* bytes for each directory store */
	uint64_t chunk_size;		/* bytes, 0: per device, see below */
};

/*
 * Take one coherent snapshot of all devices: create the store and the
 * images, suspend every origin with lockfs, resume the images, resume the
 * origins. Any failure removes everything created and resumes every origin.
 * SIGINT, SIGTERM, SIGHUP and SIGQUIT are held during the critical section.
 * A store block device that carries a file system, partition table, RAID
 * or LVM signature (libblkid) is refused with -EEXIST unless
 * BLKSNAP_STORE_FORCE; one that is in use, too small, or is (or is stacked
 * on) a snapshotted device is refused whatever the flags. On success *@out
 * (if not NULL) holds the snapshot, its images in the order of the
 * devices, each with its snapshot number and generation UUID.
 * chunk_size 0 gives each device 4 KiB chunks, or the smallest power of two
 * that makes at most 2^28 chunks (devices over 1 TiB); a chunk_size that
 * makes more than 2^31 chunks for a device is refused with -EINVAL.
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
 * @bytes in a directory (required for a directory, ignored otherwise).
 * @flags: BLKSNAP_STORE_FORCE, as for blksnap_create().
 */
int blksnap_store_add(struct blksnap_ctx *ctx, const char *name,
		      const char *store, uint64_t bytes, unsigned int flags);

/*---- Events ----*/

enum blksnap_event_type {
	BLKSNAP_EVENT_LOW_WATER,	/* the store's free space fell below low water */
	BLKSNAP_EVENT_OVERFLOW,		/* an image overflowed: the store ran out */
	BLKSNAP_EVENT_FAILED,		/* an image failed (I/O error, origin gone) */
	BLKSNAP_EVENT_GONE,		/* the snapshot was destroyed (or merged) */
};

struct blksnap_event {
	size_t size;			/* sizeof(struct blksnap_event) */
	enum blksnap_event_type type;
	char image[128];		/* the image concerned; "" for LOW_WATER, GONE */
	uint64_t used_sectors;		/* the store, when the event was seen */
	uint64_t store_sectors;
	uint64_t low_water_sectors;	/* the threshold in use */
};

struct blksnap_watch;

/*
 * Watch snapshot @name for events, through device-mapper's event poll (no
 * threads, no polling of the status). Low water is each image's low_water
 * table option (blksnap_create() sets a quarter of the store's size), or a
 * quarter of the store's size when the watch starts for images made
 * without it.
 */
int blksnap_watch_new(struct blksnap_ctx *ctx, const char *name,
		      struct blksnap_watch **w);
/*
 * A descriptor that turns readable (poll(2), POLLIN) when an event may be
 * pending: call blksnap_watch_next() with a timeout of 0 then.
 */
int blksnap_watch_fd(const struct blksnap_watch *w);
/*
 * The next event, waiting up to @timeout_ms (-1: for ever, 0: not at all).
 * 0 with *@ev filled; -ETIMEDOUT when none came in time; -EINTR when a
 * signal arrived. LOW_WATER is reported once each time the free space
 * falls below low water (again after it rose above it), OVERFLOW and FAILED
 * once per image, GONE once, after which every call returns -ENOENT.
 */
int blksnap_watch_next(struct blksnap_ctx *ctx, struct blksnap_watch *w,
		       int timeout_ms, struct blksnap_event *ev);
void blksnap_watch_free(struct blksnap_watch *w);

struct blksnap_monitor_params {
	size_t size;			/* sizeof(struct blksnap_monitor_params) */
	uint64_t grow_by;		/* bytes per growth, 0: the initial store size */
	uint64_t limit;			/* bytes, largest store size, 0: none */
	const char *store_dir;		/* NULL: the snapshot's last directory */
	/*
	 * A descriptor that ends the monitor (-ECANCELED) when it becomes
	 * readable, e.g. a pipe written to from a signal handler; -1: none.
	 */
	int cancel_fd;
};

/*
 * Watch the snapshot (blksnap_watch_next()) and grow the store on low water
 * with blksnap_store_add(). Returns 0 when the snapshot is destroyed,
 * -ENOSPC on overflow, -EIO when an image failed, -ECANCELED when
 * @params->cancel_fd became readable. One log line per action goes to the
 * context's log function at BLKSNAP_LOG_INFO.
 */
int blksnap_monitor(struct blksnap_ctx *ctx, const char *name,
		    const struct blksnap_monitor_params *params);

/*---- Merge and listing ----*/

/* Called with the merge's progress, summed over the snapshot's origins. */
typedef void (*blksnap_progress_fn)(uint64_t done, uint64_t total, void *data);

/*
 * Roll the snapshot's origins back to its images (image writes included).
 * Refused (-EBUSY, naming the holder) while an origin or an image is open,
 * and for an image that is not valid. Without @wait: starts the merge and
 * returns; calling it again once the merge is complete cleans up. With
 * @wait: reports progress to @fn (may be NULL) four times a second until
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
 * The extents whose snapshot-map value is greater than @since, sorted and
 * merged: what changed after snapshot @since up to the origin's last
 * snapshot. Refused with -EINVAL when @since cannot be right: at or past
 * the last snapshot (the list would be empty by construction), and with
 * -ESTALE when @generation_uuid (NULL: not checked) is not the origin's
 * generation (a full backup is needed). -ENODATA when the generation has
 * no snapshot yet. *@st (if not NULL, its size set) receives the origin
 * status the extents belong to; -ESTALE if the generation changed while
 * reading.
 */
int blksnap_cbt_changes(struct blksnap_ctx *ctx, const char *device,
			const char *generation_uuid, unsigned int since,
			struct blksnap_extent **ext, size_t *n,
			struct blksnap_origin_status *st);

/*
 * The same extents piece by piece, with memory bounded by the piece: the
 * iterator reads the snapshot map in pages and merges runs across them.
 * Same refusals as blksnap_cbt_changes() (at _new). Each _next fills up to
 * @max extents and returns 0 with *@n of them, *@n == 0 at the end; the
 * last call also checks that the map is still the one the first call read
 * (-ESTALE otherwise: a take or a reset came in between, read again).
 */
struct blksnap_cbt_iter;

int blksnap_cbt_iter_new(struct blksnap_ctx *ctx, const char *device,
			 const char *generation_uuid, unsigned int since,
			 struct blksnap_cbt_iter **it);
/* The origin status read by _new: generation, numbers, block size. */
const struct blksnap_origin_status *blksnap_cbt_iter_status(const struct blksnap_cbt_iter *it);
int blksnap_cbt_iter_next(struct blksnap_ctx *ctx, struct blksnap_cbt_iter *it,
			  struct blksnap_extent *ext, size_t max, size_t *n);
void blksnap_cbt_iter_free(struct blksnap_cbt_iter *it);

/*
 * Write the snapshot CBT map (one byte per tracking block) to @fd.
 * -ENODATA before the first snapshot; -ESTALE when the map changed (a take
 * or a reset) while it was read. *@st (if not NULL, its size set) receives
 * the origin status the map belongs to.
 */
int blksnap_cbt_read(struct blksnap_ctx *ctx, const char *device, int fd,
		     uint64_t *bytes, struct blksnap_origin_status *st);
/* Mark the sectors of @ext changed in both maps. */
int blksnap_cbt_mark_dirty(struct blksnap_ctx *ctx, const char *device,
			   const struct blksnap_extent *ext, size_t n);
/*
 * A take in the CBT sense, without a snapshot image (for tools that take
 * their snapshots otherwise): the snapshot map becomes the active map and
 * *@number (if not NULL) the take's snapshot number. -EBUSY while an image
 * exists (its snapshot is the take).
 */
int blksnap_cbt_take(struct blksnap_ctx *ctx, const char *device,
		     unsigned int *number);
/* Start a new CBT generation: new UUID, maps cleared, change number 1. */
int blksnap_cbt_reset(struct blksnap_ctx *ctx, const char *device);

#ifdef __cplusplus
}
#endif

#endif /* BLKSNAP_H */
