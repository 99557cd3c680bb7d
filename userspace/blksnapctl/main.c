// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * blksnapctl: manage dm-blksnap snapshots and change-block tracking.
 *
 * Thin by design: parse the arguments (args.c), call libblksnap, print
 * (output.c). Exit 0 on success, 1 with one line "blksnapctl: <cause>" on
 * stderr on failure, 2 on a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#ifndef BLKSNAP_SYSCONFDIR
#define BLKSNAP_SYSCONFDIR "/etc"
#endif
#ifndef BLKSNAP_RUNDIR
#define BLKSNAP_RUNDIR "/run/blksnap"
#endif

extern char **environ;

/*
 * Where log lines go. monitor and merge report progress: their INFO lines
 * are the command's output, on stdout with a time stamp. For the other
 * commands INFO lines say what happens (-v) and go to stderr, as debug
 * lines (--debug) do for every command; errors and warnings always do.
 */
struct cli_logger {
	bool progress;		/* monitor, merge */
	int verbosity;
};

static void cli_log(enum blksnap_log_level level, const char *msg, void *data)
{
	const struct cli_logger *lg = data;
	char stamp[32];
	struct tm tm;
	time_t now;

	if (level == BLKSNAP_LOG_DEBUG) {
		fprintf(stderr, "blksnapctl: debug: %s\n", msg);
		return;
	}
	if (level == BLKSNAP_LOG_INFO && lg->progress) {
		now = time(NULL);
		localtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
		printf("%s %s\n", stamp, msg);
		fflush(stdout);
		return;
	}
	if (level == BLKSNAP_LOG_INFO) {
		fprintf(stderr, "blksnapctl: %s\n", msg);
		return;
	}
	fprintf(stderr, "blksnapctl: %s%s\n", level == BLKSNAP_LOG_WARN ? "warning: " : "", msg);
}

/* The name of an errno, for --debug. */
static const char *errno_name(int e)
{
	static const struct { int e; const char *name; } names[] = {
		{ EPERM, "EPERM" }, { ENOENT, "ENOENT" }, { EIO, "EIO" }, { ENXIO, "ENXIO" },
		{ E2BIG, "E2BIG" }, { ENOMEM, "ENOMEM" }, { EACCES, "EACCES" },
		{ EBUSY, "EBUSY" }, { EEXIST, "EEXIST" }, { ENODEV, "ENODEV" },
		{ ENOTBLK, "ENOTBLK" }, { EINVAL, "EINVAL" }, { ENOSPC, "ENOSPC" },
		{ ERANGE, "ERANGE" }, { EDEADLK, "EDEADLK" }, { ENAMETOOLONG, "ENAMETOOLONG" },
		{ ENODATA, "ENODATA" }, { EPROTO, "EPROTO" }, { EOPNOTSUPP, "EOPNOTSUPP" },
		{ EPROTONOSUPPORT, "EPROTONOSUPPORT" }, { ESTALE, "ESTALE" },
		{ ECANCELED, "ECANCELED" }, { EAGAIN, "EAGAIN" }, { EFBIG, "EFBIG" },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].e == e)
			return names[i].name;
	return "?";
}

/*---- monitor: SIGINT and SIGTERM end it cleanly ----*/

static int cancel_pipe[2] = { -1, -1 };

static void cancel_handler(int sig)
{
	int e = errno;
	char c = (char)sig;

	if (write(cancel_pipe[1], &c, 1) < 0) {
		/* Nothing to do: the pipe has a byte in it already. */
	}
	errno = e;
}

static int cmd_monitor(struct blksnap_ctx *ctx, const struct cli_args *a)
{
	struct blksnap_monitor_params p = {
		.size = sizeof(p),
		.grow_by = a->grow_by,
		.limit = a->limit,
		.store_dir = a->store_dir,
		.cancel_fd = -1,
	};
	struct sigaction sa = { .sa_handler = cancel_handler };
	int r;

	if (!pipe2(cancel_pipe, O_CLOEXEC | O_NONBLOCK)) {
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		p.cancel_fd = cancel_pipe[0];
	}
	r = blksnap_monitor(ctx, a->snapshot, &p);
	/* Stopped on request (systemctl stop, ^C): a clean end. */
	return r == -ECANCELED ? 0 : r;
}

/*---- create --monitor ----*/

