// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libblksnap: the one place that talks to libdevmapper (see dm.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libdevmapper.h>

#include "dm.h"

/*---- Logging ----*/

/*
 * libdevmapper logs through a process-wide function. Keep its last error
 * line so that a failed call can say what libdevmapper saw, and keep its
 * output off the terminal: blksnapctl prints one line per failure.
 */
static _Thread_local char dmw_last_error[256];

static void dmw_log(int level, const char *file, int line,
		      int dm_errno_or_class, const char *f, ...)
{
	va_list ap;
	size_t len;

	(void)file;
	(void)line;
	(void)dm_errno_or_class;
	if ((level & 7) > 3)	/* only fatal and error */
		return;
	va_start(ap, f);
	vsnprintf(dmw_last_error, sizeof(dmw_last_error), f, ap);
	va_end(ap);
	/* Our messages go on after it: drop its full stop. */
	len = strlen(dmw_last_error);
	while (len && (dmw_last_error[len - 1] == '.' || dmw_last_error[len - 1] == '\n'))
		dmw_last_error[--len] = '\0';
}

void bs_dm_init(void)
{
	dm_log_with_errno_init(dmw_log);
}

bool bs_dm_is_dm_major(uint32_t major)
{
	return dm_is_dm_major(major);
}

/*---- Tasks ----*/

static const char *dmw_op_name(int type)
{
	switch (type) {
	case DM_DEVICE_CREATE:
		return "create";
	case DM_DEVICE_RELOAD:
		return "load table of";
	case DM_DEVICE_REMOVE:
		return "remove";
	case DM_DEVICE_SUSPEND:
		return "suspend";
	case DM_DEVICE_RESUME:
		return "resume";
	case DM_DEVICE_CLEAR:
		return "clear table of";
	case DM_DEVICE_TARGET_MSG:
		return "message to";
	case DM_DEVICE_WAITEVENT:
		return "wait for events of";
	case DM_DEVICE_LIST:
		return "list";
	default:
		return "query";
	}
}

static struct dm_task *dmw_task(struct blksnap_ctx *ctx, int type,
				   const char *name)
{
	struct dm_task *dmt;

	dmw_last_error[0] = '\0';
	dmt = dm_task_create(type);
	if (!dmt) {
		/* Creation fails when /dev/mapper/control cannot be opened. */
		bs_err(ctx, ENODEV, "cannot %s %s: %s (is dm_mod loaded, and are you root?)",
		       dmw_op_name(type), name ? name : "device-mapper devices",
		       dmw_last_error[0] ? dmw_last_error : "device-mapper is not available");
		return NULL;
	}
	if (name && !dm_task_set_name(dmt, name)) {
		dm_task_destroy(dmt);
		bs_err(ctx, EINVAL, "invalid device-mapper name '%s'", name);
		return NULL;
	}
	return dmt;
}

/* Run @dmt; on failure record "cannot <op> <name>: <cause>" and return -errno. */
static int dmw_run(struct blksnap_ctx *ctx, struct dm_task *dmt, int type,
		  const char *name)
{
	int e;

	dmw_last_error[0] = '\0';
	if (dm_task_run(dmt))
		return 0;
	e = dm_task_get_errno(dmt);
	if (e <= 0)
		e = EIO;
	if (type == DM_DEVICE_RELOAD || type == DM_DEVICE_CREATE ||
	    type == DM_DEVICE_RESUME)
		return bs_err(ctx, e, "cannot %s %s: %s (the kernel log, 'dmesg', names the reason)",
			      dmw_op_name(type), name, strerror(e));
	if (type == DM_DEVICE_REMOVE && e == EBUSY)
		return bs_err(ctx, e, "cannot remove %s: it is in use (unmount it and close every program using it)",
			      name);
	return bs_err(ctx, e, "cannot %s %s: %s", dmw_op_name(type),
		      name ? name : "device-mapper devices", strerror(e));
}

static int dmw_add_targets(struct blksnap_ctx *ctx, struct dm_task *dmt,
			  const char *name, const struct bs_target *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!dm_task_add_target(dmt, t[i].start, t[i].len, t[i].type, t[i].params))
			return bs_err(ctx, ENOMEM, "cannot build the table of %s: out of memory", name);
	return 0;
}

