// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libblksnap: table parameter strings of blksnap-origin, blksnap-image and
 * dm-linear, their validation, and the names of the dm devices.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/*---- Validation ----*/

bool bs_target_version_ok(const uint32_t v[3])
{
	/* A later minor version only adds (options, trailing status fields). */
	return v[0] == BLKSNAP_TARGET_MAJOR && v[1] >= BLKSNAP_TARGET_MINOR_MIN;
}

/*
 * The smallest power of two from @min up to @max that divides a device of
 * @dev_sectors into at most @count units (@max if none does).
 */
static uint64_t unit_for(uint64_t dev_sectors, uint64_t min, uint64_t max,
			 uint64_t count)
{
	uint64_t unit = min;

	while (unit < max && (dev_sectors + unit - 1) / unit > count)
		unit <<= 1;
	return unit;
}

uint64_t bs_default_tracking_block(uint64_t sectors)
{
	/* The smallest power of two >= 128 that keeps <= 2^21 blocks. */
	return unit_for(sectors, BS_TRACKING_DEFAULT_MIN, UINT64_C(1) << 62,
			BS_TRACKING_MAX_BLOCKS);
}

int bs_check_tracking_block(struct blksnap_ctx *ctx, uint64_t sectors,
			    uint64_t dev_sectors)
{
	char a[16], b[16], c[16];

	if (!bs_is_pow2(sectors) || sectors < BS_TRACKING_MIN)
		return blksnap_check_size(ctx, BLKSNAP_SIZE_TRACKING_BLOCK, sectors * BLKSNAP_SECTOR_SIZE);
	if (dev_sectors && (dev_sectors + sectors - 1) / sectors > BS_TRACKING_MAX_BLOCKS) {
		uint64_t min = unit_for(dev_sectors, BS_TRACKING_MIN, UINT64_C(1) << 62,
					BS_TRACKING_MAX_BLOCKS);

		return bs_err(ctx, EINVAL, "tracking block %s gives more than %llu blocks for a device of %s: use at least %s",
			      blksnap_format_size(sectors * BLKSNAP_SECTOR_SIZE, a, sizeof(a)),
			      BS_TRACKING_MAX_BLOCKS,
			      blksnap_format_size(dev_sectors * BLKSNAP_SECTOR_SIZE, b, sizeof(b)),
			      blksnap_format_size(min * BLKSNAP_SECTOR_SIZE, c, sizeof(c)));
	}
	return 0;
}

int bs_check_chunk(struct blksnap_ctx *ctx, uint64_t sectors)
{
	if (sectors > UINT64_MAX / BLKSNAP_SECTOR_SIZE)
		return bs_err(ctx, EINVAL, "chunk of %llu sectors: must be a power of two from 4 KiB to 64 MiB",
			      (unsigned long long)sectors);
	return blksnap_check_size(ctx, BLKSNAP_SIZE_CHUNK, sectors * BLKSNAP_SECTOR_SIZE);
}

uint64_t bs_default_chunk(uint64_t dev_sectors)
{
	return unit_for(dev_sectors, BS_CHUNK_MIN, BS_CHUNK_MAX, BS_CHUNKS_DEFAULT_MAX);
}

int bs_check_chunk_count(struct blksnap_ctx *ctx, uint64_t sectors,
			 uint64_t dev_sectors)
{
	char a[32], b[32], c[32];
	uint64_t min = unit_for(dev_sectors, BS_CHUNK_MIN, BS_CHUNK_MAX, BS_CHUNKS_MAX);

	if (!sectors || (dev_sectors + sectors - 1) / sectors <= BS_CHUNKS_MAX)
		return 0;
	return bs_err(ctx, EINVAL, "chunk %s gives more than %llu chunks for a device of %s: use at least %s, or leave --chunk out",
		      blksnap_format_size(sectors * BLKSNAP_SECTOR_SIZE, a, sizeof(a)),
		      BS_CHUNKS_MAX,
		      blksnap_format_size(dev_sectors * BLKSNAP_SECTOR_SIZE, b, sizeof(b)),
		      blksnap_format_size(min * BLKSNAP_SECTOR_SIZE, c, sizeof(c)));
}

