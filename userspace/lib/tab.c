// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libblksnap: /etc/blksnap/blksnaptab, the devices to attach at boot, and
 * attaching them (all, or the entries that name one device as it appears).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <blkid/blkid.h>

#include "ops.h"

#define TAB_MAX_BYTES (1 << 20)

#ifndef BLKSNAP_RUN_DIR
#define BLKSNAP_RUN_DIR "/run/blksnap"
#endif
#define DETACHED_DIR BLKSNAP_RUN_DIR "/detached"

/*---- Parsing ----*/

/* The blkid tags a line may name a device by. */
static const char *const tab_tags[] = { "UUID", "LABEL", "PARTUUID", "PARTLABEL" };
#define N_TAB_TAGS (sizeof(tab_tags) / sizeof(tab_tags[0]))

/* The tag of "TAG=value" (its index), -1 for a path or name, -2 if unknown. */
static int tab_tag(const char *spec, const char **value)
{
	const char *eq = strchr(spec, '=');
	const char *slash = strchr(spec, '/');

	if (!eq || (slash && slash < eq))
		return -1;
	*value = eq + 1;
	for (size_t i = 0; i < N_TAB_TAGS; i++)
		if (strlen(tab_tags[i]) == (size_t)(eq - spec) &&
		    !strncmp(spec, tab_tags[i], eq - spec))
			return (int)i;
	return -2;
}

static void tab_entry_clear(struct blksnap_tab_entry *e);

void blksnap_tab_free(struct blksnap_tab *tab)
{
	if (!tab)
		return;
	for (size_t i = 0; i < tab->n; i++)
		tab_entry_clear(&tab->entries[i]);
	free(tab->entries);
	free(tab);
}

static void tab_entry_clear(struct blksnap_tab_entry *e)
{
	free(e->device);
	free(e->pcbt.cbt_metadata);
	free(e->pcbt.cbt_metadata_id);
	memset(e, 0, sizeof(*e));
}

/* A string option's value into *@dst: once, not empty. */
static int tab_string(struct blksnap_ctx *ctx, const char *name, unsigned int line,
		      const char *opt, const char *val, char **dst)
{
	if (*dst)
		return bs_err(ctx, EINVAL, "%s:%u: %s is given twice", name, line, opt);
	if (!*val)
		return bs_err(ctx, EINVAL, "%s:%u: %s has no value", name, line, opt);
	*dst = strdup(val);
	return *dst ? 0 : bs_err(ctx, ENOMEM, "out of memory");
}

/*
 * "tracking-block=SIZE,cbt-metadata=DEV,cbt-metadata-id=ID" (any of
 * them, in any order) or "-" into @e.
 */
static int tab_options(struct blksnap_ctx *ctx, const char *name, unsigned int line,
		       const char *opts, struct blksnap_tab_entry *e)
{
	char *copy, *opt, *save = NULL;
	bool tracking_seen = false;
	const char *val;
	int r = 0;

	if (!strcmp(opts, "-"))
		return 0;
	copy = strdup(opts);
	if (!copy)
		return bs_err(ctx, ENOMEM, "out of memory");
	for (opt = strtok_r(copy, ",", &save); !r && opt; opt = strtok_r(NULL, ",", &save)) {
		uint64_t bytes;

		if ((val = bs_prefix(opt, "cbt-metadata="))) {
			r = tab_string(ctx, name, line, "cbt-metadata", val, &e->pcbt.cbt_metadata);
			continue;
		}
		if ((val = bs_prefix(opt, "cbt-metadata-id="))) {
			r = tab_string(ctx, name, line, "cbt-metadata-id", val,
				       &e->pcbt.cbt_metadata_id);
			if (!r && bs_check_metadata_id(ctx, val))
				r = bs_err_prefix(ctx, -EINVAL, "%s:%u: cbt-metadata-id", name, line);
			continue;
		}
		val = bs_prefix(opt, "tracking-block=");
		if (!val) {
			r = bs_err(ctx, EINVAL, "%s:%u: unknown option '%s' (known: tracking-block=SIZE, cbt-metadata=DEV|DIR, cbt-metadata-id=ID)",
				   name, line, opt);
			break;
		}
		if (tracking_seen) {
			r = bs_err(ctx, EINVAL, "%s:%u: tracking-block is given twice", name, line);
			break;
		}
		tracking_seen = true;
		if (blksnap_parse_size(ctx, val, &bytes)) {
			r = bs_err_prefix(ctx, -EINVAL, "%s:%u: tracking-block", name, line);
			break;
		}
		if (bytes < 4096 || !bs_is_pow2(bytes)) {
			r = bs_err(ctx, EINVAL, "%s:%u: tracking-block=%s: a power of two of at least 4K, please",
				   name, line, val);
			break;
		}
		e->tracking_block_bytes = bytes;
	}
	if (!r && e->pcbt.cbt_metadata_id && !e->pcbt.cbt_metadata)
		r = bs_err(ctx, EINVAL, "%s:%u: cbt-metadata-id goes with cbt-metadata=DEV|DIR",
			   name, line);
	free(copy);
	return r;
}

