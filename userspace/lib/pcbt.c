// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libblksnap: persistent change tracking from userspace. Before an origin
 * is loaded with a CBT metadata device, the device is checked (not the
 * device attached nor anything overlapping it, not in use, not another
 * origin's metadata), the real device's identity is found, and the
 * metadata is formatted when it holds none for this device, size and
 * tracking block: the kernel never formats it (meta.c has the format).
 * Also the cbt_close and cbt_detach messages.
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/fs.h>
#include <linux/loop.h>

#include "lock.h"
#include "meta.h"
#include "ops.h"
#include "pcbt.h"

/* The metadata file in a --cbt-metadata directory: <prefix><id>.meta */
#define BLKSNAP_META_FILE_PREFIX "blksnap-cbt-"

#ifndef BLKSNAP_BY_ID_DIR
#define BLKSNAP_BY_ID_DIR "/dev/disk/by-id"
#endif

/*---- Options ----*/

int bs_attach_opts_in(struct blksnap_ctx *ctx, const struct blksnap_attach_options *opts,
		      struct blksnap_attach_options *o)
{
	size_t size;
	int r;

	if (!opts) {
		memset(o, 0, sizeof(*o));
		o->size = sizeof(*o);
		return 0;
	}
	r = bs_copy_in(ctx, o, sizeof(*o), opts, sizeof(*o), "blksnap_attach_options");
	if (r)
		return r;
	memcpy(&size, opts, sizeof(size));
	/* A later header's members: refused unless unset, as the kernel's copy_struct_from_user. */
	for (size_t i = sizeof(*o); i < size; i++)
		if (((const unsigned char *)opts)[i])
			return bs_err(ctx, EINVAL, "struct blksnap_attach_options: a member this library (%s) does not know is set (byte %zu of %zu)",
				      blksnap_version(), i, size);
	o->size = sizeof(*o);
	if (o->flags & ~(unsigned int)BLKSNAP_ATTACH_FORCE)
		return bs_err(ctx, EINVAL, "struct blksnap_attach_options: unknown flags 0x%x",
			      o->flags & ~(unsigned int)BLKSNAP_ATTACH_FORCE);
	if (o->tracking_block_bytes % BLKSNAP_SECTOR_SIZE)
		return bs_err(ctx, EINVAL, "tracking block must be a multiple of 512 bytes");
	if (o->cbt_metadata_id && !o->cbt_metadata)
		return bs_err(ctx, EINVAL, "a CBT metadata id goes with a CBT metadata device");
	if (o->cbt_metadata && !*o->cbt_metadata)
		return bs_err(ctx, EINVAL, "empty CBT metadata device name");
	if (o->cbt_metadata_id)
		return bs_check_metadata_id(ctx, o->cbt_metadata_id);
	return 0;
}

/*---- The device's identity ----*/

static int by_id_rank(const char *name)
{
	static const char *const skip[] = { "lvm-pv-uuid-", "md-", "dm-" };

	if (name[0] == '.')
		return -1;
	for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
		if (bs_prefix(name, skip[i]))
			return -1;
	if (bs_prefix(name, "wwn-"))
		return 0;
	if (bs_prefix(name, "nvme-eui.") || bs_prefix(name, "nvme-uuid."))
		return 1;
	return 2;
}

int bs_pick_by_id(const char *const *names, size_t n)
{
	int best = -1, best_rank = 3;

	for (size_t i = 0; i < n; i++) {
		int rank = by_id_rank(names[i]);

		if (rank < 0 || rank > best_rank)
			continue;
		/* The same rank: the first in byte order, so that it is stable. */
		if (rank < best_rank || strcmp(names[i], names[best]) < 0) {
			best = (int)i;
			best_rank = rank;
		}
	}
	return best;
}

/* The /dev/disk/by-id name of @major:@minor that bs_pick_by_id() prefers. */
static char *by_id_name(uint32_t major, uint32_t minor)
{
	char **names = NULL, *out = NULL, path[PATH_MAX];
	size_t n = 0;
	struct dirent *de;
	DIR *dir;
	int k;

	dir = opendir(BLKSNAP_BY_ID_DIR);
	if (!dir)
		return NULL;
	while ((de = readdir(dir))) {
		struct stat st;
		char **v;

		snprintf(path, sizeof(path), BLKSNAP_BY_ID_DIR "/%s", de->d_name);
		if (stat(path, &st) || !S_ISBLK(st.st_mode) || major(st.st_rdev) != major ||
		    minor(st.st_rdev) != minor)
			continue;
		v = realloc(names, (n + 1) * sizeof(*v));
		if (!v)
			break;
		names = v;
		names[n] = strdup(de->d_name);
		if (!names[n])
			break;
		n++;
	}
	closedir(dir);
	k = bs_pick_by_id((const char *const *)names, n);
	if (k >= 0)
		out = strdup(names[k]);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return out;
}

/*---- Overlaps ----*/

struct devset {
	size_t n;
	uint32_t major[64], minor[64];
};

static void devset_add(struct devset *s, uint32_t major, uint32_t minor)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->major[i] == major && s->minor[i] == minor)
			return;
	if (s->n < 64) {
		s->major[s->n] = major;
		s->minor[s->n++] = minor;
	}
}

