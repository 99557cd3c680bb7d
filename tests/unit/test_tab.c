// SPDX-License-Identifier: GPL-2.0-or-later
/* Unit tests: the blksnaptab parser (comments, blank lines, tags, options, errors). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"

static struct blksnap_ctx ctx;

static struct blksnap_tab *tab_ok(const char *text)
{
	struct blksnap_tab *tab = NULL;

	ctx.errmsg[0] = '\0';
	assert_int_equal(blksnap_tab_parse(&ctx, text, "t", &tab), 0);
	assert_non_null(tab);
	assert_string_equal(ctx.errmsg, "");
	return tab;
}

/* The parse fails with -EINVAL and a message that contains @want. */
static void tab_bad(const char *text, const char *want)
{
	struct blksnap_tab *tab = (struct blksnap_tab *)&ctx;	/* not NULL */

	ctx.errmsg[0] = '\0';
	assert_int_equal(blksnap_tab_parse(&ctx, text, "t", &tab), -EINVAL);
	assert_null(tab);
	if (!strstr(ctx.errmsg, want))
		fail_msg("message '%s' lacks '%s'", ctx.errmsg, want);
}

static void test_tab_empty(void **state)
{
	struct blksnap_tab *tab;

	(void)state;
	tab = tab_ok("");
	assert_int_equal(tab->n, 0);
	blksnap_tab_free(tab);
	tab = tab_ok("\n\n   \n\t\n# only comments\n   # indented\n#/dev/vda -\n");
	assert_int_equal(tab->n, 0);
	blksnap_tab_free(tab);
}

static void test_tab_entries(void **state)
{
	struct blksnap_tab *tab;

	(void)state;
	tab = tab_ok("# devices\n"
		     "/dev/vg0/data\n"
		     "\n"
		     "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4  tracking-block=256K\n"
		     "UUID=0a1b2c3d-4e5f-6789-abcd-ef0123456789\t-   # trailing comment\n"
		     "  LABEL=backup tracking-block=1M\r\n"
		     "vg0-logs -\n"
		     "PARTUUID=1234-01\n"
		     "PARTLABEL=data");	/* no newline at the end */
	assert_int_equal(tab->n, 7);
	assert_string_equal(tab->entries[0].device, "/dev/vg0/data");
	assert_int_equal(tab->entries[0].line, 2);
	assert_int_equal(tab->entries[0].tracking_block_bytes, 0);
	assert_string_equal(tab->entries[1].device, "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4");
	assert_int_equal(tab->entries[1].line, 4);
	assert_int_equal(tab->entries[1].tracking_block_bytes, 256 * 1024);
	assert_string_equal(tab->entries[2].device, "UUID=0a1b2c3d-4e5f-6789-abcd-ef0123456789");
	assert_int_equal(tab->entries[2].line, 5);
	assert_int_equal(tab->entries[2].tracking_block_bytes, 0);
	assert_string_equal(tab->entries[3].device, "LABEL=backup");
	assert_int_equal(tab->entries[3].line, 6);
	assert_int_equal(tab->entries[3].tracking_block_bytes, 1024 * 1024);
	assert_string_equal(tab->entries[4].device, "vg0-logs");
	assert_string_equal(tab->entries[5].device, "PARTUUID=1234-01");
	assert_string_equal(tab->entries[6].device, "PARTLABEL=data");
	assert_int_equal(tab->entries[6].line, 9);
	blksnap_tab_free(tab);
}

/* '=' after a '/' is part of a path, not a tag. */
static void test_tab_paths_with_equals(void **state)
{
	struct blksnap_tab *tab;

	(void)state;
	tab = tab_ok("/dev/disk/by-label/a=b\n");
	assert_int_equal(tab->n, 1);
	assert_string_equal(tab->entries[0].device, "/dev/disk/by-label/a=b");
	blksnap_tab_free(tab);
}

static void test_tab_bad_lines(void **state)
{
	(void)state;
	/* The line number is the first bad line's, counting comments and blanks. */
	tab_bad("# ok\n/dev/vda -\n\n/dev/vdb - extra\n", "t:4: 'extra': expected <device> [<options>]");
	tab_bad("/dev/vda tracking=64K\n", "t:1: unknown option 'tracking=64K'");
	tab_bad("\n/dev/vda tracking-block=64K,ro\n", "t:2: unknown option 'ro'");
	tab_bad("/dev/vda tracking-block=lots\n", "t:1: tracking-block");
	tab_bad("/dev/vda tracking-block=6K\n", "t:1: tracking-block=6K: a power of two of at least 4K");
	tab_bad("/dev/vda tracking-block=2K\n", "t:1: tracking-block=2K");
	tab_bad("FOO=bar\n", "t:1: 'FOO=bar': unknown tag");
	tab_bad("uuid=abc\n", "t:1: 'uuid=abc': unknown tag");
	tab_bad("\n\nUUID=\n", "t:3: UUID= has no value");
	tab_bad("LABEL= -\n", "t:1: LABEL= has no value");
	tab_bad("/dev/vda\n# x\n/dev/vda tracking-block=128K\n", "t:3: /dev/vda is listed on line 1 already");
}

