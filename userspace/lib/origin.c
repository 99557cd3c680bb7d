// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libblksnap: attach, detach and change-block tracking of origins.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ops.h"

/*---- Finding origins ----*/

int bs_scan_model(struct blksnap_ctx *ctx, struct bs_system *sys,
		  struct blksnap_list **list)
{
	struct bs_system own;
	int r;

	if (!sys)
		sys = &own;
	r = bs_system_scan(ctx, sys);
	if (r)
		return r;
	r = bs_model_build(ctx, sys, &bs_model_sys_ops, list);
	if (r || sys == &own)
		bs_system_clear(sys);
	return r;
}

int bs_find_origin(struct blksnap_ctx *ctx, const struct bs_system *sys,
		   const char *arg, const struct bs_sysdev **origin)
{
	const struct bs_sysdev *d;
	struct bs_blockdev dev;
	const char *type, *rest;
	int r;

	r = bs_resolve_blockdev(ctx, arg, &dev);
	if (r)
		return r;
	d = bs_system_by_devno(sys, dev.major, dev.minor);
	type = bs_sysdev_type(d);
	if (type && !strcmp(type, BS_TARGET_ORIGIN)) {
		*origin = d;
		goto out;
	}
	if (type && !strcmp(type, BS_TARGET_IMAGE)) {
		r = bs_err(ctx, EINVAL, "%s is a snapshot image, not an origin", arg);
		goto out;
	}
	if (d && (rest = bs_prefix(d->dm.uuid, BS_UUID_REAL))) {
		const struct bs_sysdev *o = bs_system_by_name(sys, rest);

		type = bs_sysdev_type(o);
		if (type && !strcmp(type, BS_TARGET_ORIGIN)) {
			*origin = o;
			goto out;
		}
	}
	for (size_t i = 0; i < sys->n; i++) {
		struct bs_origin_table t;

		type = bs_sysdev_type(&sys->devs[i]);
		if (!type || strcmp(type, BS_TARGET_ORIGIN) ||
		    bs_parse_origin_params(NULL, sys->devs[i].dm.targets[0].params, &t))
			continue;
		if (t.major == dev.major && t.minor == dev.minor) {
			*origin = &sys->devs[i];
			goto out;
		}
	}
	r = bs_err(ctx, ENODEV, "no blksnap-origin on %s: run 'blksnapctl attach %s' first",
		   arg, arg);
out:
	bs_blockdev_clear(&dev);
	return r;
}

void bs_origin_probe_fs(struct blksnap_origin *o)
{
	struct bs_dmdev d;

	/* Reading a suspended device would block until its resume. */
	if (o->fs_type || o->fs_uuid || bs_dm_query(NULL, o->name, 0, 0, BS_DM_INFO, &d))
		return;
	if (d.exists && !d.suspended)
		(void)bs_probe_fs(o->path, &o->fs_type, &o->fs_uuid);
	bs_dmdev_clear(&d);
}

/* Take origin @name out of @l into a new allocation. */
static int origin_steal(struct blksnap_ctx *ctx, struct blksnap_list *l,
			const char *name, struct blksnap_origin **out)
{
	struct blksnap_origin *o = bs_list_origin(l, name);

	if (!o)
		return bs_err(ctx, ENODEV, "origin %s vanished", name);
	*out = malloc(sizeof(**out));
	if (!*out)
		return bs_err(ctx, ENOMEM, "out of memory");
	**out = *o;
	memset(o, 0, sizeof(*o));
	o->name = NULL;
	bs_origin_probe_fs(*out);
	return 0;
}

static int origin_describe(struct blksnap_ctx *ctx, const char *name,
			   struct blksnap_origin **out)
{
	struct blksnap_list *l;
	int r;

	r = bs_scan_model(ctx, NULL, &l);
	if (r)
		return r;
	r = origin_steal(ctx, l, name, out);
	/* origin_steal leaves an empty slot; skip it when freeing. */
	for (size_t i = 0; i < l->n_origins; i++)
		if (!l->origins[i].name)
			l->origins[i] = l->origins[--l->n_origins];
	blksnap_list_free(l);
	return r;
}

