// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libblksnap: creating, describing, merging and removing snapshots, and
 * their store.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "lock.h"
#include "ops.h"

/*---- Store parts ----*/

struct bs_devno {
	uint32_t major, minor;
};

/* Devices that a store must stay off: the snapshotted origins and their real devices. */
struct store_forbid {
	size_t n;
	struct bs_devno dev[64];
};

static int forbid_add(struct blksnap_ctx *ctx, struct store_forbid *f, uint32_t major,
		      uint32_t minor)
{
	if (f->n >= sizeof(f->dev) / sizeof(f->dev[0]))
		return bs_err(ctx, E2BIG, "too many devices in one snapshot (%zu at most)",
			      sizeof(f->dev) / sizeof(f->dev[0]) / 2);
	f->dev[f->n++] = (struct bs_devno){ major, minor };
	return 0;
}

static bool forbid_hit(const struct store_forbid *f, uint32_t major, uint32_t minor)
{
	for (size_t i = 0; i < f->n; i++)
		if (bs_sysfs_depends_on(major, minor, f->dev[i].major, f->dev[i].minor))
			return true;
	return false;
}

/*
 * One store part from what the user gave: a block device (all of it) or a
 * directory (a new file of @dir_bytes behind a loop device, *@fd open).
 */
static int store_part(struct blksnap_ctx *ctx, const struct bs_system *sys,
		      const char *arg, uint64_t dir_bytes, const char *snap,
		      const struct store_forbid *forbid, unsigned int flags,
		      struct bs_segment *seg, int *fd)
{
	struct bs_blockdev dev;
	const struct bs_sysdev *d;
	struct stat st;
	char label[80], what[300];
	int r;

	*fd = -1;
	if (stat(arg, &st))
		return bs_err(ctx, errno, "store %s: %s", arg, strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		uint32_t fmaj, fmin;

		/* btrfs and the like: the block device their mount names. */
		if (bs_fs_blockdev(st.st_dev, &fmaj, &fmin)) {
			fmaj = major(st.st_dev);
			fmin = minor(st.st_dev);
		}
		if (forbid_hit(forbid, fmaj, fmin))
			return bs_err(ctx, EINVAL, "store directory %s is on a device being snapshotted: its writes would fill the store; use a directory on another device",
				      arg);
		if (!dir_bytes)
			return bs_err(ctx, EINVAL, "store %s is a directory: give the size of its store file (--store-size or --size)",
				      arg);
		if (dir_bytes % BLKSNAP_SECTOR_SIZE)
			return bs_err(ctx, EINVAL, "store size must be a multiple of 512 bytes");
		snprintf(label, sizeof(label), "blksnap:%s", snap);
		r = bs_loop_store(ctx, arg, dir_bytes, label, fd, &seg->major, &seg->minor);
		seg->sectors = dir_bytes / BLKSNAP_SECTOR_SIZE;
		seg->offset = 0;	/* a new file: nobody else's, no marker needed */
		return r;
	}
	if (!S_ISBLK(st.st_mode))
		return bs_err(ctx, EINVAL, "store %s is neither a block device nor a directory", arg);
	r = bs_resolve_blockdev(ctx, arg, &dev);
	if (r)
		return r;
	seg->major = dev.major;
	seg->minor = dev.minor;
	/* Its first sector says it is a store part; the chunks come after it. */
	seg->offset = BS_STORE_RESERVED;
	seg->sectors = dev.sectors > BS_STORE_RESERVED ? dev.sectors - BS_STORE_RESERVED : 0;
	d = bs_system_by_devno(sys, dev.major, dev.minor);
	if (forbid_hit(forbid, dev.major, dev.minor))
		r = bs_err(ctx, EINVAL, "store %s is, or is stacked on, a device being snapshotted", arg);
	else if (d && bs_prefix(d->dm.uuid, "BLKSNAP-"))
		r = bs_err(ctx, EINVAL, "store %s is a blksnap device (%s)", arg, d->dm.uuid);
	else if (seg->sectors < BS_CHUNK_MIN)
		r = bs_err(ctx, EINVAL, "store %s is too small (%llu sectors): a store device needs at least 8 KiB",
			   arg, (unsigned long long)dev.sectors);
	else
		r = bs_check_not_in_use(ctx, dev.path);
	/*
	 * What mkfs and pvcreate check: the device is overwritten. A former
	 * store part (its first sector says so) holds only copied chunks,
	 * which may look like anything: it is used again without a look.
	 */
	if (!r && !(flags & BLKSNAP_STORE_FORCE) && !bs_store_marked(dev.path)) {
		r = bs_probe_signature(dev.path, what, sizeof(what));
		if (r == 1)
			r = bs_err(ctx, EEXIST, "store %s carries a signature, %s: it would be overwritten; check the device, wipe it ('wipefs -a %s') or use it anyway with --force",
				   arg, what, arg);
		else if (r < 0)
			r = bs_err(ctx, -r, "cannot look for signatures on store %s: %s", arg, strerror(-r));
	}
	if (!r)
		r = bs_store_mark(ctx, dev.path, snap);
	bs_blockdev_clear(&dev);
	return r;
}

