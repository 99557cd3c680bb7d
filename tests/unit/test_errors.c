// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests: the context's error messages and logging, string helpers, and
 * the error paths of the operations that fail before touching any device.
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
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"
#include "sys.h"

static struct blksnap_ctx *ctx;

static int setup(void **state)
{
	(void)state;
	return blksnap_ctx_new(&ctx);
}

static int teardown(void **state)
{
	(void)state;
	blksnap_ctx_free(ctx);
	return 0;
}

static void test_errmsg(void **state)
{
	char big[2 * BS_ERRMSG_LEN];

	(void)state;
	assert_string_equal(blksnap_errmsg(ctx), "");
	assert_string_equal(blksnap_errmsg(NULL), "");
	assert_int_equal(bs_err(ctx, ENOENT, "no %s", "thing"), -ENOENT);
	assert_string_equal(blksnap_errmsg(ctx), "no thing");
	assert_int_equal(bs_err_prefix(ctx, -ENOENT, "while %s", "looking"), -ENOENT);
	assert_string_equal(blksnap_errmsg(ctx), "while looking: no thing");
	assert_int_equal(bs_err(NULL, EIO, "dropped"), -EIO);
	assert_int_equal(bs_err_prefix(NULL, -EIO, "dropped"), -EIO);
	/* Long messages are cut, never overflow. */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	bs_err(ctx, EINVAL, "%s", big);
	assert_int_equal(strlen(blksnap_errmsg(ctx)), BS_ERRMSG_LEN - 1);
	bs_err_prefix(ctx, -EINVAL, "%s", big);
	assert_int_equal(strlen(blksnap_errmsg(ctx)), BS_ERRMSG_LEN - 1);
	assert_non_null(blksnap_version());
	assert_true(strlen(blksnap_version()) > 0);
}

struct logged {
	int calls;
	enum blksnap_log_level level;
	char msg[128];
};

static void log_fn(enum blksnap_log_level level, const char *msg, void *data)
{
	struct logged *l = data;

	l->calls++;
	l->level = level;
	snprintf(l->msg, sizeof(l->msg), "%s", msg);
}

static void test_log(void **state)
{
	struct logged l = { 0 };

	(void)state;
	bs_log(ctx, BLKSNAP_LOG_INFO, "dropped %d", 1);	/* no function set */
	blksnap_set_log(ctx, log_fn, &l);
	bs_log(ctx, BLKSNAP_LOG_WARN, "grew by %d", 64);
	assert_int_equal(l.calls, 1);
	assert_int_equal(l.level, BLKSNAP_LOG_WARN);
	assert_string_equal(l.msg, "grew by 64");
	bs_log(NULL, BLKSNAP_LOG_INFO, "nowhere");
	assert_int_equal(l.calls, 1);
	blksnap_set_log(ctx, NULL, NULL);
}