int blksnap_origin_get(struct blksnap_ctx *ctx, const char *device,
		       struct blksnap_origin **out)
{
	const struct bs_sysdev *o;
	struct bs_system sys;
	char *name;
	int r;

	r = bs_system_scan(ctx, &sys);
	if (r)
		return r;
	r = bs_find_origin(ctx, &sys, device, &o);
	name = r ? NULL : strdup(o->dm.name);
	bs_system_clear(&sys);
	if (r)
		return r;
	if (!name)
		return bs_err(ctx, ENOMEM, "out of memory");
	r = origin_describe(ctx, name, out);
	free(name);
	return r;
}

void blksnap_origin_free(struct blksnap_origin *origin)
{
	if (!origin)
		return;
	bs_origin_clear(origin);
	free(origin);
}

/*---- Attach and detach ----*/

/*
 * A dm device keeps its name, number and open files: <name>-real takes
 * over its table and the device is reloaded as an origin over <name>-real,
 * in one suspend/resume, as LVM does for its snapshot origins.
 */
/*
 * Replace the live table of @name with @targets in one suspend/resume, as
 * LVM does for its layers. On failure the old table stays (or is resumed
 * again); a device that cannot be resumed is named in the error.
 */
static int swap_table(struct blksnap_ctx *ctx, const char *name,
		      const struct bs_target *targets, size_t n)
{
	int r;

	r = bs_dm_load(ctx, name, targets, n);
	if (r)
		return r;
	r = bs_dm_suspend(ctx, name, 0);
	if (r) {
		bs_dm_clear(NULL, name);
		return r;
	}
	r = bs_dm_resume(ctx, name, NULL);
	if (r && bs_dm_resume(NULL, name, NULL))
		bs_err_prefix(ctx, r, "%s is left suspended ('dmsetup resume %s')",
			      name, name);
	return r;
}

static int attach_layered(struct blksnap_ctx *ctx, const struct bs_sysdev *d,
			  const char *arg, uint64_t tracking)
{
	char *real = NULL, *uuid = NULL, *params = NULL, devno[24];
	struct bs_target t = { 0 };
	struct bs_dmdev rd = { 0 };
	uint64_t sectors = bs_sysdev_sectors(d);
	int r;

	if (bs_prefix(d->dm.uuid, "BLKSNAP-"))
		return bs_err(ctx, EINVAL, "%s is a blksnap device (%s) and cannot be attached",
			      arg, d->dm.uuid);
	if (!d->dm.n_targets)
		return bs_err(ctx, EINVAL, "%s has no active table", arg);
	/* The swap would resume it, and replace a table someone else loaded. */
	if (d->dm.suspended)
		return bs_err(ctx, EBUSY, "%s is suspended: resume it first ('dmsetup resume %s')",
			      arg, d->dm.name);
	if (d->dm.inactive_table)
		return bs_err(ctx, EBUSY, "%s has an inactive table loaded by another program: clear it first ('dmsetup clear %s')",
			      arg, d->dm.name);
	real = bs_strdupf("%s-real", d->dm.name);
	uuid = bs_strdupf(BS_UUID_REAL "%s", d->dm.name);
	if (!real || !uuid) {
		r = bs_err(ctx, ENOMEM, "out of memory");
		goto out;
	}
	if (strlen(real) > BS_DM_NAME_MAX || strlen(uuid) > BS_DM_UUID_MAX) {
		r = bs_err(ctx, ENAMETOOLONG, "the name %s is too long to add \"-real\"", d->dm.name);
		goto out;
	}
	r = bs_dm_query(ctx, real, 0, 0, BS_DM_INFO, &rd);
	if (r)
		goto out;
	if (rd.exists) {
		r = bs_err(ctx, EEXIST, "cannot attach %s: a device named %s already exists",
			   arg, real);
		goto out;
	}
	r = bs_dm_create(ctx, real, uuid, d->dm.targets, d->dm.n_targets, false, NULL);
	if (r)
		goto out;
	r = bs_dm_query(ctx, real, 0, 0, BS_DM_INFO, &rd);
	if (!r && !rd.exists)
		r = bs_err(ctx, ENODEV, "%s vanished after its creation", real);
	if (r)
		goto undo_real;
	snprintf(devno, sizeof(devno), "%u:%u", rd.major, rd.minor);
	r = bs_origin_params(ctx, devno, tracking, &params);
	if (r)
		goto undo_real;
	t.start = 0;
	t.len = sectors;
	t.type = (char *)BS_TARGET_ORIGIN;
	t.params = params;
	r = swap_table(ctx, d->dm.name, &t, 1);
	if (r)
		goto undo_real;
	goto out;
undo_real:
	if (bs_dm_remove(NULL, real, NULL))
		bs_err_prefix(ctx, r, "%s is left behind ('dmsetup remove %s')", real, real);
out:
	bs_dmdev_clear(&rd);
	free(real);
	free(uuid);
	free(params);
	return r;
}

