/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libblksnap: helpers shared by the operations (origin.c, snapshot.c,
 * monitor.c).
 */
#ifndef BLKSNAP_OPS_H
#define BLKSNAP_OPS_H

#include "model.h"
#include "sys.h"

struct bs_locks;

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

/*
 * Replace the live table of @name with @targets in one suspend/resume. On
 * failure the old table stays (or is resumed again); a device that cannot
 * be resumed is named in the error.
 */
int bs_swap_table(struct blksnap_ctx *ctx, const char *name,
		  const struct bs_target *targets, size_t n);

/* The origin lock's key (major << 32 | minor) of origin @o (see lock.c). */
uint64_t bs_origin_lock_key(const struct bs_sysdev *o);
/*
 * blksnap_attach_opts(); @from_tab: for a blksnaptab entry (at boot), whose
 * metadata directory must hold the metadata file already: a boot never
 * creates one (under a mount point whose file system is not mounted yet).
 */
int bs_attach(struct blksnap_ctx *ctx, const char *device,
	      const struct blksnap_attach_options *opts, bool from_tab,
	      struct blksnap_origin **out);

/* Lock the origin on @device, found in a scan of its own; the caller scans again under it. */
int bs_lock_origin_of(struct blksnap_ctx *ctx, const char *device, struct bs_locks *l);

/*
 * The notes of dm devices detached by hand (tab.c), in BLKSNAP_RUN_DIR
 * "/detached/", by dm uuid (@uuid, NULL for none) or else dm name. A
 * layered origin's detach reloads the device, and its change event reaches
 * the blksnaptab's rule; a disk's detach sends no event on the disk, and
 * disks and loop devices have no name that stays theirs, so they get no
 * note. blksnap_attach_tab() for one device skips a device with a note;
 * blksnap_attach() removes it. Best effort: a note that cannot be written
 * is only a warning.
 */
void bs_detach_note(struct blksnap_ctx *ctx, const char *uuid, const char *name);
void bs_detach_note_forget(const char *uuid, const char *name);
bool bs_detach_noted(const char *uuid, const char *name);

#pragma GCC visibility pop

#endif /* BLKSNAP_OPS_H */
