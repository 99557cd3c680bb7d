// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * blksnapctl: command-line parsing. Pure: no device is touched here.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum {
	OPT_HELP = 'h',
	OPT_JSON = 256,
	OPT_TRACKING,
	OPT_STORE,
	OPT_STORE_SIZE,
	OPT_CHUNK,
	OPT_NAME,
	OPT_SIZE,
	OPT_GROW_BY,
	OPT_LIMIT,
	OPT_STORE_DIR,
	OPT_SINCE,
	OPT_OUT,
	OPT_WAIT,
	OPT_FROM_TAB,
	OPT_TAB,
	OPT_FORCE,
	OPT_GENERATION,
	OPT_MONITOR,
	OPT_NO_UDEV_WAIT,
	OPT_VERBOSE,
	OPT_DEBUG,
	OPT_CBT_METADATA,
	OPT_CBT_METADATA_ID,
	OPT_ALL,
};

#define M(opt) (1u << ((opt) - OPT_JSON))

static const struct option cli_all_options[] = {
	{ "json", no_argument, NULL, OPT_JSON },
	{ "tracking-block", required_argument, NULL, OPT_TRACKING },
	{ "store", required_argument, NULL, OPT_STORE },
	{ "store-size", required_argument, NULL, OPT_STORE_SIZE },
	{ "chunk", required_argument, NULL, OPT_CHUNK },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "grow-by", required_argument, NULL, OPT_GROW_BY },
	{ "limit", required_argument, NULL, OPT_LIMIT },
	{ "store-dir", required_argument, NULL, OPT_STORE_DIR },
	{ "since", required_argument, NULL, OPT_SINCE },
	{ "out", required_argument, NULL, OPT_OUT },
	{ "wait", no_argument, NULL, OPT_WAIT },
	{ "from-blksnaptab", no_argument, NULL, OPT_FROM_TAB },
	{ "tab", required_argument, NULL, OPT_TAB },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "generation", required_argument, NULL, OPT_GENERATION },
	{ "monitor", no_argument, NULL, OPT_MONITOR },
	{ "no-udev-wait", no_argument, NULL, OPT_NO_UDEV_WAIT },
	{ "verbose", no_argument, NULL, OPT_VERBOSE },
	{ "debug", no_argument, NULL, OPT_DEBUG },
	{ "cbt-metadata", required_argument, NULL, OPT_CBT_METADATA },
	{ "cbt-metadata-id", required_argument, NULL, OPT_CBT_METADATA_ID },
	{ "all", no_argument, NULL, OPT_ALL },
};

/* Options every command takes. */
#define M_GLOBAL (M(OPT_VERBOSE) | M(OPT_DEBUG))

#define N_OPTIONS (sizeof(cli_all_options) / sizeof(cli_all_options[0]))
#define MANY ((size_t)-1)

struct cli_command {
	enum cli_cmd cmd;
	const char *name;
	unsigned int options;		/* M() of the allowed options */
	size_t min_args, max_args;	/* positional arguments */
	const char *args;		/* their names, for "missing <device>" */
	const char *usage;
};

