/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libblksnap: the blksnap devices on this system, as device-mapper shows
 * them. scan.c reads every dm device's table (and the status of blksnap
 * targets); model.c, which is pure, turns that into origins and snapshots.
 */
#ifndef BLKSNAP_MODEL_H
#define BLKSNAP_MODEL_H

#include "dm.h"

#pragma GCC visibility push(hidden)

struct bs_sysdev {
	struct bs_dmdev dm;	/* name, uuid, numbers, table */
	char *status;		/* INFO line of a blksnap target, else NULL */
};

struct bs_system {
	size_t n;
	struct bs_sysdev *devs;
};

int bs_system_scan(struct blksnap_ctx *ctx, struct bs_system *sys);
/*
 * The versions of the blksnap targets that are loaded: -EPROTONOSUPPORT
 * for one this library does not drive; with @need_image, -EOPNOTSUPP
 * without blksnap-image. bs_system_scan() checks them once per context
 * when it meets a blksnap device.
 */
int bs_check_targets(struct blksnap_ctx *ctx, bool need_image);
void bs_system_clear(struct bs_system *sys);
const struct bs_sysdev *bs_system_by_name(const struct bs_system *sys, const char *name);
const struct bs_sysdev *bs_system_by_devno(const struct bs_system *sys,
					   uint32_t major, uint32_t minor);
/* The target type of a single-target device, else NULL. */
const char *bs_sysdev_type(const struct bs_sysdev *d);
/* Sum of the target lengths. */
uint64_t bs_sysdev_sectors(const struct bs_sysdev *d);

/* Lookups of the world outside device-mapper; tests replace them. */
struct bs_model_ops {
	/* kernel name of a device number ("vdb"), 0 or -errno */
	int (*kname)(uint32_t major, uint32_t minor, char *buf, size_t len);
	/* backing file of a loop device, *file NULL if not a loop device */
	int (*loop_backing)(uint32_t major, uint32_t minor, char **file);
};
extern const struct bs_model_ops bs_model_sys_ops;

int bs_model_build(struct blksnap_ctx *ctx, const struct bs_system *sys,
		   const struct bs_model_ops *ops, struct blksnap_list **out);

/* Helpers shared by the operations. */
void bs_origin_clear(struct blksnap_origin *o);
void bs_snapshot_clear(struct blksnap_snapshot *s);
struct blksnap_origin *bs_list_origin(struct blksnap_list *l, const char *name);
struct blksnap_snapshot *bs_list_snapshot(struct blksnap_list *l, const char *name);

#pragma GCC visibility pop

#endif /* BLKSNAP_MODEL_H */
