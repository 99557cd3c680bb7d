// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libblksnap: resolving devices (libblkid, sysfs) and probing filesystems.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <blkid/blkid.h>

#include "sys.h"

/*---- sysfs ----*/

int bs_sysfs_kname(uint32_t major, uint32_t minor, char *buf, size_t len)
{
	char path[64], link[PATH_MAX];
	const char *base;
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u", major, minor);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return -errno;
	link[n] = '\0';
	base = strrchr(link, '/');
	base = base ? base + 1 : link;
	if (strlen(base) >= len)
		return -ENAMETOOLONG;
	strcpy(buf, base);
	return 0;
}

static int sysfs_read(uint32_t major, uint32_t minor, const char *attr,
		      char *buf, size_t len)
{
	char path[96];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%s", major, minor, attr);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = '\0';
	if (n && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	return 0;
}

int bs_sysfs_sectors(uint32_t major, uint32_t minor, uint64_t *sectors)
{
	char buf[32];
	int r = sysfs_read(major, minor, "size", buf, sizeof(buf));

	if (r)
		return r;
	return bs_parse_u64(buf, sectors);
}

int bs_sysfs_loop_backing(uint32_t major, uint32_t minor, char **file)
{
	char buf[PATH_MAX + 16];
	int r;

	*file = NULL;
	r = sysfs_read(major, minor, "loop/backing_file", buf, sizeof(buf));
	if (r)
		return r == -ENOENT ? 0 : r;
	*file = strdup(buf);
	return *file ? 0 : -ENOMEM;
}

static bool sysfs_depends(uint32_t major, uint32_t minor, uint32_t tmajor,
			  uint32_t tminor, int depth)
{
	char path[64], dev[32];
	struct dirent *de;
	bool found = false;
	DIR *dir;

	if (major == tmajor && minor == tminor)
		return true;
	if (depth > 16)
		return false;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/slaves", major, minor);
	dir = opendir(path);
	if (!dir)
		return false;
	while (!found && (de = readdir(dir))) {
		char attr[300];
		uint32_t ma, mi;
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(attr, sizeof(attr), "/sys/class/block/%s/dev", de->d_name);
		f = fopen(attr, "re");
		if (!f)
			continue;
		if (fgets(dev, sizeof(dev), f)) {
			dev[strcspn(dev, "\n")] = '\0';
			if (!bs_parse_devno(dev, &ma, &mi))
				found = sysfs_depends(ma, mi, tmajor, tminor, depth + 1);
		}
		fclose(f);
	}
	closedir(dir);
	return found;
}

char *bs_backing_dir(const char *file)
{
	const char *slash = strrchr(file, '/');

	if (!slash)
		return NULL;
	if (slash == file)
		return strdup("/");
	return strndup(file, slash - file);
}

int bs_fs_blockdev(dev_t st_dev, uint32_t *maj, uint32_t *min)
{
	char line[4096], want[32];
	int r = -ENODEV;
	FILE *f;

	if (major(st_dev)) {
		*maj = major(st_dev);
		*min = minor(st_dev);
		return 0;
	}
	/* An anonymous number (btrfs, overlayfs, tmpfs): the mount's source. */
	snprintf(want, sizeof(want), "%u:%u", major(st_dev), minor(st_dev));
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	while (r && fgets(line, sizeof(line), f)) {
		char devno[32], type[64], src[PATH_MAX];
		const char *tail = strstr(line, " - ");
		struct stat st;

		/* "ID PARENT MAJ:MIN ROOT POINT OPTS [TAGS...] - TYPE SOURCE SUPER" */
		if (!tail || sscanf(line, "%*s %*s %31s", devno) != 1 || strcmp(devno, want) ||
		    sscanf(tail, " - %63s %4095s", type, src) != 2)
			continue;
		if (!stat(src, &st) && S_ISBLK(st.st_mode)) {
			*maj = major(st.st_rdev);
			*min = minor(st.st_rdev);
			r = 0;
		}
	}
	fclose(f);
	return r;
}

bool bs_sysfs_depends_on(uint32_t major, uint32_t minor, uint32_t tmajor,
			 uint32_t tminor)
{
	return sysfs_depends(major, minor, tmajor, tminor, 0);
}

/*---- Resolving what the user typed ----*/

void bs_blockdev_clear(struct bs_blockdev *dev)
{
	free(dev->path);
	memset(dev, 0, sizeof(*dev));
}

int bs_resolve_blockdev(struct blksnap_ctx *ctx, const char *arg,
			struct bs_blockdev *dev)
{
	char *path = NULL;
	struct stat st;
	int r;

	memset(dev, 0, sizeof(*dev));
	if (!arg || !*arg)
		return bs_err(ctx, EINVAL, "empty device name");
	if (strchr(arg, '=')) {
		blkid_cache cache = NULL;

		if (blkid_get_cache(&cache, NULL) < 0)
			return bs_err(ctx, ENOMEM, "cannot read the blkid cache");
		path = blkid_evaluate_tag(arg, NULL, &cache);
		blkid_put_cache(cache);
		if (!path)
			return bs_err(ctx, ENOENT, "no device with %s", arg);
	} else if (!strchr(arg, '/') && stat(arg, &st)) {
		/* A bare name: a dm device, then a kernel name. */
		path = bs_strdupf("/dev/mapper/%s", arg);
		if (path && stat(path, &st)) {
			free(path);
			path = bs_strdupf("/dev/%s", arg);
		}
	} else {
		path = strdup(arg);
	}
	if (!path)
		return bs_err(ctx, ENOMEM, "out of memory");
	if (stat(path, &st)) {
		r = errno == ENOENT ? bs_err(ctx, ENOENT, "%s does not exist", arg) :
			bs_err(ctx, errno, "%s: %s", arg, strerror(errno));
		free(path);
		return r;
	}
	if (!S_ISBLK(st.st_mode)) {
		free(path);
		return bs_err(ctx, ENOTBLK, "%s is not a block device", arg);
	}
	dev->path = path;
	dev->major = major(st.st_rdev);
	dev->minor = minor(st.st_rdev);
	if (bs_sysfs_kname(dev->major, dev->minor, dev->kname, sizeof(dev->kname)))
		snprintf(dev->kname, sizeof(dev->kname), "%u:%u", dev->major, dev->minor);
	r = bs_sysfs_sectors(dev->major, dev->minor, &dev->sectors);
	if (r) {
		bs_blockdev_clear(dev);
		return bs_err(ctx, -r, "cannot read the size of %s: %s", arg, strerror(-r));
	}
	return 0;
}

/* A mountinfo field with its octal escapes (\040 for a blank) decoded. */
static void mountinfo_unescape(char *s)
{
	char *d = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*d++ = *s;
		}
	}
	*d = '\0';
}

