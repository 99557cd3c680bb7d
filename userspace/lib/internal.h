/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libblksnap private interfaces: the context, error reporting and the pure
 * helpers (sizes, status lines, tables, extents, names). Nothing here talks
 * to the kernel, so the unit tests use these directly. All declarations are
 * hidden from the shared library's symbol table.
 */
#ifndef BLKSNAP_INTERNAL_H
#define BLKSNAP_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "blksnap.h"

#pragma GCC visibility push(hidden)

#define BS_ERRMSG_LEN 512

struct blksnap_ctx {
	char errmsg[BS_ERRMSG_LEN];
	blksnap_log_fn log_fn;
	void *log_data;
	enum blksnap_log_level log_level;
	bool targets_checked;		/* the targets' versions are fine */
};

#define bs_printf(a, b) __attribute__((format(printf, a, b)))

/*---- Errors and logging (context.c) ----*/

/*
 * Record a message in @ctx and return -@err (@err is a positive errno).
 * @ctx may be NULL.
 */
int bs_err(struct blksnap_ctx *ctx, int err, const char *fmt, ...) bs_printf(3, 4);
/* Prefix the recorded message with "<prefix>: " and return @ret. */
int bs_err_prefix(struct blksnap_ctx *ctx, int ret, const char *fmt, ...) bs_printf(3, 4);
void bs_log(struct blksnap_ctx *ctx, enum blksnap_log_level level,
	    const char *fmt, ...) bs_printf(3, 4);
/* Whether a line at @level would reach the log function. */
bool bs_log_on(const struct blksnap_ctx *ctx, enum blksnap_log_level level);

/*---- Caller-allocated structs with a size member (context.c) ----*/

/*
 * Copy the caller's struct @src, whose first member is its size, into
 * @dst (@dst_size bytes, zeroed beyond what the caller has). -EINVAL when
 * the caller's size is below @min_size (the first version's).
 */
int bs_copy_in(struct blksnap_ctx *ctx, void *dst, size_t dst_size,
	       const void *src, size_t min_size, const char *what);
/* Copy @src (@src_size bytes) to the caller's @dst, as far as its size says. */
int bs_copy_out(struct blksnap_ctx *ctx, void *dst, const void *src,
		size_t src_size, size_t min_size, const char *what);

/*---- Strings (context.c) ----*/

/* asprintf() that returns NULL on failure. */
char *bs_strdupf(const char *fmt, ...) bs_printf(1, 2);
/* strdup() of a possibly NULL string; *@ok is cleared when out of memory. */
char *bs_strdup_opt(const char *s, bool *ok);
/* Split @s at single spaces into a NULL-terminated vector; -EINVAL on
 * empty words (double, leading or trailing blanks). Free with bs_strv_free. */
int bs_split_words(const char *s, char ***words, size_t *n);
void bs_strv_free(char **v);

/*---- Numbers (units.c) ----*/

/* A decimal uint64 with nothing around it; -EINVAL or -ERANGE. */
int bs_parse_u64(const char *s, uint64_t *v);
bool bs_is_pow2(uint64_t v);
/* "M:m" or a device number for tables. */
int bs_parse_devno(const char *s, uint32_t *major, uint32_t *minor);

/*---- Status lines (status.c) ----*/

/* The persistence words of an origin's INFO line. */
struct bs_origin_pcbt {
	enum blksnap_persistence state;	/* NONE: no such words */
	char why[28];			/* "" for "why=-" */
};
/* blksnap_parse_origin_status(), and the pcbt words into @pcbt (may be NULL). */
int bs_parse_origin_info(struct blksnap_ctx *ctx, const char *line,
			 struct blksnap_origin_status *st, struct bs_origin_pcbt *pcbt);

/*---- Tables (table.c) ----*/

#define BS_TARGET_ORIGIN "blksnap-origin"
#define BS_TARGET_IMAGE "blksnap-image"
#define BS_TARGET_LINEAR "linear"

