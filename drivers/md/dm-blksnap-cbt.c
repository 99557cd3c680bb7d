// SPDX-License-Identifier: GPL-2.0
/*
 * dm-blksnap change tracker: the registry of trackers keyed by device.
 */
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/list.h>

#include "dm-blksnap.h"

static LIST_HEAD(tracker_list);
static DEFINE_MUTEX(tracker_mutex);

int blksnap_cbt_init(void)
{
	return 0;
}

void blksnap_cbt_exit(void)
{
	mutex_lock(&tracker_mutex);
	WARN_ON(!list_empty(&tracker_list));
	mutex_unlock(&tracker_mutex);
}