static bool holder_mount(uint32_t major, uint32_t minor, char *buf, size_t len)
{
	char *line = NULL;
	size_t cap = 0;
	bool found = false;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	while (f && !found && getline(&line, &cap, f) > 0) {
		unsigned int ma, mi;
		char mnt[1024];

		if (sscanf(line, "%*s %*s %u:%u %*s %1023s", &ma, &mi, mnt) == 3 &&
		    ma == major && mi == minor) {
			mountinfo_unescape(mnt);
			snprintf(buf, len, "mounted on %s", mnt);
			found = true;
		}
	}
	free(line);
	if (f)
		fclose(f);
	return found;
}

static bool holder_device(uint32_t major, uint32_t minor, char *buf, size_t len)
{
	char path[300], name[128];
	struct dirent *e;
	bool found = false;
	DIR *dir;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/holders", major, minor);
	dir = opendir(path);
	while (dir && !found && (e = readdir(dir))) {
		if (e->d_name[0] == '.')
			continue;
		/* A dm holder by its name: "held by vg0-data (dm-3)". */
		snprintf(path, sizeof(path), "/sys/class/block/%s/dm/name", e->d_name);
		f = fopen(path, "re");
		if (f && fgets(name, sizeof(name), f)) {
			name[strcspn(name, "\n")] = '\0';
			snprintf(buf, len, "held by %s (%s)", name, e->d_name);
		} else {
			snprintf(buf, len, "held by %s", e->d_name);
		}
		if (f)
			fclose(f);
		found = true;
	}
	if (dir)
		closedir(dir);
	return found;
}

static bool holder_swap(const char *path, char *buf, size_t len)
{
	char *line = NULL, dev[512];
	size_t cap = 0;
	bool found = false;
	char *real = realpath(path, NULL);
	FILE *f = fopen("/proc/swaps", "re");

	while (real && f && !found && getline(&line, &cap, f) > 0)
		if (sscanf(line, "%511s", dev) == 1 && !strcmp(dev, real)) {
			snprintf(buf, len, "used as swap");
			found = true;
		}
	free(line);
	free(real);
	if (f)
		fclose(f);
	return found;
}

void bs_describe_holder(const char *path, uint32_t major, uint32_t minor,
			int open_count, char *buf, size_t len)
{
	if (holder_mount(major, minor, buf, len) || holder_device(major, minor, buf, len) ||
	    (path && holder_swap(path, buf, len)))
		return;
	if (open_count > 0)
		snprintf(buf, len, "open by a process, open count %d", open_count);
	else
		snprintf(buf, len, "opened exclusively by a program");
}