static int read_devno(const char *path, uint32_t *major, uint32_t *minor)
{
	char buf[32];
	FILE *f = fopen(path, "re");
	int r = -ENOENT;

	if (!f)
		return -errno;
	if (fgets(buf, sizeof(buf), f)) {
		buf[strcspn(buf, "\n")] = '\0';
		r = bs_parse_devno(buf, major, minor);
	}
	fclose(f);
	return r;
}

/* The device and every device it is stacked on (the "slaves" links). */
static void ancestors(uint32_t major, uint32_t minor, struct devset *s, int depth)
{
	char path[64];
	struct dirent *de;
	DIR *dir;

	devset_add(s, major, minor);
	if (depth > 16)
		return;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/slaves", major, minor);
	dir = opendir(path);
	if (!dir)
		return;
	while ((de = readdir(dir))) {
		char attr[300];
		uint32_t ma, mi;

		if (de->d_name[0] == '.')
			continue;
		snprintf(attr, sizeof(attr), "/sys/class/block/%s/dev", de->d_name);
		if (!read_devno(attr, &ma, &mi))
			ancestors(ma, mi, s, depth + 1);
	}
	closedir(dir);
}

/* The whole disk of a partition; false for anything else. */
static bool whole_disk(uint32_t major, uint32_t minor, uint32_t *wmajor, uint32_t *wminor)
{
	char path[80];

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/partition", major, minor);
	if (access(path, F_OK))
		return false;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/../dev", major, minor);
	return !read_devno(path, wmajor, wminor);
}

static bool devset_has(const struct devset *s, uint32_t major, uint32_t minor)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->major[i] == major && s->minor[i] == minor)
			return true;
	return false;
}

/*
 * Whether @a and @b share sectors as far as the block layer shows it: one
 * is (stacked on) the other, or one is (stacked on) a partition of a disk
 * the other is (stacked on). Devices that only share a lower device (two
 * LVs of one PV) do not.
 */
static bool overlaps(uint32_t amaj, uint32_t amin, uint32_t bmaj, uint32_t bmin)
{
	struct devset a = { 0 }, b = { 0 };
	uint32_t wmaj, wmin;

	ancestors(amaj, amin, &a, 0);
	ancestors(bmaj, bmin, &b, 0);
	if (devset_has(&a, bmaj, bmin) || devset_has(&b, amaj, amin))
		return true;
	for (size_t i = 0; i < a.n; i++)
		if (whole_disk(a.major[i], a.minor[i], &wmaj, &wmin) && devset_has(&b, wmaj, wmin))
			return true;
	for (size_t i = 0; i < b.n; i++)
		if (whole_disk(b.major[i], b.minor[i], &wmaj, &wmin) && devset_has(&a, wmaj, wmin))
			return true;
	return false;
}

