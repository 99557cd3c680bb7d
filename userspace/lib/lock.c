// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libblksnap: serialising the calls that change devices, across processes,
 * with flock(2) on files in BLKSNAP_LOCK_DIR (/run/lock/blksnap).
 *
 * Every such call reads tables, decides, and loads new ones: two at once
 * (an administrator's `store add` and the monitor's growth, say) could each
 * append a segment to the store's table they read, and the second load
 * would drop the first one's segment, with chunks already allocated in it.
 *
 * Locks: "snapshot-<name>" for a snapshot and its store, and
 * "origin-<major>:<minor>" for an origin, named by the device that was
 * attached (the dm device that keeps its number, or the disk). Order: the
 * snapshot lock first, then origin locks in ascending device-number order;
 * no call takes two snapshot locks. bs_lock_*() refuse (-EDEADLK, a bug)
 * any other order, so that the rule is checked where it is broken.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lock.h"

#ifndef BLKSNAP_LOCK_DIR
#define BLKSNAP_LOCK_DIR "/run/lock/blksnap"
#endif

void bs_locks_init(struct bs_locks *l)
{
	memset(l, 0, sizeof(*l));
}

static int lock_dir(struct blksnap_ctx *ctx)
{
	char path[sizeof(BLKSNAP_LOCK_DIR)];

	/* mkdir -p: /run/lock may be missing (a container, an early boot). */
	memcpy(path, BLKSNAP_LOCK_DIR, sizeof(path));
	for (char *p = path + 1;; p++) {
		bool last = !*p;

		if (*p != '/' && !last)
			continue;
		*p = '\0';
		if (mkdir(path, last ? 0700 : 0755) && errno != EEXIST) {
			if (errno == EACCES || errno == EPERM || errno == EROFS)
				return bs_err(ctx, EACCES, "cannot create the lock directory %s: %s (are you root?)",
					      path, strerror(errno));
			return bs_err(ctx, errno, "cannot create the lock directory %s: %s",
				      path, strerror(errno));
		}
		if (last)
			return 0;
		*p = '/';
	}
}

static int lock_take(struct blksnap_ctx *ctx, struct bs_locks *l, const char *file,
		     const char *what)
{
	char path[sizeof(BLKSNAP_LOCK_DIR) + 16 + 3 * BS_DM_NAME_MAX];
	int fd, r;

	if (l->n >= BS_LOCKS_MAX)
		return bs_err(ctx, E2BIG, "too many locks (%d) in one call", BS_LOCKS_MAX);
	r = lock_dir(ctx);
	if (r)
		return r;
	snprintf(path, sizeof(path), "%s/%s", BLKSNAP_LOCK_DIR, file);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return bs_err(ctx, errno == EACCES ? EACCES : errno, "cannot open the lock %s: %s",
			      path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		if (errno != EWOULDBLOCK) {
			r = bs_err(ctx, errno, "cannot lock %s: %s", path, strerror(errno));
			close(fd);
			return r;
		}
		bs_log(ctx, BLKSNAP_LOG_INFO, "waiting for %s: another blksnapctl (or the monitor) is changing it (lock %s)",
		       what, path);
		while (flock(fd, LOCK_EX)) {
			if (errno == EINTR)
				continue;
			r = bs_err(ctx, errno, "cannot lock %s: %s", path, strerror(errno));
			close(fd);
			return r;
		}
	}
	bs_log(ctx, BLKSNAP_LOG_DEBUG, "locked %s", path);
	l->fds[l->n++] = fd;
	return 0;
}

int bs_lock_snapshot(struct blksnap_ctx *ctx, struct bs_locks *l, const char *name)
{
	char file[16 + 3 * BS_DM_NAME_MAX], what[160];
	size_t n;
	int r;

	if (l->snapshot || l->n_origins)
		return bs_err(ctx, EDEADLK, "internal error: snapshot lock %s taken out of order", name);
	/* Names of snapshots are safe; those of images made by hand may not be. */
	n = (size_t)snprintf(file, sizeof(file), "snapshot-");
	for (const char *p = name; *p && n + 4 < sizeof(file); p++) {
		if (isalnum((unsigned char)*p) || strchr("._+-", *p))
			file[n++] = *p;
		else
			n += (size_t)snprintf(file + n, sizeof(file) - n, "_%02x", (unsigned char)*p);
	}
	file[n] = '\0';
	snprintf(what, sizeof(what), "snapshot %s", name);
	r = lock_take(ctx, l, file, what);
	if (r)
		return r;
	l->snapshot = true;
	return 0;
}

int bs_lock_origin(struct blksnap_ctx *ctx, struct bs_locks *l, uint32_t major,
		   uint32_t minor, const char *label)
{
	uint64_t key = (uint64_t)major << 32 | minor;
	char file[48], what[160];
	int r;

	for (size_t i = 0; i < l->n_origins; i++)
		if (l->origins[i] == key)
			return 0;	/* two names of one origin */
	if (l->n_origins && key < l->origins[l->n_origins - 1])
		return bs_err(ctx, EDEADLK, "internal error: origin lock %u:%u taken out of order",
			      major, minor);
	if (l->n_origins >= BS_LOCKS_MAX)
		return bs_err(ctx, E2BIG, "too many origins (%d) in one call", BS_LOCKS_MAX);
	snprintf(file, sizeof(file), "origin-%u:%u", major, minor);
	snprintf(what, sizeof(what), "%s", label ? label : file);
	r = lock_take(ctx, l, file, what);
	if (r)
		return r;
	l->origins[l->n_origins++] = key;
	return 0;
}

static int devno_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int bs_lock_origins(struct blksnap_ctx *ctx, struct bs_locks *l,
		    const uint64_t *keys, size_t n)
{
	uint64_t *sorted;
	int r = 0;

	if (!n)
		return 0;
	sorted = malloc(n * sizeof(*sorted));
	if (!sorted)
		return bs_err(ctx, ENOMEM, "out of memory");
	memcpy(sorted, keys, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), devno_cmp);
	for (size_t i = 0; i < n && !r; i++)
		r = bs_lock_origin(ctx, l, (uint32_t)(sorted[i] >> 32), (uint32_t)sorted[i], NULL);
	free(sorted);
	return r;
}

void bs_unlock_all(struct bs_locks *l)
{
	/* Closing the descriptor drops its flock. */
	while (l->n)
		close(l->fds[--l->n]);
	bs_locks_init(l);
}