#define BS_TRACKING_MIN 8ULL
#define BS_TRACKING_DEFAULT_MIN 128ULL
#define BS_TRACKING_MAX_BLOCKS 2097152ULL
#define BS_CHUNK_MIN 8ULL
#define BS_CHUNK_MAX 131072ULL
/* The kernel's limit of chunks per image, and the default's: 32 MiB of bitmap. */
#define BS_CHUNKS_MAX (1ULL << 31)
#define BS_CHUNKS_DEFAULT_MAX (1ULL << 28)

struct bs_target {
	uint64_t start;
	uint64_t len;
	char *type;
	char *params;
};

void bs_targets_free(struct bs_target *t, size_t n);

/* Whether a blksnap target of version @v is one this library drives. */
bool bs_target_version_ok(const uint32_t v[3]);

/* The contract's default tracking block for a device of @sectors. */
uint64_t bs_default_tracking_block(uint64_t sectors);
int bs_check_tracking_block(struct blksnap_ctx *ctx, uint64_t sectors,
			    uint64_t dev_sectors);
int bs_check_chunk(struct blksnap_ctx *ctx, uint64_t sectors);
/*
 * The default chunk for a device of @dev_sectors: 4 KiB, or the smallest
 * power of two that gives at most BS_CHUNKS_DEFAULT_MAX chunks (4 KiB up to
 * 1 TiB, 256 KiB at 64 TiB), 64 MiB at most.
 */
uint64_t bs_default_chunk(uint64_t dev_sectors);
/* A chunk of @sectors on a device of @dev_sectors: at most 2^31 chunks. */
int bs_check_chunk_count(struct blksnap_ctx *ctx, uint64_t sectors,
			 uint64_t dev_sectors);

/* "<dev> [2 tracking_block_sectors N]"; @tracking 0: no option. */
int bs_origin_params(struct blksnap_ctx *ctx, const char *dev,
		     uint64_t tracking, char **params);

/* The longest metadata_id the target takes (the superblock has a NUL). */
#define BS_META_ID_MAX 127

/* The options of an origin's table. */
struct bs_origin_opts {
	uint64_t tracking;		/* sectors, 0: not given */
	const char *metadata;		/* the CBT metadata device ("M:m"), NULL: none */
	const char *metadata_id;	/* with @metadata, and only with it */
};
/*
 * "<dev> [<#opts> tracking_block_sectors N [metadata M:m metadata_id ID]]":
 * a metadata device needs its id and an explicit tracking block.
 */
int bs_origin_params_opts(struct blksnap_ctx *ctx, const char *dev,
			  const struct bs_origin_opts *o, char **params);
/* 1..127 printable ASCII characters, no blank, no backslash: one table word. */
int bs_check_metadata_id(struct blksnap_ctx *ctx, const char *id);
/* "<real> <store> <chunk> [2 low_water N]"; @low_water 0: no option. */
int bs_image_params(struct blksnap_ctx *ctx, const char *real,
		    const char *store, uint64_t chunk, uint64_t low_water,
		    char **params);

struct bs_origin_table {
	uint32_t major, minor;		/* the real device */
	uint64_t tracking;		/* 0 if not given */
	bool has_metadata;		/* persistent CBT: the two below */
	uint32_t meta_major, meta_minor;
	char metadata_id[BS_META_ID_MAX + 1];
};
int bs_parse_origin_params(struct blksnap_ctx *ctx, const char *params,
			   struct bs_origin_table *t);

struct bs_image_table {
	uint32_t real_major, real_minor;
	uint32_t store_major, store_minor;
	uint64_t chunk;
	uint64_t low_water;		/* 0 if not given */
};
int bs_parse_image_params(struct blksnap_ctx *ctx, const char *params,
			  struct bs_image_table *t);

/* A part of a store: a device from sector @offset on. */
struct bs_segment {
	uint32_t major, minor;
	uint64_t sectors;
	uint64_t offset;
};

