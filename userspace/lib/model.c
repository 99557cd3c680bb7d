// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libblksnap: origins and snapshots from the device-mapper devices.
 *
 * An origin is a device with one blksnap-origin target. It was attached by
 * layering if its real device is BLKSNAP-REAL-<name>. An image is a device
 * with one blksnap-image target; its table names the real device (which
 * leads to the origin) and the store device, whose UUID
 * BLKSNAP-STORE-<snapshot> names the snapshot. A store without images is
 * still a snapshot (left over by a failure) so that destroy can remove it.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "sys.h"

const struct bs_model_ops bs_model_sys_ops = {
	.kname = bs_sysfs_kname,
	.loop_backing = bs_sysfs_loop_backing,
};

/*
 * The 1.0 layouts of the structs whose reserved words persistent CBT took:
 * the same size and the same place for every member (LIBBLKSNAP_1.0 users
 * allocate none of them, but index arrays of them).
 */
struct bs_origin_v10 {
	char *name, *path, *real_name, *real_path;
	uint32_t real_major, real_minor;
	bool layered;
	uint64_t size_sectors;
	bool status_valid;
	struct blksnap_origin_status status;
	char *snapshot, *image, *fs_type, *fs_uuid;
	uint64_t reserved[4];
};
_Static_assert(sizeof(struct blksnap_origin) == sizeof(struct bs_origin_v10),
	       "struct blksnap_origin keeps its size");
_Static_assert(offsetof(struct blksnap_origin, pcbt) == offsetof(struct bs_origin_v10, reserved) &&
	       sizeof(((struct blksnap_origin *)0)->pcbt) == sizeof(uint64_t[4]),
	       "persistence fills the reserved words exactly");
_Static_assert(sizeof(struct blksnap_origin_status) == 96 || sizeof(void *) != 8,
	       "struct blksnap_origin_status keeps its size");

struct bs_tab_entry_v10 {
	char *device;
	uint64_t tracking_block_bytes;
	unsigned int line;
	uint64_t reserved[2];
};
_Static_assert(sizeof(struct blksnap_tab_entry) == sizeof(struct bs_tab_entry_v10) &&
	       offsetof(struct blksnap_tab_entry, pcbt) == offsetof(struct bs_tab_entry_v10, reserved),
	       "struct blksnap_tab_entry keeps its layout");

void bs_origin_clear(struct blksnap_origin *o)
{
	free(o->name);
	free(o->path);
	free(o->real_name);
	free(o->real_path);
	free(o->snapshot);
	free(o->image);
	free(o->fs_type);
	free(o->fs_uuid);
	memset(o, 0, sizeof(*o));
}

void bs_snapshot_clear(struct blksnap_snapshot *s)
{
	free(s->name);
	free(s->store_name);
	free(s->store_path);
	for (size_t i = 0; i < s->n_parts; i++) {
		free(s->parts[i].device);
		free(s->parts[i].backing_file);
	}
	free(s->parts);
	for (size_t i = 0; i < s->n_images; i++) {
		free(s->images[i].name);
		free(s->images[i].path);
		free(s->images[i].origin);
		free(s->images[i].origin_path);
	}
	free(s->images);
	memset(s, 0, sizeof(*s));
}

void blksnap_list_free(struct blksnap_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n_origins; i++)
		bs_origin_clear(&l->origins[i]);
	for (size_t i = 0; i < l->n_snapshots; i++)
		bs_snapshot_clear(&l->snapshots[i]);
	free(l->origins);
	free(l->snapshots);
	free(l);
}

struct blksnap_origin *bs_list_origin(struct blksnap_list *l, const char *name)
{
	for (size_t i = 0; i < l->n_origins; i++)
		if (!strcmp(l->origins[i].name, name))
			return &l->origins[i];
	return NULL;
}

struct blksnap_snapshot *bs_list_snapshot(struct blksnap_list *l, const char *name)
{
	for (size_t i = 0; i < l->n_snapshots; i++)
		if (!strcmp(l->snapshots[i].name, name))
			return &l->snapshots[i];
	return NULL;
}

