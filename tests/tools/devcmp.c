// SPDX-License-Identifier: GPL-2.0
/*
 * devcmp: compare a byte range of two files or block devices.
 *
 *   devcmp A B [OFF [LEN]]
 *
 * Compares LEN bytes from byte OFF of A and B (default: OFF 0, LEN the rest
 * of A; B shorter than that differs as a read error). Block
 * devices are read with O_DIRECT, so that the compare sees the device, not
 * a page cache; the page cache of a regular file is what it holds. Exit 0
 * if the ranges are equal, 1 if they differ (the first differing byte on
 * stdout), 2 on a usage or I/O error, a short read counting as an error.
 *
 * The integration tests compare whole devices with their models many times
 * per run. Under software emulation a pipe moves about 40 MB/s, so the
 * shell's "cmp <(dd ...) <(dd ...)" spent most of its time in pipes; one
 * process reading both sides in 4 MiB blocks is several times faster.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fs.h>

#define BUF (4u << 20)
#define ALIGN 4096u

struct side {
	const char *path;
	int fd;
	unsigned char *buf;
};

/*
 * Open @s, with O_DIRECT if it is a block device and @direct; *@size (if
 * @size) is its size in bytes.
 */
static int open_side(struct side *s, int direct, uint64_t *size)
{
	struct stat st;
	int blk;

	if (stat(s->path, &st) < 0) {
		fprintf(stderr, "devcmp: %s: %s\n", s->path, strerror(errno));
		return -1;
	}
	blk = S_ISBLK(st.st_mode);
	s->fd = open(s->path, O_RDONLY | (blk && direct ? O_DIRECT : 0));
	if (s->fd < 0) {
		fprintf(stderr, "devcmp: %s: %s\n", s->path, strerror(errno));
		return -1;
	}
	if (size)
		*size = st.st_size;
	if (size && blk && ioctl(s->fd, BLKGETSIZE64, size) < 0) {
		fprintf(stderr, "devcmp: %s: BLKGETSIZE64: %s\n", s->path, strerror(errno));
		return -1;
	}
	if (posix_memalign((void **)&s->buf, ALIGN, BUF)) {
		fprintf(stderr, "devcmp: out of memory\n");
		return -1;
	}
	return 0;
}

/* Read exactly len bytes at pos; a short read (end of file) is an error. */
static int read_full(struct side *s, uint64_t pos, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(s->fd, s->buf + done, len - done, pos + done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "devcmp: %s: read at %" PRIu64 ": %s\n",
				s->path, pos + done, strerror(errno));
			return -1;
		}
		if (n == 0) {
			fprintf(stderr, "devcmp: %s: ends at %" PRIu64 "\n", s->path, pos + done);
			return -1;
		}
		done += n;
	}
	return 0;
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno || end == s || *end || s[0] == '-' ? -1 : 0;
}

/* Compare [@off, @off + @len) of @a and @b: 0 equal, 1 differ, 2 error. */
static int compare(struct side *a, struct side *b, uint64_t off, uint64_t len)
{
	uint64_t pos;

	for (pos = off; pos < off + len; pos += BUF) {
		size_t n = off + len - pos < BUF ? off + len - pos : BUF;
		size_t i = 0;

		if (read_full(a, pos, n) || read_full(b, pos, n))
			return 2;
		if (!memcmp(a->buf, b->buf, n))
			continue;
		while (a->buf[i] == b->buf[i])
			i++;
		printf("%s %s differ: byte %" PRIu64 "\n", a->path, b->path, pos + i);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct side a = { .fd = -1 }, b = { .fd = -1 };
	uint64_t off = 0, len = 0, size;
	int direct, rc = 2;

	if (argc < 3 || argc > 5 ||
	    (argc > 3 && parse_u64(argv[3], &off)) ||
	    (argc > 4 && parse_u64(argv[4], &len))) {
		fprintf(stderr, "usage: devcmp A B [OFF [LEN]]\n");
		return 2;
	}
	a.path = argv[1];
	b.path = argv[2];
	/* O_DIRECT wants whole sectors; a block device's size is in sectors. */
	direct = off % 512 == 0 && len % 512 == 0;
	if (open_side(&a, direct, &size) || open_side(&b, direct, NULL))
		goto out;
	if (argc < 5) {
		if (off > size) {
			fprintf(stderr, "devcmp: %s: offset beyond its end\n", a.path);
			goto out;
		}
		len = size - off;
	}
	rc = compare(&a, &b, off, len);
out:
	free(a.buf);
	free(b.buf);
	if (a.fd >= 0)
		close(a.fd);
	if (b.fd >= 0)
		close(b.fd);
	return rc;
}
