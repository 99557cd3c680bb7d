// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libblksnap: parsing of the targets' INFO status lines.
 *
 * Both parsers are strict about the fields of the contract: the kernel
 * writes these lines, so anything that deviates (a missing field, a blank
 * too many, a number out of range) means that blksnapctl and the module
 * disagree, and guessing would hide it. Fields after them are ignored, as
 * dm's convention is: a later minor version of a target may append some.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

const char *blksnap_origin_state_name(enum blksnap_origin_state state)
{
	switch (state) {
	case BLKSNAP_ORIGIN_IDLE:
		return "-";
	case BLKSNAP_ORIGIN_SNAP:
		return "snap";
	case BLKSNAP_ORIGIN_MERGE:
		return "merge";
	case BLKSNAP_ORIGIN_MERGE_FAILED:
		return "merge_failed";
	}
	return "?";
}

const char *blksnap_image_state_name(enum blksnap_image_state state)
{
	switch (state) {
	case BLKSNAP_IMAGE_VALID:
		return "valid";
	case BLKSNAP_IMAGE_OVERFLOW:
		return "overflow";
	case BLKSNAP_IMAGE_FAILED:
		return "failed";
	case BLKSNAP_IMAGE_MERGING:
		return "merging";
	}
	return "?";
}

const char *blksnap_persistence_name(enum blksnap_persistence p)
{
	switch (p) {
	case BLKSNAP_PERSIST_NONE:
		return "none";
	case BLKSNAP_PERSIST_OK:
		return "ok";
	case BLKSNAP_PERSIST_FAILED:
		return "failed";
	case BLKSNAP_PERSIST_DETACHED:
		return "detached";
	}
	return "?";
}

/* "pcbt=<state> why=<reason>" at @w (@n words); 0 also when absent. */
static int status_parse_pcbt(char **w, size_t n, struct bs_origin_pcbt *p)
{
	const char *state, *why;

	memset(p, 0, sizeof(*p));
	if (!n || !(state = bs_prefix(w[0], "pcbt=")))
		return 0;	/* an origin without metadata, or later fields */
	if (n < 2 || !(why = bs_prefix(w[1], "why=")) || !*why)
		return -EINVAL;
	if (!strcmp(state, "ok"))
		p->state = BLKSNAP_PERSIST_OK;
	else if (!strcmp(state, "failed"))
		p->state = BLKSNAP_PERSIST_FAILED;
	else if (!strcmp(state, "detached"))
		p->state = BLKSNAP_PERSIST_DETACHED;
	else
		return -EINVAL;
	/* "-": the generation continued. Other words are opaque (cut to fit). */
	if (strcmp(why, "-"))
		snprintf(p->why, sizeof(p->why), "%s", why);
	return 0;
}

static bool status_uuid_ok(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
			return false;
		}
	}
	return true;
}

/* "<a>/<b>" */
static int status_parse_ratio(const char *s, uint64_t *a, uint64_t *b)
{
	const char *slash = strchr(s, '/');
	char *left;
	int r;

	if (!slash)
		return -EINVAL;
	left = strndup(s, slash - s);
	if (!left)
		return -ENOMEM;
	r = bs_parse_u64(left, a);
	free(left);
	if (!r)
		r = bs_parse_u64(slash + 1, b);
	return r;
}

/*
 * <tracking_block_sectors> <tracking_blocks> <generation_uuid> <change_number> <state>
 * state: "-" | "snap" | "merge <done_chunks>/<total_chunks>"
 *        | "merge_failed <done_chunks>/<total_chunks>"
 */
int blksnap_parse_origin_status(struct blksnap_ctx *ctx, const char *line,
				struct blksnap_origin_status *st)
{
	return bs_parse_origin_info(ctx, line, st, NULL);
}

/* ... [pcbt=<ok|failed|detached> why=<reason>] (origins with metadata) */
int bs_parse_origin_info(struct blksnap_ctx *ctx, const char *line,
			 struct blksnap_origin_status *st, struct bs_origin_pcbt *pcbt)
{
	struct blksnap_origin_status s = { .size = sizeof(s) };
	struct bs_origin_pcbt p;
	size_t used = 5;
	uint64_t change;
	char **w;
	size_t n;
	int r;

