/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libblksnap's wrapper of libdevmapper. dm.c is the only file that talks to
 * device-mapper. Every call records a message naming the device and the
 * cause in the context on failure.
 *
 * udev: calls that create, resume or remove a device take an optional
 * cookie. With NULL the call waits for udev itself, so the /dev/mapper node
 * exists (or is gone) when it returns. With a cookie (initialised to 0) the
 * caller batches several calls and waits once with bs_dm_udev_wait(); create
 * uses this to wait only after every origin is resumed again. With
 * DM_DISABLE_UDEV=1 in the environment libdevmapper manages the nodes itself.
 */
#ifndef BLKSNAP_DM_H
#define BLKSNAP_DM_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

#pragma GCC visibility push(hidden)

struct bs_dmdev {
	char *name;
	char *uuid;			/* "" if none */
	bool exists;
	bool suspended;
	bool live_table;
	bool inactive_table;
	int open_count;
	uint32_t event_nr;
	uint32_t major, minor;
	size_t n_targets;
	struct bs_target *targets;	/* table or status lines */
};

void bs_dmdev_clear(struct bs_dmdev *dev);

/* Route libdevmapper's messages into our errors (once per process). */
void bs_dm_init(void);

bool bs_dm_is_dm_major(uint32_t major);

/*
 * Whether the kernel has registered the target type @type (a target
 * provided by a module that is not loaded yet counts as absent), and its
 * version.
 */
int bs_dm_target_version(struct blksnap_ctx *ctx, const char *type, bool *present,
			 uint32_t version[3]);

/* Names of all dm devices. */
int bs_dm_list(struct blksnap_ctx *ctx, char ***names, size_t *n);

enum bs_dm_query {
	BS_DM_INFO,		/* no targets */
	BS_DM_TABLE,
	BS_DM_STATUS,
};
/*
 * Query a device by name, or by number when @name is NULL. A device that
 * does not exist is not an error: dev->exists is false.
 */
int bs_dm_query(struct blksnap_ctx *ctx, const char *name, uint32_t major,
		uint32_t minor, enum bs_dm_query what, struct bs_dmdev *dev);

/*
 * Create @name with @uuid. With targets and !@inactive the table is loaded
 * and the device resumed; with @inactive it is loaded but stays without a
 * live table until bs_dm_resume().
 */
int bs_dm_create(struct blksnap_ctx *ctx, const char *name, const char *uuid,
		 const struct bs_target *t, size_t n, bool inactive,
		 uint32_t *cookie);
/* Load @t into the inactive slot. */
int bs_dm_load(struct blksnap_ctx *ctx, const char *name,
	       const struct bs_target *t, size_t n);
/* Drop the inactive table. */
int bs_dm_clear(struct blksnap_ctx *ctx, const char *name);

#define BS_DM_LOCKFS	0x1	/* freeze a mounted filesystem */
#define BS_DM_NOFLUSH	0x2	/* do not flush queued I/O */
int bs_dm_suspend(struct blksnap_ctx *ctx, const char *name, unsigned int flags);
int bs_dm_resume(struct blksnap_ctx *ctx, const char *name, uint32_t *cookie);
int bs_dm_remove(struct blksnap_ctx *ctx, const char *name, uint32_t *cookie);
/* Wait for the udev events of a batch (a cookie of 0 returns at once). */
int bs_dm_udev_wait(struct blksnap_ctx *ctx, uint32_t cookie);

/* Send a target message to sector 0; *@reply (may be NULL) gets the answer. */
int bs_dm_message(struct blksnap_ctx *ctx, const char *name, const char *msg,
		  char **reply);

/*
 * A descriptor of the control device that turns readable (POLLIN) when a
 * device-mapper event happened anywhere after the last bs_dm_poll_arm().
 * bs_dm_poll_open() arms it once.
 */
int bs_dm_poll_open(struct blksnap_ctx *ctx, int *fd);
int bs_dm_poll_arm(struct blksnap_ctx *ctx, int fd);

#pragma GCC visibility pop

#endif /* BLKSNAP_DM_H */
