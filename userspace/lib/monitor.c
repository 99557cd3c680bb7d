// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libblksnap: watching a snapshot and growing its store, like dmeventd's
 * snapshot autoextend.
 *
 * One thread per image blocks in DM_DEVICE_WAITEVENT and reports each event
 * over a socket pair; the calling thread sleeps in read() on it, so nothing
 * polls. On every event (and once at the start) the snapshot is read again:
 * an overflowed or failed image ends the monitor with an error, free space
 * below the low-water mark grows the store by another part. Removing an
 * image wakes its waiter (the kernel raises an event on removal); when
 * every image is gone, the snapshot was destroyed and the monitor ends.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ops.h"

#define MONITOR_EVENT 'e'
#define MONITOR_GONE 'g'

struct monitor_waiter {
	char *name;
	int fd;
	uint32_t event_nr;	/* read before the first look at the status */
};

/*
 * Owns its arguments: a waiter may outlive blksnap_monitor() while it still
 * sleeps in the kernel; it ends at its next event (its socket is closed).
 */
static void *monitor_wait_thread(void *arg)
{
	struct monitor_waiter *w = arg;
	struct blksnap_ctx ctx = { 0 };
	uint32_t nr = w->event_nr;
	char c = MONITOR_EVENT;

	while (c == MONITOR_EVENT) {
		int r = bs_dm_wait_event(&ctx, w->name, nr, &nr);

		if (r == -EINTR)
			continue;
		if (r)
			c = MONITOR_GONE;
		if (send(w->fd, &c, 1, MSG_NOSIGNAL) != 1)
			break;
	}
	close(w->fd);
	free(w->name);
	free(w);
	return NULL;
}

