// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libblksnap: events of a snapshot (low water, overflow, failure, gone) and
 * the monitor that grows its store on low water, like dmeventd's snapshot
 * autoextend.
 *
 * A watch owns a descriptor of /dev/mapper/control armed for
 * device-mapper's global event poll (dm.c): any dm event, the images'
 * low-water, overflow and failure events among them, makes it readable. On
 * each wake-up the snapshot is read again and compared with what was
 * reported before. Arming comes before reading, so that no event can fall
 * between the two; no thread waits anywhere, so a watch can be dropped at
 * any time.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ops.h"

struct blksnap_watch {
	char *name;
	int fd;
	uint64_t low_water;		/* sectors */
	bool below;			/* LOW_WATER reported, free space not back above */
	bool gone;			/* GONE reported */
	size_t n_done;
	char (*done)[128];		/* images whose OVERFLOW or FAILED was reported */
};

void blksnap_watch_free(struct blksnap_watch *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	free(w->done);
	free(w->name);
	free(w);
}

/* The low_water option of the snapshot's images, 0 if none has one. */
static int watch_low_water(struct blksnap_ctx *ctx, const struct blksnap_snapshot *s,
			   uint64_t *low_water)
{
	struct bs_system sys;
	int r;

	*low_water = 0;
	r = bs_system_scan(ctx, &sys);
	if (r)
		return r;
	for (size_t i = 0; i < s->n_images && !*low_water; i++) {
		const struct bs_sysdev *d = bs_system_by_name(&sys, s->images[i].name);
		struct bs_image_table t;
		const char *type = bs_sysdev_type(d);

		if (type && !strcmp(type, BS_TARGET_IMAGE) &&
		    !bs_parse_image_params(NULL, d->dm.targets[0].params, &t))
			*low_water = t.low_water;
	}
	bs_system_clear(&sys);
	return 0;
}

int blksnap_watch_new(struct blksnap_ctx *ctx, const char *name,
		      struct blksnap_watch **out)
{
	struct blksnap_snapshot *s = NULL;
	struct blksnap_watch *w;
	int r;

	*out = NULL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return bs_err(ctx, ENOMEM, "out of memory");
	w->fd = -1;
	w->name = strdup(name);
	if (!w->name) {
		r = bs_err(ctx, ENOMEM, "out of memory");
		goto fail;
	}
	r = bs_dm_poll_open(ctx, &w->fd);
	if (!r)
		r = blksnap_snapshot_get(ctx, name, &s);
	if (r)
		goto fail;
	if (!s->n_images) {
		r = bs_err(ctx, ENOENT, "snapshot %s has no images to watch", name);
		goto fail;
	}
	r = watch_low_water(ctx, s, &w->low_water);
	if (r)
		goto fail;
	if (!w->low_water)
		w->low_water = s->store_sectors / 4;
	blksnap_snapshot_free(s);
	*out = w;
	return 0;
fail:
	blksnap_snapshot_free(s);
	blksnap_watch_free(w);
	return r;
}

int blksnap_watch_fd(const struct blksnap_watch *w)
{
	return w->fd;
}

static bool watch_done(const struct blksnap_watch *w, const char *image)
{
	for (size_t i = 0; i < w->n_done; i++)
		if (!strncmp(w->done[i], image, sizeof(w->done[i]) - 1))
			return true;
	return false;
}

static int watch_mark_done(struct blksnap_ctx *ctx, struct blksnap_watch *w,
			   const char *image)
{
	char (*v)[128] = realloc(w->done, (w->n_done + 1) * sizeof(*v));

	if (!v)
		return bs_err(ctx, ENOMEM, "out of memory");
	w->done = v;
	snprintf(v[w->n_done++], sizeof(*v), "%s", image);
	return 0;
}

/* Compare the snapshot with what was reported. 1: *@ev is an event, 0: none. */
static int watch_check(struct blksnap_ctx *ctx, struct blksnap_watch *w,
		       struct blksnap_event *ev)
{
	struct blksnap_snapshot *s;
	uint64_t free_sectors;
	int r;