static const struct cli_command cli_commands[] = {
	{ CLI_ATTACH, "attach", M(OPT_TRACKING) | M(OPT_FROM_TAB) | M(OPT_TAB) | M(OPT_NO_UDEV_WAIT) |
	  M(OPT_CBT_METADATA) | M(OPT_CBT_METADATA_ID) | M(OPT_FORCE),
	  0, 1, "<device>",
	  "Usage: blksnapctl attach <device> [--tracking-block SIZE]\n"
	  "                         [--cbt-metadata DEV|DIR [--cbt-metadata-id ID] [--force]]\n"
	  "       blksnapctl attach --from-blksnaptab [--tab FILE] [--no-udev-wait] [<device>]\n"
	  "Put a blksnap-origin in front of <device> (change tracking, snapshots).\n"
	  "A dm device keeps its name; any other disk gets /dev/mapper/blksnap-<name>.\n"
	  "Prints the origin's path.\n"
	  "  --tracking-block SIZE  CBT block size (power of two >= 4K; default: 64K or more,\n"
	  "                         or the one the CBT metadata was formatted with)\n"
	  "  --cbt-metadata DEV     keep the CBT maps on DEV (persistent change tracking:\n"
	  "                         they survive reboots and crashes). DEV must not be or\n"
	  "                         overlap <device>, nor be in use; it is formatted when it\n"
	  "                         holds no CBT metadata of <device>. A directory DIR (not\n"
	  "                         on <device>) keeps them in DIR/blksnap-cbt-<ID>.meta,\n"
	  "                         through a loop device that goes with the origin\n"
	  "  --cbt-metadata-id ID   the identity of <device> kept in the metadata (default:\n"
	  "                         its dm UUID, else its /dev/disk/by-id name)\n"
	  "  --force                format DEV even if it carries a signature or the CBT\n"
	  "                         metadata of another device (that is lost)\n"
	  "  --from-blksnaptab      attach the devices listed in the blksnaptab, with their\n"
	  "                         options; with <device>, only the entries naming it (by\n"
	  "                         path, dm name, UUID=, LABEL=, PARTUUID= or PARTLABEL=),\n"
	  "                         unless it was detached by hand since boot. Attached\n"
	  "                         devices stay as they are.\n"
	  "  --tab FILE             the blksnaptab to read (default /etc/blksnap/blksnaptab)\n"
	  "  --no-udev-wait         do not wait for udev (for the udev rule, which runs it)\n" },
	{ CLI_DETACH, "detach", 0, 1, 1, "<device>",
	  "Usage: blksnapctl detach <device>\n"
	  "Remove the blksnap-origin again (refused while a snapshot image exists).\n"
	  "The blksnaptab's udev rule leaves the device detached until it is attached\n"
	  "by hand or the system restarts. A device with CBT metadata is marked\n"
	  "detached in it first: the device is written untracked from now on, so the\n"
	  "next attach starts a new CBT generation (the next backup is full).\n" },
	{ CLI_CREATE, "create",
	  M(OPT_STORE) | M(OPT_STORE_SIZE) | M(OPT_CHUNK) | M(OPT_NAME) | M(OPT_JSON) |
	  M(OPT_FORCE) | M(OPT_MONITOR), 1, MANY, "<device>",
	  "Usage: blksnapctl create <device>... --store <dev|dir>[,<dev|dir>...]\n"
	  "                         [--store-size SIZE] [--chunk SIZE] [--name NAME] [--force]\n"
	  "                         [--monitor] [--json]\n"
	  "Take one coherent snapshot of all devices; print its name, then one line per\n"
	  "device: the image path, the generation UUID and the snapshot's CBT number\n"
	  "(\"<path> generation_uuid=<uuid> snapshot_number=<n>\"; record both for\n"
	  "'cbt changes --since' at the next backup).\n"
	  "  --store DEV|DIR   block devices, or directories for unlinked store files\n"
	  "  --store-size SIZE size of the store file in each directory\n"
	  "  --chunk SIZE      copy-on-write unit, power of two 4K..64M (default: 4K, or\n"
	  "                    per device the smallest that makes at most 2^28 chunks:\n"
	  "                    4K up to 1 TiB, 256K for 64 TiB)\n"
	  "  --name NAME       snapshot name (default snap-YYYYMMDD-HHMMSS)\n"
	  "  --force           use store devices that carry a file system, partition\n"
	  "                    table, RAID or LVM signature (they are overwritten)\n"
	  "  --monitor         start the store monitor of the snapshot (blksnap-monitor@NAME\n"
	  "                    with systemd; options from /etc/blksnap/monitor.conf)\n"
	  "  --json            print the snapshot as JSON, as 'status --json' does\n" },
	{ CLI_DESTROY, "destroy", 0, 1, 1, "<snapshot>",
	  "Usage: blksnapctl destroy <snapshot>\n"
	  "Remove the snapshot's images and its store.\n" },
	{ CLI_LIST, "list", M(OPT_JSON), 0, 0, "",
	  "Usage: blksnapctl list [--json]\n"
	  "List attached devices and snapshots.\n" },
	{ CLI_STATUS, "status", M(OPT_JSON), 1, 1, "<snapshot|device>",
	  "Usage: blksnapctl status <snapshot|device> [--json]\n"
	  "Show a snapshot (store use, images, CBT numbers) or an attached device.\n" },
	{ CLI_STORE_ADD, "store add", M(OPT_SIZE) | M(OPT_FORCE), 2, 2, "<snapshot> <dev|dir>",
	  "Usage: blksnapctl store add <snapshot> <dev|dir> [--size SIZE] [--force]\n"
	  "Grow the snapshot's store by a device or a new file in a directory.\n"
	  "  --size SIZE  size of the store file (required for a directory)\n"
	  "  --force      use a device that carries a signature (it is overwritten)\n" },
	{ CLI_MONITOR, "monitor", M(OPT_GROW_BY) | M(OPT_LIMIT) | M(OPT_STORE_DIR), 1, 1, "<snapshot>",
	  "Usage: blksnapctl monitor <snapshot> [--grow-by SIZE] [--limit SIZE] [--store-dir DIR]\n"
	  "Wait for the snapshot's events and grow its store on low water; exit 0 when\n"
	  "the snapshot is destroyed or on SIGINT/SIGTERM, 1 when an image overflowed\n"
	  "or failed.\n"
	  "  --grow-by SIZE    growth per low-water event (default: the initial store size)\n"
	  "  --limit SIZE      never grow the store beyond SIZE\n"
	  "  --store-dir DIR   where to put new store files (default: the last directory used)\n" },
	{ CLI_CBT_INFO, "cbt info", M(OPT_JSON), 1, 1, "<device>",
	  "Usage: blksnapctl cbt info <device> [--json]\n"
	  "Show the change tracker: block size, blocks, generation, the last snapshot's\n"
	  "number and the change number (the number the next snapshot gets).\n" },
	{ CLI_CBT_CHANGES, "cbt changes", M(OPT_SINCE) | M(OPT_GENERATION) | M(OPT_JSON), 1, 1, "<device>",
	  "Usage: blksnapctl cbt changes <device> --since N [--generation UUID] [--json]\n"
	  "Print the extents changed after snapshot number N (0..255) up to the last\n"
	  "snapshot, as <start>+<sectors>. N at or past the last snapshot is refused.\n"
	  "  --since N          the snapshot number of the previous backup (0: all changes)\n"
	  "  --generation UUID  the generation of that backup: refused (make a full\n"
	  "                     backup) when the device's generation is another one\n" },
	{ CLI_CBT_READ, "cbt read", M(OPT_OUT), 1, 1, "<device>",
	  "Usage: blksnapctl cbt read <device> --out FILE\n"
	  "Write the snapshot CBT map (one byte per tracking block) to FILE ('-': stdout).\n" },
	{ CLI_CBT_MARK_DIRTY, "cbt mark-dirty", 0, 2, MANY, "<device> <start>+<sectors>",
	  "Usage: blksnapctl cbt mark-dirty <device> <start>+<sectors>...\n"
	  "Mark sectors as changed, e.g. after a failed backup of them.\n" },
	{ CLI_CBT_TAKE, "cbt take", 0, 1, 1, "<device>",
	  "Usage: blksnapctl cbt take <device>\n"
	  "Take a CBT snapshot without an image (for snapshots taken by other means);\n"
	  "print its snapshot number. Refused while a snapshot image exists.\n" },
	{ CLI_CBT_RESET, "cbt reset", 0, 1, 1, "<device>",
	  "Usage: blksnapctl cbt reset <device>\n"
	  "Start a new CBT generation (new UUID, change number 1): the next backup is full.\n" },
	{ CLI_CBT_CLOSE, "cbt close", M(OPT_ALL), 0, 1, "<device>",
	  "Usage: blksnapctl cbt close <device>\n"
	  "       blksnapctl cbt close --all\n"
	  "Write the CBT maps of a device with CBT metadata and mark them clean, as a\n"
	  "shutdown must before device-mapper is torn down (blksnap-cbt-close.service);\n"
	  "without it the next attach starts a new CBT generation. Tracking goes on.\n"
	  "  --all   every attached device with CBT metadata (none is fine)\n" },
	{ CLI_MERGE, "merge", M(OPT_WAIT), 1, 1, "<snapshot>",
	  "Usage: blksnapctl merge <snapshot> [--wait]\n"
	  "Roll the snapshot's origins back to its images (image writes included).\n"
	  "The origins and images must not be open. From the start each origin reads\n"
	  "as its image; the copy runs in the background ('blksnapctl status' shows\n"
	  "it) and every merged block is marked changed in CBT.\n"
	  "\n"
	  "  --wait   show progress until the merge ends, then remove the images and\n"
	  "           the store (without it: start and return; run merge again once\n"
	  "           it is complete to clean up)\n" },
	{ CLI_VERSION, "version", 0, 0, 0, "",
	  "Usage: blksnapctl version\n" },
};

