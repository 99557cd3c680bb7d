// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests: blksnapctl's argument parsing, including every usage error
 * (exit 2). The parser lives in the CLI, not the library, so it is compiled
 * in here directly.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../userspace/blksnapctl/args.c"

static struct blksnap_ctx *ctx;
static struct cli_args args;
static char err[512];

#define MAXARGS 32

/* Parse "blksnapctl <words...>" (NULL-terminated). */
static int parse(const char *first, ...)
{
	static char store[MAXARGS][128];
	static char *argv[MAXARGS + 1];
	const char *w;
	va_list ap;
	int argc = 0;

	cli_args_free(&args);
	strcpy(store[argc], "blksnapctl");
	argv[argc] = store[argc];
	argc++;
	va_start(ap, first);
	for (w = first; w; w = va_arg(ap, const char *)) {
		assert_true(argc < MAXARGS);
		snprintf(store[argc], sizeof(store[argc]), "%s", w);
		argv[argc] = store[argc];
		argc++;
	}
	va_end(ap);
	argv[argc] = NULL;
	return cli_parse(ctx, argc, argv, &args, err, sizeof(err));
}

static void usage_error(const char *want)
{
	assert_non_null(strstr(err, want));
	assert_null(strchr(err, '\n'));		/* one line */
}

static int setup(void **state)
{
	(void)state;
	return blksnap_ctx_new(&ctx);
}

static int teardown(void **state)
{
	(void)state;
	cli_args_free(&args);
	blksnap_ctx_free(ctx);
	return 0;
}

static void test_top_level(void **state)
{
	(void)state;
	assert_int_equal(parse(NULL), EXIT_USAGE);
	usage_error("no command");
	assert_int_equal(parse("--help", NULL), 0);
	assert_true(args.help);
	assert_int_equal(args.cmd, CLI_NONE);
	assert_non_null(strstr(cli_usage(CLI_NONE), "cbt mark-dirty"));
	assert_int_equal(parse("-h", NULL), 0);
	assert_true(args.help);
	assert_int_equal(parse("version", NULL), 0);
	assert_int_equal(args.cmd, CLI_VERSION);
	assert_int_equal(parse("--version", NULL), 0);
	assert_int_equal(args.cmd, CLI_VERSION);
	assert_int_equal(parse("version", "extra", NULL), EXIT_USAGE);
	usage_error("too many arguments");
	assert_int_equal(parse("frobnicate", NULL), EXIT_USAGE);
	usage_error("unknown command 'frobnicate'");
	assert_int_equal(parse("--frob", NULL), EXIT_USAGE);
	usage_error("unknown option '--frob'");
}

static void test_attach_detach(void **state)
{
	(void)state;
	assert_int_equal(parse("attach", "/dev/vdb", NULL), 0);
	assert_int_equal(args.cmd, CLI_ATTACH);
	assert_string_equal(args.device, "/dev/vdb");
	assert_int_equal(args.tracking_block, 0);
	assert_int_equal(parse("attach", "--tracking-block", "64K", "/dev/vdb", NULL), 0);
	assert_int_equal(args.tracking_block, 65536);
	assert_string_equal(args.device, "/dev/vdb");
	assert_int_equal(parse("attach", "/dev/vdb", "--tracking-block=1M", NULL), 0);
	assert_int_equal(args.tracking_block, 1 << 20);

	assert_int_equal(parse("attach", NULL), EXIT_USAGE);
	usage_error("attach: missing <device>");
	assert_int_equal(parse("attach", "a", "b", NULL), EXIT_USAGE);
	usage_error("too many arguments");
	assert_int_equal(parse("attach", "/dev/vdb", "--tracking-block", NULL), EXIT_USAGE);
	usage_error("'--tracking-block' needs a value");
	assert_int_equal(parse("attach", "/dev/vdb", "--tracking-block", "3Q", NULL), EXIT_USAGE);
	usage_error("unknown suffix 'Q'");
	assert_int_equal(parse("attach", "/dev/vdb", "--tracking-block", "0", NULL), EXIT_USAGE);
	usage_error("must not be 0");
	assert_int_equal(parse("attach", "/dev/vdb", "--json", NULL), EXIT_USAGE);
	usage_error("attach: unknown option '--json'");
	assert_int_equal(parse("attach", "/dev/vdb", "-x", NULL), EXIT_USAGE);
	usage_error("unknown option '-x'");

	assert_int_equal(parse("detach", "/dev/vdb", NULL), 0);
	assert_int_equal(args.cmd, CLI_DETACH);
	assert_string_equal(args.device, "/dev/vdb");
	assert_int_equal(parse("detach", NULL), EXIT_USAGE);
	usage_error("detach: missing <device>");

	/* A value that parses but cannot be right is a usage error too (exit 2). */
	assert_int_equal(parse("attach", "/dev/vdb", "--tracking-block", "2K", NULL), EXIT_USAGE);
	usage_error("attach: --tracking-block 2K: tracking block 2 KiB: must be a power of two");
	assert_int_equal(parse("attach", "/dev/vdb", "--tracking-block", "12K", NULL), EXIT_USAGE);
	assert_int_equal(parse("attach", "--from-blksnaptab", "--no-udev-wait", "/dev/vdb", NULL), 0);
	assert_true(args.no_udev_wait);
	assert_int_equal(parse("attach", "--no-udev-wait", "/dev/vdb", NULL), EXIT_USAGE);
	usage_error("--no-udev-wait goes with --from-blksnaptab");
}