	r = blksnap_snapshot_get(ctx, w->name, &s);
	if (r && r != -ENOENT)
		return r;
	memset(ev, 0, sizeof(*ev));
	ev->size = sizeof(*ev);
	ev->low_water_sectors = w->low_water;
	if (r == -ENOENT || !s->n_images) {
		blksnap_snapshot_free(s);
		w->gone = true;
		ev->type = BLKSNAP_EVENT_GONE;
		return 1;
	}
	ev->used_sectors = s->used_sectors;
	ev->store_sectors = s->store_sectors;
	r = 0;
	for (size_t i = 0; i < s->n_images && !r; i++) {
		const struct blksnap_image *img = &s->images[i];

		if (!img->status_valid || watch_done(w, img->name) ||
		    (img->status.state != BLKSNAP_IMAGE_OVERFLOW &&
		     img->status.state != BLKSNAP_IMAGE_FAILED))
			continue;
		r = watch_mark_done(ctx, w, img->name);
		if (r)
			break;
		ev->type = img->status.state == BLKSNAP_IMAGE_OVERFLOW ?
			   BLKSNAP_EVENT_OVERFLOW : BLKSNAP_EVENT_FAILED;
		snprintf(ev->image, sizeof(ev->image), "%s", img->name);
		r = 1;
	}
	if (!r) {
		free_sectors = s->used_sectors < s->store_sectors ?
			       s->store_sectors - s->used_sectors : 0;
		/* Like the kernel's event: once below, armed again above. */
		if (free_sectors >= w->low_water) {
			w->below = false;
		} else if (!w->below) {
			w->below = true;
			ev->type = BLKSNAP_EVENT_LOW_WATER;
			r = 1;
		}
	}
	blksnap_snapshot_free(s);
	return r;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int blksnap_watch_next(struct blksnap_ctx *ctx, struct blksnap_watch *w,
		       int timeout_ms, struct blksnap_event *ev)
{
	struct blksnap_event e;
	int64_t end = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
	int r;

	if (!ev || ev->size < sizeof(*ev))
		return bs_err(ctx, EINVAL, "struct blksnap_event: set .size = sizeof(struct blksnap_event)");
	if (w->gone)
		return bs_err(ctx, ENOENT, "snapshot %s is gone", w->name);
	for (;;) {
		struct pollfd p = { .fd = w->fd, .events = POLLIN };
		int wait;

		r = bs_dm_poll_arm(ctx, w->fd);
		if (!r)
			r = watch_check(ctx, w, &e);
		if (r < 0)
			return r;
		if (r)
			return bs_copy_out(ctx, ev, &e, sizeof(e), sizeof(e), "blksnap_event");
		wait = timeout_ms < 0 ? -1 : timeout_ms == 0 ? 0 : (int)(end - now_ms());
		if (timeout_ms > 0 && wait <= 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, wait);
		if (r < 0 && errno == EINTR)
			return -EINTR;
		if (r < 0)
			return bs_err(ctx, errno, "poll: %s", strerror(errno));
		if (!r)
			return -ETIMEDOUT;
	}
}

/*---- The monitor ----*/

struct monitor {
	struct blksnap_ctx *ctx;
	const char *name;
	const struct blksnap_monitor_params *params;
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

/* Grow once if the store is below @low_water. 1: grown, 0: nothing done. */
static int monitor_grow(struct monitor *mon, const struct blksnap_snapshot *s,
			uint64_t low_water)
{
	uint64_t size = s->store_sectors * BLKSNAP_SECTOR_SIZE, add = mon->grow_by;
	uint64_t free_sectors = s->store_sectors - s->used_sectors;
	char a[16], b[16], c[16];
	char *dir;
	int r;

	if (s->used_sectors > s->store_sectors || free_sectors >= low_water)
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
	r = blksnap_store_add(mon->ctx, mon->name, dir, add, 0);
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

/* On low water: grow until the store is above it again (bounded). */
static int monitor_low_water(struct monitor *mon, uint64_t low_water)
{
	struct blksnap_snapshot *s = NULL;
	int r, grown = 0;

	do {
		blksnap_snapshot_free(s);
		r = blksnap_snapshot_get(mon->ctx, mon->name, &s);
		if (r)
			return r == -ENOENT ? 0 : r;
	} while (monitor_grow(mon, s, low_water) > 0 && ++grown < 8);
	blksnap_snapshot_free(s);
	return 0;
}

int blksnap_monitor(struct blksnap_ctx *ctx, const char *name,
		    const struct blksnap_monitor_params *params)
{
	struct blksnap_monitor_params p;
	struct monitor mon = { .ctx = ctx, .name = name, .params = &p };
	struct blksnap_event ev = { .size = sizeof(ev) };
	struct blksnap_snapshot *s;
	struct blksnap_watch *w;
	char a[16], b[16];
	int r;

	r = bs_copy_in(ctx, &p, sizeof(p), params, sizeof(p), "blksnap_monitor_params");
	if (r)
		return r;
	if (p.grow_by) {
		r = blksnap_check_size(ctx, BLKSNAP_SIZE_GROW, p.grow_by);
		if (r)
			return r;
	}
	r = blksnap_watch_new(ctx, name, &w);
	if (r)
		return r;
	r = blksnap_snapshot_get(ctx, name, &s);
	if (r)
		goto out;
	mon.grow_by = p.grow_by ? p.grow_by : s->store_sectors * BLKSNAP_SECTOR_SIZE;
	bs_log(ctx, BLKSNAP_LOG_INFO, "%s: watching %zu image(s), store %s, %s used",
	       name, s->n_images,
	       blksnap_format_size(s->store_sectors * BLKSNAP_SECTOR_SIZE, a, sizeof(a)),
	       blksnap_format_size(s->used_sectors * BLKSNAP_SECTOR_SIZE, b, sizeof(b)));
	blksnap_snapshot_free(s);

	for (;;) {
		struct pollfd fds[2] = {
			{ .fd = blksnap_watch_fd(w), .events = POLLIN },
			{ .fd = p.cancel_fd, .events = POLLIN },
		};

		r = blksnap_watch_next(ctx, w, 0, &ev);
		if (r == -ETIMEDOUT) {
			if (poll(fds, p.cancel_fd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR) {
				r = bs_err(ctx, errno, "poll: %s", strerror(errno));
				break;
			}
			if (p.cancel_fd >= 0 && fds[1].revents) {
				r = bs_err(ctx, ECANCELED, "%s: monitor stopped", name);
				bs_log(ctx, BLKSNAP_LOG_INFO, "%s: monitor stopped", name);
				break;
			}
			continue;
		}
		if (r == -EINTR)
			continue;
		if (r)
			break;
		if (ev.type == BLKSNAP_EVENT_GONE) {
			bs_log(ctx, BLKSNAP_LOG_INFO, "%s: the snapshot is gone", name);
			break;
		}
		if (ev.type == BLKSNAP_EVENT_OVERFLOW) {
			r = bs_err(ctx, ENOSPC, "%s: image %s overflowed: the store (%s) ran out, the image is invalid",
				   name, ev.image,
				   blksnap_format_size(ev.store_sectors * BLKSNAP_SECTOR_SIZE, a, sizeof(a)));
			break;
		}
		if (ev.type == BLKSNAP_EVENT_FAILED) {
			r = bs_err(ctx, EIO, "%s: image %s failed (an I/O error on the store or the origin; see 'dmesg')",
				   name, ev.image);
			break;
		}
		r = monitor_low_water(&mon, ev.low_water_sectors);
		if (r)
			break;
	}
out:
	blksnap_watch_free(w);
	return r;
}