#define N_COMMANDS (sizeof(cli_commands) / sizeof(cli_commands[0]))

static const char cli_main_usage[] =
	"Usage: blksnapctl [-v|--verbose] [--debug] <command> [options]\n"
	"\n"
	"  attach <device> [--tracking-block SIZE] [--cbt-metadata DEV|DIR\n"
	"         [--cbt-metadata-id ID] [--force]]\n"
	"  attach --from-blksnaptab [--tab FILE] [--no-udev-wait] [<device>]\n"
	"  detach <device>\n"
	"  create <device>... --store <dev|dir>[,...] [--store-size SIZE] [--chunk SIZE]\n"
	"         [--name NAME] [--force] [--monitor] [--json]\n"
	"  destroy <snapshot>\n"
	"  list [--json]\n"
	"  status <snapshot|device> [--json]\n"
	"  store add <snapshot> <dev|dir> [--size SIZE] [--force]\n"
	"  monitor <snapshot> [--grow-by SIZE] [--limit SIZE] [--store-dir DIR]\n"
	"  cbt info <device> [--json]\n"
	"  cbt changes <device> --since N [--generation UUID] [--json]\n"
	"  cbt read <device> --out FILE\n"
	"  cbt mark-dirty <device> <start>+<sectors>...\n"
	"  cbt take <device>\n"
	"  cbt reset <device>\n"
	"  cbt close <device> | --all\n"
	"  merge <snapshot> [--wait]\n"
	"  version\n"
	"\n"
	"Every command takes --help, -v (--verbose: say what it does) and --debug\n"
	"(also every device-mapper call). Sizes are bytes with an optional binary\n"
	"suffix K, M, G, T, P or E (4K = 4KiB = 4KB = 4096; 1.5G is fine).\n"
	"Exit status: 0 success, 1 failure, 2 usage error (a bad option value too).\n"
	"See blksnapctl(8).\n";

