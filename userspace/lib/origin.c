// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libblksnap: attach, detach and change-block tracking of origins.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lock.h"
#include "ops.h"
#include "pcbt.h"

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

uint64_t bs_origin_lock_key(const struct bs_sysdev *o)
{
	struct bs_origin_table t;

	/* An origin over a disk is named by the disk; a layered one keeps its number. */
	if (bs_prefix(o->dm.uuid, BS_UUID_ORIGIN) &&
	    !bs_parse_origin_params(NULL, o->dm.targets[0].params, &t))
		return (uint64_t)t.major << 32 | t.minor;
	return (uint64_t)o->dm.major << 32 | o->dm.minor;
}

/* Lock the origin on @device (found in a first scan); -ENODEV etc. as bs_find_origin. */
int bs_lock_origin_of(struct blksnap_ctx *ctx, const char *device, struct bs_locks *l)
{
	const struct bs_sysdev *o;
	struct bs_system sys;
	uint64_t key;
	int r;

	r = bs_system_scan(ctx, &sys);
	if (r)
		return r;
	r = bs_find_origin(ctx, &sys, device, &o);
	if (!r) {
		key = bs_origin_lock_key(o);
		r = bs_lock_origin(ctx, l, (uint32_t)(key >> 32), (uint32_t)key, o->dm.name);
	}
	bs_system_clear(&sys);
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
 * Replace the live table of @name with @targets in one suspend/resume, as
 * LVM does for its layers. On failure the old table stays (or is resumed
 * again); a device that cannot be resumed is named in the error.
 */
int bs_swap_table(struct blksnap_ctx *ctx, const char *name,
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

/*
 * A dm device keeps its name, number and open files: <name>-bsreal takes
 * over its table and the device is reloaded as an origin over it, in one
 * suspend/resume, as LVM does for its snapshot origins. The suffix is not
 * LVM's "-real", which LVM gives the real device of its own snapshot
 * origins (an LV can have both). Real devices are found by their UUID,
 * BLKSNAP-REAL-<name>, so those named <name>-real by 0.1.0 still work.
 */
/*
 * The real device BLKSNAP-REAL-<name> that an origin left when it went away
 * without a detach (`lvchange -an` or `vgchange -an` of an attached LV
 * removes the LV's device, the origin, and leaves its real device mapping
 * the LV's extents): removed when nothing uses it. 1: removed, 0: none.
 */
static int remove_leftover_real(struct blksnap_ctx *ctx, const struct bs_system *sys,
				const char *name, enum blksnap_log_level level)
{
	const struct bs_sysdev *rd = NULL;
	char uuid[BS_DM_UUID_MAX + 16];
	int r;

	snprintf(uuid, sizeof(uuid), BS_UUID_REAL "%s", name);
	for (size_t i = 0; i < sys->n && !rd; i++)
		if (!strcmp(sys->devs[i].dm.uuid, uuid))
			rd = &sys->devs[i];
	if (!rd)
		return 0;
	for (size_t i = 0; i < sys->n; i++) {
		const char *type = bs_sysdev_type(&sys->devs[i]);
		struct bs_origin_table t;

		if (type && !strcmp(type, BS_TARGET_ORIGIN) &&
		    !bs_parse_origin_params(NULL, sys->devs[i].dm.targets[0].params, &t) &&
		    t.major == rd->dm.major && t.minor == rd->dm.minor)
			return 0;	/* the live origin's real device */
	}
	if (rd->dm.open_count > 0)
		return bs_err(ctx, EBUSY, "%s, the real device of %s left by an origin that is gone, is in use (open count %d): a snapshot image of it? destroy its snapshot first",
			      rd->dm.name, name, rd->dm.open_count);
	r = bs_dm_remove(ctx, rd->dm.name, NULL);
	if (r)
		return r;
	bs_log(ctx, level, "removed %s, the real device of %s left by an origin that went away without a detach (e.g. 'lvchange -an' of an attached LV)",
	       rd->dm.name, name);
	return 1;
}

static int attach_layered(struct blksnap_ctx *ctx, const struct bs_system *sys,
			  const struct bs_sysdev *d, const char *arg,
			  const struct bs_origin_opts *opts)
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
	r = remove_leftover_real(ctx, sys, d->dm.name, BLKSNAP_LOG_WARN);
	if (r < 0)
		return r;
	real = bs_strdupf("%s" BS_REAL_SUFFIX, d->dm.name);
	uuid = bs_strdupf(BS_UUID_REAL "%s", d->dm.name);
	if (!real || !uuid) {
		r = bs_err(ctx, ENOMEM, "out of memory");
		goto out;
	}
	if (strlen(real) > BS_DM_NAME_MAX || strlen(uuid) > BS_DM_UUID_MAX) {
		r = bs_err(ctx, ENAMETOOLONG, "the name %s is too long to add \"" BS_REAL_SUFFIX "\"",
			   d->dm.name);
		goto out;
	}
	r = bs_dm_query(ctx, real, 0, 0, BS_DM_INFO, &rd);
	if (r)
		goto out;
	if (rd.exists) {
		r = bs_err(ctx, EEXIST, "cannot attach %s: a device named %s already exists (%s): a leftover of an interrupted attach has the uuid " BS_UUID_REAL "%s and can go ('dmsetup remove %s'); anything else is not blksnapctl's",
			   arg, real, rd.uuid[0] ? rd.uuid : "no uuid", d->dm.name, real);
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
	r = bs_origin_params_opts(ctx, devno, opts, &params);
	if (r)
		goto undo_real;
	t.start = 0;
	t.len = sectors;
	t.type = (char *)BS_TARGET_ORIGIN;
	t.params = params;
	r = bs_swap_table(ctx, d->dm.name, &t, 1);
	if (r)
		goto undo_real;
	bs_log(ctx, BLKSNAP_LOG_INFO, "%s: a blksnap-origin now, over %s (%s), which took its table",
	       d->dm.name, real, devno);
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
		       const struct bs_origin_opts *opts, char **name)
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
		char why[BS_ERRMSG_LEN];

		snprintf(why, sizeof(why), "%s", blksnap_errmsg(ctx));
		r = bs_err(ctx, EBUSY, "%s: writes to it would bypass change tracking; stop that, attach, then use /dev/mapper/%s",
			   why, *name);
		goto out;
	}
	if (r)
		goto out;
	snprintf(devno, sizeof(devno), "%u:%u", dev->major, dev->minor);
	r = bs_origin_params_opts(ctx, devno, opts, &params);
	if (r)
		goto out;
	t.start = 0;
	t.len = dev->sectors;
	t.type = (char *)BS_TARGET_ORIGIN;
	t.params = params;
	r = bs_dm_create(ctx, *name, uuid, &t, 1, false, NULL);
	if (!r)
		bs_log(ctx, BLKSNAP_LOG_INFO, "%s: blksnap-origin /dev/mapper/%s over it", dev->path, *name);
out:
	free(uuid);
	free(params);
	return r;
}