/* A loop device in the stack of @meta whose backing file lives on (a device overlapping) @dev. */
static bool loop_on(const struct bs_blockdev *meta, const struct bs_blockdev *dev,
		    char **file)
{
	struct devset s = { 0 };

	ancestors(meta->major, meta->minor, &s, 0);
	for (size_t i = 0; i < s.n; i++) {
		struct stat st;
		char *f = NULL, *dir = NULL;
		bool hit;

		if (bs_sysfs_loop_backing(s.major[i], s.minor[i], &f) || !f)
			continue;
		/* A deleted file ("/d/x (deleted)"): its directory is on the same file system. */
		if (stat(f, &st)) {
			dir = bs_backing_dir(f);
			if (!dir || stat(dir, &st)) {
				free(dir);
				free(f);
				continue;
			}
		}
		free(dir);
		hit = overlaps(major(st.st_dev), minor(st.st_dev), dev->major, dev->minor);
		if (hit) {
			*file = f;
			return true;
		}
		free(f);
	}
	return false;
}

/*---- Checks, identity and formatting before the table load ----*/

static int check_meta_device(struct blksnap_ctx *ctx, const struct bs_system *sys,
			     const struct bs_blockdev *meta, const struct bs_blockdev *dev,
			     const char *arg, const char *device)
{
	const struct bs_sysdev *d = bs_system_by_devno(sys, meta->major, meta->minor);
	char *file = NULL;
	int r;

	if (meta->major == dev->major && meta->minor == dev->minor)
		return bs_err(ctx, EINVAL, "CBT metadata %s is %s itself: use a device of its own",
			      arg, device);
	if (overlaps(meta->major, meta->minor, dev->major, dev->minor))
		return bs_err(ctx, EINVAL, "CBT metadata %s overlaps %s (one is stacked on, or a partition of, the other): use a device of its own",
			      arg, device);
	if (loop_on(meta, dev, &file)) {
		r = bs_err(ctx, EINVAL, "CBT metadata %s is a loop device over %s, a file on %s: its writes would go through the device it tracks",
			   arg, file, device);
		free(file);
		return r;
	}
	if (d && bs_prefix(d->dm.uuid, "BLKSNAP-"))
		return bs_err(ctx, EINVAL, "CBT metadata %s is a blksnap device (%s)", arg, d->dm.uuid);
	for (size_t i = 0; i < sys->n; i++) {
		const char *type = bs_sysdev_type(&sys->devs[i]);
		struct bs_origin_table t;

		if (type && !strcmp(type, BS_TARGET_ORIGIN) &&
		    !bs_parse_origin_params(NULL, sys->devs[i].dm.targets[0].params, &t) &&
		    t.has_metadata && t.meta_major == meta->major && t.meta_minor == meta->minor)
			return bs_err(ctx, EBUSY, "CBT metadata %s is the CBT metadata of %s already",
				      arg, sys->devs[i].dm.name);
	}
	return bs_check_not_in_use(ctx, meta->path);
}

/* The metadata_id of the device attached: given, its dm UUID, or its by-id name. */
static int find_metadata_id(struct blksnap_ctx *ctx, const struct bs_system *sys,
			    const struct bs_blockdev *dev, const char *device,
			    const char *given, char *id, size_t len)
{
	const struct bs_sysdev *d = bs_system_by_devno(sys, dev->major, dev->minor);
	char *name;

	if (given) {
		snprintf(id, len, "%s", given);
		return 0;
	}
	if (d) {
		if (!d->dm.uuid[0])
			return bs_err(ctx, EINVAL, "%s is a dm device without a dm UUID: give the CBT metadata id (--cbt-metadata-id), a name that stays this device's",
				      device);
		if (strlen(d->dm.uuid) >= len || bs_check_metadata_id(NULL, d->dm.uuid))
			return bs_err(ctx, EINVAL, "the dm UUID of %s does not fit as a CBT metadata id: give one (--cbt-metadata-id)",
				      device);
		snprintf(id, len, "%s", d->dm.uuid);
		return 0;
	}
	name = by_id_name(dev->major, dev->minor);
	if (!name || strlen(name) >= len || bs_check_metadata_id(NULL, name)) {
		free(name);
		return bs_err(ctx, EINVAL, "%s has no identity in " BLKSNAP_BY_ID_DIR " (no WWN, serial or similar): give the CBT metadata id (--cbt-metadata-id), a name that stays this device's",
			      device);
	}
	snprintf(id, len, "%s", name);
	free(name);
	return 0;
}

