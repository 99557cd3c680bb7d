// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libblksnap: the one place that talks to libdevmapper (see dm.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/dm-ioctl.h>
#include <libdevmapper.h>

#include "dm.h"

/*---- Logging and serialisation ----*/

/*
 * libdevmapper logs through one process-wide function. libblksnap installs
 * its own once (unless the program asked it not to, blksnap_keep_dm_log):
 * it keeps the first error line of the current call, so that a failure can
 * say what libdevmapper saw first (the most specific line, e.g. "open
 * failed: Permission denied" before "Failure to communicate with kernel
 * device-mapper driver"), and hands every line to the calling thread's
 * context at BLKSNAP_LOG_DEBUG. Its output never reaches the terminal:
 * blksnapctl prints one line per failure.
 *
 * libdevmapper keeps process-wide state (its control descriptor, the list
 * of pending /dev node operations); every call into it from here holds
 * dmw_mutex (recursive: create loads and removes through the same calls).
 */
static _Thread_local char dmw_first_error[256];
static _Thread_local struct blksnap_ctx *dmw_ctx;
static pthread_mutex_t dmw_mutex;
static pthread_once_t dmw_once = PTHREAD_ONCE_INIT;
static bool dmw_keep_log;
static bool dmw_no_udev_wait;

static void dmw_log(int level, const char *file, int line,
		      int dm_errno_or_class, const char *f, ...)
{
	char msg[256];
	va_list ap;
	size_t len;

	(void)file;
	(void)line;
	(void)dm_errno_or_class;
	va_start(ap, f);
	vsnprintf(msg, sizeof(msg), f, ap);
	va_end(ap);
	/* Our messages go on after it: drop its full stop. */
	len = strlen(msg);
	while (len && (msg[len - 1] == '.' || msg[len - 1] == '\n'))
		msg[--len] = '\0';
	if ((level & 7) <= 3 && !dmw_first_error[0])	/* fatal and error */
		snprintf(dmw_first_error, sizeof(dmw_first_error), "%s", msg);
	if (bs_log_on(dmw_ctx, BLKSNAP_LOG_DEBUG) && strcmp(msg, "<backtrace>"))
		bs_log(dmw_ctx, BLKSNAP_LOG_DEBUG, "libdevmapper: %s", msg);
}

static void dmw_init_once(void)
{
	pthread_mutexattr_t attr;

	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&dmw_mutex, &attr);
	pthread_mutexattr_destroy(&attr);
	if (!dmw_keep_log)
		dm_log_with_errno_init(dmw_log);
}

void bs_dm_init(void)
{
	pthread_once(&dmw_once, dmw_init_once);
}

void blksnap_keep_dm_log(void)
{
	dmw_keep_log = true;
}

void blksnap_set_udev_sync(bool sync)
{
	bs_dm_init();
	pthread_mutex_lock(&dmw_mutex);
	dm_udev_set_sync_support(sync);
	dmw_no_udev_wait = !sync;
	pthread_mutex_unlock(&dmw_mutex);
}

/* Enter libdevmapper on behalf of @ctx; returns the previous context. */
static struct blksnap_ctx *dmw_enter(struct blksnap_ctx *ctx)
{
	struct blksnap_ctx *prev = dmw_ctx;

	bs_dm_init();
	pthread_mutex_lock(&dmw_mutex);
	/* A NULL context (a best-effort call) still logs to the outer one. */
	if (ctx)
		dmw_ctx = ctx;
	return prev;
}

static void dmw_leave(struct blksnap_ctx *prev)
{
	dmw_ctx = prev;
	pthread_mutex_unlock(&dmw_mutex);
}

static const char *dmw_first(void)
{
	return dmw_first_error[0] ? dmw_first_error : NULL;
}

bool bs_dm_is_dm_major(uint32_t major)
{
	struct blksnap_ctx *prev = dmw_enter(NULL);
	bool r = dm_is_dm_major(major);

	dmw_leave(prev);
	return r;
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
	case DM_DEVICE_LIST:
		return "list";
	case DM_DEVICE_LIST_VERSIONS:
		return "list the targets of";
	default:
		return "query";
	}
}

/*
 * Why libdevmapper cannot talk to the kernel: the caller is not root, or
 * device-mapper is not there, or whatever libdevmapper said first.
 */
static int dmw_unavailable(struct blksnap_ctx *ctx, int type, const char *name)
{
	const char *what = name ? name : "device-mapper devices";

	if (geteuid() != 0)
		return bs_err(ctx, EACCES, "cannot %s %s: permission denied: device-mapper needs root",
			      dmw_op_name(type), what);
	/* (libdevmapper, run as root, makes /dev/mapper/control itself.) */
	if (access("/sys/class/misc/device-mapper", F_OK))
		return bs_err(ctx, ENODEV, "cannot %s %s: device-mapper is not available (load it: 'modprobe dm_mod')",
			      dmw_op_name(type), what);
	return bs_err(ctx, ENODEV, "cannot %s %s: %s", dmw_op_name(type), what,
		      dmw_first() ? dmw_first() : "device-mapper is not available");
}