/* -v, --verbose and --debug: before the command or among its options. */
static void test_verbosity(void **state)
{
	(void)state;
	assert_int_equal(parse("list", NULL), 0);
	assert_int_equal(args.verbosity, 0);
	assert_int_equal(parse("-v", "list", NULL), 0);
	assert_int_equal(args.cmd, CLI_LIST);
	assert_int_equal(args.verbosity, 1);
	assert_int_equal(parse("--verbose", "cbt", "info", "/dev/vdb", NULL), 0);
	assert_int_equal(args.cmd, CLI_CBT_INFO);
	assert_string_equal(args.device, "/dev/vdb");
	assert_int_equal(args.verbosity, 1);
	assert_int_equal(parse("--debug", "destroy", "s1", NULL), 0);
	assert_int_equal(args.verbosity, 2);
	assert_string_equal(args.snapshot, "s1");
	assert_int_equal(parse("destroy", "s1", "-v", NULL), 0);
	assert_int_equal(args.verbosity, 1);
	assert_int_equal(parse("store", "add", "s1", "/dev/sdc", "--debug", NULL), 0);
	assert_int_equal(args.verbosity, 2);
	assert_int_equal(parse("-v", "--debug", NULL), EXIT_USAGE);
	usage_error("no command");
	assert_int_equal(parse("-v", "--help", NULL), 0);
	assert_true(args.help);
}

static void test_attach_from_tab(void **state)
{
	(void)state;
	assert_int_equal(parse("attach", "--from-blksnaptab", NULL), 0);
	assert_int_equal(args.cmd, CLI_ATTACH);
	assert_true(args.from_tab);
	assert_null(args.device);
	assert_null(args.tab);
	assert_int_equal(parse("attach", "--from-blksnaptab", "/dev/vdb", NULL), 0);
	assert_string_equal(args.device, "/dev/vdb");
	assert_int_equal(parse("attach", "/dev/vdb", "--from-blksnaptab", "--tab", "/tmp/t", NULL), 0);
	assert_true(args.from_tab);
	assert_string_equal(args.device, "/dev/vdb");
	assert_string_equal(args.tab, "/tmp/t");
	assert_int_equal(parse("attach", "/dev/vdb", NULL), 0);
	assert_false(args.from_tab);

	assert_int_equal(parse("attach", "--from-blksnaptab", "a", "b", NULL), EXIT_USAGE);
	usage_error("too many arguments");
	assert_int_equal(parse("attach", "--tab", "/tmp/t", "/dev/vdb", NULL), EXIT_USAGE);
	usage_error("--tab FILE goes with --from-blksnaptab");
	assert_int_equal(parse("attach", "--from-blksnaptab", "--tracking-block", "64K", NULL), EXIT_USAGE);
	usage_error("--tracking-block does not go with --from-blksnaptab");
	assert_int_equal(parse("attach", "--from-blksnaptab", "--tab", NULL), EXIT_USAGE);
	usage_error("'--tab' needs a value");
	assert_int_equal(parse("detach", "--from-blksnaptab", "/dev/vdb", NULL), EXIT_USAGE);
	usage_error("detach: unknown option '--from-blksnaptab'");
}

