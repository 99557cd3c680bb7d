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
		.devices = devs, .n_devices = 1, .stores = stores, .n_stores = 1,
	};
	struct blksnap_snapshot *s = (void *)1;

	(void)state;
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
	assert_non_null(strstr(blksnap_errmsg(ctx), "power of two from 8"));
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
	struct blksnap_monitor_params mp = { .grow_by = 1000 };
	struct blksnap_extent *ext = (void *)1;
	size_t n = 5;

	(void)state;
	assert_int_equal(blksnap_cbt_changes(ctx, "/dev/vdb", 256, &ext, &n, NULL), -EINVAL);
	assert_null(ext);
	assert_int_equal(n, 0);
	assert_non_null(strstr(blksnap_errmsg(ctx), "0..255"));
	assert_int_equal(blksnap_monitor(ctx, "s1", &mp), -EINVAL);
	assert_non_null(strstr(blksnap_errmsg(ctx), "--grow-by"));
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
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