/* Any other disk gets a new device blksnap-<kernel name> over it. */
static int attach_disk(struct blksnap_ctx *ctx, const struct bs_blockdev *dev,
		       uint64_t tracking, char **name)
{
	char *uuid = NULL, *params = NULL, devno[24];
	struct bs_target t = { 0 };
	int r;

	*name = bs_strdupf("blksnap-%s", dev->kname);
	uuid = bs_strdupf(BS_UUID_ORIGIN "%s", dev->kname);
	if (!*name || !uuid) {
		r = bs_err(ctx, ENOMEM, "out of memory");
		goto out;
	}
	r = bs_check_not_in_use(ctx, dev->path);
	if (r == -EBUSY) {
		r = bs_err(ctx, EBUSY, "%s is in use (mounted, or held by another device): writes to it would bypass change tracking; unmount it, attach, then use /dev/mapper/%s",
			   dev->path, *name);
		goto out;
	}
	if (r)
		goto out;
	snprintf(devno, sizeof(devno), "%u:%u", dev->major, dev->minor);
	r = bs_origin_params(ctx, devno, tracking, &params);
	if (r)
		goto out;
	t.start = 0;
	t.len = dev->sectors;
	t.type = (char *)BS_TARGET_ORIGIN;
	t.params = params;
	r = bs_dm_create(ctx, *name, uuid, &t, 1, false, NULL);
out:
	free(uuid);
	free(params);
	return r;
}

int blksnap_attach(struct blksnap_ctx *ctx, const char *device,
		   uint64_t tracking_block_bytes, struct blksnap_origin **out)
{
	const struct bs_sysdev *o, *d;
	struct bs_system sys = { 0 };
	struct bs_blockdev dev = { 0 };
	uint64_t tracking = 0;
	char *name = NULL;
	int r;

	if (out)
		*out = NULL;
	r = bs_resolve_blockdev(ctx, device, &dev);
	if (r)
		return r;
	if (!dev.sectors) {
		r = bs_err(ctx, EINVAL, "%s is empty", device);
		goto out;
	}
	if (tracking_block_bytes) {
		if (tracking_block_bytes % BLKSNAP_SECTOR_SIZE) {
			r = bs_err(ctx, EINVAL, "tracking block must be a multiple of 512 bytes");
			goto out;
		}
		tracking = tracking_block_bytes / BLKSNAP_SECTOR_SIZE;
		r = bs_check_tracking_block(ctx, tracking, dev.sectors);
		if (r)
			goto out;
	}
	r = bs_system_scan(ctx, &sys);
	if (r)
		goto out;
	if (!bs_find_origin(NULL, &sys, device, &o)) {
		r = bs_err(ctx, EEXIST, "%s is already attached: use %s", device, o->dm.name);
		goto out;
	}
	d = bs_system_by_devno(&sys, dev.major, dev.minor);
	if (d) {
		const char *type = bs_sysdev_type(d);

		if (type && !strcmp(type, BS_TARGET_IMAGE)) {
			r = bs_err(ctx, EINVAL, "%s is a snapshot image and cannot be attached", device);
			goto out;
		}
		name = strdup(d->dm.name);
		r = name ? attach_layered(ctx, d, device, tracking) :
			   bs_err(ctx, ENOMEM, "out of memory");
	} else {
		r = attach_disk(ctx, &dev, tracking, &name);
	}
	if (!r && out)
		r = origin_describe(ctx, name, out);
out:
	free(name);
	bs_system_clear(&sys);
	bs_blockdev_clear(&dev);
	return r;
}