static bool table_dev_ok(const char *dev)
{
	return dev && *dev && !strpbrk(dev, " \t\n");
}

/*---- Construction ----*/

int bs_check_metadata_id(struct blksnap_ctx *ctx, const char *id)
{
	size_t len = id ? strlen(id) : 0;

	if (!len)
		return bs_err(ctx, EINVAL, "empty CBT metadata id");
	if (len > BS_META_ID_MAX)
		return bs_err(ctx, EINVAL, "CBT metadata id '%.40s...' is longer than %d characters",
			      id, BS_META_ID_MAX);
	/* One table word: no blanks, and nothing dm's word splitter would unescape. */
	for (const char *p = id; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f || *p == '\\')
			return bs_err(ctx, EINVAL, "CBT metadata id '%s' contains a blank, a backslash or a non-ASCII character",
				      id);
	return 0;
}

int bs_origin_params_opts(struct blksnap_ctx *ctx, const char *dev,
			  const struct bs_origin_opts *o, char **params)
{
	int r;

	*params = NULL;
	if (!table_dev_ok(dev))
		return bs_err(ctx, EINVAL, "invalid device '%s' for a table", dev ? dev : "");
	if (!o->metadata != !o->metadata_id)
		return bs_err(ctx, EINVAL, "a CBT metadata device and its metadata id go together");
	if (o->tracking) {
		r = bs_check_tracking_block(ctx, o->tracking, 0);
		if (r)
			return r;
	}
	if (o->metadata) {
		/* The superblock's block size must be the table's: always given. */
		if (!o->tracking)
			return bs_err(ctx, EINVAL, "a CBT metadata device needs an explicit tracking block size");
		if (!table_dev_ok(o->metadata))
			return bs_err(ctx, EINVAL, "invalid metadata device '%s' for a table", o->metadata);
		r = bs_check_metadata_id(ctx, o->metadata_id);
		if (r)
			return r;
		*params = bs_strdupf("%s 6 tracking_block_sectors %llu metadata %s metadata_id %s",
				     dev, (unsigned long long)o->tracking, o->metadata,
				     o->metadata_id);
	} else if (o->tracking) {
		*params = bs_strdupf("%s 2 tracking_block_sectors %llu", dev,
				     (unsigned long long)o->tracking);
	} else {
		*params = strdup(dev);
	}
	return *params ? 0 : bs_err(ctx, ENOMEM, "out of memory");
}

int bs_origin_params(struct blksnap_ctx *ctx, const char *dev,
		     uint64_t tracking, char **params)
{
	struct bs_origin_opts o = { .tracking = tracking };

	return bs_origin_params_opts(ctx, dev, &o, params);
}

int bs_image_params(struct blksnap_ctx *ctx, const char *real,
		    const char *store, uint64_t chunk, uint64_t low_water,
		    char **params)
{
	int r;

	if (!table_dev_ok(real) || !table_dev_ok(store))
		return bs_err(ctx, EINVAL, "invalid device for a blksnap-image table");
	if (!strcmp(real, store))
		return bs_err(ctx, EINVAL, "the store must not be the real device %s", real);
	r = bs_check_chunk(ctx, chunk);
	if (r)
		return r;
	if (low_water)
		*params = bs_strdupf("%s %s %llu 2 low_water %llu", real, store,
				     (unsigned long long)chunk,
				     (unsigned long long)low_water);
	else
		*params = bs_strdupf("%s %s %llu", real, store, (unsigned long long)chunk);
	return *params ? 0 : bs_err(ctx, ENOMEM, "out of memory");
}

void bs_targets_free(struct bs_target *t, size_t n)
{
	if (!t)
		return;
	for (size_t i = 0; i < n; i++) {
		free(t[i].type);
		free(t[i].params);
	}
	free(t);
}

