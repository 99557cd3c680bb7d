// SPDX-License-Identifier: GPL-2.0
/*
 * Harness self-test: load this module in a guest and the run must fail,
 * because the guest kernel logged a WARNING.
 */
#include <linux/module.h>
#include <linux/bug.h>

static int __init selftest_warn_init(void)
{
	WARN(1, "blksnap harness self-test: deliberate warning\n");
	return 0;
}

static void __exit selftest_warn_exit(void)
{
}

module_init(selftest_warn_init);
module_exit(selftest_warn_exit);
MODULE_DESCRIPTION("dm-blksnap test harness self-test");
MODULE_LICENSE("GPL");
