/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dm-blksnap: internal interface between the targets (dm-blksnap.c) and the
 * change tracker (dm-blksnap-cbt.c).
 */
#ifndef DM_BLKSNAP_H
#define DM_BLKSNAP_H

#include <linux/types.h>

#define DM_MSG_PREFIX "blksnap"

int blksnap_cbt_init(void);
void blksnap_cbt_exit(void);

#endif /* DM_BLKSNAP_H */