int bs_check_not_in_use(struct blksnap_ctx *ctx, const char *path)
{
	int fd = open(path, O_RDONLY | O_EXCL | O_CLOEXEC);
	struct stat st;
	char why[1200];

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno == EBUSY) {
		if (stat(path, &st))
			snprintf(why, sizeof(why), "mounted, or held by another device");
		else
			bs_describe_holder(path, major(st.st_rdev), minor(st.st_rdev), 0,
					   why, sizeof(why));
		return bs_err(ctx, EBUSY, "%s is in use (%s)", path, why);
	}
	return bs_err(ctx, errno, "cannot open %s: %s", path, strerror(errno));
}

/*---- Signatures ----*/

int bs_probe_signature(const char *path, char *what, size_t len)
{
	const char *type = NULL, *usage = NULL, *label = NULL, *uuid = NULL;
	blkid_probe pr;
	int r;

	what[0] = '\0';
	pr = blkid_new_probe_from_filename(path);
	if (!pr)
		return errno ? -errno : -EIO;
	/* What pvcreate and mkfs look for: any superblock, also a damaged one, and partition tables. */
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE |
					  BLKID_SUBLKS_LABEL | BLKID_SUBLKS_UUID |
					  BLKID_SUBLKS_BADCSUM);
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC);
	r = 0;
	while (!r && blkid_do_probe(pr) == 0) {
		const char *kind;
		int w;

		if (!blkid_probe_lookup_value(pr, "TYPE", &type, NULL) && type) {
			blkid_probe_lookup_value(pr, "USAGE", &usage, NULL);
			blkid_probe_lookup_value(pr, "LABEL", &label, NULL);
			blkid_probe_lookup_value(pr, "UUID", &uuid, NULL);
			kind = !strcmp(type, "LVM2_member") ? "physical volume label" :
			       !usage ? "signature" :
			       !strcmp(usage, "filesystem") ? "file system" :
			       !strcmp(usage, "raid") ? "RAID member signature" :
			       !strcmp(usage, "crypto") ? "encryption header" : "signature";
			w = snprintf(what, len, "%s %s",
				     !strcmp(type, "LVM2_member") ? "LVM" : type, kind);

			if (w < 0 || (size_t)w >= len)
				w = 0;
			if (label && uuid)
				snprintf(what + w, len - w, " (LABEL=%s UUID=%s)", label, uuid);
			else if (label || uuid)
				snprintf(what + w, len - w, " (%s=%s)", label ? "LABEL" : "UUID",
					 label ? label : uuid);
			r = 1;
		} else if (!blkid_probe_lookup_value(pr, "PTTYPE", &type, NULL) && type) {
			snprintf(what, len, "%s partition table", type);
			r = 1;
		}
	}
	blkid_free_probe(pr);
	return r;
}

/*---- Store parts ----*/

bool bs_store_marked(const char *path)
{
	char buf[BLKSNAP_SECTOR_SIZE];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool marked;

	if (fd < 0)
		return false;
	marked = pread(fd, buf, sizeof(buf), 0) == (ssize_t)sizeof(buf) &&
		 !memcmp(buf, BS_STORE_MAGIC, strlen(BS_STORE_MAGIC));
	close(fd);
	return marked;
}

int bs_store_mark(struct blksnap_ctx *ctx, const char *path, const char *snap)
{
	char buf[BLKSNAP_SECTOR_SIZE];
	int fd, e, n;

	memset(buf, 0, sizeof(buf));
	n = snprintf(buf, sizeof(buf), "%sa difference store part of dm-blksnap, snapshot %s, since %lld\n",
		     BS_STORE_MAGIC, snap, (long long)time(NULL));
	(void)n;
	fd = open(path, O_WRONLY | O_EXCL | O_CLOEXEC);
	if (fd < 0)
		return bs_err(ctx, errno, "cannot open store %s: %s", path, strerror(errno));
	if (pwrite(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf) || fdatasync(fd)) {
		e = errno ? errno : EIO;
		close(fd);
		return bs_err(ctx, e, "cannot write the first sector of store %s: %s", path, strerror(e));
	}
	close(fd);
	return 0;
}

/*---- Filesystems ----*/

static int probe_value(blkid_probe pr, const char *name, char **out)
{
	const char *v = NULL;

	*out = NULL;
	if (blkid_probe_lookup_value(pr, name, &v, NULL) || !v)
		return 0;
	*out = strdup(v);
	return *out ? 0 : -ENOMEM;
}

int bs_probe_fs(const char *path, char **type, char **uuid)
{
	blkid_probe pr;
	int r;

	*type = *uuid = NULL;
	pr = blkid_new_probe_from_filename(path);
	if (!pr)
		return errno ? -errno : -EIO;
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_UUID);
	r = blkid_do_safeprobe(pr);
	if (r == 0) {
		r = probe_value(pr, "TYPE", type);
		if (!r)
			r = probe_value(pr, "UUID", uuid);
		if (r) {
			free(*type);
			*type = NULL;
		}
	} else {
		r = 0;	/* nothing found, or ambiguous: report nothing */
	}
	blkid_free_probe(pr);
	return r;
}
