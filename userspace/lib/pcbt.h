/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libblksnap private: persistent change tracking from userspace (pcbt.c).
 */
#ifndef BLKSNAP_PCBT_H
#define BLKSNAP_PCBT_H

#include "model.h"
#include "sys.h"

#pragma GCC visibility push(hidden)

/*
 * Copy the caller's options (NULL: the defaults) into @o and check them:
 * size, flags, a larger struct's unknown members unset, the id's syntax.
 */
int bs_attach_opts_in(struct blksnap_ctx *ctx, const struct blksnap_attach_options *opts,
		      struct blksnap_attach_options *o);

/*
 * Of /dev/disk/by-id names of one device, the one to use as its
 * metadata_id: wwn-, then nvme-eui./nvme-uuid., then any other, the first
 * in byte order within a kind; never lvm-pv-uuid-, md- nor dm-. -1: none.
 */
int bs_pick_by_id(const char *const *names, size_t n);

/* The metadata file in directory @dir: <dir>/blksnap-cbt-<id>.meta, a '/' of @id as '_'. */
char *bs_pcbt_file_name(const char *dir, const char *id);

/* What the table of a persistent origin gets. */
struct bs_pcbt_table {
	uint64_t tracking;		/* sectors; in: as given (0: none) */
	char metadata[24];		/* "M:m" */
	char metadata_id[BS_META_ID_MAX + 1];
	bool reuse_file;		/* in: a directory's file must exist */
	int loop_fd;			/* out: a directory's loop device, or -1 */
};

/*
 * Check the metadata device @o->cbt_metadata for the device @dev (@device
 * as the user named it), find its metadata_id, and format the metadata
 * unless it holds this device's for its size and tracking block. A
 * directory holds the metadata as a file behind a new autoclear loop
 * device, open as @out->loop_fd (also on an error): the caller closes it
 * once the table holds the loop device, or to let it go.
 */
int bs_pcbt_prepare(struct blksnap_ctx *ctx, const struct bs_system *sys,
		    const struct bs_blockdev *dev, const char *device,
		    const struct blksnap_attach_options *o, struct bs_pcbt_table *out);

/* cbt_detach to the origin @o when it has a metadata device (else nothing). */
int bs_pcbt_detach(struct blksnap_ctx *ctx, const struct bs_sysdev *o);

#pragma GCC visibility pop

#endif /* BLKSNAP_PCBT_H */