static int detach_locked(struct blksnap_ctx *ctx, const char *device, bool note);

int blksnap_attach(struct blksnap_ctx *ctx, const char *device,
		   uint64_t tracking_block_bytes, struct blksnap_origin **out)
{
	struct blksnap_attach_options o = {
		.size = sizeof(o),
		.tracking_block_bytes = tracking_block_bytes,
	};

	return blksnap_attach_opts(ctx, device, &o, out);
}

int blksnap_attach_opts(struct blksnap_ctx *ctx, const char *device,
			const struct blksnap_attach_options *opts,
			struct blksnap_origin **out)
{
	return bs_attach(ctx, device, opts, false, out);
}

int bs_attach(struct blksnap_ctx *ctx, const char *device,
	      const struct blksnap_attach_options *opts, bool from_tab,
	      struct blksnap_origin **out)
{
	struct blksnap_attach_options ao;
	struct bs_pcbt_table pt = { 0 };
	struct bs_origin_opts topts = { 0 };
	const struct bs_sysdev *o, *d;
	struct bs_system sys = { 0 };
	struct bs_blockdev dev = { 0 };
	struct bs_locks locks;
	uint64_t tracking = 0;
	char *name = NULL, *uuid = NULL;
	int r;

	if (out)
		*out = NULL;
	pt.loop_fd = -1;
	bs_locks_init(&locks);
	r = bs_attach_opts_in(ctx, opts, &ao);
	if (r)
		return r;
	r = bs_resolve_blockdev(ctx, device, &dev);
	if (r)
		return r;
	if (!dev.sectors) {
		r = bs_err(ctx, EINVAL, "%s is empty", device);
		goto out;
	}
	if (ao.tracking_block_bytes) {
		tracking = ao.tracking_block_bytes / BLKSNAP_SECTOR_SIZE;
		r = bs_check_tracking_block(ctx, tracking, dev.sectors);
		if (r)
			goto out;
	}
	/* The device attached keeps its number (the disk, or the dm device). */
	r = bs_lock_origin(ctx, &locks, dev.major, dev.minor, device);
	if (r)
		goto out;
	r = bs_system_scan(ctx, &sys);
	if (r)
		goto out;
	if (!bs_find_origin(NULL, &sys, device, &o)) {
		r = bs_err(ctx, EEXIST, "%s is already attached: use %s", device, o->dm.name);
		goto out;
	}
	d = bs_system_by_devno(&sys, dev.major, dev.minor);
	topts.tracking = tracking;
	if (ao.cbt_metadata && d && (bs_prefix(d->dm.uuid, "BLKSNAP-") ||
				     (bs_sysdev_type(d) && !strcmp(bs_sysdev_type(d), BS_TARGET_IMAGE)))) {
		/* Before the metadata is formatted for nothing. */
		r = bs_err(ctx, EINVAL, "%s is a blksnap device (%s) and cannot be attached",
			   device, d->dm.uuid[0] ? d->dm.uuid : "a snapshot image");
		goto out;
	}
	if (ao.cbt_metadata) {
		/* Checked, identified and formatted now: the kernel only loads it. */
		pt.tracking = tracking;
		pt.reuse_file = from_tab;
		r = bs_pcbt_prepare(ctx, &sys, &dev, device, &ao, &pt);
		if (r)
			goto out;
		topts.tracking = pt.tracking;
		topts.metadata = pt.metadata;
		topts.metadata_id = pt.metadata_id;
	}
	if (d && d->dm.uuid[0] && !(uuid = strdup(d->dm.uuid))) {
		r = bs_err(ctx, ENOMEM, "out of memory");
		goto out;
	}
	if (d) {
		const char *type = bs_sysdev_type(d);

		if (type && !strcmp(type, BS_TARGET_IMAGE)) {
			r = bs_err(ctx, EINVAL, "%s is a snapshot image and cannot be attached", device);
			goto out;
		}
		name = strdup(d->dm.name);
		r = name ? attach_layered(ctx, &sys, d, device, &topts) :
			   bs_err(ctx, ENOMEM, "out of memory");
	} else {
		r = attach_disk(ctx, &dev, &topts, &name);
	}
	if (r)
		goto out;
	/* Attached by hand: the blksnaptab may attach it again after a detach. */
	if (d)
		bs_detach_note_forget(uuid, name);
	/* The table load may have loaded dm-blksnap: check what it brought. */
	if (ctx)
		ctx->targets_checked = false;
	r = bs_check_targets(ctx, false);
	if (r) {
		if (detach_locked(NULL, name, false))
			bs_err_prefix(ctx, r, "%s is left attached ('blksnapctl detach %s')", name, name);
		goto out;
	}
	if (out)
		r = origin_describe(ctx, name, out);
out:
	/* The table holds a directory's loop device now, or it detaches. */
	if (pt.loop_fd >= 0)
		close(pt.loop_fd);
	bs_unlock_all(&locks);
	free(name);
	free(uuid);
	bs_system_clear(&sys);
	bs_blockdev_clear(&dev);
	return r;
}