/* Run @argv and wait for it; its exit status, or -1. */
static int run_wait(char *const argv[])
{
	pid_t pid;
	int st;

	if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ))
		return -1;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*
 * With systemd, start blksnap-monitor@NAME.service (options from
 * monitor.conf, like every monitor the unit runs). Without, start
 * `blksnapctl monitor NAME $BLKSNAP_MONITOR_OPTS` in a session of its own,
 * with the same configuration files read by sh as the unit's
 * EnvironmentFile= would, its output appended to
 * /run/blksnap/monitor-NAME.log.
 */
int cli_start_monitor(const char *name, char *err, size_t errlen)
{
	char unit[160], log[200], self[4096];
	ssize_t n;
	pid_t pid;
	int st;

	if (!access("/run/systemd/system", F_OK)) {
		char *argv[] = { "systemctl", "start", unit, NULL };

		snprintf(unit, sizeof(unit), "blksnap-monitor@%s.service", name);
		if (run_wait(argv)) {
			snprintf(err, errlen, "cannot start the store monitor: 'systemctl start %s' failed", unit);
			return -1;
		}
		return 0;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0) {
		snprintf(err, errlen, "cannot start the store monitor: /proc/self/exe: %s", strerror(errno));
		return -1;
	}
	self[n] = '\0';
	mkdir(BLKSNAP_RUNDIR, 0755);
	snprintf(log, sizeof(log), BLKSNAP_RUNDIR "/monitor-%s.log", name);
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "cannot start the store monitor: fork: %s", strerror(errno));
		return -1;
	}
	if (!pid) {
		/* A new session, and a grandchild: no terminal, no parent to wait. */
		static const char script[] =
			"set -a; for f in \"$3\"/blksnap/monitor.conf \"$3\"/blksnap/monitor-\"$2\".conf; do "
			"[ -r \"$f\" ] && . \"$f\"; done; set +a; "
			"exec \"$1\" monitor \"$2\" $BLKSNAP_MONITOR_OPTS";
		pid_t grandchild;
		int fd;

		if (setsid() < 0)
			_exit(1);
		grandchild = fork();
		if (grandchild)
			_exit(grandchild < 0 ? 1 : 0);
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0)
			dup2(fd, STDIN_FILENO);
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		signal(SIGHUP, SIG_IGN);
		execl("/bin/sh", "sh", "-c", script, "sh", self, name, BLKSNAP_SYSCONFDIR, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			break;
	return 0;
}

static int cmd_cbt_read(struct blksnap_ctx *ctx, const struct cli_args *a)
{
	bool to_stdout = !strcmp(a->out, "-");
	int fd, r;

	fd = to_stdout ? STDOUT_FILENO :
	     open(a->out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "blksnapctl: cannot create %s: %s\n", a->out, strerror(errno));
		return -errno;
	}
	r = blksnap_cbt_read(ctx, a->device, fd, NULL, NULL);
	if (!to_stdout) {
		if (!r && fsync(fd) && errno != EINVAL) {
			fprintf(stderr, "blksnapctl: cannot write %s: %s\n", a->out, strerror(errno));
			r = -EIO;
			close(fd);
			unlink(a->out);
			return r;
		}
		close(fd);
		/* Never leave half a map behind to be mistaken for a whole one. */
		if (r)
			unlink(a->out);
	}
	if (r)
		fprintf(stderr, "blksnapctl: %s\n", blksnap_errmsg(ctx));
	return r;
}

/*
 * cbt changes: through the library's iterator (the map in pieces, as the
 * kernel's cbt_changes lists it), printed only once the whole map was read
 * as one, so that a take or a reset meanwhile leaves no half list behind.
 */
static int cmd_cbt_changes(struct blksnap_ctx *ctx, const struct cli_args *a, int *pr)
{
	struct blksnap_extent *ext = NULL, *v;
	struct blksnap_cbt_iter *it;
	size_t n = 0, cap = 0, got;
	int r;

	r = blksnap_cbt_iter_new(ctx, a->device, a->generation, a->since, &it);
	if (r)
		return r;
	do {
		if (cap - n < 1024) {
			v = realloc(ext, (cap + 4096) * sizeof(*ext));
			if (!v) {
				fprintf(stderr, "blksnapctl: out of memory\n");
				r = -ENOMEM;
				break;
			}
			ext = v;
			cap += 4096;
		}
		r = blksnap_cbt_iter_next(ctx, it, ext + n, cap - n, &got);
		n += got;
	} while (!r && got);
	if (!r)
		*pr = cli_print_changes(stdout, a->device, blksnap_cbt_iter_status(it), a->since,
					ext, n, a->json);
	blksnap_cbt_iter_free(it);
	free(ext);
	return r;
}

/* Merge progress: a bar on a terminal, a line every 10 % otherwise. */
struct merge_view {
	bool tty;
	bool open_line;		/* the bar is on the current line */
	int last_pct;
};

