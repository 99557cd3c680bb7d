// SPDX-License-Identifier: GPL-2.0-or-later
/* Unit tests: persistent CBT in userspace: attach options, the device's by-id name. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"
#include "pcbt.h"

static struct blksnap_ctx ctx;

static void test_file_name(void **state)
{
	char *f;

	(void)state;
	f = bs_pcbt_file_name("/var/lib/blksnap", "LVM-Abc123");
	assert_string_equal(f, "/var/lib/blksnap/blksnap-cbt-LVM-Abc123.meta");
	free(f);
	/* A '/' of the id cannot reach another directory; the directory's own stay. */
	f = bs_pcbt_file_name("/m/x", "../a/b");
	assert_string_equal(f, "/m/x/blksnap-cbt-.._a_b.meta");
	free(f);
}

static void test_attach_options(void **state)
{
	struct blksnap_attach_options o, in = { .size = sizeof(in) };
	struct {
		struct blksnap_attach_options o;
		uint64_t later[2];
	} big;

	(void)state;
	/* NULL: the defaults. */
	memset(&o, 0x5a, sizeof(o));
	assert_int_equal(bs_attach_opts_in(&ctx, NULL, &o), 0);
	assert_int_equal(o.size, sizeof(o));
	assert_int_equal(o.flags, 0);
	assert_null(o.cbt_metadata);
	assert_int_equal(o.tracking_block_bytes, 0);

	in.flags = BLKSNAP_ATTACH_FORCE;
	in.tracking_block_bytes = 65536;
	in.cbt_metadata = "/dev/vdc";
	in.cbt_metadata_id = "wwn-0x1";
	assert_int_equal(bs_attach_opts_in(&ctx, &in, &o), 0);
	assert_int_equal(o.flags, BLKSNAP_ATTACH_FORCE);
	assert_int_equal(o.tracking_block_bytes, 65536);
	assert_string_equal(o.cbt_metadata, "/dev/vdc");
	assert_string_equal(o.cbt_metadata_id, "wwn-0x1");

	/* Too small a size, unknown flags. */
	in.size = sizeof(size_t);
	assert_int_equal(bs_attach_opts_in(&ctx, &in, &o), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "sizeof(struct blksnap_attach_options)"));
	in.size = sizeof(in);
	in.flags = 0x2;
	assert_int_equal(bs_attach_opts_in(&ctx, &in, &o), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "unknown flags 0x2"));
	in.flags = 0;

	/* A later, larger struct: fine while the members unknown here are zero. */
	memset(&big, 0, sizeof(big));
	big.o = in;
	big.o.size = sizeof(big);
	assert_int_equal(bs_attach_opts_in(&ctx, &big.o, &o), 0);
	assert_int_equal(o.size, sizeof(o));
	big.later[1] = 1;
	assert_int_equal(bs_attach_opts_in(&ctx, &big.o, &o), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "does not know is set"));

	/* An id without a device, a bad id, an odd tracking block. */
	in.cbt_metadata = NULL;
	assert_int_equal(bs_attach_opts_in(&ctx, &in, &o), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "goes with a CBT metadata device"));
	in.cbt_metadata = "/dev/vdc";
	in.cbt_metadata_id = "two words";
	assert_int_equal(bs_attach_opts_in(&ctx, &in, &o), -EINVAL);
	in.cbt_metadata_id = NULL;
	assert_int_equal(bs_attach_opts_in(&ctx, &in, &o), 0);
	in.cbt_metadata = "";
	assert_int_equal(bs_attach_opts_in(&ctx, &in, &o), -EINVAL);
	in.cbt_metadata = NULL;
	in.tracking_block_bytes = 1000;
	assert_int_equal(bs_attach_opts_in(&ctx, &in, &o), -EINVAL);
	assert_non_null(strstr(ctx.errmsg, "multiple of 512"));
}

static void test_pick_by_id(void **state)
{
	const char *const all[] = {
		"ata-QEMU_HARDDISK_QM00005", "lvm-pv-uuid-abc", "nvme-eui.0025", "wwn-0x5000",
		"dm-name-vg-lv", "md-uuid-1234", "nvme-uuid.1111", "wwn-0x4000",
	};
	const char *const no_wwn[] = { "virtio-serial1", "nvme-uuid.2", "nvme-eui.3", "ata-x" };
	const char *const others[] = { "virtio-b", "usb-a", "scsi-0QEMU" };
	const char *const none[] = { "lvm-pv-uuid-abc", "dm-uuid-LVM-x", "md-name-r", ".hidden" };

	(void)state;
	assert_int_equal(bs_pick_by_id(all, 8), 7);	/* wwn-, the first of them */
	assert_int_equal(bs_pick_by_id(no_wwn, 4), 2);	/* nvme-eui. sorts before nvme-uuid. */
	assert_int_equal(bs_pick_by_id(others, 3), 2);	/* the first in byte order */
	assert_int_equal(bs_pick_by_id(none, 4), -1);
	assert_int_equal(bs_pick_by_id(NULL, 0), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_attach_options),
		cmocka_unit_test(test_pick_by_id),
		cmocka_unit_test(test_file_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