/* Detach, with the origin's lock held; @note: keep the blksnaptab off it. */
static int detach_locked(struct blksnap_ctx *ctx, const char *device, bool note)
{
	const struct bs_sysdev *o, *real = NULL;
	struct bs_system sys;
	struct bs_origin_table t;
	const char *owner;
	char why[1200];
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
			bs_describe_holder(NULL, o->dm.major, o->dm.minor, o->dm.open_count,
					   why, sizeof(why));
			r = bs_err(ctx, EBUSY, "%s is in use (%s): unmount it and stop the programs using it first",
				   o->dm.name, why);
			goto out;
		}
		/* On purpose: the next attach starts a new CBT generation. */
		r = bs_pcbt_detach(ctx, o);
		if (!r)
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
	/*
	 * Give the device its table back, in one suspend/resume. The resume's
	 * change event reaches the blksnaptab's udev rule: the note, written
	 * before it, keeps the rule from attaching the device again.
	 */
	r = bs_pcbt_detach(ctx, o);
	if (r)
		goto out;
	if (note)
		bs_detach_note(ctx, o->dm.uuid[0] ? o->dm.uuid : NULL, o->dm.name);
	r = bs_swap_table(ctx, o->dm.name, real->dm.targets, real->dm.n_targets);
	if (r) {
		if (note)
			bs_detach_note_forget(o->dm.uuid[0] ? o->dm.uuid : NULL, o->dm.name);
		goto out;
	}
	r = bs_dm_remove(ctx, real->dm.name, NULL);
	if (!r)
		bs_log(ctx, BLKSNAP_LOG_INFO, "%s: its own table again, %s removed", o->dm.name,
		       real->dm.name);
