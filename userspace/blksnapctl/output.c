// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * blksnapctl: printing results, as text for people or as JSON for scripts.
 * The JSON field names are snake_case and stable; sizes are in sectors.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "json.h"

static const char *sz(uint64_t sectors, char *buf)
{
	return blksnap_format_size(sectors * BLKSNAP_SECTOR_SIZE, buf, 16);
}

/*---- JSON objects ----*/

/* The last snapshot's number; null when there is none (0). */
static void json_snapshot_number(struct bs_json *j, unsigned int n)
{
	if (n)
		bs_json_u64(j, "snapshot_number", n);
	else
		bs_json_null(j, "snapshot_number");
}

static void json_origin_status(struct bs_json *j, const struct blksnap_origin_status *st,
			       bool valid)
{
	if (!valid) {
		bs_json_null(j, "tracking_block_sectors");
		bs_json_null(j, "tracking_blocks");
		bs_json_null(j, "generation_uuid");
		bs_json_null(j, "change_number");
		bs_json_null(j, "snapshot_number");
		bs_json_null(j, "state");
		bs_json_null(j, "merge");
		return;
	}
	bs_json_u64(j, "tracking_block_sectors", st->tracking_block_sectors);
	bs_json_u64(j, "tracking_blocks", st->tracking_blocks);
	bs_json_string(j, "generation_uuid", st->generation_uuid);
	bs_json_u64(j, "change_number", st->change_number);
	json_snapshot_number(j, st->snapshot_number);
	bs_json_string(j, "state", blksnap_origin_state_name(st->state));
	if (st->state == BLKSNAP_ORIGIN_MERGE || st->state == BLKSNAP_ORIGIN_MERGE_FAILED) {
		bs_json_begin_object(j, "merge");
		bs_json_u64(j, "done_chunks", st->merge_done_chunks);
		bs_json_u64(j, "total_chunks", st->merge_total_chunks);
		bs_json_end_object(j);
	} else {
		bs_json_null(j, "merge");
	}
}

/* "persistent": null for tracking in memory, else its state and the new generation's reason. */
static void json_persistent(struct bs_json *j, const struct blksnap_origin *o)
{
	if (!o->status_valid || o->pcbt.persistence == BLKSNAP_PERSIST_NONE) {
		bs_json_null(j, "persistent");
		return;
	}
	bs_json_begin_object(j, "persistent");
	bs_json_string(j, "state", blksnap_persistence_name(o->pcbt.persistence));
	bs_json_string(j, "new_generation_reason",
		       o->pcbt.new_generation_reason[0] ? o->pcbt.new_generation_reason : NULL);
	bs_json_end_object(j);
}

static void json_origin(struct bs_json *j, const char *key, const struct blksnap_origin *o)
{
	bs_json_begin_object(j, key);
	bs_json_string(j, "name", o->name);
	bs_json_string(j, "path", o->path);
	bs_json_string(j, "real_name", o->real_name);
	bs_json_string(j, "real_path", o->real_path);
	bs_json_bool(j, "layered", o->layered);
	bs_json_u64(j, "size_sectors", o->size_sectors);
	bs_json_string(j, "fs_type", o->fs_type);
	bs_json_string(j, "fs_uuid", o->fs_uuid);
	json_origin_status(j, &o->status, o->status_valid);
	json_persistent(j, o);
	bs_json_string(j, "snapshot", o->snapshot);
	bs_json_string(j, "image", o->image);
	bs_json_end_object(j);
}

/*
 * A loop store's file as the kernel names it: an unlinked one (blksnapctl's
 * own, in a directory) ends in " (deleted)". JSON gets the path alone and
 * "backing_file_deleted", so that a tool can use the path as it is.
 */
static void json_backing_file(struct bs_json *j, const char *file)
{
	static const char mark[] = " (deleted)";
	size_t len = file ? strlen(file) : 0, m = sizeof(mark) - 1;
	char *path;

	if (!file) {
		bs_json_null(j, "backing_file");
		bs_json_null(j, "backing_file_deleted");
		return;
	}
	if (len <= m || strcmp(file + len - m, mark)) {
		bs_json_string(j, "backing_file", file);
		bs_json_bool(j, "backing_file_deleted", false);
		return;
	}
	path = strndup(file, len - m);
	if (!path) {
		j->error = true;
		return;
	}
	bs_json_string(j, "backing_file", path);
	bs_json_bool(j, "backing_file_deleted", true);
	free(path);
}