/* A new task; called with dmw_mutex held. */
static int dmw_task(struct blksnap_ctx *ctx, int type, const char *name,
		    struct dm_task **out)
{
	struct dm_task *dmt;

	*out = NULL;
	dmw_first_error[0] = '\0';
	dmt = dm_task_create(type);
	if (!dmt) {
		/* Creation checks the driver version: /dev/mapper/control must open. */
		if (!dmw_first() && errno == ENOMEM)
			return bs_err(ctx, ENOMEM, "out of memory");
		return dmw_unavailable(ctx, type, name);
	}
	if (name && !dm_task_set_name(dmt, name)) {
		dm_task_destroy(dmt);
		return bs_err(ctx, EINVAL, "invalid device-mapper name '%s'", name);
	}
	*out = dmt;
	return 0;
}

/* Run @dmt; on failure record "cannot <op> <name>: <cause>" and return -errno. */
static int dmw_run(struct blksnap_ctx *ctx, struct dm_task *dmt, int type,
		  const char *name)
{
	int e;

	dmw_first_error[0] = '\0';
	if (type != DM_DEVICE_INFO && type != DM_DEVICE_TABLE && type != DM_DEVICE_STATUS &&
	    type != DM_DEVICE_LIST && type != DM_DEVICE_LIST_VERSIONS)
		bs_log(ctx, BLKSNAP_LOG_DEBUG, "dm: %s %s", dmw_op_name(type), name ? name : "");
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
	for (size_t i = 0; i < n; i++) {
		bs_log(ctx, BLKSNAP_LOG_DEBUG, "dm: table of %s: %llu %llu %s %s", name,
		       (unsigned long long)t[i].start, (unsigned long long)t[i].len,
		       t[i].type, t[i].params);
		if (!dm_task_add_target(dmt, t[i].start, t[i].len, t[i].type, t[i].params))
			return bs_err(ctx, ENOMEM, "cannot build the table of %s: out of memory", name);
	}
	return 0;
}

static int dmw_set_cookie(struct blksnap_ctx *ctx, struct dm_task *dmt,
			 uint32_t *cookie)
{
	/*
	 * Not waiting for udev (inside a udev event): udev runs all the same
	 * and makes the /dev nodes and links; libdevmapper must not make
	 * nodes of its own instead of udev's symlinks.
	 */
	if (!dm_task_set_cookie(dmt, cookie, dmw_no_udev_wait ? DM_UDEV_DISABLE_LIBRARY_FALLBACK : 0))
		return bs_err(ctx, EIO, "cannot set up udev synchronisation: %s",
			      dmw_first() ? dmw_first() : "unknown error");
	return 0;
}

int bs_dm_udev_wait(struct blksnap_ctx *ctx, uint32_t cookie)
{
	struct blksnap_ctx *prev;
	int r = 0;

	if (!cookie)
		return 0;
	prev = dmw_enter(ctx);
	dmw_first_error[0] = '\0';
	if (!dm_udev_wait(cookie))
		r = bs_err(ctx, EIO, "waiting for udev failed: %s",
			   dmw_first() ? dmw_first() : "unknown error");
	dmw_leave(prev);
	return r;
}

/*---- Queries ----*/

void bs_dmdev_clear(struct bs_dmdev *dev)
{
	free(dev->name);
	free(dev->uuid);
	bs_targets_free(dev->targets, dev->n_targets);
	memset(dev, 0, sizeof(*dev));
}

int bs_dm_target_version(struct blksnap_ctx *ctx, const char *type, bool *present,
			 uint32_t version[3])
{
	struct blksnap_ctx *prev = dmw_enter(ctx);
	struct dm_versions *v, *last;
	struct dm_task *dmt;
	int r;

	*present = false;
	r = dmw_task(ctx, DM_DEVICE_LIST_VERSIONS, NULL, &dmt);
	if (r)
		goto leave;
	r = dmw_run(ctx, dmt, DM_DEVICE_LIST_VERSIONS, NULL);
	if (r)
		goto out;
	v = dm_task_get_versions(dmt);
	do {
		if (!strcmp(v->name, type)) {
			*present = true;
			memcpy(version, v->version, 3 * sizeof(uint32_t));
			break;
		}
		last = v;
		v = (struct dm_versions *)((char *)v + v->next);
	} while (last != v);
out:
	dm_task_destroy(dmt);
leave:
	dmw_leave(prev);
	return r;
}

int bs_dm_list(struct blksnap_ctx *ctx, char ***names, size_t *n)
{
	struct blksnap_ctx *prev = dmw_enter(ctx);
	struct dm_task *dmt;
	struct dm_names *nm;
	size_t count = 0, i = 0;
	char **v;
	int r;

	*names = NULL;
	*n = 0;
	r = dmw_task(ctx, DM_DEVICE_LIST, NULL, &dmt);
	if (r)
		goto leave;
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
leave:
	dmw_leave(prev);
	return r;
}