static unsigned int log2_u64(uint64_t v)
{
	return (unsigned int)__builtin_ctzll(v);
}

static int meta_format(struct blksnap_ctx *ctx, int fd, const struct bs_blockdev *meta,
		       uint64_t dev_sectors, uint64_t tracking, const char *id)
{
	struct bs_meta_params p = {
		.dev_sectors = dev_sectors,
		.block_shift = log2_u64(tracking),
		.metadata_id = id,
	};

	if (getrandom(p.generation, sizeof(p.generation), 0) != sizeof(p.generation) ||
	    getrandom(&p.epoch, sizeof(p.epoch), 0) != sizeof(p.epoch))
		return bs_err(ctx, errno ? errno : EIO, "cannot get random numbers: %s",
			      strerror(errno ? errno : EIO));
	p.generation[6] = (p.generation[6] & 0x0f) | 0x40;	/* a version 4 UUID */
	p.generation[8] = (p.generation[8] & 0x3f) | 0x80;
	return bs_meta_format(ctx, fd, meta->sectors * BLKSNAP_SECTOR_SIZE, &p);
}

/*---- Metadata in a directory ----*/

char *bs_pcbt_file_name(const char *dir, const char *id)
{
	char *f = bs_strdupf("%s/" BLKSNAP_META_FILE_PREFIX "%s.meta", dir, id);

	for (char *p = f ? f + strlen(dir) + 1 : NULL; p && *p; p++)
		if (*p == '/')
			*p = '_';
	return f;
}

/* The loop device (name in @loop) whose backing file is the file open as @fd, if any. */
static bool file_looped(int fd, char *loop, size_t len)
{
	struct stat st, bst;
	struct dirent *e;
	bool hit = false;
	DIR *d;

	if (fstat(fd, &st))
		return false;
	d = opendir("/sys/block");
	if (!d)
		return false;
	while (!hit && (e = readdir(d))) {
		char path[PATH_MAX], buf[PATH_MAX];
		ssize_t n;
		FILE *f;

		if (strncmp(e->d_name, "loop", 4))
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/loop/backing_file", e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		n = fgets(buf, sizeof(buf), f) ? (ssize_t)strcspn(buf, "\n") : -1;
		fclose(f);
		if (n <= 0)
			continue;
		buf[n] = 0;
		if (!stat(buf, &bst) && bst.st_dev == st.st_dev && bst.st_ino == st.st_ino) {
			snprintf(loop, len, "/dev/%.40s", e->d_name);
			hit = true;
		}
	}
	closedir(d);
	return hit;
}

/* A new, empty file on btrfs: no copy-on-write, so that it stays allocated. */
static void no_cow(int fd)
{
	int flags;

	if (!ioctl(fd, FS_IOC_GETFLAGS, &flags) && !(flags & FS_NOCOW_FL)) {
		flags |= FS_NOCOW_FL;
		(void)ioctl(fd, FS_IOC_SETFLAGS, &flags);
	}
}