static void test_split_words(void **state)
{
	char **w;
	size_t n;

	(void)state;
	assert_int_equal(bs_split_words("a bc d", &w, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(w[0], "a");
	assert_string_equal(w[1], "bc");
	assert_string_equal(w[2], "d");
	assert_null(w[3]);
	bs_strv_free(w);
	assert_int_equal(bs_split_words("one", &w, &n), 0);
	assert_int_equal(n, 1);
	bs_strv_free(w);
	assert_int_equal(bs_split_words("", &w, &n), -EINVAL);
	assert_null(w);
	assert_int_equal(bs_split_words("a  b", &w, &n), -EINVAL);
	assert_int_equal(bs_split_words(" a", &w, &n), -EINVAL);
	assert_int_equal(bs_split_words("a ", &w, &n), -EINVAL);
	bs_strv_free(NULL);
}

static void test_strdup_helpers(void **state)
{
	bool ok = true;
	char *s;

	(void)state;
	s = bs_strdupf("%s-%d", "a", 7);
	assert_string_equal(s, "a-7");
	free(s);
	assert_null(bs_strdup_opt(NULL, &ok));
	assert_true(ok);
	s = bs_strdup_opt("x", &ok);
	assert_string_equal(s, "x");
	free(s);
}

/* Operations that must refuse bad parameters before looking at devices. */
static void test_create_params(void **state)
{
	const char *devs[] = { "/dev/vdb" };
	const char *stores[] = { "/var/tmp" };
	struct blksnap_create_params p = {
		.size = sizeof(p), .devices = devs, .n_devices = 1, .stores = stores, .n_stores = 1,
	};
	struct blksnap_snapshot *s = (void *)1;

	(void)state;
	/* A caller that did not set the size (an older or a wrong layout). */
	p.size = 0;
	assert_int_equal(blksnap_create(ctx, &p, &s), -EINVAL);
	assert_null(s);
	assert_non_null(strstr(blksnap_errmsg(ctx), "sizeof(struct blksnap_create_params)"));
	assert_int_equal(blksnap_create(ctx, NULL, &s), -EINVAL);
	p.size = sizeof(p);
	p.n_devices = 0;
	assert_int_equal(blksnap_create(ctx, &p, &s), -EINVAL);
	assert_null(s);
	assert_non_null(strstr(blksnap_errmsg(ctx), "no device"));
	p.n_devices = 1;
	p.n_stores = 0;
	assert_int_equal(blksnap_create(ctx, &p, &s), -EINVAL);
	assert_non_null(strstr(blksnap_errmsg(ctx), "no store"));
	p.n_stores = 1;
	p.chunk_size = 1000;
	assert_int_equal(blksnap_create(ctx, &p, &s), -EINVAL);
	assert_non_null(strstr(blksnap_errmsg(ctx), "multiple of 512"));
	p.chunk_size = 2048;
	assert_int_equal(blksnap_create(ctx, &p, &s), -EINVAL);
	assert_non_null(strstr(blksnap_errmsg(ctx), "power of two from 4 KiB"));
	p.chunk_size = 128ULL << 20;
	assert_int_equal(blksnap_create(ctx, &p, &s), -EINVAL);
	p.chunk_size = 0;
	p.name = "bad/name";
	assert_int_equal(blksnap_create(ctx, &p, &s), -EINVAL);
	assert_non_null(strstr(blksnap_errmsg(ctx), "contains '/'"));
	p.name = "-x";
	assert_int_equal(blksnap_create(ctx, &p, NULL), -EINVAL);
}

static void test_other_params(void **state)
{
	struct blksnap_monitor_params mp = { .size = sizeof(mp), .grow_by = 1000 };
	struct blksnap_origin_status st = { 0 };
	struct blksnap_extent *ext = (void *)1;
	size_t n = 5;

	(void)state;
	assert_int_equal(blksnap_cbt_changes(ctx, "/dev/vdb", NULL, 256, &ext, &n, NULL), -EINVAL);
	assert_null(ext);
	assert_int_equal(n, 0);
	assert_non_null(strstr(blksnap_errmsg(ctx), "0..255"));
	assert_int_equal(blksnap_cbt_changes(ctx, "/dev/vdb", NULL, 1, &ext, &n, &st), -EINVAL);
	assert_non_null(strstr(blksnap_errmsg(ctx), "sizeof(struct blksnap_origin_status)"));
	assert_int_equal(blksnap_monitor(ctx, "s1", &mp), -EINVAL);
	assert_non_null(strstr(blksnap_errmsg(ctx), "multiple of 4 KiB"));
	mp.size = 8;
	mp.grow_by = 0;
	assert_int_equal(blksnap_monitor(ctx, "s1", &mp), -EINVAL);
	assert_non_null(strstr(blksnap_errmsg(ctx), "sizeof(struct blksnap_monitor_params)"));
}

static void test_resolve(void **state)
{
	struct bs_blockdev dev;
	struct blksnap_origin *o = (void *)1;

	(void)state;
	assert_int_equal(bs_resolve_blockdev(ctx, "/nonexistent/device", &dev), -ENOENT);
	assert_non_null(strstr(blksnap_errmsg(ctx), "/nonexistent/device"));
	assert_int_equal(bs_resolve_blockdev(ctx, "/dev/null", &dev), -ENOTBLK);
	assert_string_equal(blksnap_errmsg(ctx), "/dev/null is not a block device");
	assert_int_equal(bs_resolve_blockdev(ctx, "", &dev), -EINVAL);
	assert_int_equal(bs_resolve_blockdev(ctx, "LABEL=blksnap-test-no-such-label-x7", &dev), -ENOENT);
	assert_non_null(strstr(blksnap_errmsg(ctx), "no device with LABEL="));
	/* attach stops at the same point, with the same cause. */
	assert_int_equal(blksnap_attach(ctx, "/dev/null", 0, &o), -ENOTBLK);
	assert_null(o);
	assert_int_equal(blksnap_attach(ctx, "/nonexistent/device", 0, NULL), -ENOENT);
}

static void test_loop_store_params(void **state)
{
	int fd;
	uint32_t ma, mi;

	(void)state;
	assert_int_equal(bs_loop_store(ctx, "/tmp", 1000, "x", &fd, &ma, &mi), -EINVAL);
	assert_int_equal(bs_loop_store(ctx, "/tmp", 2048, "x", &fd, &ma, &mi), -EINVAL);
	assert_non_null(strstr(blksnap_errmsg(ctx), "at least 4 KiB"));
	assert_int_equal(bs_loop_store(ctx, "/nonexistent-dir-x7", 1 << 20, "x", &fd, &ma, &mi),
			 -ENOENT);
	assert_non_null(strstr(blksnap_errmsg(ctx), "cannot create a store file in /nonexistent-dir-x7"));
}

/* The header's version is the library's. */
static void test_version(void **state)
{
	char v[32];

	(void)state;
	snprintf(v, sizeof(v), "%d.%d.%d", BLKSNAP_VERSION_MAJOR, BLKSNAP_VERSION_MINOR,
		 BLKSNAP_VERSION_MICRO);
	assert_string_equal(v, BLKSNAP_VERSION_STRING);
	assert_string_equal(blksnap_version(), BLKSNAP_VERSION_STRING);
	assert_true(BLKSNAP_VERSION_AT_LEAST(0, 2, 0));
	assert_true(BLKSNAP_VERSION_AT_LEAST(0, 1, 9));
	assert_false(BLKSNAP_VERSION_AT_LEAST(0, 2, 1));
	assert_false(BLKSNAP_VERSION_AT_LEAST(1, 0, 0));
}

/*
 * What a call that needs device-mapper returns when it cannot have it:
 * -EACCES for a caller that is not root, -ENODEV without device-mapper in
 * the kernel; never -ENOMEM. Each runs in a child: setresuid() cannot be
 * undone, and libdevmapper keeps its control descriptor.
 */
static int dm_errno_in_child(uid_t uid)
{
	struct blksnap_list *l = NULL;
	struct blksnap_ctx *c;
	int status, r;
	pid_t pid;

	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		if (uid && (setresgid(uid, uid, uid) || setresuid(uid, uid, uid)))
			_exit(100);
		if (blksnap_ctx_new(&c))
			_exit(101);
		r = blksnap_list(c, &l);
		printf("# uid %d: blksnap_list -> %d (%s): %s\n", (int)uid, r,
		       r ? strerror(-r) : "ok", blksnap_errmsg(c));
		blksnap_list_free(l);
		blksnap_ctx_free(c);
		_exit(r == 0 ? 0 : r == -EACCES ? 1 : r == -ENODEV ? 2 : r == -ENOMEM ? 3 : 4);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_dm_errno(void **state)
{
	(void)state;
	if (geteuid() != 0) {
		assert_int_equal(dm_errno_in_child(geteuid()), 1);
		return;
	}
	assert_int_equal(dm_errno_in_child(65534), 1);		/* nobody: -EACCES */
	/* root: -ENODEV where the kernel has no device-mapper, else success */
	if (access("/sys/class/misc/device-mapper", F_OK))
		assert_int_equal(dm_errno_in_child(0), 2);
	else
		assert_int_equal(dm_errno_in_child(0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errmsg),
		cmocka_unit_test(test_log),
		cmocka_unit_test(test_split_words),
		cmocka_unit_test(test_strdup_helpers),
		cmocka_unit_test(test_create_params),
		cmocka_unit_test(test_other_params),
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_loop_store_params),
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_dm_errno),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