static void json_snapshot(struct bs_json *j, const char *key, const struct blksnap_snapshot *s)
{
	bs_json_begin_object(j, key);
	bs_json_string(j, "name", s->name);
	bs_json_begin_object(j, "store");
	bs_json_string(j, "name", s->store_name);
	bs_json_string(j, "path", s->store_path);
	bs_json_u64(j, "size_sectors", s->store_sectors);
	bs_json_u64(j, "used_sectors", s->used_sectors);
	bs_json_begin_array(j, "parts");
	for (size_t i = 0; i < s->n_parts; i++) {
		bs_json_begin_object(j, NULL);
		bs_json_string(j, "device", s->parts[i].device);
		bs_json_u64(j, "sectors", s->parts[i].sectors);
		json_backing_file(j, s->parts[i].backing_file);
		bs_json_end_object(j);
	}
	bs_json_end_array(j);
	bs_json_end_object(j);
	bs_json_begin_array(j, "images");
	for (size_t i = 0; i < s->n_images; i++) {
		const struct blksnap_image *img = &s->images[i];

		bs_json_begin_object(j, NULL);
		bs_json_string(j, "name", img->name);
		bs_json_string(j, "path", img->path);
		bs_json_string(j, "origin", img->origin);
		bs_json_string(j, "origin_path", img->origin_path);
		bs_json_u64(j, "size_sectors", img->size_sectors);
		if (img->status_valid) {
			bs_json_u64(j, "chunk_sectors", img->status.chunk_sectors);
			bs_json_u64(j, "copied_chunks", img->status.copied_chunks);
			bs_json_string(j, "state", blksnap_image_state_name(img->status.state));
		} else {
			bs_json_null(j, "chunk_sectors");
			bs_json_null(j, "copied_chunks");
			bs_json_null(j, "state");
		}
		json_snapshot_number(j, img->snapshot_number);
		bs_json_string(j, "generation_uuid",
			       img->generation_uuid[0] ? img->generation_uuid : NULL);
		bs_json_end_object(j);
	}
	bs_json_end_array(j);
	bs_json_end_object(j);
}

static int json_done(struct bs_json *j)
{
	int r = bs_json_finish(j);

	return r == -EIO ? -EIO : r;
}

/*---- Text ----*/

static void text_origin_status(FILE *f, const struct blksnap_origin *o)
{
	char a[16];

	if (!o->status_valid) {
		fprintf(f, "status:          unreadable\n");
		return;
	}
	fprintf(f, "tracking block:  %s (%" PRIu64 " sectors)\n",
		sz(o->status.tracking_block_sectors, a), o->status.tracking_block_sectors);
	fprintf(f, "tracking blocks: %" PRIu64 "\n", o->status.tracking_blocks);
	fprintf(f, "generation:      %s\n", o->status.generation_uuid);
	if (o->status.snapshot_number)
		fprintf(f, "last snapshot:   %u\n", o->status.snapshot_number);
	else
		fprintf(f, "last snapshot:   none in this generation\n");
	fprintf(f, "change number:   %u (the next snapshot's number)\n", o->status.change_number);
	if (o->status.state == BLKSNAP_ORIGIN_MERGE ||
	    o->status.state == BLKSNAP_ORIGIN_MERGE_FAILED)
		fprintf(f, "state:           %s %" PRIu64 "/%" PRIu64 " chunks\n",
			blksnap_origin_state_name(o->status.state),
			o->status.merge_done_chunks, o->status.merge_total_chunks);
	else
		fprintf(f, "state:           %s\n", blksnap_origin_state_name(o->status.state));
	if (o->pcbt.persistence == BLKSNAP_PERSIST_NONE) {
		fprintf(f, "persistent:      no\n");
		return;
	}
	fprintf(f, "persistent:      yes (%s)\n", blksnap_persistence_name(o->pcbt.persistence));
	if (o->pcbt.new_generation_reason[0])
		fprintf(f, "new generation:  %s (started at the last load: the next backup is full)\n",
			o->pcbt.new_generation_reason);
}

