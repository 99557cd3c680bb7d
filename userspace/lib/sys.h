/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libblksnap: block devices seen from userspace: resolving what the user
 * typed (probe.c, libblkid and sysfs) and file-backed stores (loop.c).
 */
#ifndef BLKSNAP_SYS_H
#define BLKSNAP_SYS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "internal.h"

#pragma GCC visibility push(hidden)

struct bs_blockdev {
	char *path;		/* what was resolved, e.g. /dev/vdb */
	uint32_t major, minor;
	char kname[64];		/* kernel name, e.g. vdb, dm-3 */
	uint64_t sectors;
};

/*
 * Resolve a path, UUID=..., LABEL=... (any blkid tag) or a bare dm name
 * to a block device.
 */
int bs_resolve_blockdev(struct blksnap_ctx *ctx, const char *arg,
			struct bs_blockdev *dev);
void bs_blockdev_clear(struct bs_blockdev *dev);

/* The kernel name and size of a device number, from sysfs. */
int bs_sysfs_kname(uint32_t major, uint32_t minor, char *buf, size_t len);
int bs_sysfs_sectors(uint32_t major, uint32_t minor, uint64_t *sectors);
/* The backing file of a loop device, NULL (and 0) if it is not one. */
int bs_sysfs_loop_backing(uint32_t major, uint32_t minor, char **file);
/* The directory of a loop backing file ("/d/#123 (deleted)" -> "/d"). */
char *bs_backing_dir(const char *file);

/*
 * The block device that holds a file system whose files have st_dev
 * @st_dev: that number, or for an anonymous one (btrfs, overlayfs, tmpfs)
 * the block device its mount names as its source in /proc/self/mountinfo
 * (of a multi-device btrfs, the one it was mounted by). -ENODEV: none.
 */
int bs_fs_blockdev(dev_t st_dev, uint32_t *major, uint32_t *minor);

/*
 * Whether the device @major:@minor is @tmajor:@tminor or is stacked on it
 * (through the holders' "slaves" links in sysfs, any depth).
 */
bool bs_sysfs_depends_on(uint32_t major, uint32_t minor, uint32_t tmajor,
			 uint32_t tminor);

/* Filesystem type and UUID on @path; both NULL if none was found. */
int bs_probe_fs(const char *path, char **type, char **uuid);

/* -EBUSY if a filesystem or another exclusive user holds @path; names it. */
int bs_check_not_in_use(struct blksnap_ctx *ctx, const char *path);

/*
 * Who holds the device @major:@minor (@path may be NULL): "mounted on
 * /srv", "held by vg0-data (dm-3)", "used as swap", or "open by a process,
 * open count N" for a dm device's @open_count.
 */
void bs_describe_holder(const char *path, uint32_t major, uint32_t minor,
			int open_count, char *buf, size_t len);

/*
 * The first signature libblkid finds on @path (a file system, a RAID or
 * LVM label, swap, an encryption header, a partition table), described in
 * @what, e.g. "ext4 file system (LABEL=data UUID=...)" or "dos partition
 * table". 1: found, 0: none, -errno: cannot probe.
 */
int bs_probe_signature(const char *path, char *what, size_t len);

/* Whether @path starts with the BS_STORE_MAGIC sector of a store part. */
bool bs_store_marked(const char *path);
/* Write that sector (naming snapshot @snap) to @path, which must be unused. */
int bs_store_mark(struct blksnap_ctx *ctx, const char *path, const char *snap);

/*
 * A store part in @dir: an unlinked file of @bytes behind a new direct-I/O,
 * autoclear loop device. The loop device stays open through *@loop_fd until
 * the caller has put a dm device over it (or closes it to drop the part).
 */
int bs_loop_store(struct blksnap_ctx *ctx, const char *dir, uint64_t bytes,
		  const char *label, int *loop_fd, uint32_t *major,
		  uint32_t *minor);
/*
 * The open file @file_fd (on @where, for messages) behind a new autoclear
 * loop device, with direct I/O where the file system allows it; *@loop_fd
 * as for bs_loop_store, @loop gets its path. The caller keeps or closes
 * @file_fd.
 */
int bs_loop_file(struct blksnap_ctx *ctx, int file_fd, const char *where,
		 const char *label, int *loop_fd, char *loop, size_t len);

#pragma GCC visibility pop

#endif /* BLKSNAP_SYS_H */
