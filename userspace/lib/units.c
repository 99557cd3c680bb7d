// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libblksnap: numbers and sizes.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

int bs_parse_u64(const char *s, uint64_t *v)
{
	uint64_t x = 0;

	if (!s || !*s)
		return -EINVAL;
	for (; *s; s++) {
		unsigned int d;

		if (*s < '0' || *s > '9')
			return -EINVAL;
		d = *s - '0';
		if (x > (UINT64_MAX - d) / 10)
			return -ERANGE;
		x = x * 10 + d;
	}
	*v = x;
	return 0;
}

bool bs_is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

int bs_parse_devno(const char *s, uint32_t *major, uint32_t *minor)
{
	const char *colon = strchr(s, ':');
	uint64_t ma, mi;
	char buf[24];

	if (!colon || (size_t)(colon - s) >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, colon - s);
	buf[colon - s] = '\0';
	if (bs_parse_u64(buf, &ma) || bs_parse_u64(colon + 1, &mi))
		return -EINVAL;
	if (ma > 0xfff || mi > 0xfffff)
		return -ERANGE;
	*major = ma;
	*minor = mi;
	return 0;
}

static const char size_units[] = "KMGTPE";

int blksnap_parse_size(struct blksnap_ctx *ctx, const char *s, uint64_t *bytes)
{
	const char *p, *unit, *frac = NULL;
	uint64_t v = 0, f = 0, fdiv = 1, mult = 1;
	char digits[24];
	size_t nd, nf = 0;
	int r;

	if (!s || !*s)
		return bs_err(ctx, EINVAL, "empty size");
	for (p = s; *p >= '0' && *p <= '9'; p++)
		;
	nd = p - s;
	if (nd == 0)
		return bs_err(ctx, EINVAL, "invalid size '%s': expected a number, optionally followed by K, M, G, T, P or E", s);
	if (nd >= sizeof(digits))
		return bs_err(ctx, ERANGE, "size '%s' is too large", s);
	memcpy(digits, s, nd);
	digits[nd] = '\0';
	r = bs_parse_u64(digits, &v);
	if (r == -ERANGE)
		return bs_err(ctx, ERANGE, "size '%s' is too large", s);
	if (*p == '.') {
		frac = ++p;
		for (; *p >= '0' && *p <= '9'; p++)
			;
		nf = p - frac;
		if (!nf)
			return bs_err(ctx, EINVAL, "invalid size '%s': expected digits after the '.'", s);
		if (nf > 18)
			return bs_err(ctx, EINVAL, "invalid size '%s': too many digits after the '.'", s);
		for (size_t i = 0; i < nf; i++) {
			f = f * 10 + (frac[i] - '0');
			fdiv *= 10;
		}
	}

	if (*p) {
		char c = *p;

		if (c >= 'a' && c <= 'z')
			c -= 'a' - 'A';
		unit = c ? strchr(size_units, c) : NULL;
		if (unit) {
			for (const char *u = size_units; u <= unit; u++)
				mult *= 1024;
			p++;
			/* "K", "KB", "KiB" (and any case of them) mean 1024, as in LVM. */
			if ((p[0] == 'i' || p[0] == 'I') && (p[1] == 'B' || p[1] == 'b') && !p[2])
				p += 2;
			else if ((p[0] == 'B' || p[0] == 'b') && !p[1])
				p++;
		} else if ((c == 'B') && !p[1]) {
			p++;
		}
		if (*p)
			return bs_err(ctx, EINVAL, "invalid size '%s': unknown suffix '%s' (use K, M, G, T, P or E, optionally with iB or B)",
				      s, frac ? frac + nf : s + nd);
	}
	if (v > UINT64_MAX / mult)
		return bs_err(ctx, ERANGE, "size '%s' is too large", s);
	if (f) {
		/* f / fdiv < 1 of the unit: exact in 128 bits, whole bytes only. */
		unsigned __int128 part = (unsigned __int128)f * mult;

		if (part % fdiv)
			return bs_err(ctx, EINVAL, "invalid size '%s': not a whole number of bytes", s);
		part /= fdiv;
		if (v * mult > UINT64_MAX - (uint64_t)part)
			return bs_err(ctx, ERANGE, "size '%s' is too large", s);
		*bytes = v * mult + (uint64_t)part;
		return 0;
	}
	*bytes = v * mult;
	return 0;
}

int blksnap_check_size(struct blksnap_ctx *ctx, enum blksnap_size_use use,
		       uint64_t bytes)
{
	char a[16];

	blksnap_format_size(bytes, a, sizeof(a));
	switch (use) {
	case BLKSNAP_SIZE_CHUNK:
		if (!bs_is_pow2(bytes) || bytes < BS_CHUNK_MIN * BLKSNAP_SECTOR_SIZE ||
		    bytes > BS_CHUNK_MAX * BLKSNAP_SECTOR_SIZE)
			return bs_err(ctx, EINVAL, "chunk size %s: must be a power of two from 4 KiB to 64 MiB", a);
		return 0;
	case BLKSNAP_SIZE_TRACKING_BLOCK:
		if (!bs_is_pow2(bytes) || bytes < BS_TRACKING_MIN * BLKSNAP_SECTOR_SIZE)
			return bs_err(ctx, EINVAL, "tracking block %s: must be a power of two of at least 4 KiB", a);
		return 0;
	case BLKSNAP_SIZE_STORE:
		if (bytes % BLKSNAP_SECTOR_SIZE || bytes < BS_CHUNK_MIN * BLKSNAP_SECTOR_SIZE)
			return bs_err(ctx, EINVAL, "store size %s: must be a multiple of 512 bytes and at least 4 KiB", a);
		return 0;
	case BLKSNAP_SIZE_GROW:
		if (!bytes || bytes % 4096)
			return bs_err(ctx, EINVAL, "growth %s: must be a multiple of 4 KiB", a);
		return 0;
	}
	return bs_err(ctx, EINVAL, "unknown kind of size %d", (int)use);
}

char *blksnap_format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const names[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	unsigned int i = 0;
	uint64_t unit = 1;

	while (i < 6 && bytes / unit >= 1024) {
		unit *= 1024;
		i++;
	}
	if (bytes % unit == 0) {
		snprintf(buf, len, "%llu %s", (unsigned long long)(bytes / unit), names[i]);
	} else {
		/* One decimal, rounded down, so that "1.9 GiB" never means 2 GiB. */
		uint64_t whole = bytes / unit;
		uint64_t tenth = (bytes % unit) / (unit / 1024) * 10 / 1024;

		snprintf(buf, len, "%llu.%llu %s", (unsigned long long)whole,
			 (unsigned long long)tenth, names[i]);
	}
	return buf;
}
