/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blksnapctl: the command line. args.c turns argv into a struct cli_args
 * (and is unit-tested); main.c runs the command through libblksnap;
 * output.c prints results as text or JSON.
 */
#ifndef BLKSNAPCTL_CLI_H
#define BLKSNAPCTL_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "blksnap.h"

#define EXIT_USAGE 2

enum cli_cmd {
	CLI_NONE,		/* "blksnapctl --help" */
	CLI_ATTACH,
	CLI_DETACH,
	CLI_CREATE,
	CLI_DESTROY,
	CLI_LIST,
	CLI_STATUS,
	CLI_STORE_ADD,
	CLI_MONITOR,
	CLI_CBT_INFO,
	CLI_CBT_CHANGES,
	CLI_CBT_READ,
	CLI_CBT_MARK_DIRTY,
	CLI_CBT_TAKE,
	CLI_CBT_RESET,
	CLI_CBT_CLOSE,
	CLI_MERGE,
	CLI_VERSION,
};

struct cli_args {
	enum cli_cmd cmd;
	bool help;			/* print the usage of cmd and exit 0 */
	bool json;
	bool wait;
	bool from_tab;			/* attach --from-blksnaptab */
	bool no_udev_wait;		/* attach --no-udev-wait */
	bool force;			/* create, store add, attach --force */
	bool all;			/* cbt close --all */
	bool monitor;			/* create --monitor */
	int verbosity;			/* 0, 1: -v, 2: --debug */
	const char *generation;		/* cbt changes --generation */
	const char *tab;		/* attach --tab FILE */
	const char *cbt_metadata;	/* attach --cbt-metadata DEV */
	const char *cbt_metadata_id;	/* attach --cbt-metadata-id ID */
	const char *device;		/* attach, detach, status, cbt */
	const char *snapshot;		/* destroy, store add, monitor, merge */
	const char *store;		/* store add */
	const char *name;		/* create --name */
	const char *out;		/* cbt read --out */
	const char *store_dir;		/* monitor --store-dir */
	const char **devices;		/* create */
	size_t n_devices;
	char **stores;			/* create --store, split at commas */
	size_t n_stores;
	uint64_t tracking_block;	/* bytes, 0: default */
	uint64_t store_size;		/* bytes */
	uint64_t chunk;			/* bytes, 0: default */
	uint64_t size;			/* store add --size, bytes */
	uint64_t grow_by;		/* bytes */
	uint64_t limit;			/* bytes */
	unsigned int since;
	bool since_set;			/* --since was given */
	struct blksnap_extent *extents;	/* cbt mark-dirty */
	size_t n_extents;
};

/*
 * Parse the whole command line. Returns 0 or EXIT_USAGE with a one-line
 * message in @err (no "blksnapctl: " prefix, no newline). @ctx receives
 * the causes of bad sizes. @argv may be reordered (getopt).
 */
int cli_parse(struct blksnap_ctx *ctx, int argc, char **argv,
	      struct cli_args *a, char *err, size_t errlen);
void cli_args_free(struct cli_args *a);
/* The usage text of a command (CLI_NONE: of the program). */
const char *cli_usage(enum cli_cmd cmd);
/* The command's words, e.g. "cbt changes". */
const char *cli_cmd_name(enum cli_cmd cmd);

/* output.c */
int cli_print_origin(FILE *f, const struct blksnap_origin *o, bool json);
int cli_print_snapshot(FILE *f, const struct blksnap_snapshot *s, bool json);
int cli_print_created(FILE *f, const struct blksnap_snapshot *s, bool json);
int cli_print_list(FILE *f, const struct blksnap_list *l, bool json);
int cli_print_cbt_info(FILE *f, const struct blksnap_origin *o, bool json);
int cli_print_changes(FILE *f, const char *device,
		      const struct blksnap_origin_status *st, unsigned int since,
		      const struct blksnap_extent *ext, size_t n, bool json);

/* main.c: start the store monitor of a new snapshot (create --monitor). */
int cli_start_monitor(const char *name, char *err, size_t errlen);

#endif /* BLKSNAPCTL_CLI_H */