int cli_print_origin(FILE *f, const struct blksnap_origin *o, bool json)
{
	char a[16];

	if (json) {
		struct bs_json j;

		bs_json_init(&j, f, true);
		json_origin(&j, NULL, o);
		return json_done(&j);
	}
	fprintf(f, "origin:          %s\n", o->name);
	fprintf(f, "path:            %s\n", o->path);
	fprintf(f, "real device:     %s\n", o->real_path ? o->real_path : "?");
	fprintf(f, "size:            %s (%" PRIu64 " sectors)\n", sz(o->size_sectors, a), o->size_sectors);
	if (o->fs_type)
		fprintf(f, "filesystem:      %s%s%s\n", o->fs_type,
			o->fs_uuid ? " " : "", o->fs_uuid ? o->fs_uuid : "");
	text_origin_status(f, o);
	if (o->snapshot)
		fprintf(f, "snapshot:        %s (image /dev/mapper/%s)\n", o->snapshot, o->image);
	return ferror(f) ? -EIO : 0;
}

int cli_print_snapshot(FILE *f, const struct blksnap_snapshot *s, bool json)
{
	char a[16], b[16];

	if (json) {
		struct bs_json j;

		bs_json_init(&j, f, true);
		json_snapshot(&j, NULL, s);
		return json_done(&j);
	}
	fprintf(f, "snapshot:  %s\n", s->name);
	if (s->store_name)
		fprintf(f, "store:     %s, %s used of %s (%" PRIu64 "%%)\n", s->store_path,
			sz(s->used_sectors, a), sz(s->store_sectors, b),
			s->store_sectors ? s->used_sectors * 100 / s->store_sectors : 0);
	else
		fprintf(f, "store:     missing\n");
	for (size_t i = 0; i < s->n_parts; i++) {
		fprintf(f, "  part:    %s, %s", s->parts[i].device, sz(s->parts[i].sectors, a));
		if (s->parts[i].backing_file)
			fprintf(f, ", file %s", s->parts[i].backing_file);
		fputc('\n', f);
	}
	for (size_t i = 0; i < s->n_images; i++) {
		const struct blksnap_image *img = &s->images[i];

		fprintf(f, "image:     %s of %s", img->path, img->origin ? img->origin : "?");
		if (img->status_valid)
			fprintf(f, ", %s, %" PRIu64 " chunk%s of %s copied",
				blksnap_image_state_name(img->status.state),
				img->status.copied_chunks, img->status.copied_chunks == 1 ? "" : "s",
				sz(img->status.chunk_sectors, a));
		fputc('\n', f);
		if (img->snapshot_number)
			fprintf(f, "  cbt:     snapshot number %u, generation %s\n",
				img->snapshot_number, img->generation_uuid);
	}
	return ferror(f) ? -EIO : 0;
}

int cli_print_created(FILE *f, const struct blksnap_snapshot *s, bool json)
{
	if (json)
		return cli_print_snapshot(f, s, true);
	/* The path first: "read -r path rest" and "awk '{print $1}'" keep working. */
	fprintf(f, "%s\n", s->name);
	for (size_t i = 0; i < s->n_images; i++) {
		const struct blksnap_image *img = &s->images[i];

		if (img->snapshot_number)
			fprintf(f, "%s generation_uuid=%s snapshot_number=%u\n", img->path,
				img->generation_uuid, img->snapshot_number);
		else
			fprintf(f, "%s generation_uuid=- snapshot_number=-\n", img->path);
	}
	return ferror(f) ? -EIO : 0;
}