static void close_fds(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/*---- Create ----*/

struct create_member {
	const struct bs_sysdev *origin;
	struct bs_origin_table table;
	char *image;
	char *uuid;
	bool created;
	bool suspended;
};

static const int create_held_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

/*
 * The point in time: suspend every origin with lockfs (freezing mounted
 * filesystems), resume every image, resume every origin. Every origin that
 * was suspended is resumed whatever fails, with the signals that would end
 * the program held until then. udev is waited for only afterwards: its
 * rules could otherwise touch a suspended origin and wait with us.
 */
static int create_point_in_time(struct blksnap_ctx *ctx, struct create_member *m,
				size_t n)
{
	sigset_t held, old;
	uint32_t cookie = 0;
	int r = 0;

	sigemptyset(&held);
	for (size_t i = 0; i < sizeof(create_held_signals) / sizeof(int); i++)
		sigaddset(&held, create_held_signals[i]);
	pthread_sigmask(SIG_BLOCK, &held, &old);

	for (size_t i = 0; i < n && !r; i++) {
		r = bs_dm_suspend(ctx, m[i].origin->dm.name, BS_DM_LOCKFS);
		m[i].suspended = !r;
	}
	for (size_t i = 0; i < n && !r; i++)
		r = bs_dm_resume(ctx, m[i].image, &cookie);
	for (size_t i = 0; i < n; i++) {
		const char *name = m[i].origin->dm.name;
		int r2;

		if (!m[i].suspended)
			continue;
		r2 = bs_dm_resume(r ? NULL : ctx, name, &cookie);
		if (r2)	/* once more: an origin must not stay suspended */
			r2 = bs_dm_resume(r ? NULL : ctx, name, &cookie);
		if (!r2) {
			m[i].suspended = false;
			continue;
		}
		if (!r)
			r = r2;
		bs_err_prefix(ctx, r, "origin %s is left suspended, run 'dmsetup resume %s'",
			      name, name);
	}
	bs_dm_udev_wait(NULL, cookie);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

static void create_rollback(struct blksnap_ctx *ctx, struct create_member *m,
			    size_t n, const char *store, bool store_created)
{
	for (size_t i = 0; i < n; i++)
		if (m[i].created && bs_dm_remove(NULL, m[i].image, NULL))
			bs_log(ctx, BLKSNAP_LOG_WARN, "cannot remove %s: remove it with 'dmsetup remove %s'",
			       m[i].image, m[i].image);
	if (store_created && bs_dm_remove(NULL, store, NULL))
		bs_log(ctx, BLKSNAP_LOG_WARN, "cannot remove %s: remove it with 'dmsetup remove %s'",
		       store, store);
}

/* Check the devices and fill the members. */
static int create_members(struct blksnap_ctx *ctx, const struct bs_system *sys,
			  const struct blksnap_create_params *p, const char *name,
			  struct create_member *m, struct store_forbid *forbid)
{
	for (size_t i = 0; i < p->n_devices; i++) {
		struct blksnap_origin_status st = { .size = sizeof(st) };
		const struct bs_sysdev *o;
		int r;

		r = bs_find_origin(ctx, sys, p->devices[i], &o);
		if (r)
			return r;
		for (size_t j = 0; j < i; j++)
			if (m[j].origin == o)
				return bs_err(ctx, EINVAL, "%s is given twice (as %s and %s)",
					      o->dm.name, p->devices[j], p->devices[i]);
		m[i].origin = o;
		r = bs_parse_origin_params(ctx, o->dm.targets[0].params, &m[i].table);
		if (r)
			return r;
		if (!o->status)
			return bs_err(ctx, EIO, "cannot read the status of %s", o->dm.name);
		r = blksnap_parse_origin_status(ctx, o->status, &st);
		if (r)
			return r;
		if (st.state != BLKSNAP_ORIGIN_IDLE)
			return bs_err(ctx, EBUSY, "%s already has a snapshot image (state %s): destroy that snapshot first",
				      p->devices[i], blksnap_origin_state_name(st.state));
		if (o->dm.suspended)
			return bs_err(ctx, EBUSY, "%s is suspended", o->dm.name);
		r = bs_image_names(ctx, o->dm.name, name, &m[i].image, &m[i].uuid);
		if (r)
			return r;
		if (bs_system_by_name(sys, m[i].image))
			return bs_err(ctx, EEXIST, "a device named %s already exists", m[i].image);
		r = forbid_add(ctx, forbid, o->dm.major, o->dm.minor);
		if (!r)
			r = forbid_add(ctx, forbid, m[i].table.major, m[i].table.minor);
		if (r)
			return r;
	}
	return 0;
}

/* The origin lock keys of the devices to snapshot, from a first scan. */
static int create_lock(struct blksnap_ctx *ctx, const struct blksnap_create_params *p,
		       const char *name, struct bs_locks *l)
{
	const struct bs_sysdev *o;
	struct bs_system sys;
	uint64_t *keys;
	int r;

	r = bs_lock_snapshot(ctx, l, name);
	if (r)
		return r;
	keys = calloc(p->n_devices, sizeof(*keys));
	if (!keys)
		return bs_err(ctx, ENOMEM, "out of memory");
	r = bs_system_scan(ctx, &sys);
	if (!r) {
		for (size_t i = 0; !r && i < p->n_devices; i++) {
			r = bs_find_origin(ctx, &sys, p->devices[i], &o);
			if (!r)
				keys[i] = bs_origin_lock_key(o);
		}
		bs_system_clear(&sys);
	}
	if (!r)
		r = bs_lock_origins(ctx, l, keys, p->n_devices);
	free(keys);
	return r;
}

int blksnap_create(struct blksnap_ctx *ctx,
		   const struct blksnap_create_params *params,
		   struct blksnap_snapshot **out)
{
	struct blksnap_create_params pp, *p = &pp;
	struct store_forbid forbid = { 0 };
	struct bs_locks locks;
	struct create_member *m = NULL;
	struct bs_segment *segs = NULL;
	struct bs_target *st = NULL;
	struct bs_system sys = { 0 };
	char defname[32], *store = NULL, *store_uuid = NULL, devno[24];
	const char *name;
	bool store_created = false;
	uint64_t chunk = 0, store_sectors = 0;
	size_t nst = 0, nfds = 0;
	int *fds = NULL, r;

	if (out)
		*out = NULL;
	bs_locks_init(&locks);
	r = bs_copy_in(ctx, &pp, sizeof(pp), params, sizeof(pp), "blksnap_create_params");
	if (r)
		return r;
	name = p->name;
	if (!p->n_devices)
		return bs_err(ctx, EINVAL, "no device to snapshot");
	if (!p->n_stores)
		return bs_err(ctx, EINVAL, "no store given: a snapshot needs a device or directory for the copied data");
	if (p->chunk_size) {
		if (p->chunk_size % BLKSNAP_SECTOR_SIZE)
			return bs_err(ctx, EINVAL, "chunk size must be a multiple of 512 bytes");
		chunk = p->chunk_size / BLKSNAP_SECTOR_SIZE;
		r = bs_check_chunk(ctx, chunk);
		if (r)
			return r;
	}
	if (!name) {
		if (bs_default_snapshot_name(time(NULL), defname, sizeof(defname)))
			return bs_err(ctx, EINVAL, "cannot make a snapshot name from the time");
		name = defname;
	}
	r = bs_check_snapshot_name(ctx, name);
	if (r)
		return r;
	/* Snapshots need blksnap-image, of a version this library drives. */
	r = bs_check_targets(ctx, true);
	if (r)
		return r;
	store = bs_strdupf("%s-store", name);
	store_uuid = bs_strdupf(BS_UUID_STORE "%s", name);
	m = calloc(p->n_devices, sizeof(*m));
	segs = calloc(p->n_stores, sizeof(*segs));
	fds = calloc(p->n_stores, sizeof(*fds));
	if (!store || !store_uuid || !m || !segs || !fds) {
		r = bs_err(ctx, ENOMEM, "out of memory");
		goto out;
	}
	r = create_lock(ctx, p, name, &locks);
	if (r)
		goto out;
	r = bs_system_scan(ctx, &sys);
	if (r)
		goto out;
	for (size_t i = 0; i < sys.n; i++) {
		if (!strcmp(sys.devs[i].dm.uuid, store_uuid) || !strcmp(sys.devs[i].dm.name, store)) {
			r = bs_err(ctx, EEXIST, "snapshot %s already exists: choose another --name", name);
			goto out;
		}
	}
	r = create_members(ctx, &sys, p, name, m, &forbid);
	if (r)
		goto out;
	/* A chunk given for all devices must not need too large a bitmap for any. */
	for (size_t i = 0; chunk && i < p->n_devices; i++) {
		r = bs_check_chunk_count(ctx, chunk, bs_sysdev_sectors(m[i].origin));
		if (r)
			goto out;
	}

	/* The store: its parts joined by one dm-linear device. */
	for (size_t i = 0; i < p->n_stores; i++) {
		r = store_part(ctx, &sys, p->stores[i], p->store_size, name, &forbid,
			       p->flags, &segs[i], &fds[nfds]);
		if (fds[nfds] >= 0)
			nfds++;
		if (r)
			goto fail;
		store_sectors += segs[i].sectors;
	}
	r = bs_linear_append(ctx, &st, &nst, segs, p->n_stores);
	if (r)
		goto fail;
	r = bs_dm_create(ctx, store, store_uuid, st, nst, false, NULL);
	if (r)
		goto fail;
	store_created = true;
	/* The store device holds the loop devices now. */
	close_fds(fds, nfds);
	nfds = 0;

	{
		struct bs_dmdev info;

		r = bs_dm_query(ctx, store, 0, 0, BS_DM_INFO, &info);
		if (!r && !info.exists)
			r = bs_err(ctx, ENODEV, "%s vanished after its creation", store);
		snprintf(devno, sizeof(devno), "%u:%u", info.major, info.minor);
		bs_dmdev_clear(&info);
		if (r)
			goto fail;
	}
	for (size_t i = 0; i < p->n_devices; i++) {
		struct bs_target t = { 0 };
		char real[24];

		snprintf(real, sizeof(real), "%u:%u", m[i].table.major, m[i].table.minor);
		/*
		 * The kernel's default low water, a quarter of the store, but
		 * in the table: the event API reads the threshold from there.
		 */
		t.len = bs_sysdev_sectors(m[i].origin);
		r = bs_image_params(ctx, real, devno, chunk ? chunk : bs_default_chunk(t.len),
				    store_sectors / 4 ? store_sectors / 4 : 1, &t.params);
		if (r)
			goto fail;
		t.type = (char *)BS_TARGET_IMAGE;
		r = bs_dm_create(ctx, m[i].image, m[i].uuid, &t, 1, true, NULL);
		free(t.params);
		if (r)
			goto fail;
		m[i].created = true;
	}

	bs_log(ctx, BLKSNAP_LOG_INFO, "%s: store %s of %llu sectors; suspending %zu origin(s) for the point in time",
	       name, store, (unsigned long long)store_sectors, p->n_devices);
	r = create_point_in_time(ctx, m, p->n_devices);
	if (r)
		goto fail;
	bs_log(ctx, BLKSNAP_LOG_INFO, "%s: taken, the origins are resumed", name);
	if (out) {
		r = blksnap_snapshot_get(ctx, name, out);
		/* Images in the order of the devices given. */
		for (size_t i = 0; !r && i < p->n_devices && i < (*out)->n_images; i++)
			for (size_t j = i; j < (*out)->n_images; j++)
				if (!strcmp((*out)->images[j].name, m[i].image)) {
					struct blksnap_image tmp = (*out)->images[i];

					(*out)->images[i] = (*out)->images[j];
					(*out)->images[j] = tmp;
					break;
				}
	}
	goto out;
fail:
	create_rollback(ctx, m, p->n_devices, store, store_created);
out:
	bs_unlock_all(&locks);
	close_fds(fds, nfds);
	if (m)
		for (size_t i = 0; i < p->n_devices; i++) {
			free(m[i].image);
			free(m[i].uuid);
		}
	bs_targets_free(st, nst);
	bs_system_clear(&sys);
	free(m);
	free(segs);
	free(fds);
	free(store);
	free(store_uuid);
	return r;
}

/*---- Describe, list, destroy ----*/

static int snapshot_find(struct blksnap_ctx *ctx, struct blksnap_list *l,
			 const char *name, struct blksnap_snapshot **s)
{
	*s = bs_list_snapshot(l, name);
	if (!*s)
		return bs_err(ctx, ENOENT, "no snapshot named %s (see 'blksnapctl list')", name);
	return 0;
}

int blksnap_snapshot_get(struct blksnap_ctx *ctx, const char *name,
			 struct blksnap_snapshot **out)
{
	struct blksnap_snapshot *s;
	struct blksnap_list *l;
	int r;

	*out = NULL;
	r = bs_scan_model(ctx, NULL, &l);
	if (r)
		return r;
	r = snapshot_find(ctx, l, name, &s);
	if (!r) {
		*out = malloc(sizeof(**out));
		if (*out) {
			**out = *s;
			/* Move the last one into the hole so that the list frees the rest. */
			*s = l->snapshots[--l->n_snapshots];
		} else {
			r = bs_err(ctx, ENOMEM, "out of memory");
		}
	}
	blksnap_list_free(l);
	return r;
}

void blksnap_snapshot_free(struct blksnap_snapshot *snap)
{
	if (!snap)
		return;
	bs_snapshot_clear(snap);
	free(snap);
}

int blksnap_list(struct blksnap_ctx *ctx, struct blksnap_list **out)
{
	int r = bs_scan_model(ctx, NULL, out);

	if (r)
		return r;
	for (size_t i = 0; i < (*out)->n_origins; i++)
		bs_origin_probe_fs(&(*out)->origins[i]);
	return 0;
}

/*
 * The locks of snapshot @name: its own, then its origins' (from a first
 * scan; the snapshot lock keeps its set of images as it is).
 */
static int snapshot_lock(struct blksnap_ctx *ctx, const char *name, struct bs_locks *locks)
{
	struct blksnap_snapshot *s;
	struct blksnap_list *l;
	struct bs_system sys;
	uint64_t *keys = NULL;
	size_t nk = 0;
	int r;

	r = bs_lock_snapshot(ctx, locks, name);
	if (r)
		return r;
	r = bs_scan_model(ctx, &sys, &l);
	if (r)
		return r;
	s = bs_list_snapshot(l, name);
	if (s && s->n_images) {
		keys = calloc(s->n_images, sizeof(*keys));
		if (!keys)
			r = bs_err(ctx, ENOMEM, "out of memory");
		for (size_t i = 0; keys && i < s->n_images; i++) {
			const struct bs_sysdev *od = s->images[i].origin ?
				bs_system_by_name(&sys, s->images[i].origin) : NULL;

			if (od)
				keys[nk++] = bs_origin_lock_key(od);
		}
	}
	if (!r)
		r = bs_lock_origins(ctx, locks, keys, nk);
	free(keys);
	blksnap_list_free(l);
	bs_system_clear(&sys);
	return r;
}

int blksnap_destroy(struct blksnap_ctx *ctx, const char *name)
{
	struct blksnap_snapshot *s;
	struct blksnap_list *l = NULL;
	struct bs_locks locks;
	struct bs_system sys = { 0 };
	char why[1200];
	int r;

	bs_locks_init(&locks);
	r = snapshot_lock(ctx, name, &locks);
	if (!r)
		r = bs_scan_model(ctx, &sys, &l);
	if (r)
		goto out;
	r = snapshot_find(ctx, l, name, &s);
	if (r)
		goto out;
	/* Check every image before removing any. */
	for (size_t i = 0; i < s->n_images; i++) {
		const struct bs_sysdev *d = bs_system_by_name(&sys, s->images[i].name);
		struct blksnap_origin *o = s->images[i].origin ?
			bs_list_origin(l, s->images[i].origin) : NULL;

		if (o && o->status_valid && o->status.state == BLKSNAP_ORIGIN_MERGE &&
		    o->status.merge_done_chunks < o->status.merge_total_chunks) {
			r = bs_err(ctx, EBUSY, "snapshot %s is being merged into %s (%" PRIu64 "/%" PRIu64 " chunks): removing it now would leave the origin half rolled back; 'blksnapctl merge %s --wait' waits and cleans up",
				   name, o->name, o->status.merge_done_chunks,
				   o->status.merge_total_chunks, name);
			goto out;
		}

		if (d && d->dm.open_count > 0) {
			bs_describe_holder(NULL, d->dm.major, d->dm.minor, d->dm.open_count,
					   why, sizeof(why));
			r = bs_err(ctx, EBUSY, "image %s is in use (%s): unmount it first",
				   d->dm.name, why);
			goto out;
		}
	}
	for (size_t i = 0; i < s->n_images && !r; i++) {
		r = bs_dm_remove(ctx, s->images[i].name, NULL);
		if (!r)
			bs_log(ctx, BLKSNAP_LOG_INFO, "%s: image %s removed", name, s->images[i].name);
	}
	if (!r && s->store_name) {
		r = bs_dm_remove(ctx, s->store_name, NULL);
		if (!r)
			bs_log(ctx, BLKSNAP_LOG_INFO, "%s: store %s removed", name, s->store_name);
	}
out:
	bs_unlock_all(&locks);
	blksnap_list_free(l);
	bs_system_clear(&sys);
	return r;
}

/*
 * Check that the snapshot can be merged: every image valid (or already
 * merging), nothing holding an origin or an image open.
 */
static int merge_check(struct blksnap_ctx *ctx, const struct bs_system *sys,
		       struct blksnap_list *l, const struct blksnap_snapshot *s)
{
	char why[1200];

	if (!s->n_images)
		return bs_err(ctx, ENOENT, "snapshot %s has no image to merge", s->name);
	for (size_t i = 0; i < s->n_images; i++) {
		const struct blksnap_image *img = &s->images[i];
		struct blksnap_origin *o = img->origin ? bs_list_origin(l, img->origin) : NULL;
		const struct bs_sysdev *od = o ? bs_system_by_name(sys, o->name) : NULL;
		const struct bs_sysdev *id = bs_system_by_name(sys, img->name);

		if (!o || !od || !o->status_valid || !img->status_valid)
			return bs_err(ctx, ENODEV, "image %s has no readable origin: cannot merge it", img->name);
		if (o->status.state == BLKSNAP_ORIGIN_MERGE)
			continue;	/* started before: wait for it */
		if (o->status.state == BLKSNAP_ORIGIN_MERGE_FAILED)
			return bs_err(ctx, EIO, "the merge into %s failed after %" PRIu64 " of %" PRIu64 " chunks: those chunks hold the image's data, the others the origin's (see blksnapctl(8), MERGE)",
				      o->name, o->status.merge_done_chunks, o->status.merge_total_chunks);
		if (img->status.state != BLKSNAP_IMAGE_VALID)
			return bs_err(ctx, EINVAL, "image %s is %s: only a valid image can be merged",
				      img->name, blksnap_image_state_name(img->status.state));
		if (od->dm.open_count > 0) {
			bs_describe_holder(NULL, od->dm.major, od->dm.minor, od->dm.open_count,
					   why, sizeof(why));
			return bs_err(ctx, EBUSY, "origin %s is in use (%s): a merge changes its data underneath; unmount it and stop the programs using it first",
				      o->name, why);
		}
		if (id && id->dm.open_count > 0) {
			bs_describe_holder(NULL, id->dm.major, id->dm.minor, id->dm.open_count,
					   why, sizeof(why));
			return bs_err(ctx, EBUSY, "image %s is in use (%s): its I/O fails once the merge starts; unmount it first",
				      img->name, why);
		}
	}
	return 0;
}

/*
 * Sum the progress of the snapshot's origins. *@complete when every one is
 * done; -EIO when one failed.
 */
static int merge_progress(struct blksnap_ctx *ctx, const struct blksnap_snapshot *s,
			  uint64_t *done, uint64_t *total, bool *complete)
{
	struct blksnap_origin_status st = { .size = sizeof(st) };
	int r;

	*done = *total = 0;
	*complete = true;
	for (size_t i = 0; i < s->n_images; i++) {
		r = bs_origin_status(ctx, s->images[i].origin, &st);
		if (r)
			return r;
		if (st.state == BLKSNAP_ORIGIN_MERGE_FAILED)
			return bs_err(ctx, EIO, "the merge into %s failed after %" PRIu64 " of %" PRIu64 " chunks (kernel log: 'dmesg | grep blksnap'); the images and the store are kept, see blksnapctl(8), MERGE",
				      s->images[i].origin, st.merge_done_chunks, st.merge_total_chunks);
		if (st.state != BLKSNAP_ORIGIN_MERGE)
			return bs_err(ctx, EIO, "origin %s is not merging (state %s)", s->images[i].origin,
				      blksnap_origin_state_name(st.state));
		*done += st.merge_done_chunks;
		*total += st.merge_total_chunks;
		if (st.merge_done_chunks < st.merge_total_chunks)
			*complete = false;
	}
	return 0;
}

int blksnap_merge(struct blksnap_ctx *ctx, const char *name, bool wait,
		  blksnap_progress_fn fn, void *data)
{
	const struct timespec tick = { 0, 250 * 1000 * 1000 };
	uint64_t done, total;
	struct blksnap_snapshot *s;
	struct blksnap_list *l = NULL;
	struct bs_locks locks;
	struct bs_system sys = { 0 };
	bool complete;
	int r;

	bs_locks_init(&locks);
	r = snapshot_lock(ctx, name, &locks);
	if (!r)
		r = bs_scan_model(ctx, &sys, &l);
	if (r)
		goto out;
	r = snapshot_find(ctx, l, name, &s);
	if (!r)
		r = merge_check(ctx, &sys, l, s);
	for (size_t i = 0; !r && i < s->n_images; i++) {
		struct blksnap_origin *o = bs_list_origin(l, s->images[i].origin);

		if (o->status.state == BLKSNAP_ORIGIN_MERGE)
			continue;
		r = bs_dm_message(ctx, o->name, "merge", NULL);
		if (r)
			bs_err_prefix(ctx, r, "cannot start merging %s into %s%s", s->images[i].name,
				      o->name, i ? " (the origins before it are merging)" : "");
		else
			bs_log(ctx, BLKSNAP_LOG_INFO, "%s: merging %s back; it reads as the image from now on",
			       o->name, s->images[i].name);
	}
	/*
	 * The copy runs in the kernel: wait without the locks, so that other
	 * calls say what they think of a merging snapshot instead of waiting.
	 */
	if (!r)
		bs_unlock_all(&locks);
	while (!r) {
		r = merge_progress(ctx, s, &done, &total, &complete);
		if (r)
			break;
		if (fn)
			fn(done, total, data);
		if (complete)
			break;
		if (!wait) {
			bs_log(ctx, BLKSNAP_LOG_INFO, "merge of %s runs in the background ('blksnapctl status %s' shows it); run 'blksnapctl merge %s' again once it is complete to remove the images and the store",
			       name, name, name);
			goto out;
		}
		nanosleep(&tick, NULL);
	}
	if (r)
		goto out;
	/* Complete: remove the images and the store, locked again. */
	blksnap_list_free(l);
	l = NULL;
	bs_system_clear(&sys);
	r = snapshot_lock(ctx, name, &locks);
	if (!r)
		r = bs_scan_model(ctx, &sys, &l);
	if (!r)
		r = snapshot_find(ctx, l, name, &s);
	if (!r)
		r = merge_progress(ctx, s, &done, &total, &complete);
	if (!r && !complete)
		r = bs_err(ctx, EAGAIN, "the merge of %s is not complete", name);
	for (size_t i = 0; !r && i < s->n_images; i++)
		r = bs_dm_remove(ctx, s->images[i].name, NULL);
	if (!r && s->store_name)
		r = bs_dm_remove(ctx, s->store_name, NULL);
	if (!r)
		bs_log(ctx, BLKSNAP_LOG_INFO, "merge of %s complete: images and store removed", name);
out:
	bs_unlock_all(&locks);
	blksnap_list_free(l);
	bs_system_clear(&sys);
	return r;
}

/*---- Growing the store ----*/

int blksnap_store_add(struct blksnap_ctx *ctx, const char *name,
		      const char *store, uint64_t bytes, unsigned int flags)
{
	struct store_forbid forbid = { 0 };
	const struct bs_sysdev *sd;
	struct blksnap_snapshot *s;
	struct blksnap_list *l = NULL;
	struct bs_target *t = NULL;
	struct bs_locks locks;
	struct bs_segment seg;
	struct bs_system sys = { 0 };
	size_t nt = 0;
	int fd = -1, r;

	/*
	 * Read, append, load: the lock keeps another store add (or the
	 * monitor's) from loading a table read before this one's load.
	 */
	bs_locks_init(&locks);
	r = bs_lock_snapshot(ctx, &locks, name);
	if (!r)
		r = bs_scan_model(ctx, &sys, &l);
	if (r)
		goto out;
	r = snapshot_find(ctx, l, name, &s);
	if (r)
		goto out;
	sd = s->store_name ? bs_system_by_name(&sys, s->store_name) : NULL;
	if (!sd) {
		r = bs_err(ctx, ENODEV, "snapshot %s has no store device", name);
		goto out;
	}
	for (size_t i = 0; !r && i < s->n_images; i++) {
		struct blksnap_origin *o = s->images[i].origin ?
			bs_list_origin(l, s->images[i].origin) : NULL;
		const struct bs_sysdev *od = o ? bs_system_by_name(&sys, o->name) : NULL;

		if (o)
			r = forbid_add(ctx, &forbid, o->real_major, o->real_minor);
		if (od && !r)
			r = forbid_add(ctx, &forbid, od->dm.major, od->dm.minor);
	}
	if (!r)
		r = store_part(ctx, &sys, store, bytes, name, &forbid, flags, &seg, &fd);
	if (r)
		goto out;
	t = calloc(sd->dm.n_targets, sizeof(*t));
	if (!t) {
		r = bs_err(ctx, ENOMEM, "out of memory");
		goto out;
	}
	for (; nt < sd->dm.n_targets; nt++) {
		t[nt].start = sd->dm.targets[nt].start;
		t[nt].len = sd->dm.targets[nt].len;
		t[nt].type = strdup(sd->dm.targets[nt].type);
		t[nt].params = strdup(sd->dm.targets[nt].params);
		if (!t[nt].type || !t[nt].params) {
			nt++;
			r = bs_err(ctx, ENOMEM, "out of memory");
			goto out;
		}
	}
	r = bs_linear_append(ctx, &t, &nt, &seg, 1);
	if (r)
		goto out;
	r = bs_swap_table(ctx, sd->dm.name, t, nt);
	if (!r)
		bs_log(ctx, BLKSNAP_LOG_INFO, "%s: part %s of %llu sectors added to %s, now %llu sectors",
		       name, store, (unsigned long long)seg.sectors, sd->dm.name,
		       (unsigned long long)(t[nt - 1].start + t[nt - 1].len));
out:
	bs_unlock_all(&locks);
	if (fd >= 0)
		close(fd);
	bs_targets_free(t, nt);
	blksnap_list_free(l);
	bs_system_clear(&sys);
	return r;
}