/* One line without its newline; a comment, blank or entry. */
static int tab_line(struct blksnap_ctx *ctx, const char *name, unsigned int line,
		    char *text, struct blksnap_tab *tab)
{
	char *fields[3], *p = text, *hash;
	struct blksnap_tab_entry e = { .line = line };
	const char *value;
	size_t n = 0;
	void *v;
	int r;

	hash = strchr(text, '#');
	if (hash)
		*hash = '\0';
	while (n < 3) {
		while (*p == ' ' || *p == '\t' || *p == '\r')
			p++;
		if (!*p)
			break;
		fields[n++] = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\r')
			p++;
		if (*p)
			*p++ = '\0';
	}
	if (!n)
		return 0;
	if (n > 2)
		return bs_err(ctx, EINVAL, "%s:%u: '%s': expected <device> [<options>]",
			      name, line, fields[2]);
	r = tab_tag(fields[0], &value);
	if (r == -2)
		return bs_err(ctx, EINVAL, "%s:%u: '%s': unknown tag (UUID=, LABEL=, PARTUUID= or PARTLABEL=)",
			      name, line, fields[0]);
	if (r >= 0 && !*value)
		return bs_err(ctx, EINVAL, "%s:%u: %s has no value", name, line, fields[0]);
	if (n == 2) {
		r = tab_options(ctx, name, line, fields[1], &e);
		if (r) {
			tab_entry_clear(&e);
			return r;
		}
	}
	for (size_t i = 0; i < tab->n; i++)
		if (!strcmp(tab->entries[i].device, fields[0])) {
			tab_entry_clear(&e);
			return bs_err(ctx, EINVAL, "%s:%u: %s is listed on line %u already",
				      name, line, fields[0], tab->entries[i].line);
		}
	e.device = strdup(fields[0]);
	v = e.device ? realloc(tab->entries, (tab->n + 1) * sizeof(e)) : NULL;
	if (!v) {
		tab_entry_clear(&e);
		return bs_err(ctx, ENOMEM, "out of memory");
	}
	tab->entries = v;
	tab->entries[tab->n++] = e;
	return 0;
}

int blksnap_tab_parse(struct blksnap_ctx *ctx, const char *text, const char *name,
		      struct blksnap_tab **out)
{
	struct blksnap_tab *tab;
	unsigned int line = 0;
	char *copy, *p, *nl;
	int r = 0;

	*out = NULL;
	if (!name)
		name = BLKSNAP_TAB_DEFAULT;
	tab = calloc(1, sizeof(*tab));
	copy = strdup(text);
	if (!tab || !copy) {
		free(tab);
		free(copy);
		return bs_err(ctx, ENOMEM, "out of memory");
	}
	for (p = copy; !r && *p; p = nl ? nl + 1 : p + strlen(p)) {
		nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		r = tab_line(ctx, name, ++line, p, tab);
	}
	free(copy);
	if (r) {
		blksnap_tab_free(tab);
		return r;
	}
	*out = tab;
	return 0;
}

int blksnap_tab_read(struct blksnap_ctx *ctx, const char *path,
		     struct blksnap_tab **out)
{
	char *buf;
	size_t n;
	FILE *f;
	int r;