/*
 * @o->cbt_metadata names the directory @dir: the metadata is the file
 * <dir>/blksnap-cbt-<id>.meta, created (unless @reuse) or grown to what
 * @tracking-sector blocks of @dev need (fully allocated: a metadata write
 * never waits for the file system to find space), behind a new autoclear
 * loop device that *@loop_fd holds until the table does. @loop gets the
 * loop device's path. The directory must be root's alone (nobody else can
 * put a file of their own there), on a block device that is not @dev nor
 * stacked on it; the file a regular file of the caller's with one link,
 * locked while it is checked and looped, and in no other loop device.
 */
static int meta_dir_loop(struct blksnap_ctx *ctx, const char *dir, const struct bs_blockdev *dev,
			 const char *device, const char *id, uint64_t tracking, bool reuse,
			 char *loop, size_t len, int *loop_fd)
{
	struct blksnap_meta_sb sb;
	struct bs_meta_layout l;
	struct stat dst, fst;
	char *file, *name, size[16], label[LO_NAME_SIZE];
	uint32_t fmaj, fmin;
	uint64_t need;
	int dfd, fd = -1, r;

	file = bs_pcbt_file_name(dir, id);
	if (!file)
		return bs_err(ctx, ENOMEM, "out of memory");
	name = strrchr(file, '/') + 1;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fstat(dfd, &dst)) {
		r = bs_err(ctx, errno, "cannot open CBT metadata directory %s: %s", dir, strerror(errno));
		goto out;
	}
	if (dst.st_uid != geteuid() || (dst.st_mode & (S_IWGRP | S_IWOTH))) {
		r = bs_err(ctx, EPERM, "CBT metadata directory %s can be written by others than its owner, or is not yours: use a directory only root can write (mode 0755 or stricter)",
			   dir);
		goto out;
	}
	if (bs_fs_blockdev(dst.st_dev, &fmaj, &fmin)) {
		r = bs_err(ctx, ENODEV, "cannot tell which block device holds CBT metadata directory %s (not a file system on a block device): use a directory on one, or a device",
			   dir);
		goto out;
	}
	if (overlaps(fmaj, fmin, dev->major, dev->minor)) {
		r = bs_err(ctx, EINVAL, "CBT metadata directory %s is on %s, or on a device stacked on it: its writes would go through the device it tracks; use a directory on another device",
			   dir, device);
		goto out;
	}
	fd = openat(dfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC | (reuse ? 0 : O_CREAT), 0600);
	if (fd < 0) {
		if (errno == ENOENT && reuse)
			r = bs_err(ctx, ENOENT, "%s holds no CBT metadata of %s (%s): from the blksnaptab it is only used, never created (is the file system of %s mounted? 'blksnapctl attach' by hand creates it)",
				   dir, device, name, dir);
		else
			r = bs_err(ctx, errno, "cannot open CBT metadata file %s: %s", file,
				   strerror(errno));
		goto out;
	}
	if (fstat(fd, &fst) || !S_ISREG(fst.st_mode) || fst.st_uid != geteuid() ||
	    fst.st_nlink != 1) {
		r = bs_err(ctx, EPERM, "CBT metadata file %s is not a regular file of yours with one link: remove it, or use another directory",
			   file);
		goto out;
	}
	/*
	 * The lock belongs to the open file, which the loop device keeps: it
	 * is held from here for as long as a loop device uses the file.
	 */
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		int e = errno;

		if (e != EWOULDBLOCK)
			r = bs_err(ctx, e, "cannot lock CBT metadata file %s: %s", file, strerror(e));
		else if (file_looped(fd, loop, len))
			r = bs_err(ctx, EBUSY, "CBT metadata file %s is in use already, through %s",
				   file, loop);
		else
			r = bs_err(ctx, EBUSY, "CBT metadata file %s is in use by another attach", file);
		goto out;
	}
	/* A loop device set up by other means (losetup) holds no lock. */
	if (file_looped(fd, loop, len)) {
		r = bs_err(ctx, EBUSY, "CBT metadata file %s is in use already, through %s", file, loop);
		goto out;
	}
	if (!fst.st_size)
		no_cow(fd);
	/* The size for the metadata's own block size when it continues, as bs_pcbt_prepare decides. */
	if (!tracking && bs_meta_read_sb(NULL, fd, &sb) >= 0 &&
	    !strncmp(sb.metadata_id, id, sizeof(sb.metadata_id)) &&
	    le64toh(sb.dev_sectors) == dev->sectors &&
	    !bs_check_tracking_block(NULL, 1ull << (le32toh(sb.block_shift) & 63), dev->sectors))
		tracking = 1ull << (le32toh(sb.block_shift) & 63);
	if (!tracking)
		tracking = bs_default_tracking_block(dev->sectors);
	if (bs_meta_layout((dev->sectors + tracking - 1) / tracking, &l)) {
		r = bs_err(ctx, EINVAL, "%s is too large for CBT metadata", device);
		goto out;
	}
	need = l.total * BLKSNAP_META_BLOCK;
	if (fallocate(fd, 0, 0, (off_t)need)) {
		int e = errno;

		blksnap_format_size(need, size, sizeof(size));
		if (e == ENOSPC)
			r = bs_err(ctx, e, "not enough free space in %s for CBT metadata of %s", dir, size);
		else
			r = bs_err(ctx, e, "cannot allocate CBT metadata file %s of %s: %s", file, size,
				   strerror(e));
		goto out;
	}
	snprintf(label, sizeof(label), "blksnap-cbt:%.51s", id);
	r = bs_loop_file(ctx, fd, dir, label, loop_fd, loop, len);
	if (!r)
		bs_log(ctx, BLKSNAP_LOG_INFO, "CBT metadata of %s: %s through %s", device, file, loop);
out:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	free(file);
	return r;
}

int bs_pcbt_prepare(struct blksnap_ctx *ctx, const struct bs_system *sys,
		    const struct bs_blockdev *dev, const char *device,
		    const struct blksnap_attach_options *o, struct bs_pcbt_table *out)
{
	struct blksnap_meta_sb sb;
	struct bs_blockdev meta;
	struct bs_meta_layout l;
	uint64_t tracking = out->tracking, need;
	bool format = false, have_sb;
	char what[300], a[16], b[16], c[16], loop[64];
	const char *meta_arg = o->cbt_metadata, *shown = o->cbt_metadata;
	char *file = NULL;
	struct stat dst;
	int fd, r;

	out->loop_fd = -1;
	if (!stat(o->cbt_metadata, &dst) && S_ISDIR(dst.st_mode)) {
		/* A directory: the file for this device's id, through a loop device. */
		r = find_metadata_id(ctx, sys, dev, device, o->cbt_metadata_id, out->metadata_id,
				     sizeof(out->metadata_id));
		if (!r)
			r = meta_dir_loop(ctx, o->cbt_metadata, dev, device, out->metadata_id,
					  out->tracking, out->reuse_file, loop, sizeof(loop),
					  &out->loop_fd);
		if (r)
			return r;
		meta_arg = loop;
		/* Messages name the file, not the directory nor the loop device. */
		file = bs_pcbt_file_name(o->cbt_metadata, out->metadata_id);
		if (file)
			shown = file;
	}
	r = bs_resolve_blockdev(ctx, meta_arg, &meta);
	if (r) {
		free(file);
		return bs_err_prefix(ctx, r, "CBT metadata");
	}
	r = check_meta_device(ctx, sys, &meta, dev, shown, device);
	if (!r)
		r = find_metadata_id(ctx, sys, dev, device, o->cbt_metadata_id, out->metadata_id,
				     sizeof(out->metadata_id));
	if (r)
		goto out;
	/* Exclusive while it is read and formatted: nobody mounts it meanwhile. */
	fd = open(meta.path, O_RDWR | O_EXCL | O_CLOEXEC);
	if (fd < 0) {
		r = bs_err(ctx, errno, "cannot open CBT metadata %s: %s", shown,
			   strerror(errno));
		goto out;
	}
	r = bs_meta_read_sb(NULL, fd, &sb);
	have_sb = r >= 0;
	if (r < 0 && r != -EINVAL) {
		r = bs_err(ctx, -r, "cannot read CBT metadata %s: %s", shown, strerror(-r));
		goto close;
	}
	r = 0;
	if (have_sb && strncmp(sb.metadata_id, out->metadata_id, sizeof(sb.metadata_id))) {
		if (!(o->flags & BLKSNAP_ATTACH_FORCE)) {
			r = bs_err(ctx, EEXIST, "CBT metadata %s holds the change tracking of %.127s, not of %s (%s): use another device, or --force to format it for %s (that tracking is lost)",
				   shown, sb.metadata_id, device, out->metadata_id, device);
			goto close;
		}
		format = true;
	} else if (have_sb) {
		uint64_t sb_tracking = 1ull << (le32toh(sb.block_shift) & 63);

		/* Without a block size given, the metadata's continues the generation. */
		if (!tracking && le64toh(sb.dev_sectors) == dev->sectors &&
		    !bs_check_tracking_block(NULL, sb_tracking, dev->sectors))
			tracking = sb_tracking;
		if (!tracking)
			tracking = bs_default_tracking_block(dev->sectors);
		if (le64toh(sb.dev_sectors) != dev->sectors || sb_tracking != tracking) {
			bs_log(ctx, BLKSNAP_LOG_INFO, "CBT metadata %s was formatted for %llu sectors with %llu-sector tracking blocks: formatted again for %llu and %llu (a new generation)",
			       shown, (unsigned long long)le64toh(sb.dev_sectors),
			       (unsigned long long)sb_tracking, (unsigned long long)dev->sectors,
			       (unsigned long long)tracking);
			format = true;
		}
	} else {
		if (!(o->flags & BLKSNAP_ATTACH_FORCE)) {
			r = bs_probe_signature(meta.path, what, sizeof(what));
			if (r == 1) {
				r = bs_err(ctx, EEXIST, "CBT metadata %s carries a signature, %s: it would be overwritten; check the device, wipe it ('wipefs -a %s') or use it anyway with --force",
					   shown, what, shown);
				goto close;
			}
			if (r < 0) {
				r = bs_err(ctx, -r, "cannot look for signatures on CBT metadata %s: %s",
					   shown, strerror(-r));
				goto close;
			}
		}
		format = true;
	}
	if (!tracking)
		tracking = bs_default_tracking_block(dev->sectors);
	r = bs_check_tracking_block(ctx, tracking, dev->sectors);
	if (r)
		goto close;
	if (bs_meta_layout((dev->sectors + tracking - 1) / tracking, &l)) {
		r = bs_err(ctx, EINVAL, "%s is too large for CBT metadata", device);
		goto close;
	}
	need = l.total * BLKSNAP_META_BLOCK;
	if (meta.sectors * BLKSNAP_SECTOR_SIZE < need) {
		r = bs_err(ctx, ENOSPC, "CBT metadata %s is too small: %s with %s tracking blocks needs %s (%llu bytes), it has %s",
			   shown,
			   blksnap_format_size(dev->sectors * BLKSNAP_SECTOR_SIZE, a, sizeof(a)),
			   blksnap_format_size(tracking * BLKSNAP_SECTOR_SIZE, b, sizeof(b)),
			   blksnap_format_size(need, c, sizeof(c)), (unsigned long long)need,
			   blksnap_format_size(meta.sectors * BLKSNAP_SECTOR_SIZE, what, 16));
		goto close;
	}
	if (format) {
		r = meta_format(ctx, fd, &meta, dev->sectors, tracking, out->metadata_id);
		if (r) {
			bs_err_prefix(ctx, r, "CBT metadata %s", shown);
			goto close;
		}
		bs_log(ctx, BLKSNAP_LOG_INFO, "CBT metadata %s formatted for %s (id %s)",
		       shown, device, out->metadata_id);
	}
	out->tracking = tracking;
	snprintf(out->metadata, sizeof(out->metadata), "%u:%u", meta.major, meta.minor);
close:
	/* The kernel opens it exclusively at the table load. */
	close(fd);
out:
	bs_blockdev_clear(&meta);
	free(file);
	return r;
}