static void merge_show(uint64_t done, uint64_t total, void *data)
{
	static const char bar[] = "##############################";
	struct merge_view *v = data;
	int pct = total ? (int)(done * 100 / total) : 100;
	int fill = pct * 30 / 100;

	if (v->tty) {
		printf("\rmerging [%.*s%*s] %3d%%  %" PRIu64 "/%" PRIu64 " chunks",
		       fill, bar, 30 - fill, "", pct, done, total);
		v->open_line = done < total;
		if (!v->open_line)
			putchar('\n');
	} else if (v->last_pct < 0 || pct / 10 != v->last_pct / 10 || done == total) {
		if (pct != v->last_pct)
			printf("merge: %d%% (%" PRIu64 "/%" PRIu64 " chunks)\n", pct, done, total);
	}
	v->last_pct = pct;
	fflush(stdout);
}

static int cmd_merge(struct blksnap_ctx *ctx, const struct cli_args *a)
{
	struct merge_view v = { .tty = isatty(STDOUT_FILENO), .last_pct = -1 };
	int r;

	r = blksnap_merge(ctx, a->snapshot, a->wait, merge_show, &v);
	if (v.open_line)
		putchar('\n');
	fflush(stdout);
	return r;
}

/*
 * The end of a command's output: @pr is what printing it returned (0 or
 * -errno). Flushes standard output; on a failure says so, with the first
 * error's cause (EIO when the stream kept none), and returns it.
 */
static int output_done(int pr)
{
	int e = pr < 0 ? -pr : 0;

	errno = 0;
	if (!e && (fflush(stdout) || ferror(stdout)))
		e = errno ? errno : EIO;
	if (!e)
		return 0;
	fprintf(stderr, "blksnapctl: cannot write the output: %s\n", strerror(e));
	return -e;
}

/*
 * attach --from-blksnaptab: the origin of each entry acted on, one a line;
 * one line on stderr for each entry that failed, then the count.
 */
static int cmd_attach_tab(struct blksnap_ctx *ctx, const struct cli_args *a)
{
	struct blksnap_tab_result *res;
	size_t n;
	int r;

	r = blksnap_attach_tab(ctx, a->tab, a->device, &res, &n);
	for (size_t i = 0; i < n; i++) {
		if (res[i].origin)
			printf("%s\n", res[i].origin);
		else
			fprintf(stderr, "blksnapctl: %s\n", res[i].error);
	}
	blksnap_tab_results_free(res, n);
	if (r)
		fprintf(stderr, "blksnapctl: %s\n", blksnap_errmsg(ctx));
	else
		r = output_done(0);
	return r;
}