static const struct cli_command *cli_find(enum cli_cmd cmd)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (cli_commands[i].cmd == cmd)
			return &cli_commands[i];
	return NULL;
}

const char *cli_usage(enum cli_cmd cmd)
{
	const struct cli_command *c = cli_find(cmd);

	return c ? c->usage : cli_main_usage;
}

const char *cli_cmd_name(enum cli_cmd cmd)
{
	const struct cli_command *c = cli_find(cmd);

	return c ? c->name : "";
}

void cli_args_free(struct cli_args *a)
{
	free(a->devices);
	for (size_t i = 0; i < a->n_stores; i++)
		free(a->stores[i]);
	free(a->stores);
	free(a->extents);
	memset(a, 0, sizeof(*a));
}

static int usage_err(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int usage_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return EXIT_USAGE;
}

/* "--store a,b" (repeatable): the comma-separated parts, none empty. */
static int cli_add_stores(struct cli_args *a, const char *val, const char *cmd,
			  char *err, size_t errlen)
{
	const char *p = val;

	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char **v;

		if (!len)
			return usage_err(err, errlen, "%s: empty entry in --store '%s'", cmd, val);
		v = realloc(a->stores, (a->n_stores + 1) * sizeof(*v));
		if (!v)
			return usage_err(err, errlen, "out of memory");
		a->stores = v;
		v[a->n_stores] = strndup(p, len);
		if (!v[a->n_stores])
			return usage_err(err, errlen, "out of memory");
		a->n_stores++;
		if (!comma)
			return 0;
		p = comma + 1;
	}
}

#define SIZE_ANY (-1)

/*
 * A size option: its syntax and, for @use (a blksnap_size_use, or
 * SIZE_ANY), its value are checked here, so that every bad value is a
 * usage error (exit 2) with the option named.
 */
static int cli_size(struct blksnap_ctx *ctx, const char *cmd, const char *opt,
		    const char *val, int use, uint64_t *out, char *err, size_t errlen)
{
	if (blksnap_parse_size(ctx, val, out))
		return usage_err(err, errlen, "%s: --%s: %s", cmd, opt, blksnap_errmsg(ctx));
	if (!*out)
		return usage_err(err, errlen, "%s: --%s must not be 0", cmd, opt);
	if (use != SIZE_ANY && blksnap_check_size(ctx, (enum blksnap_size_use)use, *out))
		return usage_err(err, errlen, "%s: --%s %s: %s", cmd, opt, val, blksnap_errmsg(ctx));
	return 0;
}