int blksnap_detach(struct blksnap_ctx *ctx, const char *device)
{
	const struct bs_sysdev *o, *real = NULL;
	struct bs_system sys;
	struct bs_origin_table t;
	const char *owner;
	int r;

	r = bs_system_scan(ctx, &sys);
	if (r)
		return r;
	r = bs_find_origin(ctx, &sys, device, &o);
	if (r)
		goto out;
	r = bs_parse_origin_params(ctx, o->dm.targets[0].params, &t);
	if (r)
		goto out;
	for (size_t i = 0; i < sys.n; i++) {
		const char *type = bs_sysdev_type(&sys.devs[i]);
		struct bs_image_table it;

		if (!type || strcmp(type, BS_TARGET_IMAGE) ||
		    bs_parse_image_params(NULL, sys.devs[i].dm.targets[0].params, &it) ||
		    it.real_major != t.major || it.real_minor != t.minor)
			continue;
		r = bs_err(ctx, EBUSY, "snapshot image %s exists on %s: destroy its snapshot first ('blksnapctl destroy')",
			   sys.devs[i].dm.name, device);
		goto out;
	}
	if (bs_prefix(o->dm.uuid, BS_UUID_ORIGIN)) {
		if (o->dm.open_count > 0) {
			r = bs_err(ctx, EBUSY, "%s is in use (open count %d): unmount it and stop the programs using it first",
				   o->dm.name, o->dm.open_count);
			goto out;
		}
		r = bs_dm_remove(ctx, o->dm.name, NULL);
		goto out;
	}
	real = bs_system_by_devno(&sys, t.major, t.minor);
	owner = real ? bs_prefix(real->dm.uuid, BS_UUID_REAL) : NULL;
	if (!owner || strcmp(owner, o->dm.name)) {
		r = bs_err(ctx, EINVAL, "%s was not attached by blksnapctl: remove it with dmsetup",
			   o->dm.name);
		goto out;
	}
	/* Give the device its table back, in one suspend/resume. */
	r = swap_table(ctx, o->dm.name, real->dm.targets, real->dm.n_targets);
	if (r)
		goto out;
	r = bs_dm_remove(ctx, real->dm.name, NULL);
out:
	bs_system_clear(&sys);
	return r;
}

/*---- Change-block tracking ----*/

/* The origin's dm name and current status. */
static int cbt_origin(struct blksnap_ctx *ctx, const char *device, char **name,
		      struct blksnap_origin_status *st, uint64_t *sectors)
{
	const struct bs_sysdev *o;
	struct bs_system sys;
	int r;

	*name = NULL;
	r = bs_system_scan(ctx, &sys);
	if (r)
		return r;
	r = bs_find_origin(ctx, &sys, device, &o);
	if (r)
		goto out;
	if (sectors)
		*sectors = bs_sysdev_sectors(o);
	if (!o->status) {
		r = bs_err(ctx, EIO, "cannot read the status of %s", o->dm.name);
		goto out;
	}
	r = blksnap_parse_origin_status(ctx, o->status, st);
	if (r)
		goto out;
	*name = strdup(o->dm.name);
	if (!*name)
		r = bs_err(ctx, ENOMEM, "out of memory");
out:
	bs_system_clear(&sys);
	return r;
}

int bs_origin_status(struct blksnap_ctx *ctx, const char *name,
		     struct blksnap_origin_status *st)
{
	struct bs_dmdev d;
	int r;

	r = bs_dm_query(ctx, name, 0, 0, BS_DM_STATUS, &d);
	if (r)
		return r;
	if (!d.exists || d.n_targets != 1 || strcmp(d.targets[0].type, BS_TARGET_ORIGIN))
		r = bs_err(ctx, ENODEV, "origin %s vanished", name);
	else
		r = blksnap_parse_origin_status(ctx, d.targets[0].params, st);
	bs_dmdev_clear(&d);
	return r;
}

