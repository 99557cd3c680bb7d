// SPDX-License-Identifier: GPL-2.0
/*
 * dm-blksnap: block device snapshots with change-block tracking.
 *
 * This first version maps blksnap-origin straight through to its device.
 */
#include <linux/module.h>
#include <linux/device-mapper.h>

#include "dm-blksnap.h"

struct origin_c {
	struct dm_dev *dev;
};

static int origin_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct origin_c *oc;
	int r;

	if (argc != 1) {
		ti->error = "Invalid argument count";
		return -EINVAL;
	}
	oc = kzalloc(sizeof(*oc), GFP_KERNEL);
	if (!oc) {
		ti->error = "Cannot allocate origin context";
		return -ENOMEM;
	}
	r = dm_get_device(ti, argv[0], dm_table_get_mode(ti->table), &oc->dev);
	if (r) {
		ti->error = "Device lookup failed";
		kfree(oc);
		return r;
	}
	ti->private = oc;
	ti->num_flush_bios = 1;
	ti->num_discard_bios = 1;
	ti->num_write_zeroes_bios = 1;
	return 0;
}

static void origin_dtr(struct dm_target *ti)
{
	struct origin_c *oc = ti->private;

	dm_put_device(ti, oc->dev);
	kfree(oc);
}

static int origin_map(struct dm_target *ti, struct bio *bio)
{
	struct origin_c *oc = ti->private;

	bio_set_dev(bio, oc->dev->bdev);
	return DM_MAPIO_REMAPPED;
}

static void origin_status(struct dm_target *ti, status_type_t type,
			  unsigned int status_flags, char *result,
			  unsigned int maxlen)
{
	struct origin_c *oc = ti->private;
	unsigned int sz = 0;

	switch (type) {
	case STATUSTYPE_INFO:
		DMEMIT("-");
		break;
	case STATUSTYPE_TABLE:
		DMEMIT("%s", oc->dev->name);
		break;
	case STATUSTYPE_IMA:
		*result = '\0';
		break;
	}
}

static int origin_iterate_devices(struct dm_target *ti,
				  iterate_devices_callout_fn fn, void *data)
{
	struct origin_c *oc = ti->private;

	return fn(ti, oc->dev, 0, ti->len, data);
}

static struct target_type origin_target = {
	.name = "blksnap-origin",
	.version = {0, 1, 0},
	.module = THIS_MODULE,
	.ctr = origin_ctr,
	.dtr = origin_dtr,
	.map = origin_map,
	.status = origin_status,
	.iterate_devices = origin_iterate_devices,
};

static int __init dm_blksnap_init(void)
{
	int r;

	r = blksnap_cbt_init();
	if (r)
		return r;
	r = dm_register_target(&origin_target);
	if (r) {
		DMERR("register blksnap-origin failed %d", r);
		blksnap_cbt_exit();
	}
	return r;
}

static void __exit dm_blksnap_exit(void)
{
	dm_unregister_target(&origin_target);
	blksnap_cbt_exit();
}

module_init(dm_blksnap_init);
module_exit(dm_blksnap_exit);

MODULE_DESCRIPTION(DM_NAME " block device snapshots with change tracking");
MODULE_LICENSE("GPL");