static void test_create(void **state)
{
	(void)state;
	assert_int_equal(parse("create", "/dev/vdb", "/dev/vdc", "--store", "/var/tmp,/dev/sdc",
			       "--store", "/srv", "--store-size", "1G", "--chunk", "64K",
			       "--name", "nightly", "--json", NULL), 0);
	assert_int_equal(args.cmd, CLI_CREATE);
	assert_int_equal(args.n_devices, 2);
	assert_string_equal(args.devices[0], "/dev/vdb");
	assert_string_equal(args.devices[1], "/dev/vdc");
	assert_int_equal(args.n_stores, 3);
	assert_string_equal(args.stores[0], "/var/tmp");
	assert_string_equal(args.stores[1], "/dev/sdc");
	assert_string_equal(args.stores[2], "/srv");
	assert_true(args.store_size == 1ULL << 30);
	assert_int_equal(args.chunk, 65536);
	assert_string_equal(args.name, "nightly");
	assert_true(args.json);

	/* Options before the devices work as well. */
	assert_int_equal(parse("create", "--store", "/dev/sdc", "/dev/vdb", NULL), 0);
	assert_int_equal(args.n_devices, 1);
	assert_null(args.name);
	assert_false(args.json);

	assert_int_equal(parse("create", "/dev/vdb", NULL), EXIT_USAGE);
	usage_error("--store is required");
	assert_int_equal(parse("create", "--store", "/tmp", NULL), EXIT_USAGE);
	usage_error("create: missing <device>");
	assert_int_equal(parse("create", "/dev/vdb", "--store", "/tmp,,/x", NULL), EXIT_USAGE);
	usage_error("empty entry in --store");
	assert_int_equal(parse("create", "/dev/vdb", "--store", ",", NULL), EXIT_USAGE);
	assert_int_equal(parse("create", "/dev/vdb", "--store", "/tmp,", NULL), EXIT_USAGE);
	assert_int_equal(parse("create", "/dev/vdb", "--store", "/tmp", "--chunk", "4.5K", NULL),
			 EXIT_USAGE);
	usage_error("--chunk");
	/* Every bad size is exit 2, whether its syntax or its value is wrong. */
	assert_int_equal(parse("create", "/dev/vdb", "--store", "/tmp", "--chunk", "3K", NULL),
			 EXIT_USAGE);
	usage_error("create: --chunk 3K: chunk size 3 KiB: must be a power of two from 4 KiB to 64 MiB");
	assert_int_equal(parse("create", "/dev/vdb", "--store", "/tmp", "--chunk", "1.5G", NULL),
			 EXIT_USAGE);
	usage_error("create: --chunk 1.5G: chunk size 1.5 GiB");
	assert_int_equal(parse("create", "/dev/vdb", "--store", "/tmp", "--chunk", "0.5M", NULL), 0);
	assert_int_equal(args.chunk, 512 * 1024);
	assert_int_equal(parse("create", "/dev/vdb", "--store", "/tmp", "--store-size", "1000", NULL),
			 EXIT_USAGE);
	usage_error("--store-size 1000: store size 1000 B: must be a multiple of 512 bytes");
	assert_int_equal(parse("create", "/dev/vdb", "--store", "/dev/sdc", "--force", "--monitor", NULL), 0);
	assert_true(args.force);
	assert_true(args.monitor);
	assert_int_equal(parse("create", "/dev/vdb", "--store", "/dev/sdc", NULL), 0);
	assert_false(args.force);
	assert_false(args.monitor);
	assert_int_equal(parse("create", "/dev/vdb", "--store", "/tmp", "--store-size",
			       "99999999999999999999", NULL), EXIT_USAGE);
	usage_error("too large");
	assert_int_equal(parse("create", "/dev/vdb", "--store", "/tmp", "--size", "1G", NULL),
			 EXIT_USAGE);
	usage_error("unknown option '--size'");
}

