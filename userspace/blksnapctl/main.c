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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static void cli_log(enum blksnap_log_level level, const char *msg, void *data)
{
	char stamp[32];
	struct tm tm;
	time_t now;

	(void)data;
	if (level == BLKSNAP_LOG_DEBUG)
		return;
	if (level == BLKSNAP_LOG_INFO) {
		now = time(NULL);
		localtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
		printf("%s %s\n", stamp, msg);
		fflush(stdout);
		return;
	}
	fprintf(stderr, "blksnapctl: %s%s\n", level == BLKSNAP_LOG_WARN ? "warning: " : "", msg);
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
	r = blksnap_cbt_read(ctx, a->device, fd, NULL);
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
	else if (fflush(stdout) || ferror(stdout)) {
		fprintf(stderr, "blksnapctl: cannot write the output: %s\n", strerror(EIO));
		r = -EIO;
	}
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
		r = blksnap_attach(ctx, a->device, a->tracking_block, &o);
		if (!r)
			printf("%s\n", o->path);
		break;
	case CLI_DETACH:
		r = blksnap_detach(ctx, a->device);
		break;
	case CLI_CREATE: {
		struct blksnap_create_params p = {
			.name = a->name,
			.devices = a->devices,
			.n_devices = a->n_devices,
			.stores = (const char *const *)a->stores,
			.n_stores = a->n_stores,
			.store_size = a->store_size,
			.chunk_size = a->chunk,
		};

		r = blksnap_create(ctx, &p, &snap);
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
		r = blksnap_store_add(ctx, a->snapshot, a->store, a->size);
		break;
	case CLI_MONITOR: {
		struct blksnap_monitor_params p = {
			.grow_by = a->grow_by,
			.limit = a->limit,
			.store_dir = a->store_dir,
		};

		r = blksnap_monitor(ctx, a->snapshot, &p);
		break;
	}
	case CLI_CBT_INFO:
		r = blksnap_origin_get(ctx, a->device, &o);
		if (!r)
			pr = cli_print_cbt_info(stdout, o, a->json);
		break;
	case CLI_CBT_CHANGES: {
		struct blksnap_origin_status st;
		struct blksnap_extent *ext;
		size_t n;

		r = blksnap_cbt_changes(ctx, a->device, a->since, &ext, &n, &st);
		if (!r) {
			pr = cli_print_changes(stdout, a->device, &st, a->since, ext, n, a->json);
			free(ext);
		}
		break;
	}
	case CLI_CBT_READ:
		return cmd_cbt_read(ctx, a);
	case CLI_CBT_MARK_DIRTY:
		r = blksnap_cbt_mark_dirty(ctx, a->device, a->extents, a->n_extents);
		break;
	case CLI_MERGE:
		r = cmd_merge(ctx, a);
		break;
	}
	if (r)
		fprintf(stderr, "blksnapctl: %s\n", blksnap_errmsg(ctx));
	else if (pr || fflush(stdout) || ferror(stdout)) {
		fprintf(stderr, "blksnapctl: cannot write the output: %s\n", strerror(EIO));
		r = -EIO;
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

	if (blksnap_ctx_new(&ctx)) {
		fprintf(stderr, "blksnapctl: out of memory\n");
		return 1;
	}
	blksnap_set_log(ctx, cli_log, NULL);
	r = cli_parse(ctx, argc, argv, &a, err, sizeof(err));
	if (r) {
		fprintf(stderr, "blksnapctl: %s\n", err);
		blksnap_ctx_free(ctx);
		return EXIT_USAGE;
	}
	if (a.help) {
		fputs(cli_usage(a.cmd), stdout);
		r = 0;
	} else {
		r = cli_run(ctx, &a) ? 1 : 0;
	}
	cli_args_free(&a);
	blksnap_ctx_free(ctx);
	return r;
}