	*out = NULL;
	if (!path)
		path = BLKSNAP_TAB_DEFAULT;
	f = fopen(path, "re");
	if (!f)
		return bs_err(ctx, errno, "cannot read %s: %s", path, strerror(errno));
	buf = malloc(TAB_MAX_BYTES + 1);
	if (!buf) {
		fclose(f);
		return bs_err(ctx, ENOMEM, "out of memory");
	}
	n = fread(buf, 1, TAB_MAX_BYTES + 1, f);
	if (ferror(f))
		r = bs_err(ctx, EIO, "cannot read %s", path);
	else if (n > TAB_MAX_BYTES)
		r = bs_err(ctx, EFBIG, "%s is larger than 1 MiB", path);
	else if (memchr(buf, '\0', n))
		r = bs_err(ctx, EINVAL, "%s is not a text file", path);
	else {
		buf[n] = '\0';
		r = blksnap_tab_parse(ctx, buf, path, out);
	}
	fclose(f);
	free(buf);
	return r;
}

/*---- Matching devices ----*/

/* Whether @kname is a device-mapper device that blksnapctl made. */
static bool tab_is_blksnap(const char *kname)
{
	char path[300], uuid[160] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/sys/class/block/%s/dm/uuid", kname);
	f = fopen(path, "re");
	if (!f)
		return false;
	if (!fgets(uuid, sizeof(uuid), f))
		uuid[0] = '\0';
	fclose(f);
	return bs_prefix(uuid, "BLKSNAP-") != NULL;
}

/*
 * Whether another device is stacked on @kname (a multipath map over a
 * path, a dm-crypt mapping, an md array): that device is the one to
 * attach, not this one. Holders made by blksnapctl do not count.
 */
static bool tab_has_holder(const char *kname)
{
	char path[300];
	struct dirent *de;
	bool held = false;
	DIR *dir;

	snprintf(path, sizeof(path), "/sys/class/block/%s/holders", kname);
	dir = opendir(path);
	if (!dir)
		return false;
	while (!held && (de = readdir(dir)))
		held = de->d_name[0] != '.' && !tab_is_blksnap(de->d_name);
	closedir(dir);
	return held;
}

/* Whether the device @path carries @tag=@value (a low-level probe). */
static bool tab_probe_tag(const char *path, const char *tag, const char *value)
{
	const char *v = NULL;
	blkid_probe pr;
	bool match = false;

	pr = blkid_new_probe_from_filename(path);
	if (!pr)
		return false;
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_UUID | BLKID_SUBLKS_LABEL);
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
	if (blkid_do_safeprobe(pr) == 0) {
		/* A partition's entry: PART_ENTRY_UUID, PART_ENTRY_NAME. */
		const char *key = !strcmp(tag, "PARTUUID") ? "PART_ENTRY_UUID" :
				  !strcmp(tag, "PARTLABEL") ? "PART_ENTRY_NAME" : tag;

		match = !blkid_probe_lookup_value(pr, key, &v, NULL) && v &&
			!strcmp(v, value);
	}
	blkid_free_probe(pr);
	return match;
}

/* The first line of /sys/class/block/@kname/@attr, "" if there is none. */
static void tab_sysfs(const char *kname, const char *attr, char *buf, size_t len)
{
	char path[300];
	FILE *f;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "/sys/class/block/%s/%s", kname, attr);
	f = fopen(path, "re");
	if (!f)
		return;
	if (!fgets(buf, len, f))
		buf[0] = '\0';
	fclose(f);
}

/*
 * Whether a device may be an entry's: not empty, not ours, not held, and
 * not a suspended dm device (reading it to probe would wait for its resume).
 */
static bool tab_candidate(const char *kname)
{
	char size[32], suspended[8];

	tab_sysfs(kname, "size", size, sizeof(size));
	tab_sysfs(kname, "dm/suspended", suspended, sizeof(suspended));
	return strtoull(size, NULL, 10) > 0 && suspended[0] != '1' &&
	       !tab_is_blksnap(kname) && !tab_has_holder(kname);
}

/*
 * The one device that carries a tag: every block device is probed, those
 * made by blksnapctl (images carry their origin's UUID) and those another
 * device is stacked on are left out.
 */