	r = bs_split_words(line, &w, &n);
	if (r == -ENOMEM)
		return bs_err(ctx, ENOMEM, "out of memory");
	if (r || n < 5)
		goto bad;
	if (bs_parse_u64(w[0], &s.tracking_block_sectors) ||
	    !bs_is_pow2(s.tracking_block_sectors) || s.tracking_block_sectors < BS_TRACKING_MIN)
		goto bad;
	if (bs_parse_u64(w[1], &s.tracking_blocks) || s.tracking_blocks == 0)
		goto bad;
	if (!status_uuid_ok(w[2]))
		goto bad;
	memcpy(s.generation_uuid, w[2], 37);
	if (bs_parse_u64(w[3], &change) || change < 1 || change > 255)
		goto bad;
	s.change_number = change;
	/* Each take numbers its snapshot with C, then increments C. */
	s.snapshot_number = change - 1;

	if (!strcmp(w[4], "-")) {
		s.state = BLKSNAP_ORIGIN_IDLE;
	} else if (!strcmp(w[4], "snap")) {
		s.state = BLKSNAP_ORIGIN_SNAP;
	} else if ((!strcmp(w[4], "merge") || !strcmp(w[4], "merge_failed")) && n >= 6) {
		s.state = w[4][5] ? BLKSNAP_ORIGIN_MERGE_FAILED : BLKSNAP_ORIGIN_MERGE;
		if (status_parse_ratio(w[5], &s.merge_done_chunks, &s.merge_total_chunks) ||
		    s.merge_done_chunks > s.merge_total_chunks)
			goto bad;
		used = 6;
	} else {
		goto bad;
	}
	if (status_parse_pcbt(w + used, n - used, &p))
		goto bad;
	bs_strv_free(w);
	r = bs_copy_out(ctx, st, &s, sizeof(s), sizeof(s), "blksnap_origin_status");
	if (!r && pcbt)
		*pcbt = p;
	return r;
bad:
	bs_strv_free(w);
	return bs_err(ctx, EINVAL, "unexpected blksnap-origin status line '%s' (does the module match this blksnapctl?)", line);
}

/*
 * <used_sectors>/<store_sectors> <chunk_sectors> <copied_chunks> <state>
 * state: "valid" | "overflow" | "failed" | "merging"
 */
int blksnap_parse_image_status(struct blksnap_ctx *ctx, const char *line,
			       struct blksnap_image_status *st)
{
	struct blksnap_image_status s = { .size = sizeof(s) };
	char **w;
	size_t n;
	int r;

	r = bs_split_words(line, &w, &n);
	if (r == -ENOMEM)
		return bs_err(ctx, ENOMEM, "out of memory");
	if (r || n < 4)
		goto bad;
	r = status_parse_ratio(w[0], &s.used_sectors, &s.store_sectors);
	if (r == -ENOMEM) {
		bs_strv_free(w);
		return bs_err(ctx, ENOMEM, "out of memory");
	}
	if (r || s.used_sectors > s.store_sectors)
		goto bad;
	if (bs_parse_u64(w[1], &s.chunk_sectors) || !bs_is_pow2(s.chunk_sectors) ||
	    s.chunk_sectors < BS_CHUNK_MIN || s.chunk_sectors > BS_CHUNK_MAX)
		goto bad;
	if (bs_parse_u64(w[2], &s.copied_chunks))
		goto bad;
	if (!strcmp(w[3], "valid"))
		s.state = BLKSNAP_IMAGE_VALID;
	else if (!strcmp(w[3], "overflow"))
		s.state = BLKSNAP_IMAGE_OVERFLOW;
	else if (!strcmp(w[3], "failed"))
		s.state = BLKSNAP_IMAGE_FAILED;
	else if (!strcmp(w[3], "merging"))
		s.state = BLKSNAP_IMAGE_MERGING;
	else
		goto bad;
	bs_strv_free(w);
	return bs_copy_out(ctx, st, &s, sizeof(s), sizeof(s), "blksnap_image_status");
bad:
	bs_strv_free(w);
	return bs_err(ctx, EINVAL, "unexpected blksnap-image status line '%s' (does the module match this blksnapctl?)", line);
}