static int dmw_set_cookie(struct blksnap_ctx *ctx, struct dm_task *dmt,
			 uint32_t *cookie)
{
	if (!dm_task_set_cookie(dmt, cookie, 0))
		return bs_err(ctx, EIO, "cannot set up udev synchronisation: %s",
			      dmw_last_error[0] ? dmw_last_error : "unknown error");
	return 0;
}

int bs_dm_udev_wait(struct blksnap_ctx *ctx, uint32_t cookie)
{
	if (cookie && !dm_udev_wait(cookie))
		return bs_err(ctx, EIO, "waiting for udev failed: %s",
			      dmw_last_error[0] ? dmw_last_error : "unknown error");
	return 0;
}

/*---- Queries ----*/

void bs_dmdev_clear(struct bs_dmdev *dev)
{
	free(dev->name);
	free(dev->uuid);
	bs_targets_free(dev->targets, dev->n_targets);
	memset(dev, 0, sizeof(*dev));
}

int bs_dm_has_target(struct blksnap_ctx *ctx, const char *type, bool *present)
{
	struct dm_task *dmt;
	struct dm_versions *v, *last;
	int r;

	*present = false;
	dmt = dmw_task(ctx, DM_DEVICE_LIST_VERSIONS, NULL);
	if (!dmt)
		return -ENOMEM;
	r = dmw_run(ctx, dmt, DM_DEVICE_LIST_VERSIONS, NULL);
	if (r)
		goto out;
	v = dm_task_get_versions(dmt);
	do {
		if (!strcmp(v->name, type)) {
			*present = true;
			break;
		}
		last = v;
		v = (struct dm_versions *)((char *)v + v->next);
	} while (last != v);
out:
	dm_task_destroy(dmt);
	return r;
}

int bs_dm_list(struct blksnap_ctx *ctx, char ***names, size_t *n)
{
	struct dm_task *dmt;
	struct dm_names *nm;
	size_t count = 0, i = 0;
	char **v;
	int r;

	*names = NULL;
	*n = 0;
	dmt = dmw_task(ctx, DM_DEVICE_LIST, NULL);
	if (!dmt)
		return -ENOMEM;
	r = dmw_run(ctx, dmt, DM_DEVICE_LIST, NULL);
	if (r)
		goto out;
	nm = dm_task_get_names(dmt);
	for (struct dm_names *p = nm; p && p->dev; p = (struct dm_names *)((char *)p + p->next)) {
		count++;
		if (!p->next)
			break;
	}
	v = calloc(count + 1, sizeof(*v));
	if (!v) {
		r = bs_err(ctx, ENOMEM, "out of memory");
		goto out;
	}
	for (struct dm_names *p = nm; p && p->dev && i < count;
	     p = (struct dm_names *)((char *)p + p->next)) {
		v[i] = strdup(p->name);
		if (!v[i]) {
			bs_strv_free(v);
			r = bs_err(ctx, ENOMEM, "out of memory");
			goto out;
		}
		i++;
		if (!p->next)
			break;
	}
	*names = v;
	*n = count;
out:
	dm_task_destroy(dmt);
	return r;
}