static void test_snapshot_commands(void **state)
{
	(void)state;
	assert_int_equal(parse("destroy", "s1", NULL), 0);
	assert_int_equal(args.cmd, CLI_DESTROY);
	assert_string_equal(args.snapshot, "s1");
	assert_int_equal(parse("destroy", NULL), EXIT_USAGE);
	assert_int_equal(parse("destroy", "--", "-odd", NULL), 0);
	assert_string_equal(args.snapshot, "-odd");

	assert_int_equal(parse("list", NULL), 0);
	assert_int_equal(args.cmd, CLI_LIST);
	assert_int_equal(parse("list", "--json", NULL), 0);
	assert_true(args.json);
	assert_int_equal(parse("list", "x", NULL), EXIT_USAGE);

	assert_int_equal(parse("status", "s1", "--json", NULL), 0);
	assert_int_equal(args.cmd, CLI_STATUS);
	assert_string_equal(args.device, "s1");
	assert_int_equal(parse("status", NULL), EXIT_USAGE);

	assert_int_equal(parse("store", "add", "s1", "/var/tmp", "--size", "2G", NULL), 0);
	assert_int_equal(args.cmd, CLI_STORE_ADD);
	assert_string_equal(args.snapshot, "s1");
	assert_string_equal(args.store, "/var/tmp");
	assert_true(args.size == 2ULL << 30);
	assert_int_equal(parse("store", "add", "s1", NULL), EXIT_USAGE);
	usage_error("store add: missing <dev|dir>");
	assert_int_equal(parse("store", "add", NULL), EXIT_USAGE);
	usage_error("store add: missing <snapshot> <dev|dir>");
	assert_int_equal(parse("store", "add", "s1", "/dev/sdc", "--force", NULL), 0);
	assert_true(args.force);
	assert_int_equal(parse("store", "add", "s1", "/var/tmp", "--size", "3000", NULL), EXIT_USAGE);
	usage_error("--size 3000: store size");
	assert_int_equal(parse("store", NULL), EXIT_USAGE);
	usage_error("'store' needs a subcommand: add");
	assert_int_equal(parse("store", "remove", "s1", NULL), EXIT_USAGE);
	usage_error("unknown command 'store remove'");
	assert_int_equal(parse("store", "--help", NULL), 0);
	assert_true(args.help);

	assert_int_equal(parse("monitor", "s1", "--grow-by", "1G", "--limit", "10G",
			       "--store-dir", "/srv", NULL), 0);
	assert_int_equal(args.cmd, CLI_MONITOR);
	assert_true(args.grow_by == 1ULL << 30);
	assert_true(args.limit == 10ULL << 30);
	assert_string_equal(args.store_dir, "/srv");
	assert_int_equal(parse("monitor", "s1", "--limit", "1X", NULL), EXIT_USAGE);
	assert_int_equal(parse("monitor", "s1", "--grow-by", "6000", NULL), EXIT_USAGE);
	usage_error("monitor: --grow-by 6000: growth 5.8 KiB: must be a multiple of 4 KiB");

	assert_int_equal(parse("merge", "s1", "--wait", NULL), 0);
	assert_int_equal(args.cmd, CLI_MERGE);
	assert_true(args.wait);
	assert_int_equal(parse("merge", NULL), EXIT_USAGE);
}

