// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libblksnap: reading the device-mapper devices of the system.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "sys.h"

int bs_check_targets(struct blksnap_ctx *ctx, bool need_image)
{
	static const char *const types[] = { BS_TARGET_ORIGIN, BS_TARGET_IMAGE };
	bool present[2];
	uint32_t v[3];
	int r;

	for (size_t i = 0; i < 2; i++) {
		r = bs_dm_target_version(ctx, types[i], &present[i], v);
		if (r)
			return r;
		if (present[i] && !bs_target_version_ok(v))
			return bs_err(ctx, EPROTONOSUPPORT, "the loaded dm-blksnap module's %s target is version %u.%u.%u; this libblksnap (%s) drives %d.%d and later %d.x: install the dm-blksnap of the same release",
				      types[i], v[0], v[1], v[2], blksnap_version(),
				      BLKSNAP_TARGET_MAJOR, BLKSNAP_TARGET_MINOR_MIN, BLKSNAP_TARGET_MAJOR);
	}
	if (need_image && !present[1]) {
		if (!present[0])
			return bs_err(ctx, EOPNOTSUPP, "the kernel has no blksnap targets: load the dm-blksnap module ('modprobe dm-blksnap') and attach the devices first");
		return bs_err(ctx, EOPNOTSUPP, "the loaded dm-blksnap module has no blksnap-image target: snapshots need a newer dm-blksnap");
	}
	if (ctx && present[0] && (present[1] || !need_image))
		ctx->targets_checked = true;
	return 0;
}

void bs_system_clear(struct bs_system *sys)
{
	for (size_t i = 0; i < sys->n; i++) {
		bs_dmdev_clear(&sys->devs[i].dm);
		free(sys->devs[i].status);
	}
	free(sys->devs);
	sys->devs = NULL;
	sys->n = 0;
}

const char *bs_sysdev_type(const struct bs_sysdev *d)
{
	return d && d->dm.n_targets == 1 ? d->dm.targets[0].type : NULL;
}

uint64_t bs_sysdev_sectors(const struct bs_sysdev *d)
{
	uint64_t s = 0;

	for (size_t i = 0; i < d->dm.n_targets; i++)
		s += d->dm.targets[i].len;
	return s;
}

const struct bs_sysdev *bs_system_by_name(const struct bs_system *sys, const char *name)
{
	for (size_t i = 0; i < sys->n; i++)
		if (!strcmp(sys->devs[i].dm.name, name))
			return &sys->devs[i];
	return NULL;
}

const struct bs_sysdev *bs_system_by_devno(const struct bs_system *sys,
					   uint32_t major, uint32_t minor)
{
	for (size_t i = 0; i < sys->n; i++)
		if (sys->devs[i].dm.major == major && sys->devs[i].dm.minor == minor)
			return &sys->devs[i];
	return NULL;
}

int bs_system_scan(struct blksnap_ctx *ctx, struct bs_system *sys)
{
	char **names;
	size_t n;
	int r;

	memset(sys, 0, sizeof(*sys));
	r = bs_dm_list(ctx, &names, &n);
	if (r)
		return r;
	sys->devs = calloc(n ? n : 1, sizeof(*sys->devs));
	if (!sys->devs) {
		bs_strv_free(names);
		return bs_err(ctx, ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		struct bs_sysdev *d = &sys->devs[sys->n];
		const char *type;
		struct bs_dmdev st;

		r = bs_dm_query(ctx, names[i], 0, 0, BS_DM_TABLE, &d->dm);
		if (r)
			goto fail;
		if (!d->dm.exists)	/* removed since the list */
			continue;
		sys->n++;
		type = bs_sysdev_type(d);
		if (!type || (strcmp(type, BS_TARGET_ORIGIN) && strcmp(type, BS_TARGET_IMAGE)))
			continue;
		/* Versions first: a status line of another version means nothing. */
		if (ctx && !ctx->targets_checked) {
			r = bs_check_targets(ctx, false);
			if (r)
				goto fail;
		}
		r = bs_dm_query(ctx, names[i], 0, 0, BS_DM_STATUS, &st);
		if (r)
			goto fail;
		if (st.exists && st.n_targets == 1) {
			d->status = st.targets[0].params;
			st.targets[0].params = NULL;
		}
		bs_dmdev_clear(&st);
	}
	bs_strv_free(names);
	return 0;
fail:
	bs_strv_free(names);
	bs_system_clear(sys);
	return r;
}