int bs_dm_query(struct blksnap_ctx *ctx, const char *name, uint32_t major,
		uint32_t minor, enum bs_dm_query what, struct bs_dmdev *dev)
{
	int type = what == BS_DM_STATUS ? DM_DEVICE_STATUS :
		   what == BS_DM_TABLE ? DM_DEVICE_TABLE : DM_DEVICE_INFO;
	char label[32];
	struct dm_task *dmt;
	struct dm_info info;
	const char *s;
	void *next = NULL;
	int r;

	memset(dev, 0, sizeof(*dev));
	if (!name)
		snprintf(label, sizeof(label), "%u:%u", major, minor);
	dmt = dmw_task(ctx, type, name);
	if (!dmt)
		return -ENOMEM;
	if (!name && (!dm_task_set_major(dmt, major) || !dm_task_set_minor(dmt, minor))) {
		r = bs_err(ctx, EINVAL, "invalid device number %s", label);
		goto out;
	}
	if (!dm_task_run(dmt)) {
		/* The table ioctl of a missing device fails where info does not. */
		if (dm_task_get_errno(dmt) == ENXIO) {
			r = 0;
			goto out;
		}
		r = dmw_run(ctx, dmt, type, name ? name : label);
		goto out;
	}
	if (!dm_task_get_info(dmt, &info)) {
		r = bs_err(ctx, EIO, "cannot query %s", name ? name : label);
		goto out;
	}
	r = 0;
	if (!info.exists)
		goto out;
	dev->exists = true;
	dev->suspended = info.suspended;
	dev->live_table = info.live_table;
	dev->inactive_table = info.inactive_table;
	dev->open_count = info.open_count;
	dev->event_nr = info.event_nr;
	dev->major = info.major;
	dev->minor = info.minor;
	s = dm_task_get_name(dmt);
	dev->name = strdup(s ? s : (name ? name : ""));
	s = dm_task_get_uuid(dmt);
	dev->uuid = strdup(s ? s : "");
	if (!dev->name || !dev->uuid)
		goto nomem;
	if (what == BS_DM_INFO)
		goto out;
	do {
		uint64_t start, len;
		char *ttype = NULL, *params = NULL;
		struct bs_target *t;

		next = dm_get_next_target(dmt, next, &start, &len, &ttype, &params);
		if (!ttype)
			break;
		t = realloc(dev->targets, (dev->n_targets + 1) * sizeof(*t));
		if (!t)
			goto nomem;
		dev->targets = t;
		t += dev->n_targets;
		t->start = start;
		t->len = len;
		t->type = strdup(ttype);
		t->params = strdup(params ? params : "");
		dev->n_targets++;
		if (!t->type || !t->params)
			goto nomem;
	} while (next);
out:
	dm_task_destroy(dmt);
	if (r)
		bs_dmdev_clear(dev);
	return r;
nomem:
	r = bs_err(ctx, ENOMEM, "out of memory");
	goto out;
}

/*---- Changes ----*/

int bs_dm_create(struct blksnap_ctx *ctx, const char *name, const char *uuid,
		 const struct bs_target *t, size_t n, bool inactive,
		 uint32_t *cookie)
{
	uint32_t own = 0;
	struct dm_task *dmt;
	bool with_table = n && !inactive;
	int r;

	dmt = dmw_task(ctx, DM_DEVICE_CREATE, name);
	if (!dmt)
		return -ENOMEM;
	if (uuid && !dm_task_set_uuid(dmt, uuid)) {
		r = bs_err(ctx, EINVAL, "invalid device-mapper uuid '%s'", uuid);
		goto out;
	}
	if (with_table) {
		r = dmw_add_targets(ctx, dmt, name, t, n);
		if (r)
			goto out;
		/*
		 * libdevmapper creates, loads and resumes; only the resume
		 * sends a uevent, so only this case waits for udev.
		 */
		r = dmw_set_cookie(ctx, dmt, cookie ? cookie : &own);
		if (r)
			goto out;
	}
	r = dmw_run(ctx, dmt, DM_DEVICE_CREATE, name);
	if (!cookie && with_table)
		bs_dm_udev_wait(r ? NULL : ctx, own);
	if (r || with_table || !n)
		goto out;
	r = bs_dm_load(ctx, name, t, n);
	if (r) {
		int r2 = bs_dm_remove(NULL, name, NULL);

		if (r2)
			bs_err_prefix(ctx, r, "%s is left without a table ('dmsetup remove %s')",
				      name, name);
	}
out:
	dm_task_destroy(dmt);
	return r;
}

int bs_dm_load(struct blksnap_ctx *ctx, const char *name,
	       const struct bs_target *t, size_t n)
{
	struct dm_task *dmt = dmw_task(ctx, DM_DEVICE_RELOAD, name);
	int r;

	if (!dmt)
		return -ENOMEM;
	r = dmw_add_targets(ctx, dmt, name, t, n);
	if (!r)
		r = dmw_run(ctx, dmt, DM_DEVICE_RELOAD, name);
	dm_task_destroy(dmt);
	return r;
}

