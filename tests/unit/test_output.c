// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests: blksnapctl's printing of origins (text and JSON), as far as
 * persistent change tracking shows in it. Compiled in directly, as args.c
 * is in test_cli.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../userspace/blksnapctl/json.c"
#include "../../userspace/blksnapctl/output.c"

#define UUID "0123abcd-4567-89ef-abcd-0123456789ab"

static char *print(const struct blksnap_origin *o, bool json, bool cbt_info)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	if (cbt_info)
		assert_int_equal(cli_print_cbt_info(f, o, json), 0);
	else
		assert_int_equal(cli_print_origin(f, o, json), 0);
	fclose(f);
	return buf;
}

static void origin_init(struct blksnap_origin *o)
{
	memset(o, 0, sizeof(*o));
	o->name = "vg-data";
	o->path = "/dev/mapper/vg-data";
	o->real_name = "vg-data-bsreal";
	o->real_path = "/dev/mapper/vg-data-bsreal";
	o->size_sectors = 2048;
	o->status_valid = true;
	o->status.size = sizeof(o->status);
	o->status.tracking_block_sectors = 128;
	o->status.tracking_blocks = 16;
	memcpy(o->status.generation_uuid, UUID, 37);
	o->status.change_number = 1;
}

static void has(const char *text, const char *want)
{
	if (!strstr(text, want))
		fail_msg("'%s' lacks '%s'", text, want);
}

static void lacks(const char *text, const char *want)
{
	if (strstr(text, want))
		fail_msg("'%s' has '%s'", text, want);
}

static void test_in_memory(void **state)
{
	struct blksnap_origin o;
	char *s;

	(void)state;
	origin_init(&o);
	s = print(&o, true, false);
	has(s, "\"persistent\": null");
	free(s);
	s = print(&o, true, true);
	has(s, "\"persistent\": null");
	free(s);
	s = print(&o, false, true);
	has(s, "persistent:      no\n");
	lacks(s, "new generation");
	free(s);
}

static void test_persistent(void **state)
{
	struct blksnap_origin o;
	char *s;

	(void)state;
	origin_init(&o);
	o.pcbt.persistence = BLKSNAP_PERSIST_OK;
	s = print(&o, true, false);
	has(s, "\"persistent\": {");
	has(s, "\"state\": \"ok\"");
	has(s, "\"new_generation_reason\": null");
	free(s);
	s = print(&o, false, false);
	has(s, "persistent:      yes (ok)\n");
	lacks(s, "new generation");
	free(s);

	strcpy(o.pcbt.new_generation_reason, "replaced");
	o.pcbt.persistence = BLKSNAP_PERSIST_FAILED;
	s = print(&o, true, true);
	has(s, "\"state\": \"failed\"");
	has(s, "\"new_generation_reason\": \"replaced\"");
	free(s);
	s = print(&o, false, true);
	has(s, "persistent:      yes (failed)\n");
	has(s, "new generation:  replaced");
	free(s);

	/* An unreadable status says nothing about persistence. */
	o.status_valid = false;
	s = print(&o, true, false);
	has(s, "\"persistent\": null");
	free(s);
}

/* cbt info names the origin "name", as status and list do. */
static void test_cbt_info_name(void **state)
{
	struct blksnap_origin o;
	char *s;

	(void)state;
	origin_init(&o);
	s = print(&o, true, true);
	has(s, "\"name\": \"vg-data\"");
	has(s, "\"origin\": \"vg-data\"");	/* kept for 0.2.0's readers */
	free(s);
}

static char *print_snapshot(const struct blksnap_snapshot *snap)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(cli_print_snapshot(f, snap, true), 0);
	fclose(f);
	return buf;
}

/* A store's unlinked file: the path alone, and a flag. */
static void test_backing_file(void **state)
{
	struct blksnap_store_part parts[3] = {
		{ .device = "/dev/loop0", .backing_file = "/var/tmp/#1234 (deleted)", .sectors = 8 },
		{ .device = "/dev/loop1", .backing_file = "/srv/store.img", .sectors = 8 },
		{ .device = "/dev/sdc", .sectors = 8 },
	};
	struct blksnap_snapshot snap = {
		.name = "nightly", .store_name = "nightly-store",
		.store_path = "/dev/mapper/nightly-store", .store_sectors = 24,
		.n_parts = 3, .parts = parts,
	};
	char *s;

	(void)state;
	s = print_snapshot(&snap);
	has(s, "\"backing_file\": \"/var/tmp/#1234\",");
	has(s, "\"backing_file\": \"/srv/store.img\",");
	lacks(s, "(deleted)");
	has(s, "\"backing_file_deleted\": true");
	has(s, "\"backing_file_deleted\": false");
	has(s, "\"backing_file\": null,");
	has(s, "\"backing_file_deleted\": null");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_memory),
		cmocka_unit_test(test_persistent),
		cmocka_unit_test(test_cbt_info_name),
		cmocka_unit_test(test_backing_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
