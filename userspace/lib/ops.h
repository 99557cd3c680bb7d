/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libblksnap: helpers shared by the operations (origin.c, snapshot.c,
 * monitor.c).
 */
#ifndef BLKSNAP_OPS_H
#define BLKSNAP_OPS_H

#include "model.h"
#include "sys.h"

#pragma GCC visibility push(hidden)

/*
 * The origin device for what the user typed: the origin itself, its real
 * device (the disk or <name>-real) or a dm name. -ENODEV with the hint to
 * attach first.
 */
int bs_find_origin(struct blksnap_ctx *ctx, const struct bs_system *sys,
		   const char *arg, const struct bs_sysdev **origin);

/* Scan and build the model; @sys may be NULL when not needed afterwards. */
int bs_scan_model(struct blksnap_ctx *ctx, struct bs_system *sys,
		  struct blksnap_list **list);

/* The current status of the origin @name; -ENODEV if it is gone. */
int bs_origin_status(struct blksnap_ctx *ctx, const char *name,
		     struct blksnap_origin_status *st);

/* Fill the filesystem fields of an origin (best effort). */
void bs_origin_probe_fs(struct blksnap_origin *o);

#pragma GCC visibility pop

#endif /* BLKSNAP_OPS_H */
