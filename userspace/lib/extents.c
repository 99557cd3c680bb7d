// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libblksnap: sector extents ("<start>+<sectors>") and CBT map decoding.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Parse "<start>+<sectors>" from @s up to @end. */
static int extent_parse(const char *s, const char *end, struct blksnap_extent *e)
{
	const char *plus = memchr(s, '+', end - s);
	char buf[48];

	if (!plus || (size_t)(end - s) >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, end - s);
	buf[end - s] = '\0';
	buf[plus - s] = '\0';
	if (bs_parse_u64(buf, &e->start) || bs_parse_u64(buf + (plus - s) + 1, &e->sectors))
		return -EINVAL;
	if (!e->sectors || e->start > UINT64_MAX - e->sectors)
		return -ERANGE;
	return 0;
}

int blksnap_parse_extent(struct blksnap_ctx *ctx, const char *s,
			 struct blksnap_extent *ext)
{
	int r = extent_parse(s, s + strlen(s), ext);

	if (r == -ERANGE)
		return bs_err(ctx, EINVAL, "invalid extent '%s': the length must be > 0 and the end within 2^64 sectors", s);
	if (r)
		return bs_err(ctx, EINVAL, "invalid extent '%s': expected <start>+<sectors>, e.g. 2048+8", s);
	return 0;
}

int bs_parse_extent_list(struct blksnap_ctx *ctx, const char *s,
			 struct blksnap_extent **ext, size_t *n)
{
	struct blksnap_extent *v = NULL;
	size_t count = 0, i = 0, len = strlen(s);
	const char *p, *q;

	*ext = NULL;
	*n = 0;
	/* Tolerate the newline some targets append; nothing else. */
	if (len && s[len - 1] == '\n')
		len--;
	if (!len)
		return 0;
	for (p = s; p < s + len; p++)
		if (*p == ' ')
			count++;
	count++;
	v = calloc(count, sizeof(*v));
	if (!v)
		return bs_err(ctx, ENOMEM, "out of memory");
	for (p = s;; p = q + 1) {
		q = memchr(p, ' ', s + len - p);
		if (!q)
			q = s + len;
		if (q == p || extent_parse(p, q, &v[i])) {
			free(v);
			return bs_err(ctx, EINVAL, "unexpected cbt_changes reply near '%.*s' (does the module match this blksnapctl?)",
				      (int)(q - p > 40 ? 40 : q - p), p);
		}
		i++;
		if (q == s + len)
			break;
	}
	*ext = v;
	*n = i;
	return 0;
}

static int extent_cmp(const void *a, const void *b)
{
	const struct blksnap_extent *x = a, *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	if (x->sectors != y->sectors)
		return x->sectors < y->sectors ? -1 : 1;
	return 0;
}

size_t bs_extents_merge(struct blksnap_extent *ext, size_t n)
{
	size_t out = 0;

	if (!n)
		return 0;
	qsort(ext, n, sizeof(*ext), extent_cmp);
	for (size_t i = 1; i < n; i++) {
		struct blksnap_extent *last = &ext[out];
		uint64_t end = last->start + last->sectors;

		if (ext[i].start <= end) {
			uint64_t e2 = ext[i].start + ext[i].sectors;

			if (e2 > end)
				last->sectors = e2 - last->start;
		} else {
			ext[++out] = ext[i];
		}
	}
	return out + 1;
}

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int bs_hex_decode(const char *hex, uint8_t *out, size_t len)
{
	size_t hl = strlen(hex);

	if (hl && hex[hl - 1] == '\n')
		hl--;
	if (hl != 2 * len)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		int hi = hex_val(hex[2 * i]), lo = hex_val(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/*---- Extents from a map read in pieces ----*/

void bs_map_scan_init(struct bs_map_scan *s, unsigned int since,
		      uint64_t block_sectors, uint64_t dev_sectors)
{
	memset(s, 0, sizeof(*s));
	s->since = since;
	s->block_sectors = block_sectors;
	s->dev_sectors = dev_sectors;
}

/* Emit blocks [@start, @end) as sectors, clipped at the end of the device. */
static bool map_scan_emit(struct bs_map_scan *s, uint64_t start, uint64_t end,
			  struct blksnap_extent *out, size_t max, size_t *n)
{
	uint64_t first = start * s->block_sectors, last = end * s->block_sectors;

	if (*n >= max)
		return false;
	if (last > s->dev_sectors)
		last = s->dev_sectors;
	if (last > first)
		out[(*n)++] = (struct blksnap_extent){ first, last - first };
	return true;
}

size_t bs_map_scan_feed(struct bs_map_scan *s, const uint8_t *map, size_t len,
			struct blksnap_extent *out, size_t max, size_t *n)
{
	size_t i;

	for (i = 0; i < len; i++) {
		bool changed = map[i] > s->since;
		uint64_t b = s->next_block + i;

		if (changed && !s->in_run) {
			s->in_run = true;
			s->run_start = b;
		} else if (!changed && s->in_run) {
			/* The run ends at b: no room means stop before this byte. */
			if (!map_scan_emit(s, s->run_start, b, out, max, n))
				break;
			s->in_run = false;
		}
	}
	s->next_block += i;
	return i;
}

bool bs_map_scan_end(struct bs_map_scan *s, struct blksnap_extent *out,
		     size_t max, size_t *n)
{
	if (s->in_run) {
		if (!map_scan_emit(s, s->run_start, s->next_block, out, max, n))
			return false;
		s->in_run = false;
	}
	return true;
}