static void test_cbt(void **state)
{
	(void)state;
	assert_int_equal(parse("cbt", "info", "/dev/vdb", "--json", NULL), 0);
	assert_int_equal(args.cmd, CLI_CBT_INFO);
	assert_string_equal(args.device, "/dev/vdb");
	assert_true(args.json);

	assert_int_equal(parse("cbt", "changes", "/dev/vdb", "--since", "3", NULL), 0);
	assert_int_equal(args.cmd, CLI_CBT_CHANGES);
	assert_int_equal(args.since, 3);
	assert_int_equal(parse("cbt", "changes", "/dev/vdb", "--since", "0", NULL), 0);
	assert_int_equal(args.since, 0);
	assert_int_equal(parse("cbt", "changes", "/dev/vdb", "--since", "255", NULL), 0);
	assert_int_equal(args.since, 255);
	assert_int_equal(parse("cbt", "changes", "/dev/vdb", NULL), EXIT_USAGE);
	usage_error("--since N is required");
	assert_int_equal(parse("cbt", "changes", "/dev/vdb", "--since", "256", NULL), EXIT_USAGE);
	usage_error("0..255");
	assert_int_equal(parse("cbt", "changes", "/dev/vdb", "--since", "-1", NULL), EXIT_USAGE);
	assert_int_equal(parse("cbt", "changes", "/dev/vdb", "--since", "3x", NULL), EXIT_USAGE);
	assert_int_equal(parse("cbt", "changes", "/dev/vdb", "--since", "", NULL), EXIT_USAGE);
	assert_int_equal(parse("cbt", "changes", "/dev/vdb", "--since",
			       "99999999999999999999", NULL), EXIT_USAGE);

	assert_int_equal(parse("cbt", "read", "/dev/vdb", "--out", "map.bin", NULL), 0);
	assert_int_equal(args.cmd, CLI_CBT_READ);
	assert_string_equal(args.out, "map.bin");
	assert_int_equal(parse("cbt", "read", "/dev/vdb", NULL), EXIT_USAGE);
	usage_error("--out FILE is required");

	assert_int_equal(parse("cbt", "mark-dirty", "/dev/vdb", "0+8", "2048+16", NULL), 0);
	assert_int_equal(args.cmd, CLI_CBT_MARK_DIRTY);
	assert_int_equal(args.n_extents, 2);
	assert_int_equal(args.extents[1].start, 2048);
	assert_int_equal(args.extents[1].sectors, 16);
	assert_int_equal(parse("cbt", "mark-dirty", "/dev/vdb", NULL), EXIT_USAGE);
	usage_error("missing <start>+<sectors>");
	assert_int_equal(parse("cbt", "mark-dirty", "/dev/vdb", "0+8", "2048", NULL), EXIT_USAGE);
	usage_error("invalid extent '2048'");
	assert_int_equal(args.n_extents, 0);
	assert_null(args.extents);
	assert_int_equal(parse("cbt", "mark-dirty", "/dev/vdb", "5+0", NULL), EXIT_USAGE);

	assert_int_equal(parse("cbt", NULL), EXIT_USAGE);
	usage_error("info, changes, read, mark-dirty, take, reset or close");
	assert_int_equal(parse("cbt", "take", "/dev/vdb", NULL), 0);
	assert_int_equal(args.cmd, CLI_CBT_TAKE);
	assert_string_equal(args.device, "/dev/vdb");
	assert_int_equal(parse("cbt", "reset", "/dev/vdb", NULL), 0);
	assert_int_equal(args.cmd, CLI_CBT_RESET);
	assert_int_equal(parse("cbt", "take", NULL), EXIT_USAGE);
	usage_error("cbt take: missing <device>");
	assert_int_equal(parse("cbt", "frob", "/dev/vdb", NULL), EXIT_USAGE);
	usage_error("unknown command 'cbt frob'");

	assert_int_equal(parse("cbt", "changes", "/dev/vdb", "--since", "2", "--generation",
			       "0123abcd-4567-89ef-abcd-0123456789ab", NULL), 0);
	assert_string_equal(args.generation, "0123abcd-4567-89ef-abcd-0123456789ab");
	assert_int_equal(parse("cbt", "changes", "/dev/vdb", "--since", "2", NULL), 0);
	assert_null(args.generation);
}