int cli_print_list(FILE *f, const struct blksnap_list *l, bool json)
{
	size_t wname = strlen("ORIGIN"), wreal = strlen("REAL DEVICE");
	char a[16], b[16];

	if (json) {
		struct bs_json j;

		bs_json_init(&j, f, true);
		bs_json_begin_object(&j, NULL);
		bs_json_begin_array(&j, "origins");
		for (size_t i = 0; i < l->n_origins; i++)
			json_origin(&j, NULL, &l->origins[i]);
		bs_json_end_array(&j);
		bs_json_begin_array(&j, "snapshots");
		for (size_t i = 0; i < l->n_snapshots; i++)
			json_snapshot(&j, NULL, &l->snapshots[i]);
		bs_json_end_array(&j);
		bs_json_end_object(&j);
		return json_done(&j);
	}
	if (!l->n_origins && !l->n_snapshots) {
		fprintf(f, "no attached devices and no snapshots\n");
		return ferror(f) ? -EIO : 0;
	}
	/* Columns as wide as their longest entry: dm names can be long. */
	for (size_t i = 0; i < l->n_origins; i++) {
		const struct blksnap_origin *o = &l->origins[i];

		if (strlen(o->name) > wname)
			wname = strlen(o->name);
		if (o->real_path && strlen(o->real_path) > wreal)
			wreal = strlen(o->real_path);
	}
	/* LAST: the last snapshot's CBT number; NEXT: change_number, the next one's. */
	fprintf(f, "%-*s %-*s %-10s %-9s %-4s %-4s %-5s %s\n", (int)wname, "ORIGIN",
		(int)wreal, "REAL DEVICE", "SIZE", "CBT BLOCK", "LAST", "NEXT", "STATE", "SNAPSHOT");
	for (size_t i = 0; i < l->n_origins; i++) {
		const struct blksnap_origin *o = &l->origins[i];

		fprintf(f, "%-*s %-*s %-10s ", (int)wname, o->name, (int)wreal,
			o->real_path ? o->real_path : "?", sz(o->size_sectors, a));
		if (o->status_valid) {
			char last[12] = "-";

			if (o->status.snapshot_number)
				snprintf(last, sizeof(last), "%u", o->status.snapshot_number);
			fprintf(f, "%-9s %-4s %-4u %-5s ", sz(o->status.tracking_block_sectors, b),
				last, o->status.change_number,
				blksnap_origin_state_name(o->status.state));
		} else {
			fprintf(f, "%-9s %-4s %-4s %-5s ", "?", "?", "?", "?");
		}
		fprintf(f, "%s\n", o->snapshot ? o->snapshot : "-");
	}
	if (l->n_snapshots)
		fprintf(f, "\n%-24s %-24s %s\n", "SNAPSHOT", "STORE USED / SIZE", "IMAGES");
	for (size_t i = 0; i < l->n_snapshots; i++) {
		const struct blksnap_snapshot *s = &l->snapshots[i];
		char use[40];

		snprintf(use, sizeof(use), "%s / %s", sz(s->used_sectors, a), sz(s->store_sectors, b));
		fprintf(f, "%-24s %-24s", s->name, use);
		for (size_t k = 0; k < s->n_images; k++)
			fprintf(f, " %s(%s)", s->images[k].name,
				s->images[k].status_valid ?
				blksnap_image_state_name(s->images[k].status.state) : "?");
		fputc('\n', f);
	}
	return ferror(f) ? -EIO : 0;
}

int cli_print_cbt_info(FILE *f, const struct blksnap_origin *o, bool json)
{
	if (json) {
		struct bs_json j;

		bs_json_init(&j, f, true);
		bs_json_begin_object(&j, NULL);
		bs_json_string(&j, "name", o->name);
		bs_json_string(&j, "origin", o->name);	/* 0.2.0's name of "name" */
		bs_json_string(&j, "path", o->path);
		json_origin_status(&j, &o->status, o->status_valid);
		json_persistent(&j, o);
		bs_json_end_object(&j);
		return json_done(&j);
	}
	fprintf(f, "origin:          %s\n", o->path);
	text_origin_status(f, o);
	return ferror(f) ? -EIO : 0;
}

int cli_print_changes(FILE *f, const char *device,
		      const struct blksnap_origin_status *st, unsigned int since,
		      const struct blksnap_extent *ext, size_t n, bool json)
{
	uint64_t total = 0;

	for (size_t i = 0; i < n; i++)
		total += ext[i].sectors;
	if (json) {
		struct bs_json j;

		bs_json_init(&j, f, true);
		bs_json_begin_object(&j, NULL);
		bs_json_string(&j, "device", device);
		bs_json_string(&j, "generation_uuid", st->generation_uuid);
		bs_json_u64(&j, "change_number", st->change_number);
		json_snapshot_number(&j, st->snapshot_number);
		bs_json_u64(&j, "since", since);
		bs_json_u64(&j, "tracking_block_sectors", st->tracking_block_sectors);
		bs_json_u64(&j, "changed_sectors", total);
		bs_json_begin_array(&j, "extents");
		for (size_t i = 0; i < n; i++) {
			bs_json_begin_object(&j, NULL);
			bs_json_u64(&j, "start", ext[i].start);
			bs_json_u64(&j, "sectors", ext[i].sectors);
			bs_json_end_object(&j);
		}
		bs_json_end_array(&j);
		bs_json_end_object(&j);
		return json_done(&j);
	}
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%" PRIu64 "+%" PRIu64 "\n", ext[i].start, ext[i].sectors);
	return ferror(f) ? -EIO : 0;
}
