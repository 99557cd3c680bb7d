// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests: origins and snapshots built from a made-up set of dm devices
 * (no kernel needed), and the helpers around them.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model.h"
#include "sys.h"

#define UUID "0123abcd-4567-89ef-abcd-0123456789ab"

static struct blksnap_ctx ctx;

static int fake_kname(uint32_t major, uint32_t minor, char *buf, size_t len)
{
	const char *n = NULL;

	if (major == 252 && minor == 16)
		n = "vdb";
	else if (major == 7 && minor == 0)
		n = "loop0";
	else if (major == 8 && minor == 32)
		n = "sdc";
	if (!n)
		return -ENOENT;
	snprintf(buf, len, "%s", n);
	return 0;
}

static int fake_backing(uint32_t major, uint32_t minor, char **file)
{
	*file = NULL;
	if (major == 7 && minor == 0)
		*file = strdup("/var/tmp/#1234 (deleted)");
	return 0;
}

static const struct bs_model_ops fake_ops = { fake_kname, fake_backing };

struct tgt {
	uint64_t len;
	const char *type, *params;
};

static void add_dev(struct bs_system *sys, const char *name, const char *uuid,
		    uint32_t major, uint32_t minor, const char *status,
		    size_t n, const struct tgt *t)
{
	struct bs_sysdev *d;
	uint64_t start = 0;

	sys->devs = realloc(sys->devs, (sys->n + 1) * sizeof(*sys->devs));
	assert_non_null(sys->devs);
	d = &sys->devs[sys->n++];
	memset(d, 0, sizeof(*d));
	d->dm.name = strdup(name);
	d->dm.uuid = strdup(uuid);
	d->dm.exists = true;
	d->dm.live_table = true;
	d->dm.major = major;
	d->dm.minor = minor;
	d->status = status ? strdup(status) : NULL;
	d->dm.targets = calloc(n ? n : 1, sizeof(*d->dm.targets));
	d->dm.n_targets = n;
	for (size_t i = 0; i < n; i++) {
		d->dm.targets[i].start = start;
		d->dm.targets[i].len = t[i].len;
		d->dm.targets[i].type = strdup(t[i].type);
		d->dm.targets[i].params = strdup(t[i].params);
		start += t[i].len;
	}
}

static int setup(void **state)
{
	struct bs_system *sys = calloc(1, sizeof(*sys));

	add_dev(sys, "other", "", 253, 9, NULL, 1,
		(struct tgt[]){ { 100, "linear", "8:0 0" } });
	/* An image seen before its origin and store: order must not matter. */
	add_dev(sys, "vg-lv-s1", "BLKSNAP-IMAGE-s1-vg-lv", 253, 4, "16/3072 8 2 valid", 1,
		(struct tgt[]){ { 4096, "blksnap-image", "253:1 253:3 8" } });
	add_dev(sys, "vg-lv", "LVM-abcdef", 253, 0, "128 32 " UUID " 2 snap", 1,
		(struct tgt[]){ { 4096, "blksnap-origin", "253:1" } });
	/* Named as 0.1.0 named real devices (now -bsreal): found by its uuid. */
	add_dev(sys, "vg-lv-real", "BLKSNAP-REAL-vg-lv", 253, 1, NULL, 2,
		(struct tgt[]){ { 2048, "linear", "8:16 2048" }, { 2048, "linear", "8:17 0" } });
	add_dev(sys, "blksnap-vdb", "BLKSNAP-ORIGIN-vdb", 253, 2, "256 8 " UUID " 1 -", 1,
		(struct tgt[]){ { 2048, "blksnap-origin", "252:16 2 tracking_block_sectors 256" } });
	add_dev(sys, "s1-store", "BLKSNAP-STORE-s1", 253, 3, NULL, 2,
		(struct tgt[]){ { 2048, "linear", "7:0 0" }, { 1024, "linear", "8:32 0" } });
	add_dev(sys, "s2-store", "BLKSNAP-STORE-s2", 253, 5, NULL, 1,
		(struct tgt[]){ { 512, "linear", "8:48 0" } });
	add_dev(sys, "manual", "", 253, 6, "garbage", 1,
		(struct tgt[]){ { 64, "blksnap-image", "8:64 8:80 16" } });
	add_dev(sys, "broken", "", 253, 7, "not a status", 1,
		(struct tgt[]){ { 64, "blksnap-origin", "8:96" } });
	*state = sys;
	return 0;
}

static int teardown(void **state)
{
	bs_system_clear(*state);
	free(*state);
	return 0;
}

static void test_lookup(void **state)
{
	struct bs_system *sys = *state;

	assert_string_equal(bs_system_by_name(sys, "s1-store")->dm.uuid, "BLKSNAP-STORE-s1");
	assert_null(bs_system_by_name(sys, "nope"));
	assert_string_equal(bs_system_by_devno(sys, 253, 1)->dm.name, "vg-lv-real");
	assert_null(bs_system_by_devno(sys, 8, 0));
	assert_string_equal(bs_sysdev_type(bs_system_by_name(sys, "vg-lv")), "blksnap-origin");
	assert_null(bs_sysdev_type(bs_system_by_name(sys, "vg-lv-real")));	/* two targets */
	assert_int_equal(bs_sysdev_sectors(bs_system_by_name(sys, "vg-lv-real")), 4096);
}

