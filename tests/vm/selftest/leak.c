// SPDX-License-Identifier: GPL-2.0
/*
 * Harness self-test for the debug kernel: load this module in a guest and
 * the run must fail, because kmemleak finds a block whose allocation
 * backtrace is in a blksnap module and which nothing references.
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/compiler.h>

/*
 * Out of the init section (freed after loading, so unnamed in a backtrace
 * printed later), and not a tail call, so that this frame is recorded.
 */
static noinline void *selftest_leak_alloc(size_t size)
{
	void *p = kmalloc(size, GFP_KERNEL);

	barrier_data(p);
	return p;
}

static int __init selftest_leak_init(void)
{
	/* The block is leaked on purpose. */
	selftest_leak_alloc(192);
	return 0;
}

static void __exit selftest_leak_exit(void)
{
}

module_init(selftest_leak_init);
module_exit(selftest_leak_exit);
MODULE_DESCRIPTION("dm-blksnap test harness self-test (kmemleak)");
MODULE_LICENSE("GPL");