static int monitor_start(struct blksnap_ctx *ctx, const char *image, int fd)
{
	struct monitor_waiter *w = calloc(1, sizeof(*w));
	pthread_attr_t attr;
	struct bs_dmdev d;
	pthread_t t;
	int r;

	if (!w)
		return bs_err(ctx, ENOMEM, "out of memory");
	/*
	 * The counter is read here, before blksnap_monitor() first reads the
	 * status, so that no event can fall between the two.
	 */
	r = bs_dm_query(ctx, image, 0, 0, BS_DM_INFO, &d);
	if (!r && !d.exists)
		r = bs_err(ctx, ENODEV, "%s is gone", image);
	w->event_nr = d.event_nr;
	bs_dmdev_clear(&d);
	if (r) {
		free(w);
		return r;
	}
	w->name = strdup(image);
	w->fd = dup(fd);
	if (!w->name || w->fd < 0) {
		r = w->name ? bs_err(ctx, errno, "dup: %s", strerror(errno)) :
			      bs_err(ctx, ENOMEM, "out of memory");
		goto fail;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = pthread_create(&t, &attr, monitor_wait_thread, w);
	pthread_attr_destroy(&attr);
	if (!r)
		return 0;
	r = bs_err(ctx, r, "cannot start a thread: %s", strerror(r));
fail:
	if (w->fd >= 0)
		close(w->fd);
	free(w->name);
	free(w);
	return r;
}

struct monitor {
	struct blksnap_ctx *ctx;
	const char *name;
	const struct blksnap_monitor_params *params;
	uint64_t low_water;		/* sectors */
	uint64_t grow_by;		/* bytes */
	bool warned_limit, warned_dir;
};

static char *monitor_store_dir(const struct monitor *mon, const struct blksnap_snapshot *s)
{
	if (mon->params->store_dir)
		return strdup(mon->params->store_dir);
	for (size_t i = s->n_parts; i-- > 0;)
		if (s->parts[i].backing_file)
			return bs_backing_dir(s->parts[i].backing_file);
	return NULL;
}

/* Grow once if the store is below low water. 1: grown, 0: nothing to do. */
static int monitor_grow(struct monitor *mon, const struct blksnap_snapshot *s)
{
	uint64_t size = s->store_sectors * BLKSNAP_SECTOR_SIZE, add = mon->grow_by;
	uint64_t free_sectors = s->store_sectors - s->used_sectors;
	char a[16], b[16], c[16];
	char *dir;
	int r;

	if (s->used_sectors > s->store_sectors || free_sectors >= mon->low_water)
		return 0;
	if (mon->params->limit) {
		add = size >= mon->params->limit ? 0 :
		      add < mon->params->limit - size ? add : mon->params->limit - size;
		add -= add % 4096;
		if (!add) {
			if (!mon->warned_limit)
				bs_log(mon->ctx, BLKSNAP_LOG_WARN, "%s: low water (%s free of %s), the store is at its limit of %s",
				       mon->name,
				       blksnap_format_size(free_sectors * BLKSNAP_SECTOR_SIZE, a, sizeof(a)),
				       blksnap_format_size(size, b, sizeof(b)),
				       blksnap_format_size(mon->params->limit, c, sizeof(c)));
			mon->warned_limit = true;
			return 0;
		}
	}
	dir = monitor_store_dir(mon, s);
	if (!dir) {
		if (!mon->warned_dir)
			bs_log(mon->ctx, BLKSNAP_LOG_WARN, "%s: low water (%s free of %s), but no directory to grow the store in: use --store-dir",
			       mon->name,
			       blksnap_format_size(free_sectors * BLKSNAP_SECTOR_SIZE, a, sizeof(a)),
			       blksnap_format_size(size, b, sizeof(b)));
		mon->warned_dir = true;
		return 0;
	}
	r = blksnap_store_add(mon->ctx, mon->name, dir, add);
	if (r)
		bs_log(mon->ctx, BLKSNAP_LOG_ERROR, "%s: cannot grow the store by %s in %s: %s",
		       mon->name, blksnap_format_size(add, a, sizeof(a)), dir,
		       blksnap_errmsg(mon->ctx));
	else
		bs_log(mon->ctx, BLKSNAP_LOG_INFO, "%s: store grown by %s in %s to %s (%s used)",
		       mon->name, blksnap_format_size(add, a, sizeof(a)), dir,
		       blksnap_format_size(size + add, b, sizeof(b)),
		       blksnap_format_size(s->used_sectors * BLKSNAP_SECTOR_SIZE, c, sizeof(c)));
	free(dir);
	return r ? 0 : 1;
}

/*
 * Look at the snapshot. 1: keep watching, 0: it is gone, <0: it broke.
 */
static int monitor_check(struct monitor *mon)
{
	struct blksnap_snapshot *s = NULL;
	char a[16], b[16];
	int r, grown = 0;

	do {
		blksnap_snapshot_free(s);
		r = blksnap_snapshot_get(mon->ctx, mon->name, &s);
		if (r == -ENOENT)
			return 0;
		if (r)
			return r;
		if (!s->n_images) {
			blksnap_snapshot_free(s);
			return 0;
		}
		for (size_t i = 0; i < s->n_images; i++) {
			const struct blksnap_image *img = &s->images[i];

			if (!img->status_valid)
				continue;
			if (img->status.state == BLKSNAP_IMAGE_OVERFLOW) {
				r = bs_err(mon->ctx, ENOSPC, "%s: image %s overflowed: the store (%s) ran out, the image is invalid",
					   mon->name, img->name,
					   blksnap_format_size(s->store_sectors * BLKSNAP_SECTOR_SIZE, a, sizeof(a)));
				goto out;
			}
			if (img->status.state == BLKSNAP_IMAGE_FAILED) {
				r = bs_err(mon->ctx, EIO, "%s: image %s failed (an I/O error on the store or the origin; see 'dmesg')",
					   mon->name, img->name);
				goto out;
			}
		}
		if (!mon->low_water) {
			mon->low_water = s->store_sectors / 4;
			if (!mon->grow_by)
				mon->grow_by = s->store_sectors * BLKSNAP_SECTOR_SIZE;
			bs_log(mon->ctx, BLKSNAP_LOG_INFO, "%s: watching %zu image(s), store %s, %s used",
			       mon->name, s->n_images,
			       blksnap_format_size(s->store_sectors * BLKSNAP_SECTOR_SIZE, a, sizeof(a)),
			       blksnap_format_size(s->used_sectors * BLKSNAP_SECTOR_SIZE, b, sizeof(b)));
		}
		/* Bounded: a growth that does not help is not repeated forever. */
	} while (monitor_grow(mon, s) > 0 && ++grown < 8);
	r = 1;
out:
	blksnap_snapshot_free(s);
	return r;
}

int blksnap_monitor(struct blksnap_ctx *ctx, const char *name,
		    const struct blksnap_monitor_params *params)
{
	struct monitor mon = { .ctx = ctx, .name = name, .params = params };
	struct blksnap_snapshot *s;
	size_t alive = 0;
	int sv[2], r;

	if (params->grow_by && params->grow_by % 4096)
		return bs_err(ctx, EINVAL, "--grow-by must be a multiple of 4 KiB");
	mon.grow_by = params->grow_by;
	r = blksnap_snapshot_get(ctx, name, &s);
	if (r)
		return r;
	if (!s->n_images) {
		blksnap_snapshot_free(s);
		return bs_err(ctx, ENOENT, "snapshot %s has no images to watch", name);
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		blksnap_snapshot_free(s);
		return bs_err(ctx, errno, "socketpair: %s", strerror(errno));
	}
	for (size_t i = 0; i < s->n_images && !r; i++) {
		r = monitor_start(ctx, s->images[i].name, sv[1]);
		if (!r)
			alive++;
	}
	close(sv[1]);
	blksnap_snapshot_free(s);
	if (r)
		goto out;

	r = monitor_check(&mon);
	while (r > 0 && alive) {
		char buf[64];
		ssize_t n = read(sv[0], buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] == MONITOR_GONE)
				alive--;
		r = monitor_check(&mon);
	}
	if (r > 0)
		r = 0;
	if (!r)
		bs_log(ctx, BLKSNAP_LOG_INFO, "%s: the snapshot is gone", name);
out:
	close(sv[0]);
	return r;
}