int bs_linear_append(struct blksnap_ctx *ctx, struct bs_target **t, size_t *n,
		     const struct bs_segment *segs, size_t nsegs)
{
	struct bs_target *v;
	uint64_t start = 0;

	if (*n)
		start = (*t)[*n - 1].start + (*t)[*n - 1].len;
	v = realloc(*t, (*n + nsegs) * sizeof(*v));
	if (!v)
		return bs_err(ctx, ENOMEM, "out of memory");
	*t = v;
	for (size_t i = 0; i < nsegs; i++) {
		struct bs_target *x = &v[*n];

		if (!segs[i].sectors)
			return bs_err(ctx, EINVAL, "store part %u:%u is empty",
				      segs[i].major, segs[i].minor);
		if (start > UINT64_MAX - segs[i].sectors)
			return bs_err(ctx, ERANGE, "store too large");
		x->start = start;
		x->len = segs[i].sectors;
		x->type = strdup(BS_TARGET_LINEAR);
		x->params = bs_strdupf("%u:%u %llu", segs[i].major, segs[i].minor,
				       (unsigned long long)segs[i].offset);
		(*n)++;
		if (!x->type || !x->params)
			return bs_err(ctx, ENOMEM, "out of memory");
		start += segs[i].sectors;
	}
	return 0;
}

/*---- Parsing of tables read back from the kernel ----*/

/* "<#opts> <name> <value>..." after the fixed arguments. */
static int table_parse_opts(char **w, size_t n, const char *key, uint64_t *val)
{
	uint64_t count;

	*val = 0;
	if (n == 0)
		return 0;
	if (bs_parse_u64(w[0], &count) || count != n - 1 || count % 2)
		return -EINVAL;
	for (size_t i = 1; i < n; i += 2) {
		uint64_t v;

		if (bs_parse_u64(w[i + 1], &v))
			return -EINVAL;
		if (!strcmp(w[i], key))
			*val = v;
	}
	return 0;
}

/*
 * "<#opts> <name> <value>..." of an origin: each known option at most once,
 * metadata and metadata_id together; unknown ones (a later minor version)
 * are skipped.
 */
static int origin_parse_opts(char **w, size_t n, struct bs_origin_table *t)
{
	bool seen_tracking = false, seen_meta = false, seen_id = false;
	uint64_t count;

	if (n == 0)
		return 0;
	if (bs_parse_u64(w[0], &count) || count != n - 1 || count % 2)
		return -EINVAL;
	for (size_t i = 1; i < n; i += 2) {
		const char *key = w[i], *val = w[i + 1];

		if (!strcmp(key, "tracking_block_sectors")) {
			if (seen_tracking || bs_parse_u64(val, &t->tracking))
				return -EINVAL;
			seen_tracking = true;
		} else if (!strcmp(key, "metadata")) {
			if (seen_meta || bs_parse_devno(val, &t->meta_major, &t->meta_minor))
				return -EINVAL;
			seen_meta = true;
		} else if (!strcmp(key, "metadata_id")) {
			if (seen_id || strlen(val) > BS_META_ID_MAX)
				return -EINVAL;
			memcpy(t->metadata_id, val, strlen(val) + 1);
			seen_id = true;
		}
	}
	if (seen_meta != seen_id)
		return -EINVAL;
	t->has_metadata = seen_meta;
	return 0;
}

int bs_parse_origin_params(struct blksnap_ctx *ctx, const char *params,
			   struct bs_origin_table *t)
{
	char **w;
	size_t n;
	int r;

	memset(t, 0, sizeof(*t));
	r = bs_split_words(params, &w, &n);
	if (r == -ENOMEM)
		return bs_err(ctx, ENOMEM, "out of memory");
	if (!r)
		r = bs_parse_devno(w[0], &t->major, &t->minor);
	if (!r)
		r = origin_parse_opts(w + 1, n - 1, t);
	bs_strv_free(w);
	if (r) {
		memset(t, 0, sizeof(*t));
		return bs_err(ctx, EINVAL, "unexpected blksnap-origin table '%s'", params);
	}
	return 0;
}