int blksnap_cbt_changes(struct blksnap_ctx *ctx, const char *device,
			unsigned int since, struct blksnap_extent **ext,
			size_t *n, struct blksnap_origin_status *st)
{
	struct blksnap_origin_status before, after;
	char msg[32], *name, *reply = NULL;
	int r;

	*ext = NULL;
	*n = 0;
	if (since > 255)
		return bs_err(ctx, EINVAL, "--since %u: change numbers are 0..255", since);
	r = cbt_origin(ctx, device, &name, &before, NULL);
	if (r)
		return r;
	snprintf(msg, sizeof(msg), "cbt_changes %u", since);
	r = bs_dm_message(ctx, name, msg, &reply);
	if (r)
		goto out;
	r = bs_parse_extent_list(ctx, reply, ext, n);
	if (r)
		goto out;
	*n = bs_extents_merge(*ext, *n);
	r = bs_origin_status(ctx, name, &after);
	if (r)
		goto out;
	if (strcmp(before.generation_uuid, after.generation_uuid)) {
		r = bs_err(ctx, ESTALE, "the CBT generation of %s changed while reading: read the changes again (a new generation needs a full backup)",
			   device);
		goto out;
	}
	if (st)
		*st = before;
out:
	if (r) {
		free(*ext);
		*ext = NULL;
		*n = 0;
	}
	free(reply);
	free(name);
	return r;
}

static int write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t w = write(fd, buf, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += w;
		len -= w;
	}
	return 0;
}

#define CBT_READ_PIECE 65536

int blksnap_cbt_read(struct blksnap_ctx *ctx, const char *device, int fd,
		     uint64_t *bytes)
{
	struct blksnap_origin_status st;
	char msg[64], *name, *reply = NULL;
	uint8_t *buf = NULL;
	uint64_t off;
	int r;

	if (bytes)
		*bytes = 0;
	r = cbt_origin(ctx, device, &name, &st, NULL);
	if (r)
		return r;
	buf = malloc(CBT_READ_PIECE);
	if (!buf) {
		r = bs_err(ctx, ENOMEM, "out of memory");
		goto out;
	}
	for (off = 0; off < st.tracking_blocks; off += CBT_READ_PIECE) {
		uint64_t count = st.tracking_blocks - off;

		if (count > CBT_READ_PIECE)
			count = CBT_READ_PIECE;
		snprintf(msg, sizeof(msg), "cbt_read %llu %llu",
			 (unsigned long long)off, (unsigned long long)count);
		free(reply);
		reply = NULL;
		r = bs_dm_message(ctx, name, msg, &reply);
		if (r == -ENODATA) {
			r = bs_err(ctx, ENODATA, "%s has no CBT snapshot map yet: create a snapshot first",
				   device);
			goto out;
		}
		if (r)
			goto out;
		if (bs_hex_decode(reply, buf, count)) {
			r = bs_err(ctx, EPROTO, "unexpected reply to '%s' from %s (expected %llu hex digits)",
				   msg, name, (unsigned long long)count * 2);
			goto out;
		}
		r = write_all(fd, buf, count);
		if (r) {
			r = bs_err(ctx, -r, "cannot write the CBT map: %s", strerror(-r));
			goto out;
		}
		if (bytes)
			*bytes += count;
	}
out:
	free(reply);
	free(buf);
	free(name);
	return r;
}

int blksnap_cbt_mark_dirty(struct blksnap_ctx *ctx, const char *device,
			   const struct blksnap_extent *ext, size_t n)
{
	struct blksnap_origin_status st;
	uint64_t sectors;
	char msg[64], *name;
	int r;

	r = cbt_origin(ctx, device, &name, &st, &sectors);
	if (r)
		return r;
	for (size_t i = 0; i < n; i++) {
		if (!ext[i].sectors || ext[i].start >= sectors ||
		    ext[i].sectors > sectors - ext[i].start) {
			r = bs_err(ctx, EINVAL, "extent %llu+%llu is outside %s (%llu sectors)",
				   (unsigned long long)ext[i].start,
				   (unsigned long long)ext[i].sectors, device,
				   (unsigned long long)sectors);
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		snprintf(msg, sizeof(msg), "cbt_mark_dirty %llu %llu",
			 (unsigned long long)ext[i].start,
			 (unsigned long long)ext[i].sectors);
		r = bs_dm_message(ctx, name, msg, NULL);
		if (r)
			goto out;
	}
out:
	free(name);
	return r;
}