static int dmw_simple(struct blksnap_ctx *ctx, int type, const char *name,
		     unsigned int flags, uint32_t *cookie)
{
	struct dm_task *dmt = dmw_task(ctx, type, name);
	uint32_t own = 0;
	bool wait = false;
	int r = 0;

	if (!dmt)
		return -ENOMEM;
	if (type == DM_DEVICE_SUSPEND) {
		if (!(flags & BS_DM_LOCKFS))
			dm_task_skip_lockfs(dmt);
		if (flags & BS_DM_NOFLUSH)
			dm_task_no_flush(dmt);
	}
	if (type == DM_DEVICE_REMOVE)
		dm_task_retry_remove(dmt);
	if (type == DM_DEVICE_RESUME || type == DM_DEVICE_REMOVE) {
		r = dmw_set_cookie(ctx, dmt, cookie ? cookie : &own);
		wait = !cookie && !r;
	}
	if (!r)
		r = dmw_run(ctx, dmt, type, name);
	if (wait) {
		int r2 = bs_dm_udev_wait(r ? NULL : ctx, own);

		if (!r)
			r = r2;
	}
	dm_task_destroy(dmt);
	return r;
}

int bs_dm_clear(struct blksnap_ctx *ctx, const char *name)
{
	return dmw_simple(ctx, DM_DEVICE_CLEAR, name, 0, NULL);
}

int bs_dm_suspend(struct blksnap_ctx *ctx, const char *name, unsigned int flags)
{
	return dmw_simple(ctx, DM_DEVICE_SUSPEND, name, flags, NULL);
}

int bs_dm_resume(struct blksnap_ctx *ctx, const char *name, uint32_t *cookie)
{
	return dmw_simple(ctx, DM_DEVICE_RESUME, name, 0, cookie);
}

int bs_dm_remove(struct blksnap_ctx *ctx, const char *name, uint32_t *cookie)
{
	return dmw_simple(ctx, DM_DEVICE_REMOVE, name, 0, cookie);
}

int bs_dm_message(struct blksnap_ctx *ctx, const char *name, const char *msg,
		  char **reply)
{
	struct dm_task *dmt = dmw_task(ctx, DM_DEVICE_TARGET_MSG, name);
	const char *resp;
	int r;

	if (reply)
		*reply = NULL;
	if (!dmt)
		return -ENOMEM;
	if (!dm_task_set_sector(dmt, 0) || !dm_task_set_message(dmt, msg)) {
		r = bs_err(ctx, ENOMEM, "out of memory");
		goto out;
	}
	dmw_last_error[0] = '\0';
	if (!dm_task_run(dmt)) {
		int e = dm_task_get_errno(dmt);

		if (e <= 0)
			e = EIO;
		r = bs_err(ctx, e, "message '%s' to %s failed: %s", msg, name, strerror(e));
		goto out;
	}
	r = 0;
	if (reply) {
		resp = dm_task_get_message_response(dmt);
		*reply = strdup(resp ? resp : "");
		if (!*reply)
			r = bs_err(ctx, ENOMEM, "out of memory");
	}
out:
	dm_task_destroy(dmt);
	return r;
}

int bs_dm_wait_event(struct blksnap_ctx *ctx, const char *name,
		     uint32_t event_nr, uint32_t *new_nr)
{
	struct dm_task *dmt = dmw_task(ctx, DM_DEVICE_WAITEVENT, name);
	struct dm_info info;
	int r = 0;

	if (!dmt)
		return -ENOMEM;
	if (!dm_task_set_event_nr(dmt, event_nr)) {
		r = bs_err(ctx, EINVAL, "cannot wait for events of %s", name);
		goto out;
	}
	dm_task_no_open_count(dmt);
	if (!dm_task_run(dmt)) {
		int e = dm_task_get_errno(dmt);

		if (e == ENXIO)
			r = bs_err(ctx, ENODEV, "%s is gone", name);
		else if (e == EINTR)
			r = bs_err(ctx, EINTR, "interrupted");
		else
			r = bs_err(ctx, e > 0 ? e : EIO, "cannot wait for events of %s: %s",
				   name, strerror(e > 0 ? e : EIO));
		goto out;
	}
	if (!dm_task_get_info(dmt, &info) || !info.exists) {
		r = bs_err(ctx, ENODEV, "%s is gone", name);
		goto out;
	}
	*new_nr = info.event_nr;
out:
	dm_task_destroy(dmt);
	return r;
}