/* "/dev/mapper/<name>" for a dm device, "/dev/<kname>" otherwise. */
static char *model_dev_path(const struct bs_system *sys, const struct bs_model_ops *ops,
			    uint32_t major, uint32_t minor, char **name)
{
	const struct bs_sysdev *d = bs_system_by_devno(sys, major, minor);
	char kname[64];

	if (d) {
		if (name)
			*name = strdup(d->dm.name);
		return bs_strdupf("/dev/mapper/%s", d->dm.name);
	}
	if (ops->kname(major, minor, kname, sizeof(kname)))
		snprintf(kname, sizeof(kname), "block/%u:%u", major, minor);
	if (name)
		*name = strdup(kname);
	return bs_strdupf("/dev/%s", kname);
}

static int model_add_origin(struct blksnap_ctx *ctx, const struct bs_system *sys,
			    const struct bs_model_ops *ops, const struct bs_sysdev *d,
			    struct blksnap_origin *o)
{
	struct bs_origin_table t = { 0 };
	const struct bs_sysdev *real;

	o->name = strdup(d->dm.name);
	o->path = bs_strdupf("/dev/mapper/%s", d->dm.name);
	o->size_sectors = bs_sysdev_sectors(d);
	if (!bs_parse_origin_params(NULL, d->dm.targets[0].params, &t)) {
		o->real_major = t.major;
		o->real_minor = t.minor;
		o->real_path = model_dev_path(sys, ops, t.major, t.minor, &o->real_name);
		real = bs_system_by_devno(sys, t.major, t.minor);
		o->layered = real && bs_prefix(real->dm.uuid, BS_UUID_REAL) &&
			     !strcmp(bs_prefix(real->dm.uuid, BS_UUID_REAL), d->dm.name);
	}
	o->status.size = sizeof(o->status);
	if (d->status) {
		struct bs_origin_pcbt p;

		if (!bs_parse_origin_info(NULL, d->status, &o->status, &p)) {
			o->status_valid = true;
			o->pcbt.persistence = p.state;
			memcpy(o->pcbt.new_generation_reason, p.why,
			       sizeof(o->pcbt.new_generation_reason));
		}
	}
	if (!o->name || !o->path || (o->real_major && (!o->real_path || !o->real_name)))
		return bs_err(ctx, ENOMEM, "out of memory");
	return 0;
}

static struct blksnap_snapshot *model_snapshot(struct blksnap_list *l, const char *name)
{
	struct blksnap_snapshot *s = bs_list_snapshot(l, name), *v;

	if (s)
		return s;
	v = realloc(l->snapshots, (l->n_snapshots + 1) * sizeof(*v));
	if (!v)
		return NULL;
	l->snapshots = v;
	s = &v[l->n_snapshots];
	memset(s, 0, sizeof(*s));
	s->name = strdup(name);
	if (!s->name)
		return NULL;
	l->n_snapshots++;
	return s;
}

static int model_add_store(struct blksnap_ctx *ctx, const struct bs_system *sys,
			   const struct bs_model_ops *ops, const struct bs_sysdev *d,
			   struct blksnap_list *l)
{
	struct blksnap_snapshot *s = model_snapshot(l, bs_prefix(d->dm.uuid, BS_UUID_STORE));

	if (!s)
		return bs_err(ctx, ENOMEM, "out of memory");
	s->store_name = strdup(d->dm.name);
	s->store_path = bs_strdupf("/dev/mapper/%s", d->dm.name);
	s->store_sectors = bs_sysdev_sectors(d);
	if (!s->store_name || !s->store_path)
		return bs_err(ctx, ENOMEM, "out of memory");
	s->parts = calloc(d->dm.n_targets ? d->dm.n_targets : 1, sizeof(*s->parts));
	if (!s->parts)
		return bs_err(ctx, ENOMEM, "out of memory");
	for (size_t i = 0; i < d->dm.n_targets; i++) {
		struct blksnap_store_part *p = &s->parts[s->n_parts];
		uint32_t ma, mi;
		uint64_t off;

		if (strcmp(d->dm.targets[i].type, BS_TARGET_LINEAR) ||
		    bs_parse_linear_params(NULL, d->dm.targets[i].params, &ma, &mi, &off))
			continue;
		s->n_parts++;
		p->sectors = d->dm.targets[i].len;
		p->device = model_dev_path(sys, ops, ma, mi, NULL);
		if (!p->device || ops->loop_backing(ma, mi, &p->backing_file) == -ENOMEM)
			return bs_err(ctx, ENOMEM, "out of memory");
	}
	return 0;
}