static int tab_find_tag(struct blksnap_ctx *ctx, const char *spec, char **path)
{
	const char *value, *eq = strchr(spec, '=');
	char tag[16], dev[300], *found = NULL;
	struct dirent *de;
	int n = 0, r = 0;
	DIR *dir;

	*path = NULL;
	snprintf(tag, sizeof(tag), "%.*s", (int)(eq - spec), spec);
	value = eq + 1;
	dir = opendir("/sys/class/block");
	if (!dir)
		return bs_err(ctx, errno, "cannot list /sys/class/block: %s", strerror(errno));
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.' || !tab_candidate(de->d_name))
			continue;
		snprintf(dev, sizeof(dev), "/dev/%s", de->d_name);
		if (!tab_probe_tag(dev, tag, value))
			continue;
		if (n++) {
			r = bs_err(ctx, EEXIST, "%s matches both %s and %s: name the device by its path",
				   spec, found, dev);
			break;
		}
		found = strdup(dev);
		if (!found) {
			r = bs_err(ctx, ENOMEM, "out of memory");
			break;
		}
	}
	closedir(dir);
	if (!r && !found)
		r = bs_err(ctx, ENOENT, "no device with %s", spec);
	if (r)
		free(found);
	else
		*path = found;
	return r;
}

/* Whether the entry @spec names the device @dev. */
static bool tab_names(const char *spec, const struct bs_blockdev *dev)
{
	struct bs_blockdev d;
	const char *value;
	int tag = tab_tag(spec, &value);
	bool match;

	if (tag >= 0)
		return tab_probe_tag(dev->path, tab_tags[tag], value);
	if (bs_resolve_blockdev(NULL, spec, &d))
		return false;
	match = d.major == dev->major && d.minor == dev->minor;
	bs_blockdev_clear(&d);
	return match;
}

/*---- Devices detached by hand ----*/

/*
 * The note's path: "uuid-<dm uuid>", or "name-<dm name>" for a dm device
 * without one, with every byte but letters, digits, '-' and '.' as "_XX".
 */
static void detach_note_path(const char *uuid, const char *name, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "%s/%s", DETACHED_DIR, uuid ? "uuid-" : "name-");
	const char *key = uuid ? uuid : name;

	for (const unsigned char *p = (const unsigned char *)key; *p && n + 4 < len; p++) {
		if (isalnum(*p) || *p == '-' || *p == '.')
			buf[n++] = (char)*p;
		else
			n += (size_t)snprintf(buf + n, len - n, "_%02x", *p);
	}
	buf[n] = '\0';
}

void bs_detach_note(struct blksnap_ctx *ctx, const char *uuid, const char *name)
{
	char path[512];
	FILE *f;

	detach_note_path(uuid, name, path, sizeof(path));
	if ((mkdir(BLKSNAP_RUN_DIR, 0755) && errno != EEXIST) ||
	    (mkdir(DETACHED_DIR, 0755) && errno != EEXIST) || !(f = fopen(path, "we"))) {
		bs_log(ctx, BLKSNAP_LOG_WARN, "cannot write %s (%s): the udev rule of the blksnaptab may attach the device again",
		       path, strerror(errno));
		return;
	}
	fprintf(f, "detached by blksnapctl; 'blksnapctl attach' lets the blksnaptab attach it again\n");
	fclose(f);
}

void bs_detach_note_forget(const char *uuid, const char *name)
{
	char path[512];

	detach_note_path(uuid, name, path, sizeof(path));
	(void)unlink(path);
}

bool bs_detach_noted(const char *uuid, const char *name)
{
	char path[512];

	detach_note_path(uuid, name, path, sizeof(path));
	return !access(path, F_OK);
}

/*---- Attaching ----*/

void blksnap_tab_results_free(struct blksnap_tab_result *res, size_t n)
{
	for (size_t i = 0; res && i < n; i++) {
		free(res[i].device);
		free(res[i].origin);
		free(res[i].error);
	}
	free(res);
}

/*
 * Attach @path with the options of @e, or find it attached already (also
 * when a concurrent attach, e.g. from another udev event, won the race).
 */
