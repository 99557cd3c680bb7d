// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests: the locks of the calls that change devices (lock.c), in a
 * directory of their own: the order they must be taken in, and that a
 * lock held by another process makes a call wait for it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define BLKSNAP_LOCK_DIR "/tmp/blksnap-test-locks/lock/blksnap"
#include "../../userspace/lib/lock.c"

static struct blksnap_ctx *ctx;

struct logged {
	int waits;
	char msg[256];
};

static void log_fn(enum blksnap_log_level level, const char *msg, void *data)
{
	struct logged *l = data;

	if (level == BLKSNAP_LOG_INFO && strstr(msg, "waiting for")) {
		l->waits++;
		snprintf(l->msg, sizeof(l->msg), "%s", msg);
	}
}

static int setup(void **state)
{
	(void)state;
	if (system("rm -rf /tmp/blksnap-test-locks"))
		return -1;
	return blksnap_ctx_new(&ctx);
}

static int teardown(void **state)
{
	(void)state;
	blksnap_ctx_free(ctx);
	return system("rm -rf /tmp/blksnap-test-locks") ? -1 : 0;
}

static void test_order(void **state)
{
	struct bs_locks l;

	(void)state;
	bs_locks_init(&l);
	/* The directory, and its parent, are made on first use. */
	assert_int_equal(bs_lock_snapshot(ctx, &l, "s1"), 0);
	assert_int_equal(access(BLKSNAP_LOCK_DIR "/snapshot-s1", F_OK), 0);
	assert_int_equal(bs_lock_snapshot(ctx, &l, "s2"), -EDEADLK);	/* never two */
	assert_int_equal(bs_lock_origin(ctx, &l, 253, 4, "b"), 0);
	assert_int_equal(bs_lock_origin(ctx, &l, 253, 4, "b again"), 0);	/* one origin, two names */
	assert_int_equal(bs_lock_origin(ctx, &l, 8, 16, "a"), -EDEADLK);	/* descending */
	assert_non_null(strstr(blksnap_errmsg(ctx), "out of order"));
	assert_int_equal(bs_lock_origin(ctx, &l, 254, 0, "c"), 0);
	assert_int_equal(access(BLKSNAP_LOCK_DIR "/origin-254:0", F_OK), 0);
	assert_int_equal(l.n, 3);
	bs_unlock_all(&l);
	assert_int_equal(l.n, 0);
	/* The snapshot lock comes first: none after an origin lock. */
	assert_int_equal(bs_lock_origin(ctx, &l, 8, 0, "a"), 0);
	assert_int_equal(bs_lock_snapshot(ctx, &l, "s1"), -EDEADLK);
	bs_unlock_all(&l);
	/* Any order given, ascending taken. */
	{
		uint64_t keys[] = { (uint64_t)253 << 32 | 7, (uint64_t)8 << 32 | 0,
				    (uint64_t)253 << 32 | 1, (uint64_t)8 << 32 | 0 };

		assert_int_equal(bs_lock_origins(ctx, &l, keys, 4), 0);
		assert_int_equal(l.n_origins, 3);
		assert_true(l.origins[0] < l.origins[1] && l.origins[1] < l.origins[2]);
		bs_unlock_all(&l);
	}
	/* An image made by hand may have any dm name: the file name is escaped. */
	assert_int_equal(bs_lock_snapshot(ctx, &l, "odd name:x"), 0);
	assert_int_equal(access(BLKSNAP_LOCK_DIR "/snapshot-odd_20name_3ax", F_OK), 0);
	bs_unlock_all(&l);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Another process holds the lock for a while: the call waits, and says so. */
static void test_wait(void **state)
{
	struct logged logged = { 0 };
	int ready[2], status;
	struct bs_locks l;
	double t0;
	char c;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		struct blksnap_ctx *c2;
		struct bs_locks mine;

		bs_locks_init(&mine);
		if (blksnap_ctx_new(&c2) || bs_lock_snapshot(c2, &mine, "busy"))
			_exit(1);
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		usleep(500 * 1000);
		bs_unlock_all(&mine);
		blksnap_ctx_free(c2);
		_exit(0);
	}
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	blksnap_set_log(ctx, log_fn, &logged);
	bs_locks_init(&l);
	t0 = now();
	assert_int_equal(bs_lock_snapshot(ctx, &l, "busy"), 0);
	printf("# waited %.2f s: %s\n", now() - t0, logged.msg);
	assert_true(now() - t0 > 0.3);
	assert_int_equal(logged.waits, 1);
	assert_non_null(strstr(logged.msg, "snapshot busy"));
	bs_unlock_all(&l);
	blksnap_set_log(ctx, NULL, NULL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* Free again: no wait, no message. */
	logged.waits = 0;
	blksnap_set_log(ctx, log_fn, &logged);
	assert_int_equal(bs_lock_snapshot(ctx, &l, "busy"), 0);
	assert_int_equal(logged.waits, 0);
	bs_unlock_all(&l);
	blksnap_set_log(ctx, NULL, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_wait),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