static int model_add_image(struct blksnap_ctx *ctx, const struct bs_system *sys,
			   const struct bs_sysdev *d, struct blksnap_list *l)
{
	struct bs_image_table t;
	const struct bs_sysdev *store;
	struct blksnap_snapshot *s;
	struct blksnap_image *img;
	struct blksnap_origin *o = NULL;
	const char *snap = NULL;

	if (bs_parse_image_params(NULL, d->dm.targets[0].params, &t))
		return 0;	/* not one we can make sense of */
	store = bs_system_by_devno(sys, t.store_major, t.store_minor);
	if (store)
		snap = bs_prefix(store->dm.uuid, BS_UUID_STORE);
	if (!snap)
		snap = d->dm.name;	/* an image made by hand: its own group */
	s = model_snapshot(l, snap);
	if (!s)
		return bs_err(ctx, ENOMEM, "out of memory");
	img = realloc(s->images, (s->n_images + 1) * sizeof(*img));
	if (!img)
		return bs_err(ctx, ENOMEM, "out of memory");
	s->images = img;
	img += s->n_images++;
	memset(img, 0, sizeof(*img));
	for (size_t i = 0; i < l->n_origins; i++)
		if (l->origins[i].real_major == t.real_major &&
		    l->origins[i].real_minor == t.real_minor)
			o = &l->origins[i];
	img->name = strdup(d->dm.name);
	img->path = bs_strdupf("/dev/mapper/%s", d->dm.name);
	img->size_sectors = bs_sysdev_sectors(d);
	img->status.size = sizeof(img->status);
	if (d->status && !blksnap_parse_image_status(NULL, d->status, &img->status)) {
		img->status_valid = true;
		if (s->n_images == 1 || img->status.used_sectors > s->used_sectors)
			s->used_sectors = img->status.used_sectors;
	}
	if (!img->name || !img->path)
		return bs_err(ctx, ENOMEM, "out of memory");
	if (o) {
		img->origin = strdup(o->name);
		img->origin_path = strdup(o->path);
		free(o->snapshot);
		free(o->image);
		o->snapshot = strdup(s->name);
		o->image = strdup(d->dm.name);
		/*
		 * No take is possible while the image exists (the kernel refuses
		 * it), so the origin's last snapshot is this image's. A reset
		 * since leaves a generation without one: unknown.
		 */
		if (o->status_valid && o->status.snapshot_number) {
			img->snapshot_number = o->status.snapshot_number;
			memcpy(img->generation_uuid, o->status.generation_uuid,
			       sizeof(img->generation_uuid));
		}
		if (!img->origin || !img->origin_path || !o->snapshot || !o->image)
			return bs_err(ctx, ENOMEM, "out of memory");
	}
	return 0;
}

int bs_model_build(struct blksnap_ctx *ctx, const struct bs_system *sys,
		   const struct bs_model_ops *ops, struct blksnap_list **out)
{
	struct blksnap_list *l = calloc(1, sizeof(*l));
	int r = 0;

	*out = NULL;
	if (!l)
		return bs_err(ctx, ENOMEM, "out of memory");
	l->origins = calloc(sys->n ? sys->n : 1, sizeof(*l->origins));
	if (!l->origins) {
		r = bs_err(ctx, ENOMEM, "out of memory");
		goto fail;
	}
	/* Origins first: images refer to them. */
	for (size_t i = 0; i < sys->n && !r; i++) {
		const char *type = bs_sysdev_type(&sys->devs[i]);

		if (type && !strcmp(type, BS_TARGET_ORIGIN))
			r = model_add_origin(ctx, sys, ops, &sys->devs[i],
					     &l->origins[l->n_origins++]);
	}
	for (size_t i = 0; i < sys->n && !r; i++)
		if (bs_prefix(sys->devs[i].dm.uuid, BS_UUID_STORE))
			r = model_add_store(ctx, sys, ops, &sys->devs[i], l);
	for (size_t i = 0; i < sys->n && !r; i++) {
		const char *type = bs_sysdev_type(&sys->devs[i]);

		if (type && !strcmp(type, BS_TARGET_IMAGE))
			r = model_add_image(ctx, sys, &sys->devs[i], l);
	}
	if (r)
		goto fail;
	*out = l;
	return 0;
fail:
	blksnap_list_free(l);
	return r;
}