static int tab_attach_one(struct blksnap_ctx *ctx, const struct blksnap_tab_entry *e,
			  const char *path, struct blksnap_tab_result *res)
{
	struct blksnap_origin *o = NULL;
	int r;

	if (!blksnap_origin_get(NULL, path, &o)) {
		res->attached = false;
	} else {
		struct blksnap_attach_options ao = {
			.size = sizeof(ao),
			.tracking_block_bytes = e->tracking_block_bytes,
			.cbt_metadata = e->pcbt.cbt_metadata,
			.cbt_metadata_id = e->pcbt.cbt_metadata_id,
		};

		r = bs_attach(ctx, path, &ao, true, &o);
		if (r && blksnap_origin_get(NULL, path, &o))
			return r;
		res->attached = !r;
	}
	res->origin = strdup(o->path);
	blksnap_origin_free(o);
	return res->origin ? 0 : bs_err(ctx, ENOMEM, "out of memory");
}

int blksnap_attach_tab(struct blksnap_ctx *ctx, const char *path,
		       const char *device, struct blksnap_tab_result **results,
		       size_t *n)
{
	struct blksnap_tab_result *res = NULL;
	struct bs_blockdev dev = { 0 };
	struct blksnap_tab *tab;
	size_t nres = 0, failed = 0;
	char uuid[160], dmname[160];
	int r, first = 0;

	*results = NULL;
	*n = 0;
	if (!path)
		path = BLKSNAP_TAB_DEFAULT;
	r = blksnap_tab_read(ctx, path, &tab);
	if (r)
		return r;
	if (device) {
		r = bs_resolve_blockdev(ctx, device, &dev);
		if (r)
			goto out;
		/* Ours, or under another device: never an entry's. */
		if (!tab_candidate(dev.kname))
			goto out;
		/* A dm device detached by hand: not the table's to attach again. */
		tab_sysfs(dev.kname, "dm/uuid", uuid, sizeof(uuid));
		uuid[strcspn(uuid, "\n")] = '\0';
		tab_sysfs(dev.kname, "dm/name", dmname, sizeof(dmname));
		dmname[strcspn(dmname, "\n")] = '\0';
		if (dmname[0] && bs_detach_noted(uuid[0] ? uuid : NULL, dmname)) {
			bs_log(ctx, BLKSNAP_LOG_INFO, "%s was detached with 'blksnapctl detach': not attaching it again until it is attached by hand",
			       device);
			goto out;
		}
	}
	res = calloc(tab->n ? tab->n : 1, sizeof(*res));
	if (!res) {
		r = bs_err(ctx, ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < tab->n; i++) {
		const struct blksnap_tab_entry *e = &tab->entries[i];
		struct blksnap_tab_result *x = &res[nres];
		char *found = NULL;
		const char *value;

		if (device && !tab_names(e->device, &dev))
			continue;
		nres++;
		x->line = e->line;
		x->device = strdup(e->device);
		if (!x->device) {
			r = bs_err(ctx, ENOMEM, "out of memory");
			goto out;
		}
		if (device)
			r = tab_attach_one(ctx, e, dev.path, x);
		else if (tab_tag(e->device, &value) >= 0) {
			r = tab_find_tag(ctx, e->device, &found);
			if (!r)
				r = tab_attach_one(ctx, e, found, x);
		} else
			r = tab_attach_one(ctx, e, e->device, x);
		free(found);
		if (r) {
			x->error = bs_strdupf("%s:%u: %s: %s", path, e->line, e->device,
					      blksnap_errmsg(ctx));
			if (!x->error) {
				r = bs_err(ctx, ENOMEM, "out of memory");
				goto out;
			}
			if (!failed++)
				first = r;
		}
	}
	r = 0;
	if (failed)
		r = bs_err(ctx, -first, "%zu of the %zu devices of %s were not attached",
			   failed, nres, path);
out:
	blksnap_tab_free(tab);
	bs_blockdev_clear(&dev);
	if (r && !failed) {
		blksnap_tab_results_free(res, nres);
		return r;
	}
	*results = res;
	*n = nres;
	return r;
}
