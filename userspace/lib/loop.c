// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libblksnap: file-backed store parts.
 *
 * The kernel only ever sees a block device. A directory store becomes an
 * unlinked file (O_TMPFILE | O_EXCL, so it can never be linked into the
 * namespace) of the requested size behind a loop device with direct I/O and
 * autoclear: when the last user of the loop device (the store's dm-linear)
 * goes away, the loop device detaches and the file's space is freed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/loop.h>

#include "sys.h"

static int loop_tmpfile(struct blksnap_ctx *ctx, const char *dir, uint64_t bytes)
{
	char size[32];
	int fd, e;

	fd = open(dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		e = errno;
		if (e == EOPNOTSUPP || e == EISDIR)
			return bs_err(ctx, e, "the filesystem of %s does not support unlinked files (O_TMPFILE): use another directory or a block device",
				      dir);
		return bs_err(ctx, e, "cannot create a store file in %s: %s", dir, strerror(e));
	}
	if (fallocate(fd, 0, 0, (off_t)bytes)) {
		e = errno;
		close(fd);
		blksnap_format_size(bytes, size, sizeof(size));
		if (e == ENOSPC)
			return bs_err(ctx, e, "not enough free space in %s for a store of %s", dir, size);
		if (e == EOPNOTSUPP)
			return bs_err(ctx, e, "the filesystem of %s cannot preallocate files (fallocate): use another directory or a block device",
				      dir);
		return bs_err(ctx, e, "cannot allocate %s in %s: %s", size, dir, strerror(e));
	}
	return fd;
}

static int loop_configure(int loop_fd, int file_fd, const char *label, bool dio)
{
	struct loop_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.fd = file_fd;
	cfg.block_size = 0;
	cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR | (dio ? LO_FLAGS_DIRECT_IO : 0);
	snprintf((char *)cfg.info.lo_file_name, sizeof(cfg.info.lo_file_name), "%s", label);
	return ioctl(loop_fd, LOOP_CONFIGURE, &cfg) ? -errno : 0;
}

int bs_loop_file(struct blksnap_ctx *ctx, int file_fd, const char *where,
		 const char *label, int *loop_fd, char *loop, size_t len)
{
	int ctl_fd, fd = -1, r = -EBUSY;
	char path[32];

	ctl_fd = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl_fd < 0)
		return bs_err(ctx, errno, "cannot open /dev/loop-control: %s (is the loop module loaded?)",
			      strerror(errno));
	/* Another program may take the free device first: try again. */
	for (int attempt = 0; attempt < 16 && r == -EBUSY; attempt++) {
		int nr = ioctl(ctl_fd, LOOP_CTL_GET_FREE);

		if (nr < 0) {
			r = bs_err(ctx, errno, "no free loop device: %s", strerror(errno));
			break;
		}
		snprintf(path, sizeof(path), "/dev/loop%d", nr);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			r = bs_err(ctx, errno, "cannot open %s: %s", path, strerror(errno));
			break;
		}
		r = loop_configure(fd, file_fd, label, true);
		if (r == -EINVAL) {
			/* Direct I/O is not possible on this filesystem. */
			r = loop_configure(fd, file_fd, label, false);
			if (!r)
				bs_log(ctx, BLKSNAP_LOG_WARN, "%s: direct I/O is not supported on %s; the loop device uses the page cache",
				       path, where);
		}
		if (r) {
			close(fd);
			fd = -1;
			if (r != -EBUSY)
				bs_err(ctx, -r, "cannot set up %s: %s", path, strerror(-r));
		}
	}
	if (r == -EBUSY)
		bs_err(ctx, EBUSY, "cannot get a free loop device: all attempts raced with other users");
	if (!r) {
		*loop_fd = fd;
		snprintf(loop, len, "%s", path);
	}
	close(ctl_fd);
	return r;
}

int bs_loop_store(struct blksnap_ctx *ctx, const char *dir, uint64_t bytes,
		  const char *label, int *loop_fd, uint32_t *major,
		  uint32_t *minor)
{
	struct stat st;
	char path[32];
	int file_fd, r;

	if (bytes < BS_CHUNK_MIN * BLKSNAP_SECTOR_SIZE || bytes % BLKSNAP_SECTOR_SIZE)
		return bs_err(ctx, EINVAL, "a store part must be a multiple of 512 bytes and at least 4 KiB");
	file_fd = loop_tmpfile(ctx, dir, bytes);
	if (file_fd < 0)
		return file_fd;
	r = bs_loop_file(ctx, file_fd, dir, label, loop_fd, path, sizeof(path));
	/* The loop device holds the file now; nothing else can reach it. */
	close(file_fd);
	if (!r && fstat(*loop_fd, &st)) {
		r = bs_err(ctx, errno, "cannot stat %s: %s", path, strerror(errno));
		close(*loop_fd);
		*loop_fd = -1;
	}
	if (!r) {
		*major = major(st.st_rdev);
		*minor = minor(st.st_rdev);
	}
	return r;
}