out:
	bs_system_clear(&sys);
	return r;
}

/*
 * The dm name of @device when it does not exist: "/dev/mapper/<name>", a
 * bare name, or LVM's "/dev/<vg>/<lv>" (dm name <vg>-<lv>, dashes doubled).
 */
static char *gone_dm_name(const char *device)
{
	const char *rest = bs_prefix(device, "/dev/mapper/");
	char vg[128], lv[128], *out, *o;

	if (rest)
		return strdup(rest);
	if (!strchr(device, '/'))
		return strdup(device);
	if (sscanf(device, "/dev/%127[^/]/%127[^/]", vg, lv) != 2)
		return NULL;
	out = malloc(2 * (strlen(vg) + strlen(lv)) + 2);
	if (!out)
		return NULL;
	o = out;
	for (const char *p = vg; *p; p++) {
		if (*p == '-')
			*o++ = '-';
		*o++ = *p;
	}
	*o++ = '-';
	for (const char *p = lv; *p; p++) {
		if (*p == '-')
			*o++ = '-';
		*o++ = *p;
	}
	*o = '\0';
	return out;
}

int blksnap_detach(struct blksnap_ctx *ctx, const char *device)
{
	struct bs_locks locks;
	struct bs_system sys;
	char *name;
	int r, r2;

	bs_locks_init(&locks);
	r = bs_lock_origin_of(ctx, device, &locks);
	if (!r)
		r = detach_locked(ctx, device, true);
	bs_unlock_all(&locks);
	if (r != -ENOENT && r != -ENODEV)
		return r;
	/* The origin is gone (a deactivated LV): its real device may be left. */
	name = gone_dm_name(device);
	if (!name || bs_system_scan(NULL, &sys)) {
		free(name);
		return r;
	}
	/* Asked for: what is removed is no warning. */
	r2 = remove_leftover_real(ctx, &sys, name, BLKSNAP_LOG_INFO);
	bs_system_clear(&sys);
	free(name);
	return r2 < 0 ? r2 : r2 ? 0 : r;
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
	st->size = sizeof(*st);
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

	st->size = sizeof(*st);
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

/*
 * Whether changes since snapshot @since of generation @gen (NULL: any) can
 * be listed from a map of status @st.
 */
static int cbt_check_since(struct blksnap_ctx *ctx, const char *device,
			   const struct blksnap_origin_status *st, const char *gen,
			   unsigned int since)
{
	if (since > 255)
		return bs_err(ctx, EINVAL, "changes since snapshot %u: snapshot numbers are 0..255", since);
	if (gen && strcasecmp(gen, st->generation_uuid))
		return bs_err(ctx, ESTALE, "the CBT generation of %s is %s, not %s: what changed since that snapshot is unknown; make a full backup",
			      device, st->generation_uuid, gen);
	if (!st->snapshot_number)
		return bs_err(ctx, ENODATA, "%s has no snapshot in CBT generation %s yet: make a full backup from a snapshot first",
			      device, st->generation_uuid);
	if (since == st->snapshot_number)
		return bs_err(ctx, EINVAL, "changes since snapshot %u of %s: that is its last snapshot, after which nothing can be listed; give the snapshot number of the previous backup (below %u)",
			      since, device, since);
	if (since > st->snapshot_number)
		return bs_err(ctx, EINVAL, "changes since snapshot %u of %s: its last snapshot is number %u (change_number %u is the number the next one will get); give the snapshot number of the previous backup",
			      since, device, st->snapshot_number, st->change_number);
	return 0;
}

/* Whether the map read under @before is still the origin's (no take, no reset). */
static int cbt_check_same(struct blksnap_ctx *ctx, const char *device, const char *name,
			  const struct blksnap_origin_status *before)
{
	struct blksnap_origin_status after;
	int r = bs_origin_status(ctx, name, &after);

	if (r)
		return r;
	if (strcmp(before->generation_uuid, after.generation_uuid))
		return bs_err(ctx, ESTALE, "the CBT generation of %s changed while reading: read the changes again (a new generation needs a full backup)",
			      device);
	if (before->change_number != after.change_number)
		return bs_err(ctx, ESTALE, "a snapshot of %s was taken while reading its map: read it again",
			      device);
	return 0;
}

int blksnap_cbt_changes(struct blksnap_ctx *ctx, const char *device,
			const char *generation_uuid, unsigned int since,
			struct blksnap_extent **ext, size_t *n,
			struct blksnap_origin_status *st)
{
	struct blksnap_origin_status before;
	char msg[32], *name = NULL, *reply = NULL;
	int r;

	*ext = NULL;
	*n = 0;
	if (since > 255)
		return bs_err(ctx, EINVAL, "changes since snapshot %u: snapshot numbers are 0..255", since);
	if (st && st->size < sizeof(*st))
		return bs_err(ctx, EINVAL, "struct blksnap_origin_status: set .size = sizeof(struct blksnap_origin_status)");
	r = cbt_origin(ctx, device, &name, &before, NULL);
	if (r)
		return r;
	r = cbt_check_since(ctx, device, &before, generation_uuid, since);
	if (r)
		goto out;
	snprintf(msg, sizeof(msg), "cbt_changes %u", since);
	r = bs_dm_message(ctx, name, msg, &reply);
	if (r)
		goto out;
	r = bs_parse_extent_list(ctx, reply, ext, n);
	if (r)
		goto out;
	*n = bs_extents_merge(*ext, *n);
	r = cbt_check_same(ctx, device, name, &before);
	if (!r && st)
		r = bs_copy_out(ctx, st, &before, sizeof(before), sizeof(before),
				"blksnap_origin_status");
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

#define CBT_READ_PIECE 65536

/* Bytes @off..@off+@count of the snapshot map of origin @name into @buf. */
static int cbt_read_piece(struct blksnap_ctx *ctx, const char *device, const char *name,
			  uint64_t off, uint64_t count, uint8_t *buf)
{
	char msg[64], *reply = NULL;
	int r;

	snprintf(msg, sizeof(msg), "cbt_read %llu %llu", (unsigned long long)off,
		 (unsigned long long)count);
	r = bs_dm_message(ctx, name, msg, &reply);
	if (r == -ENODATA)
		r = bs_err(ctx, ENODATA, "%s has no CBT snapshot map yet: create a snapshot first",
			   device);
	else if (!r && bs_hex_decode(reply, buf, count))
		r = bs_err(ctx, EPROTO, "unexpected reply to '%s' from %s (expected %llu hex digits)",
			   msg, name, (unsigned long long)count * 2);
	free(reply);
	return r;
}

struct blksnap_cbt_iter {
	char *device;
	char *name;
	struct blksnap_origin_status st;
	struct bs_map_scan scan;
	uint64_t off;			/* the next map byte to read */
	uint8_t *buf;
	size_t len, pos;		/* bytes in buf, bytes fed */
	bool done;			/* the open run is emitted */
};

int blksnap_cbt_iter_new(struct blksnap_ctx *ctx, const char *device,
			 const char *generation_uuid, unsigned int since,
			 struct blksnap_cbt_iter **out)
{
	struct blksnap_cbt_iter *it;
	uint64_t sectors;
	int r;

	*out = NULL;
	it = calloc(1, sizeof(*it));
	if (!it)
		return bs_err(ctx, ENOMEM, "out of memory");
	it->device = strdup(device);
	it->buf = malloc(CBT_READ_PIECE);
	if (!it->device || !it->buf) {
		r = bs_err(ctx, ENOMEM, "out of memory");
		goto fail;
	}
	r = cbt_origin(ctx, device, &it->name, &it->st, &sectors);
	if (!r)
		r = cbt_check_since(ctx, device, &it->st, generation_uuid, since);
	if (r)
		goto fail;
	bs_map_scan_init(&it->scan, since, it->st.tracking_block_sectors, sectors);
	*out = it;
	return 0;
fail:
	blksnap_cbt_iter_free(it);
	return r;
}

const struct blksnap_origin_status *blksnap_cbt_iter_status(const struct blksnap_cbt_iter *it)
{
	return &it->st;
}

int blksnap_cbt_iter_next(struct blksnap_ctx *ctx, struct blksnap_cbt_iter *it,
			  struct blksnap_extent *ext, size_t max, size_t *n)
{
	int r;

	*n = 0;
	if (!max)
		return bs_err(ctx, EINVAL, "no room for extents");
	while (*n < max) {
		if (it->pos < it->len) {
			it->pos += bs_map_scan_feed(&it->scan, it->buf + it->pos, it->len - it->pos,
						    ext, max, n);
			continue;
		}
		if (it->off < it->st.tracking_blocks) {
			uint64_t count = it->st.tracking_blocks - it->off;

			if (count > CBT_READ_PIECE)
				count = CBT_READ_PIECE;
			r = cbt_read_piece(ctx, it->device, it->name, it->off, count, it->buf);
			if (r)
				return r;
			it->off += count;
			it->len = count;
			it->pos = 0;
			/* The whole map is read: it must be one map. */
			if (it->off == it->st.tracking_blocks) {
				r = cbt_check_same(ctx, it->device, it->name, &it->st);
				if (r)
					return r;
			}
			continue;
		}
		if (!it->done && bs_map_scan_end(&it->scan, ext, max, n))
			it->done = true;
		break;
	}
	return 0;
}

void blksnap_cbt_iter_free(struct blksnap_cbt_iter *it)
{
	if (!it)
		return;
	free(it->device);
	free(it->name);
	free(it->buf);
	free(it);
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

int blksnap_cbt_read(struct blksnap_ctx *ctx, const char *device, int fd,
		     uint64_t *bytes, struct blksnap_origin_status *st)
{
	struct blksnap_origin_status before;
	char *name;
	uint8_t *buf = NULL;
	uint64_t off;
	int r;

	if (bytes)
		*bytes = 0;
	if (st && st->size < sizeof(*st))
		return bs_err(ctx, EINVAL, "struct blksnap_origin_status: set .size = sizeof(struct blksnap_origin_status)");
	r = cbt_origin(ctx, device, &name, &before, NULL);
	if (r)
		return r;
	buf = malloc(CBT_READ_PIECE);
	if (!buf) {
		r = bs_err(ctx, ENOMEM, "out of memory");
		goto out;
	}
	for (off = 0; off < before.tracking_blocks; off += CBT_READ_PIECE) {
		uint64_t count = before.tracking_blocks - off;

		if (count > CBT_READ_PIECE)
			count = CBT_READ_PIECE;
		r = cbt_read_piece(ctx, device, name, off, count, buf);
		if (r)
			goto out;
		r = write_all(fd, buf, count);
		if (r) {
			r = bs_err(ctx, -r, "cannot write the CBT map: %s", strerror(-r));
			goto out;
		}
		if (bytes)
			*bytes += count;
	}
	r = cbt_check_same(ctx, device, name, &before);
	if (!r && st)
		r = bs_copy_out(ctx, st, &before, sizeof(before), sizeof(before),
				"blksnap_origin_status");
out:
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

int blksnap_cbt_take(struct blksnap_ctx *ctx, const char *device, unsigned int *number)
{
	struct blksnap_origin_status st;
	struct bs_locks locks;
	char *name = NULL, *reply = NULL;
	uint64_t v;
	int r;

	bs_locks_init(&locks);
	r = bs_lock_origin_of(ctx, device, &locks);
	if (!r)
		r = cbt_origin(ctx, device, &name, &st, NULL);
	if (r)
		goto out;
	if (st.state != BLKSNAP_ORIGIN_IDLE) {
		r = bs_err(ctx, EBUSY, "cannot take a CBT snapshot of %s: it has a snapshot image (state %s), which is the take",
			   device, blksnap_origin_state_name(st.state));
		goto out;
	}
	r = bs_dm_message(ctx, name, "cbt_take", &reply);
	if (r)
		goto out;
	if (bs_parse_u64(reply, &v) || v < 1 || v > 254)
		r = bs_err(ctx, EPROTO, "unexpected reply '%s' to cbt_take from %s", reply, name);
	else if (number)
		*number = (unsigned int)v;
out:
	bs_unlock_all(&locks);
	free(reply);
	free(name);
	return r;
}

int blksnap_cbt_reset(struct blksnap_ctx *ctx, const char *device)
{
	struct blksnap_origin_status st;
	struct bs_locks locks;
	char *name = NULL;
	int r;

	bs_locks_init(&locks);
	r = bs_lock_origin_of(ctx, device, &locks);
	if (!r)
		r = cbt_origin(ctx, device, &name, &st, NULL);
	if (!r)
		r = bs_dm_message(ctx, name, "cbt_reset", NULL);
	bs_unlock_all(&locks);
	free(name);
	return r;
}
