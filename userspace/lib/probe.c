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

int bs_check_not_in_use(struct blksnap_ctx *ctx, const char *path)
{
	int fd = open(path, O_RDONLY | O_EXCL | O_CLOEXEC);

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno == EBUSY)
		return bs_err(ctx, EBUSY, "%s is in use (mounted, or held by another device)", path);
	return bs_err(ctx, errno, "cannot open %s: %s", path, strerror(errno));
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