/*---- Messages ----*/

/* Whether the origin @o has a metadata device. */
static bool origin_persistent(const struct bs_sysdev *o)
{
	struct bs_origin_table t;

	return !bs_parse_origin_params(NULL, o->dm.targets[0].params, &t) && t.has_metadata;
}

int bs_pcbt_detach(struct blksnap_ctx *ctx, const struct bs_sysdev *o)
{
	if (!origin_persistent(o))
		return 0;
	/* Sticky: the next load starts a new generation, on purpose. */
	return bs_dm_message(ctx, o->dm.name, "cbt_detach", NULL);
}

/* cbt_close to the origin @o, with its lock held by the caller. */
static int close_one(struct blksnap_ctx *ctx, const struct bs_sysdev *o, const char *device)
{
	int r;

	if (!origin_persistent(o))
		return bs_err(ctx, EINVAL, "%s has no CBT metadata device: its change tracking is in memory only",
			      device);
	r = bs_dm_message(ctx, o->dm.name, "cbt_close", NULL);
	if (!r)
		bs_log(ctx, BLKSNAP_LOG_INFO, "%s: CBT maps written, metadata closed", o->dm.name);
	return r;
}

/* Lock the origin found as @device, find it again under the lock, close it. */
static int close_locked(struct blksnap_ctx *ctx, const char *device)
{
	const struct bs_sysdev *o;
	struct bs_system sys;
	struct bs_locks locks;
	int r;

	bs_locks_init(&locks);
	r = bs_lock_origin_of(ctx, device, &locks);
	if (!r)
		r = bs_system_scan(ctx, &sys);
	if (r)
		goto out;
	r = bs_find_origin(ctx, &sys, device, &o);
	if (!r)
		r = close_one(ctx, o, device);
	bs_system_clear(&sys);
out:
	bs_unlock_all(&locks);
	return r;
}