/* What the library takes as a metadata_id (bs_check_metadata_id). */
static bool cli_metadata_id_ok(const char *id)
{
	size_t len = strlen(id);

	if (!len || len > 127)
		return false;
	for (const char *p = id; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f || *p == '\\')
			return false;
	return true;
}

static int cli_since(const char *cmd, const char *val, unsigned int *since,
		     char *err, size_t errlen)
{
	char *end;
	unsigned long v;

	errno = 0;
	if (*val < '0' || *val > '9')
		goto bad;
	v = strtoul(val, &end, 10);
	if (errno || *end || v > 255)
		goto bad;
	*since = v;
	return 0;
bad:
	return usage_err(err, errlen, "%s: --since '%s': expected a snapshot number 0..255", cmd, val);
}

/*
 * Which command: one word, or two for "store" and "cbt". Returns the words
 * used, 0 for "store --help" (*cmd NULL), -1 on a usage error.
 */
static int cli_which(int argc, char **argv, const struct cli_command **cmd,
		     char *err, size_t errlen)
{
	const char *w1 = argv[1], *w2 = argc > 2 ? argv[2] : NULL;
	char both[64];

	if (!strcmp(w1, "store") || !strcmp(w1, "cbt")) {
		if (!w2 || w2[0] == '-') {
			if (w2 && (!strcmp(w2, "--help") || !strcmp(w2, "-h"))) {
				*cmd = NULL;
				return 0;
			}
			usage_err(err, errlen, "'%s' needs a subcommand: %s", w1,
					 !strcmp(w1, "store") ? "add" :
					 "info, changes, read, mark-dirty, take, reset or close");
			return -1;
		}
		snprintf(both, sizeof(both), "%s %s", w1, w2);
		for (size_t i = 0; i < N_COMMANDS; i++)
			if (!strcmp(cli_commands[i].name, both)) {
				*cmd = &cli_commands[i];
				return 2;
			}
		usage_err(err, errlen, "unknown command '%.20s %.20s' (see 'blksnapctl --help')",
			  w1, w2);
		return -1;
	}
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (!strcmp(cli_commands[i].name, w1)) {
			*cmd = &cli_commands[i];
			return 1;
		}
	usage_err(err, errlen, "unknown command '%.40s' (see 'blksnapctl --help')", w1);
	return -1;
}

int cli_parse(struct blksnap_ctx *ctx, int argc, char **argv,
	      struct cli_args *a, char *err, size_t errlen)
{
	struct option opts[N_OPTIONS + 2];
	const struct cli_command *c = NULL;
	size_t nopts = 0, npos;
	char **sub;
	int nsub, words, o, r, verbosity = 0;