/* The options of persistent CBT. */
static void test_tab_pcbt(void **state)
{
	struct blksnap_tab *tab;

	(void)state;
	tab = tab_ok("/dev/vdb cbt-metadata=/dev/vdc\n"
		     "UUID=1234 tracking-block=64K,cbt-metadata=PARTUUID=ab-cd,cbt-metadata-id=wwn-0x5\n"
		     "/dev/vdd cbt-metadata-id=my-disk,cbt-metadata=LABEL=meta\n"
		     "/dev/vde tracking-block=8K\n");
	assert_int_equal(tab->n, 4);
	assert_string_equal(tab->entries[0].pcbt.cbt_metadata, "/dev/vdc");
	assert_null(tab->entries[0].pcbt.cbt_metadata_id);
	assert_int_equal(tab->entries[1].tracking_block_bytes, 65536);
	assert_string_equal(tab->entries[1].pcbt.cbt_metadata, "PARTUUID=ab-cd");
	assert_string_equal(tab->entries[1].pcbt.cbt_metadata_id, "wwn-0x5");
	assert_string_equal(tab->entries[2].pcbt.cbt_metadata, "LABEL=meta");
	assert_string_equal(tab->entries[2].pcbt.cbt_metadata_id, "my-disk");
	assert_null(tab->entries[3].pcbt.cbt_metadata);
	assert_null(tab->entries[3].pcbt.cbt_metadata_id);
	blksnap_tab_free(tab);

	tab_bad("/dev/vdb cbt-metadata-id=x\n", "t:1: cbt-metadata-id goes with cbt-metadata");
	tab_bad("/dev/vdb cbt-metadata=/dev/vdc,cbt-metadata=/dev/vdd\n", "t:1: cbt-metadata is given twice");
	tab_bad("/dev/vdb cbt-metadata=/dev/vdc,cbt-metadata-id=a,cbt-metadata-id=b\n", "cbt-metadata-id is given twice");
	tab_bad("/dev/vdb cbt-metadata=\n", "t:1: cbt-metadata has no value");
	tab_bad("/dev/vdb cbt-metadata=/dev/vdc,cbt-metadata-id=a\\b\n", "t:1: cbt-metadata-id");
	tab_bad("/dev/vdb tracking-block=8K,tracking-block=16K\n", "tracking-block is given twice");
	tab_bad("/dev/vdb cbt-meta=/dev/vdc\n", "known: tracking-block=SIZE, cbt-metadata=DEV");
	/* A bad line after a good one with strings: nothing leaks. */
	tab_bad("/dev/vdb cbt-metadata=/dev/vdc,cbt-metadata-id=a\n/dev/vdb cbt-metadata=/dev/vdd\n",
		"t:2: /dev/vdb is listed on line 1 already");
}

static void test_tab_default_name(void **state)
{
	struct blksnap_tab *tab = NULL;

	(void)state;
	assert_int_equal(blksnap_tab_parse(&ctx, "x y z\n", NULL, &tab), -EINVAL);
	assert_null(tab);
	assert_non_null(strstr(ctx.errmsg, BLKSNAP_TAB_DEFAULT ":1:"));
	/* A NULL context is allowed: the message is lost. */
	assert_int_equal(blksnap_tab_parse(NULL, "x y z\n", NULL, &tab), -EINVAL);
	assert_int_equal(blksnap_tab_parse(NULL, "x\n", NULL, &tab), 0);
	assert_int_equal(tab->n, 1);
	blksnap_tab_free(tab);
	blksnap_tab_free(NULL);
}

static void test_tab_read(void **state)
{
	char path[] = "/tmp/test_tab.XXXXXX";
	struct blksnap_tab *tab = NULL;
	FILE *f;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs("# test\n/dev/vdc tracking-block=64K\nbad line here\n", f);
	fclose(f);
	assert_int_equal(blksnap_tab_read(&ctx, path, &tab), -EINVAL);
	assert_null(tab);
	assert_non_null(strstr(ctx.errmsg, path));
	assert_non_null(strstr(ctx.errmsg, ":3: "));
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("/dev/vdc tracking-block=64K\n", f);
	fclose(f);
	assert_int_equal(blksnap_tab_read(&ctx, path, &tab), 0);
	assert_int_equal(tab->n, 1);
	assert_int_equal(tab->entries[0].tracking_block_bytes, 65536);
	blksnap_tab_free(tab);
	unlink(path);
	assert_int_equal(blksnap_tab_read(&ctx, path, &tab), -ENOENT);
	assert_non_null(strstr(ctx.errmsg, "cannot read"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tab_empty),
		cmocka_unit_test(test_tab_entries),
		cmocka_unit_test(test_tab_paths_with_equals),
		cmocka_unit_test(test_tab_bad_lines),
		cmocka_unit_test(test_tab_pcbt),
		cmocka_unit_test(test_tab_default_name),
		cmocka_unit_test(test_tab_read),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