int bs_dm_query(struct blksnap_ctx *ctx, const char *name, uint32_t major,
		uint32_t minor, enum bs_dm_query what, struct bs_dmdev *dev)
{
	int type = what == BS_DM_STATUS ? DM_DEVICE_STATUS :
		   what == BS_DM_TABLE ? DM_DEVICE_TABLE : DM_DEVICE_INFO;
	struct blksnap_ctx *prev = dmw_enter(ctx);
	char label[32];
	struct dm_task *dmt;
	struct dm_info info;
	const char *s;
	void *next = NULL;
	int r;

	memset(dev, 0, sizeof(*dev));
	if (!name)
		snprintf(label, sizeof(label), "%u:%u", major, minor);
	r = dmw_task(ctx, type, name, &dmt);
	if (r)
		goto leave;
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
leave:
	dmw_leave(prev);
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
	struct blksnap_ctx *prev = dmw_enter(ctx);
	uint32_t own = 0;
	struct dm_task *dmt;
	bool with_table = n && !inactive;
	int r;

	r = dmw_task(ctx, DM_DEVICE_CREATE, name, &dmt);
	if (r)
		goto leave;
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
leave:
	dmw_leave(prev);
	return r;
}

int bs_dm_load(struct blksnap_ctx *ctx, const char *name,
	       const struct bs_target *t, size_t n)
{
	struct blksnap_ctx *prev = dmw_enter(ctx);
	struct dm_task *dmt;
	int r;

	r = dmw_task(ctx, DM_DEVICE_RELOAD, name, &dmt);
	if (!r) {
		r = dmw_add_targets(ctx, dmt, name, t, n);
		if (!r)
			r = dmw_run(ctx, dmt, DM_DEVICE_RELOAD, name);
		dm_task_destroy(dmt);
	}
	dmw_leave(prev);
	return r;
}

static int dmw_simple(struct blksnap_ctx *ctx, int type, const char *name,
		     unsigned int flags, uint32_t *cookie)
{
	struct blksnap_ctx *prev = dmw_enter(ctx);
	struct dm_task *dmt;
	uint32_t own = 0;
	bool wait = false;
	int r;

	r = dmw_task(ctx, type, name, &dmt);
	if (r)
		goto leave;
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
leave:
	dmw_leave(prev);
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
	struct blksnap_ctx *prev = dmw_enter(ctx);
	struct dm_task *dmt;
	const char *resp;
	int r;

	if (reply)
		*reply = NULL;
	r = dmw_task(ctx, DM_DEVICE_TARGET_MSG, name, &dmt);
	if (r)
		goto leave;
	if (!dm_task_set_sector(dmt, 0) || !dm_task_set_message(dmt, msg)) {
		r = bs_err(ctx, ENOMEM, "out of memory");
		goto out;
	}
	dmw_first_error[0] = '\0';
	bs_log(ctx, BLKSNAP_LOG_DEBUG, "dm: message to %s: %s", name, msg);
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
leave:
	dmw_leave(prev);
	return r;
}

/*---- Event poll ----*/

/*
 * device-mapper's global event counter (any target event, table swap or
 * removal, of any device) through a descriptor of our own on the control
 * device: DM_DEV_ARM_POLL remembers the counter, and poll() reports POLLIN
 * once it moved. libdevmapper has the ioctl as a task, but only on its own
 * descriptor, which a caller cannot poll; this is the one ioctl made here
 * directly.
 */
int bs_dm_poll_open(struct blksnap_ctx *ctx, int *fd)
{
	*fd = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);
	if (*fd >= 0)
		return bs_dm_poll_arm(ctx, *fd);
	if (errno == EACCES || errno == EPERM)
		return bs_err(ctx, EACCES, "cannot open /dev/mapper/control: permission denied: device-mapper needs root");
	if (errno == ENOENT || errno == ENXIO || errno == ENODEV)
		return bs_err(ctx, ENODEV, "cannot open /dev/mapper/control: device-mapper is not available (load it: 'modprobe dm_mod')");
	return bs_err(ctx, errno, "cannot open /dev/mapper/control: %s", strerror(errno));
}

int bs_dm_poll_arm(struct blksnap_ctx *ctx, int fd)
{
	struct dm_ioctl dmi;

	memset(&dmi, 0, sizeof(dmi));
	dmi.version[0] = DM_VERSION_MAJOR;
	dmi.data_size = sizeof(dmi);
	dmi.data_start = sizeof(dmi);
	if (ioctl(fd, DM_DEV_ARM_POLL, &dmi))
		return bs_err(ctx, errno, "cannot arm the device-mapper event poll: %s (the kernel is too old?)",
			      strerror(errno));
	return 0;
}
