// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libblksnap: the context, error messages, logging and string helpers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "dm.h"

#ifndef BLKSNAP_VERSION
#define BLKSNAP_VERSION "0.0.0"
#endif

/*---- Context ----*/

int blksnap_ctx_new(struct blksnap_ctx **ctx)
{
	struct blksnap_ctx *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->log_level = BLKSNAP_LOG_INFO;
	bs_dm_init();
	*ctx = c;
	return 0;
}

void blksnap_ctx_free(struct blksnap_ctx *ctx)
{
	free(ctx);
}

const char *blksnap_errmsg(const struct blksnap_ctx *ctx)
{
	return ctx ? ctx->errmsg : "";
}

void blksnap_set_log(struct blksnap_ctx *ctx, blksnap_log_fn fn, void *data)
{
	ctx->log_fn = fn;
	ctx->log_data = data;
}

void blksnap_set_log_level(struct blksnap_ctx *ctx, enum blksnap_log_level max_level)
{
	ctx->log_level = max_level;
}

const char *blksnap_version(void)
{
	return BLKSNAP_VERSION;
}

/*---- Caller-allocated structs ----*/

int bs_copy_in(struct blksnap_ctx *ctx, void *dst, size_t dst_size,
	       const void *src, size_t min_size, const char *what)
{
	size_t size;

	memset(dst, 0, dst_size);
	if (!src)
		return bs_err(ctx, EINVAL, "no %s given", what);
	memcpy(&size, src, sizeof(size));
	if (size < min_size)
		return bs_err(ctx, EINVAL, "struct %s: size %zu, at least %zu expected (set .size = sizeof(struct %s))",
			      what, size, min_size, what);
	memcpy(dst, src, size < dst_size ? size : dst_size);
	return 0;
}

int bs_copy_out(struct blksnap_ctx *ctx, void *dst, const void *src,
		size_t src_size, size_t min_size, const char *what)
{
	size_t size;

	memcpy(&size, dst, sizeof(size));
	if (size < min_size)
		return bs_err(ctx, EINVAL, "struct %s: size %zu, at least %zu expected (set .size = sizeof(struct %s))",
			      what, size, min_size, what);
	/* Everything after the caller's size member, as far as it reaches. */
	memcpy((char *)dst + sizeof(size), (const char *)src + sizeof(size),
	       (size < src_size ? size : src_size) - sizeof(size));
	return 0;
}

/*---- Errors and logging ----*/

int bs_err(struct blksnap_ctx *ctx, int err, const char *fmt, ...)
{
	va_list ap;

	if (ctx) {
		va_start(ap, fmt);
		vsnprintf(ctx->errmsg, sizeof(ctx->errmsg), fmt, ap);
		va_end(ap);
	}
	return -err;
}

int bs_err_prefix(struct blksnap_ctx *ctx, int ret, const char *fmt, ...)
{
	char msg[2 * BS_ERRMSG_LEN + 2];
	size_t len;
	va_list ap;

	if (!ctx)
		return ret;
	va_start(ap, fmt);
	vsnprintf(msg, BS_ERRMSG_LEN, fmt, ap);
	va_end(ap);
	len = strlen(msg);
	memcpy(msg + len, ": ", 2);
	memcpy(msg + len + 2, ctx->errmsg, strlen(ctx->errmsg) + 1);
	snprintf(ctx->errmsg, sizeof(ctx->errmsg), "%.*s", BS_ERRMSG_LEN - 1, msg);
	return ret;
}

void bs_log(struct blksnap_ctx *ctx, enum blksnap_log_level level,
	    const char *fmt, ...)
{
	char msg[BS_ERRMSG_LEN];
	va_list ap;

	if (!bs_log_on(ctx, level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ctx->log_fn(level, msg, ctx->log_data);
}

bool bs_log_on(const struct blksnap_ctx *ctx, enum blksnap_log_level level)
{
	return ctx && ctx->log_fn && level <= ctx->log_level;
}

/*---- Strings ----*/

char *bs_strdupf(const char *fmt, ...)
{
	char *s;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	return r < 0 ? NULL : s;
}

char *bs_strdup_opt(const char *s, bool *ok)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*ok = false;
	return d;
}

void bs_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

int bs_split_words(const char *s, char ***words, size_t *n)
{
	size_t count = 1, i = 0;
	const char *p, *q;
	char **v;

	*words = NULL;
	*n = 0;
	if (!*s)
		return -EINVAL;
	for (p = s; *p; p++)
		if (*p == ' ')
			count++;
	v = calloc(count + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (p = s;; p = q + 1) {
		q = strchr(p, ' ');
		if (!q)
			q = p + strlen(p);
		if (q == p) {
			bs_strv_free(v);
			return -EINVAL;
		}
		v[i] = strndup(p, q - p);
		if (!v[i]) {
			bs_strv_free(v);
			return -ENOMEM;
		}
		i++;
		if (!*q)
			break;
	}
	*words = v;
	*n = i;
	return 0;
}