/* Persistent CBT: attach --cbt-metadata, cbt close. */
static void test_pcbt(void **state)
{
	(void)state;
	assert_int_equal(parse("attach", "/dev/vdb", "--cbt-metadata", "/dev/vdc", NULL), 0);
	assert_int_equal(args.cmd, CLI_ATTACH);
	assert_string_equal(args.device, "/dev/vdb");
	assert_string_equal(args.cbt_metadata, "/dev/vdc");
	assert_null(args.cbt_metadata_id);
	assert_false(args.force);
	assert_int_equal(parse("attach", "--cbt-metadata-id", "wwn-0x5", "--force", "/dev/vdb",
			       "--cbt-metadata", "UUID=abc", "--tracking-block", "64K", NULL), 0);
	assert_string_equal(args.cbt_metadata, "UUID=abc");
	assert_string_equal(args.cbt_metadata_id, "wwn-0x5");
	assert_true(args.force);
	assert_int_equal(args.tracking_block, 65536);
	assert_int_equal(parse("attach", "/dev/vdb", "--cbt-metadata-id", "x", NULL), EXIT_USAGE);
	usage_error("--cbt-metadata-id goes with --cbt-metadata DEV");
	assert_int_equal(parse("attach", "/dev/vdb", "--force", NULL), EXIT_USAGE);
	usage_error("--force goes with --cbt-metadata DEV");
	assert_int_equal(parse("attach", "/dev/vdb", "--cbt-metadata", "", NULL), EXIT_USAGE);
	usage_error("needs a device");
	assert_int_equal(parse("attach", "/dev/vdb", "--cbt-metadata", "/dev/vdc",
			       "--cbt-metadata-id", "two words", NULL), EXIT_USAGE);
	usage_error("no blanks");
	assert_int_equal(parse("attach", "/dev/vdb", "--cbt-metadata", NULL), EXIT_USAGE);
	usage_error("needs a value");
	assert_int_equal(parse("attach", "--from-blksnaptab", "--cbt-metadata", "/dev/vdc", NULL),
			 EXIT_USAGE);
	usage_error("do not go with --from-blksnaptab");
	/* --force is attach's now, but not detach's. */
	assert_int_equal(parse("detach", "/dev/vdb", "--force", NULL), EXIT_USAGE);

	assert_int_equal(parse("cbt", "close", "/dev/vdb", NULL), 0);
	assert_int_equal(args.cmd, CLI_CBT_CLOSE);
	assert_string_equal(args.device, "/dev/vdb");
	assert_false(args.all);
	assert_int_equal(parse("cbt", "close", "--all", NULL), 0);
	assert_true(args.all);
	assert_null(args.device);
	assert_int_equal(parse("cbt", "close", NULL), EXIT_USAGE);
	usage_error("give a <device> or --all");
	assert_int_equal(parse("cbt", "close", "--all", "/dev/vdb", NULL), EXIT_USAGE);
	usage_error("give a <device> or --all");
	assert_int_equal(parse("cbt", "close", "a", "b", NULL), EXIT_USAGE);
	usage_error("too many arguments");
	assert_int_equal(parse("cbt", "info", "/dev/vdb", "--all", NULL), EXIT_USAGE);
	assert_int_equal(parse("cbt", NULL), EXIT_USAGE);
	usage_error("reset or close");
	assert_int_equal(parse("cbt", "close", "--help", NULL), 0);
	assert_true(args.help);
	assert_non_null(strstr(cli_usage(CLI_CBT_CLOSE), "--all"));
	assert_non_null(strstr(cli_usage(CLI_NONE), "cbt close"));
	assert_non_null(strstr(cli_usage(CLI_ATTACH), "--cbt-metadata-id"));
	assert_non_null(strstr(cli_usage(CLI_DETACH), "new CBT generation"));
}

static void test_help(void **state)
{
	static const char *const cmds[][2] = {
		{ "attach", NULL }, { "detach", NULL }, { "create", NULL }, { "destroy", NULL },
		{ "list", NULL }, { "status", NULL }, { "store", "add" }, { "monitor", NULL },
		{ "cbt", "info" }, { "cbt", "changes" }, { "cbt", "read" },
		{ "cbt", "mark-dirty" }, { "cbt", "take" }, { "cbt", "reset" },
		{ "merge", NULL }, { "version", NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		int r = cmds[i][1] ? parse(cmds[i][0], cmds[i][1], "--help", NULL) :
				     parse(cmds[i][0], "--help", NULL);

		assert_int_equal(r, 0);
		assert_true(args.help);
		assert_non_null(strstr(cli_usage(args.cmd), "Usage: blksnapctl "));
		assert_non_null(strstr(cli_usage(args.cmd), cli_cmd_name(args.cmd)));
	}
	/* --help wins over missing arguments and required options. */
	assert_int_equal(parse("create", "-h", NULL), 0);
	assert_true(args.help);
	assert_int_equal(args.cmd, CLI_CREATE);
}

static void test_reparse(void **state)
{
	(void)state;
	/* getopt state must not leak from one parse into the next. */
	assert_int_equal(parse("attach", "/dev/vdb", "--tracking-block", "8K", NULL), 0);
	assert_int_equal(parse("attach", "/dev/vdc", NULL), 0);
	assert_string_equal(args.device, "/dev/vdc");
	assert_int_equal(args.tracking_block, 0);
	assert_int_equal(parse("list", "--bogus", NULL), EXIT_USAGE);
	assert_int_equal(parse("list", NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_top_level),
		cmocka_unit_test(test_attach_detach),
		cmocka_unit_test(test_attach_from_tab),
		cmocka_unit_test(test_verbosity),
		cmocka_unit_test(test_create),
		cmocka_unit_test(test_snapshot_commands),
		cmocka_unit_test(test_cbt),
		cmocka_unit_test(test_pcbt),
		cmocka_unit_test(test_help),
		cmocka_unit_test(test_reparse),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