/* Run the command; failures print their own line. */
static int cli_run(struct blksnap_ctx *ctx, const struct cli_args *a)
{
	struct blksnap_snapshot *snap = NULL;
	struct blksnap_origin *o = NULL;
	struct blksnap_list *list = NULL;
	int r = 0, pr = 0;

	switch (a->cmd) {
	case CLI_NONE:
		break;
	case CLI_VERSION:
		printf("blksnapctl %s\n", blksnap_version());
		break;
	case CLI_ATTACH:
		if (a->from_tab)
			return cmd_attach_tab(ctx, a);
	{
		struct blksnap_attach_options ao = {
			.size = sizeof(ao),
			.flags = a->force ? BLKSNAP_ATTACH_FORCE : 0,
			.tracking_block_bytes = a->tracking_block,
			.cbt_metadata = a->cbt_metadata,
			.cbt_metadata_id = a->cbt_metadata_id,
		};

		r = blksnap_attach_opts(ctx, a->device, &ao, &o);
		if (!r)
			printf("%s\n", o->path);
		break;
	}
	case CLI_DETACH:
		r = blksnap_detach(ctx, a->device);
		break;
	case CLI_CREATE: {
		struct blksnap_create_params p = {
			.size = sizeof(p),
			.flags = a->force ? BLKSNAP_STORE_FORCE : 0,
			.name = a->name,
			.devices = a->devices,
			.n_devices = a->n_devices,
			.stores = (const char *const *)a->stores,
			.n_stores = a->n_stores,
			.store_size = a->store_size,
			.chunk_size = a->chunk,
		};

		r = blksnap_create(ctx, &p, &snap);
		if (!r && a->monitor) {
			char err[300];

			/* The snapshot without its monitor is not what was asked for. */
			if (cli_start_monitor(snap->name, err, sizeof(err))) {
				fprintf(stderr, "blksnapctl: %s; the snapshot is destroyed again\n", err);
				if (blksnap_destroy(ctx, snap->name))
					fprintf(stderr, "blksnapctl: %s\n", blksnap_errmsg(ctx));
				blksnap_snapshot_free(snap);
				return -EIO;
			}
		}
		if (!r)
			pr = cli_print_created(stdout, snap, a->json);
		break;
	}
	case CLI_DESTROY:
		r = blksnap_destroy(ctx, a->snapshot);
		break;
	case CLI_LIST:
		r = blksnap_list(ctx, &list);
		if (!r)
			pr = cli_print_list(stdout, list, a->json);
		break;
	case CLI_STATUS:
		/* A snapshot name first; anything else must be a device. */
		r = blksnap_snapshot_get(ctx, a->device, &snap);
		if (!r) {
			pr = cli_print_snapshot(stdout, snap, a->json);
			break;
		}
		if (r != -ENOENT)
			break;
		r = blksnap_origin_get(ctx, a->device, &o);
		if (!r) {
			pr = cli_print_origin(stdout, o, a->json);
		} else if (r == -ENOENT) {
			fprintf(stderr, "blksnapctl: no snapshot and no device named %s (see 'blksnapctl list')\n",
				a->device);
			return r;
		}
		break;
	case CLI_STORE_ADD:
		r = blksnap_store_add(ctx, a->snapshot, a->store, a->size,
				      a->force ? BLKSNAP_STORE_FORCE : 0);
		break;
	case CLI_MONITOR:
		r = cmd_monitor(ctx, a);
		break;
	case CLI_CBT_INFO:
		r = blksnap_origin_get(ctx, a->device, &o);
		if (!r)
			pr = cli_print_cbt_info(stdout, o, a->json);
		break;
	case CLI_CBT_CHANGES:
		r = cmd_cbt_changes(ctx, a, &pr);
		break;
	case CLI_CBT_READ:
		return cmd_cbt_read(ctx, a);
	case CLI_CBT_MARK_DIRTY:
		r = blksnap_cbt_mark_dirty(ctx, a->device, a->extents, a->n_extents);
		break;
	case CLI_CBT_TAKE: {
		unsigned int number;

		r = blksnap_cbt_take(ctx, a->device, &number);
		if (!r)
			printf("%u\n", number);
		break;
	}
	case CLI_CBT_RESET:
		r = blksnap_cbt_reset(ctx, a->device);
		break;
	case CLI_CBT_CLOSE:
		if (a->all)
			r = blksnap_cbt_close_all(ctx, NULL);
		else
			r = blksnap_cbt_close(ctx, a->device);
		break;
	case CLI_MERGE:
		r = cmd_merge(ctx, a);
		break;
	}
	if (r) {
		fprintf(stderr, "blksnapctl: %s\n", blksnap_errmsg(ctx));
	} else {
		r = output_done(pr);
	}
	blksnap_snapshot_free(snap);
	blksnap_origin_free(o);
	blksnap_list_free(list);
	return r;
}

int main(int argc, char **argv)
{
	struct blksnap_ctx *ctx;
	struct cli_args a;
	char err[512];
	int r;

	struct cli_logger lg = { 0 };

	if (blksnap_ctx_new(&ctx)) {
		fprintf(stderr, "blksnapctl: out of memory\n");
		return 1;
	}
	/* Parse errors of sizes go through the context, not the log. */
	r = cli_parse(ctx, argc, argv, &a, err, sizeof(err));
	if (r) {
		fprintf(stderr, "blksnapctl: %s\n", err);
		blksnap_ctx_free(ctx);
		return EXIT_USAGE;
	}
	lg.progress = a.cmd == CLI_MONITOR || a.cmd == CLI_MERGE;
	lg.verbosity = a.verbosity;
	blksnap_set_log(ctx, cli_log, &lg);
	blksnap_set_log_level(ctx, a.verbosity >= 2 ? BLKSNAP_LOG_DEBUG :
			      a.verbosity || lg.progress ? BLKSNAP_LOG_INFO : BLKSNAP_LOG_WARN);
	if (a.no_udev_wait)
		blksnap_set_udev_sync(false);
	if (a.help) {
		fputs(cli_usage(a.cmd), stdout);
		r = 0;
	} else {
		r = cli_run(ctx, &a);
		if (r && a.verbosity >= 2)
			fprintf(stderr, "blksnapctl: debug: the call returned %d (%s, %s)\n", r,
				errno_name(-r), strerror(-r));
		r = r ? 1 : 0;
	}
	cli_args_free(&a);
	blksnap_ctx_free(ctx);
	return r;
}
