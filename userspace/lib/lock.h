/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libblksnap: locks around the calls that change devices (lock.c has the
 * order).
 */
#ifndef BLKSNAP_LOCK_H
#define BLKSNAP_LOCK_H

#include "internal.h"

#pragma GCC visibility push(hidden)

#define BS_LOCKS_MAX 64

/* The locks one call holds; released together by bs_unlock_all(). */
struct bs_locks {
	size_t n;
	int fds[BS_LOCKS_MAX + 1];
	bool snapshot;
	size_t n_origins;
	uint64_t origins[BS_LOCKS_MAX];	/* major << 32 | minor, ascending */
};

void bs_locks_init(struct bs_locks *l);
/* The lock of snapshot @name; must come before any origin lock. */
int bs_lock_snapshot(struct blksnap_ctx *ctx, struct bs_locks *l, const char *name);
/* An origin lock, in ascending order of device numbers; @label for messages. */
int bs_lock_origin(struct blksnap_ctx *ctx, struct bs_locks *l, uint32_t major,
		   uint32_t minor, const char *label);
/* Several origin locks (major << 32 | minor, any order, duplicates allowed). */
int bs_lock_origins(struct blksnap_ctx *ctx, struct bs_locks *l,
		    const uint64_t *keys, size_t n);
void bs_unlock_all(struct bs_locks *l);

#pragma GCC visibility pop

#endif /* BLKSNAP_LOCK_H */