int bs_parse_image_params(struct blksnap_ctx *ctx, const char *params,
			  struct bs_image_table *t)
{
	char **w;
	size_t n;
	int r;

	r = bs_split_words(params, &w, &n);
	if (r == -ENOMEM)
		return bs_err(ctx, ENOMEM, "out of memory");
	if (!r && n < 3)
		r = -EINVAL;
	if (!r)
		r = bs_parse_devno(w[0], &t->real_major, &t->real_minor);
	if (!r)
		r = bs_parse_devno(w[1], &t->store_major, &t->store_minor);
	if (!r)
		r = bs_parse_u64(w[2], &t->chunk);
	if (!r)
		r = table_parse_opts(w + 3, n - 3, "low_water", &t->low_water);
	bs_strv_free(w);
	if (r)
		return bs_err(ctx, EINVAL, "unexpected blksnap-image table '%s'", params);
	return 0;
}

int bs_parse_linear_params(struct blksnap_ctx *ctx, const char *params,
			   uint32_t *major, uint32_t *minor, uint64_t *offset)
{
	char **w;
	size_t n;
	int r;

	r = bs_split_words(params, &w, &n);
	if (r == -ENOMEM)
		return bs_err(ctx, ENOMEM, "out of memory");
	if (!r && n != 2)
		r = -EINVAL;
	if (!r)
		r = bs_parse_devno(w[0], major, minor);
	if (!r)
		r = bs_parse_u64(w[1], offset);
	bs_strv_free(w);
	if (r)
		return bs_err(ctx, EINVAL, "unexpected linear table '%s'", params);
	return 0;
}

/*---- Names ----*/

const char *bs_prefix(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);

	return s && !strncmp(s, prefix, n) ? s + n : NULL;
}

int bs_check_snapshot_name(struct blksnap_ctx *ctx, const char *name)
{
	size_t len = strlen(name);

	if (!len)
		return bs_err(ctx, EINVAL, "empty snapshot name");
	if (len > BS_SNAP_NAME_MAX)
		return bs_err(ctx, ENAMETOOLONG, "snapshot name '%s' is longer than %d characters",
			      name, BS_SNAP_NAME_MAX);
	if (name[0] == '-' || name[0] == '.')
		return bs_err(ctx, EINVAL, "snapshot name '%s' must not start with '%c'",
			      name, name[0]);
	for (const char *p = name; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("._+-", *p))
			continue;
		return bs_err(ctx, EINVAL, "snapshot name '%s' contains '%c': use letters, digits and . _ + -",
			      name, *p);
	}
	return 0;
}

int bs_default_snapshot_name(long long t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!localtime_r(&tt, &tm))
		return -EINVAL;
	if (!strftime(buf, len, "snap-%Y%m%d-%H%M%S", &tm))
		return -ENAMETOOLONG;
	return 0;
}

int bs_image_names(struct blksnap_ctx *ctx, const char *origin,
		   const char *snap, char **name, char **uuid)
{
	*name = bs_strdupf("%s-%s", origin, snap);
	*uuid = bs_strdupf(BS_UUID_IMAGE "%s-%s", snap, origin);
	if (!*name || !*uuid)
		goto nomem;
	if (strlen(*name) > BS_DM_NAME_MAX || strlen(*uuid) > BS_DM_UUID_MAX) {
		free(*name);
		free(*uuid);
		*name = *uuid = NULL;
		return bs_err(ctx, ENAMETOOLONG, "image name for origin '%s' in snapshot '%s' is too long for device-mapper: choose a shorter --name",
			      origin, snap);
	}
	return 0;
nomem:
	free(*name);
	free(*uuid);
	*name = *uuid = NULL;
	return bs_err(ctx, ENOMEM, "out of memory");
}