int blksnap_cbt_close(struct blksnap_ctx *ctx, const char *device)
{
	return close_locked(ctx, device);
}

int blksnap_cbt_close_all(struct blksnap_ctx *ctx, size_t *closed)
{
	struct bs_system sys;
	char **names = NULL;
	size_t n = 0, failed = 0;
	int r, first = 0;
	char msg[BS_ERRMSG_LEN] = "";

	if (closed)
		*closed = 0;
	r = bs_system_scan(ctx, &sys);
	if (r)
		return r;
	names = calloc(sys.n ? sys.n : 1, sizeof(*names));
	if (!names) {
		bs_system_clear(&sys);
		return bs_err(ctx, ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < sys.n; i++) {
		const char *type = bs_sysdev_type(&sys.devs[i]);

		if (!type || strcmp(type, BS_TARGET_ORIGIN) || !origin_persistent(&sys.devs[i]))
			continue;
		names[n] = strdup(sys.devs[i].dm.name);
		if (!names[n]) {
			r = bs_err(ctx, ENOMEM, "out of memory");
			break;
		}
		n++;
	}
	bs_system_clear(&sys);
	for (size_t i = 0; !r && i < n; i++) {
		int r2 = close_locked(ctx, names[i]);

		/* Gone since the scan: nothing left to close. */
		if (r2 == -ENODEV)
			continue;
		if (r2) {
			bs_log(ctx, BLKSNAP_LOG_ERROR, "%s", blksnap_errmsg(ctx));
			if (!failed++) {
				first = r2;
				snprintf(msg, sizeof(msg), "%s", blksnap_errmsg(ctx));
			}
			continue;
		}
		if (closed)
			(*closed)++;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (r)
		return r;
	if (failed)
		return bs_err(ctx, -first, "%zu of %zu origins with CBT metadata not closed; the first: %s",
			      failed, n, msg);
	return 0;
}