/*
 * A block device used as a store part starts with a sector that says so
 * (probe.c): its copied chunks begin after BS_STORE_RESERVED sectors, and
 * the next snapshot recognises a former store (its copied data may look
 * like any file system) instead of refusing it for its signatures.
 */
#define BS_STORE_RESERVED 8ULL
#define BS_STORE_MAGIC "BLKSNAP-STORE-PART-1\n"
/*
 * Targets of a dm-linear concatenation of @segs, appended to @t (which
 * has *@n entries and may be NULL). Starts after the last existing target.
 */
int bs_linear_append(struct blksnap_ctx *ctx, struct bs_target **t, size_t *n,
		     const struct bs_segment *segs, size_t nsegs);
/* The device and offset of a "linear" target's params "M:m <offset>". */
int bs_parse_linear_params(struct blksnap_ctx *ctx, const char *params,
			   uint32_t *major, uint32_t *minor, uint64_t *offset);

/*---- Names (table.c) ----*/

#define BS_DM_NAME_MAX 127
#define BS_DM_UUID_MAX 128
#define BS_SNAP_NAME_MAX 64

#define BS_UUID_ORIGIN "BLKSNAP-ORIGIN-"
#define BS_UUID_REAL "BLKSNAP-REAL-"
/* The dm name of the real device under a layered origin <name>: <name>-bsreal. */
#define BS_REAL_SUFFIX "-bsreal"
#define BS_UUID_IMAGE "BLKSNAP-IMAGE-"
#define BS_UUID_STORE "BLKSNAP-STORE-"

/* Letters, digits and "._+-", not starting with '-' or '.', <= 64 chars. */
int bs_check_snapshot_name(struct blksnap_ctx *ctx, const char *name);
/* snap-YYYYMMDD-HHMMSS for @t in local time. */
int bs_default_snapshot_name(long long t, char *buf, size_t len);
/* The dm name and UUID of an image; -ENAMETOOLONG if they do not fit. */
int bs_image_names(struct blksnap_ctx *ctx, const char *origin,
		   const char *snap, char **name, char **uuid);
/* Whether @s starts with @prefix; returns the rest or NULL. */
const char *bs_prefix(const char *s, const char *prefix);

/*---- Extents (extents.c) ----*/

/* Parse the reply of cbt_changes: "<start>+<len>" separated by spaces. */
int bs_parse_extent_list(struct blksnap_ctx *ctx, const char *s,
			 struct blksnap_extent **ext, size_t *n);
/* Sort by start and merge overlapping or adjacent extents in place. */
size_t bs_extents_merge(struct blksnap_extent *ext, size_t n);

/*---- CBT maps (extents.c) ----*/

/* Decode exactly @len bytes of lowercase hex from @hex into @out. */
int bs_hex_decode(const char *hex, uint8_t *out, size_t len);

/*
 * The extents of a snapshot map fed in pieces: runs of blocks whose value
 * is > since, merged across pieces, in sectors clipped to the device, as
 * the kernel's cbt_changes lists them.
 */
struct bs_map_scan {
	unsigned int since;
	uint64_t block_sectors;
	uint64_t dev_sectors;
	uint64_t next_block;		/* block of the next byte fed */
	bool in_run;
	uint64_t run_start;
};

void bs_map_scan_init(struct bs_map_scan *s, unsigned int since,
		      uint64_t block_sectors, uint64_t dev_sectors);
/*
 * Feed @len bytes of the map; completed extents go to @out (*@n of @max
 * used). Returns the bytes consumed: fewer than @len when @out is full
 * (feed the rest again after emptying it).
 */
size_t bs_map_scan_feed(struct bs_map_scan *s, const uint8_t *map, size_t len,
			struct blksnap_extent *out, size_t max, size_t *n);
/* The end of the map: emit the open run; false when @out is full. */
bool bs_map_scan_end(struct bs_map_scan *s, struct blksnap_extent *out,
		     size_t max, size_t *n);

#pragma GCC visibility pop

#endif /* BLKSNAP_INTERNAL_H */