static void test_origins(void **state)
{
	struct blksnap_list *l;
	struct blksnap_origin *o;

	assert_int_equal(bs_model_build(&ctx, *state, &fake_ops, &l), 0);
	assert_int_equal(l->n_origins, 3);

	o = bs_list_origin(l, "vg-lv");
	assert_non_null(o);
	assert_true(o->layered);
	assert_string_equal(o->path, "/dev/mapper/vg-lv");
	assert_string_equal(o->real_name, "vg-lv-real");
	assert_string_equal(o->real_path, "/dev/mapper/vg-lv-real");
	assert_int_equal(o->size_sectors, 4096);
	assert_true(o->status_valid);
	assert_int_equal(o->status.state, BLKSNAP_ORIGIN_SNAP);
	assert_int_equal(o->status.change_number, 2);
	assert_int_equal(o->status.snapshot_number, 1);
	assert_string_equal(o->snapshot, "s1");
	assert_string_equal(o->image, "vg-lv-s1");

	o = bs_list_origin(l, "blksnap-vdb");
	assert_non_null(o);
	assert_false(o->layered);
	assert_string_equal(o->real_name, "vdb");
	assert_string_equal(o->real_path, "/dev/vdb");
	assert_int_equal(o->real_major, 252);
	assert_int_equal(o->real_minor, 16);
	assert_int_equal(o->status.tracking_block_sectors, 256);
	assert_int_equal(o->status.snapshot_number, 0);
	assert_null(o->snapshot);

	o = bs_list_origin(l, "broken");
	assert_non_null(o);
	assert_false(o->status_valid);
	assert_string_equal(o->real_path, "/dev/block/8:96");	/* unknown to sysfs */
	blksnap_list_free(l);
}

static void test_snapshots(void **state)
{
	struct blksnap_snapshot *s;
	struct blksnap_list *l;

	assert_int_equal(bs_model_build(&ctx, *state, &fake_ops, &l), 0);
	assert_int_equal(l->n_snapshots, 3);

	s = bs_list_snapshot(l, "s1");
	assert_non_null(s);
	assert_string_equal(s->store_name, "s1-store");
	assert_string_equal(s->store_path, "/dev/mapper/s1-store");
	assert_int_equal(s->store_sectors, 3072);
	assert_int_equal(s->used_sectors, 16);
	assert_int_equal(s->n_parts, 2);
	assert_string_equal(s->parts[0].device, "/dev/loop0");
	assert_string_equal(s->parts[0].backing_file, "/var/tmp/#1234 (deleted)");
	assert_int_equal(s->parts[0].sectors, 2048);
	assert_string_equal(s->parts[1].device, "/dev/sdc");
	assert_null(s->parts[1].backing_file);
	assert_int_equal(s->n_images, 1);
	assert_string_equal(s->images[0].name, "vg-lv-s1");
	assert_string_equal(s->images[0].path, "/dev/mapper/vg-lv-s1");
	assert_string_equal(s->images[0].origin, "vg-lv");
	assert_string_equal(s->images[0].origin_path, "/dev/mapper/vg-lv");
	assert_true(s->images[0].status_valid);
	assert_int_equal(s->images[0].status.copied_chunks, 2);
	/* The image is the origin's last snapshot: its CBT number and generation. */
	assert_int_equal(s->images[0].snapshot_number, 1);
	assert_string_equal(s->images[0].generation_uuid, UUID);

	/* A store left without images is still a snapshot, so destroy finds it. */
	s = bs_list_snapshot(l, "s2");
	assert_non_null(s);
	assert_int_equal(s->n_images, 0);

	/* An image made by hand forms its own group; nothing is invented. */
	s = bs_list_snapshot(l, "manual");
	assert_non_null(s);
	assert_null(s->store_name);
	assert_int_equal(s->n_images, 1);
	assert_null(s->images[0].origin);
	assert_false(s->images[0].status_valid);

	assert_null(bs_list_snapshot(l, "s3"));
	blksnap_list_free(l);
}

static void test_empty_system(void **state)
{
	struct bs_system sys = { 0 };
	struct blksnap_list *l;

	(void)state;
	assert_int_equal(bs_model_build(&ctx, &sys, &fake_ops, &l), 0);
	assert_int_equal(l->n_origins, 0);
	assert_int_equal(l->n_snapshots, 0);
	blksnap_list_free(l);
	blksnap_list_free(NULL);
}

static void test_backing_dir(void **state)
{
	char *d;

	(void)state;
	d = bs_backing_dir("/var/tmp/#1234 (deleted)");
	assert_string_equal(d, "/var/tmp");
	free(d);
	d = bs_backing_dir("/#1 (deleted)");
	assert_string_equal(d, "/");
	free(d);
	assert_null(bs_backing_dir("relative"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_origins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshots, setup, teardown),
		cmocka_unit_test(test_empty_system),
		cmocka_unit_test(test_backing_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