	memset(a, 0, sizeof(*a));
	err[0] = '\0';
	/* -v, --verbose and --debug may come before the command too. */
	while (argc >= 2 && (!strcmp(argv[1], "-v") || !strcmp(argv[1], "--verbose") ||
			     !strcmp(argv[1], "--debug"))) {
		verbosity = !strcmp(argv[1], "--debug") ? 2 : verbosity > 1 ? 2 : 1;
		argv[1] = argv[0];
		argv++;
		argc--;
	}
	if (argc < 2)
		return usage_err(err, errlen, "no command given (see 'blksnapctl --help')");
	a->verbosity = verbosity;
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		a->help = true;
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		a->cmd = CLI_VERSION;
		return 0;
	}
	if (argv[1][0] == '-')
		return usage_err(err, errlen, "unknown option '%.40s' (see 'blksnapctl --help')", argv[1]);
	words = cli_which(argc, argv, &c, err, errlen);
	if (words < 0)
		return EXIT_USAGE;
	if (!c) {		/* "blksnapctl cbt --help" */
		a->help = true;
		return 0;
	}
	a->cmd = c->cmd;
	a->verbosity = verbosity;

	for (size_t i = 0; i < N_OPTIONS; i++)
		if ((c->options | M_GLOBAL) & M(cli_all_options[i].val))
			opts[nopts++] = cli_all_options[i];
	opts[nopts++] = (struct option){ "help", no_argument, NULL, OPT_HELP };
	opts[nopts] = (struct option){ NULL, 0, NULL, 0 };

	/* getopt sees "<command> args...", the command words as argv[0]. */
	sub = argv + words;
	nsub = argc - words;
	optind = 0;		/* full reset: cli_parse may run more than once */
	opterr = 0;
	while ((o = getopt_long(nsub, sub, ":hv", opts, NULL)) != -1) {
		r = 0;
		switch (o) {
		case OPT_HELP:
			a->help = true;
			break;
		case OPT_JSON:
			a->json = true;
			break;
		case OPT_WAIT:
			a->wait = true;
			break;
		case OPT_FROM_TAB:
			a->from_tab = true;
			break;
		case OPT_TAB:
			a->tab = optarg;
			break;
		case OPT_TRACKING:
			r = cli_size(ctx, c->name, "tracking-block", optarg,
				     BLKSNAP_SIZE_TRACKING_BLOCK, &a->tracking_block, err, errlen);
			break;
		case OPT_STORE:
			r = cli_add_stores(a, optarg, c->name, err, errlen);
			break;
		case OPT_STORE_SIZE:
			r = cli_size(ctx, c->name, "store-size", optarg, BLKSNAP_SIZE_STORE,
				     &a->store_size, err, errlen);
			break;
		case OPT_CHUNK:
			r = cli_size(ctx, c->name, "chunk", optarg, BLKSNAP_SIZE_CHUNK, &a->chunk,
				     err, errlen);
			break;
		case OPT_SIZE:
			r = cli_size(ctx, c->name, "size", optarg, BLKSNAP_SIZE_STORE, &a->size,
				     err, errlen);
			break;
		case OPT_GROW_BY:
			r = cli_size(ctx, c->name, "grow-by", optarg, BLKSNAP_SIZE_GROW, &a->grow_by,
				     err, errlen);
			break;
		case OPT_LIMIT:
			r = cli_size(ctx, c->name, "limit", optarg, SIZE_ANY, &a->limit, err, errlen);
			break;
		case OPT_NAME:
			a->name = optarg;
			break;
		case OPT_FORCE:
			a->force = true;
			break;
		case OPT_GENERATION:
			a->generation = optarg;
			break;
		case OPT_MONITOR:
			a->monitor = true;
			break;
		case OPT_CBT_METADATA:
			a->cbt_metadata = optarg;
			break;
		case OPT_CBT_METADATA_ID:
			a->cbt_metadata_id = optarg;
			break;
		case OPT_ALL:
			a->all = true;
			break;
		case OPT_NO_UDEV_WAIT:
			a->no_udev_wait = true;
			break;
		case OPT_VERBOSE:
		case 'v':
			if (a->verbosity < 1)
				a->verbosity = 1;
			break;
		case OPT_DEBUG:
			a->verbosity = 2;
			break;
		case OPT_STORE_DIR:
			a->store_dir = optarg;
			break;
		case OPT_OUT:
			a->out = optarg;
			break;
		case OPT_SINCE:
			r = cli_since(c->name, optarg, &a->since, err, errlen);
			a->since_set = true;
			break;
		case ':':
			r = usage_err(err, errlen, "%s: option '%s' needs a value", c->name,
				      sub[optind - 1]);
			break;
		default:
			if (optopt && optopt != '?')
				r = usage_err(err, errlen, "%s: unknown option '-%c' (see 'blksnapctl %s --help')",
					      c->name, optopt, c->name);
			else
				r = usage_err(err, errlen, "%s: unknown option '%.40s' (see 'blksnapctl %s --help')",
					      c->name, sub[optind - 1], c->name);
			break;
		}
		if (r)
			goto fail;
	}
	if (a->help)
		return 0;

	npos = nsub - optind;
	if (npos < c->min_args) {
		/* Name what is missing: the argument names from the npos-th on. */
		const char *missing = c->args;

		for (size_t k = 0; k < npos && strchr(missing, ' '); k++)
			missing = strchr(missing, ' ') + 1;
		r = usage_err(err, errlen, "%s: missing %s (see 'blksnapctl %s --help')",
			      c->name, missing, c->name);
		goto fail;
	}
	if (npos > c->max_args) {
		r = usage_err(err, errlen, "%s: too many arguments (see 'blksnapctl %s --help')",
			      c->name, c->name);
		goto fail;
	}
	sub += optind;

	switch (c->cmd) {
	case CLI_ATTACH:
		/* attach <device>, or attach --from-blksnaptab [<device>] */
		a->device = npos ? sub[0] : NULL;
		if (!a->from_tab && !npos) {
			r = usage_err(err, errlen, "attach: missing <device> (see 'blksnapctl attach --help')");
			goto fail;
		}
		if (a->no_udev_wait && !a->from_tab) {
			r = usage_err(err, errlen, "attach: --no-udev-wait goes with --from-blksnaptab");
			goto fail;
		}
		if (a->from_tab && a->tracking_block) {
			r = usage_err(err, errlen, "attach: --tracking-block does not go with --from-blksnaptab (the table has the options)");
			goto fail;
		}
		if (a->tab && !a->from_tab) {
			r = usage_err(err, errlen, "attach: --tab FILE goes with --from-blksnaptab");
			goto fail;
		}
		if (a->from_tab && (a->cbt_metadata || a->cbt_metadata_id || a->force)) {
			r = usage_err(err, errlen, "attach: --cbt-metadata, --cbt-metadata-id and --force do not go with --from-blksnaptab (the table has the options)");
			goto fail;
		}
		if (!a->cbt_metadata && (a->cbt_metadata_id || a->force)) {
			r = usage_err(err, errlen, "attach: %s goes with --cbt-metadata DEV|DIR",
				      a->cbt_metadata_id ? "--cbt-metadata-id" : "--force");
			goto fail;
		}
		if (a->cbt_metadata && !*a->cbt_metadata) {
			r = usage_err(err, errlen, "attach: --cbt-metadata needs a device or a directory");
			goto fail;
		}
		if (a->cbt_metadata_id && !cli_metadata_id_ok(a->cbt_metadata_id)) {
			r = usage_err(err, errlen, "attach: --cbt-metadata-id '%.40s': 1 to 127 printable characters, no blanks or backslashes",
				      a->cbt_metadata_id);
			goto fail;
		}
		break;
	case CLI_CBT_CLOSE:
		a->device = npos ? sub[0] : NULL;
		if (!npos == !a->all) {
			r = usage_err(err, errlen, "cbt close: give a <device> or --all (see 'blksnapctl cbt close --help')");
			goto fail;
		}
		break;
	case CLI_DETACH:
	case CLI_STATUS:
	case CLI_CBT_INFO:
	case CLI_CBT_READ:
	case CLI_CBT_TAKE:
	case CLI_CBT_RESET:
		a->device = sub[0];
		break;
	case CLI_CBT_CHANGES:
		a->device = sub[0];
		if (!a->since_set) {
			r = usage_err(err, errlen, "cbt changes: --since N is required (the snapshot number of the previous backup; 0 lists every change)");
			goto fail;
		}
		break;
	case CLI_DESTROY:
	case CLI_MONITOR:
	case CLI_MERGE:
		a->snapshot = sub[0];
		break;
	case CLI_STORE_ADD:
		a->snapshot = sub[0];
		a->store = sub[1];
		break;
	case CLI_CREATE:
		if (!a->n_stores) {
			r = usage_err(err, errlen, "create: --store is required (a device or a directory for the copied data)");
			goto fail;
		}
		a->devices = calloc(npos, sizeof(*a->devices));
		if (!a->devices) {
			r = usage_err(err, errlen, "out of memory");
			goto fail;
		}
		for (size_t i = 0; i < npos; i++)
			a->devices[i] = sub[i];
		a->n_devices = npos;
		break;
	case CLI_CBT_MARK_DIRTY:
		a->device = sub[0];
		a->extents = calloc(npos - 1, sizeof(*a->extents));
		if (!a->extents) {
			r = usage_err(err, errlen, "out of memory");
			goto fail;
		}
		for (size_t i = 1; i < npos; i++) {
			if (blksnap_parse_extent(ctx, sub[i], &a->extents[i - 1])) {
				r = usage_err(err, errlen, "cbt mark-dirty: %s", blksnap_errmsg(ctx));
				goto fail;
			}
			a->n_extents++;
		}
		break;
	default:
		break;
	}
	if (c->cmd == CLI_CBT_READ && !a->out) {
		r = usage_err(err, errlen, "cbt read: --out FILE is required");
		goto fail;
	}
	return 0;
fail:
	{
		enum cli_cmd cmd = a->cmd;

		cli_args_free(a);
		a->cmd = cmd;
	}
	return r;
}
