// SPDX-License-Identifier: GPL-2.0
/*
 * tests/verifier/verifier.c: a block-level data verifier for the stress and
 * fault tests. Compiled by the tests themselves (see tests/stress-lib.sh):
 *
 *   cc -O2 -Wall -Wextra -Werror -o /tmp/verifier tests/verifier/verifier.c
 *
 * Every 4 KiB block it writes is stamped: a header (magic, device id, block
 * number, generation, writer, checksum of the whole block) followed by a
 * payload that is a pure function of (device id, block, generation). So the
 * content of a block is fully determined by its (id, generation) pair, and a
 * check regenerates the expected block and compares all 4096 bytes.
 *
 * The model is a file with one entry per block: { uint32 id; uint32 gen; }.
 * gen 0 means "unknown content, not checked". The model of an image is a
 * copy of the origin's model taken while no origin writer runs, at the
 * snapshot's point in time; writes to the image then update the image model.
 *
 *   verifier init  DEV MODEL ID              stamp every block (gen 1), new model
 *   verifier write DEV MODEL ID [options]    random stamped writes, model updated
 *       --seconds S   run time (default 10)       --seed N     random seed
 *       --part K/N    only blocks of part K of N  --max-blocks B  extent (default 16)
 *       --buffered    buffered I/O (fsync every 64 writes) instead of O_DIRECT
 *       --pass        one sequential pass over the part in extents of
 *                     --max-blocks, then stop (bounded by --seconds too)
 *       --tolerate-eio  count EIO failures instead of stopping (fault tests;
 *                     a block whose write failed is set to gen 0 = unknown)
 *   verifier read  DEV MODEL [--writer-id ID] [--tolerate-eio] [--seconds S] [--seed N]
 *       random direct reads checked while writers run, strictly: each block
 *       must hold exactly the (id, gen) of its model entry read before or
 *       after the read, or a write in flight to DEV itself: a stamp of
 *       --writer-id ID (the id of DEV's own writers; without it no write is
 *       in flight) with a generation above the entry before the read and at
 *       most one above the entry after it. Anything else is a mismatch: for
 *       an image, data written to the origin after the snapshot (the
 *       origin's id, or a generation the image's model never held) fails.
 *       --tolerate-eio: EIO reads (a failed image) are counted, not fatal
 *   verifier check DEV MODEL [--quiet]
 *       read every block (O_DIRECT, 1 MiB) and compare it with the model
 *   verifier stat  MODEL                    blocks, known blocks, max generation
 *   verifier forget MODEL FIRST COUNT       blocks FIRST..+COUNT: gen 0, not checked
 *                                           (e.g. a file system lives there)
 *
 * Exit: 0 fine, 1 data mismatch (the first mismatches are decoded on
 * stderr), 2 usage or I/O error (3 with --tolerate-eio: only EIO errors).
 * DEV may be a regular file (the host's self-test, tests/verifier/verifier-test).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>

#define BS 4096u
#define MAGIC 0x424c4b534e415056ull /* "BLKSNAPV" */
#define BATCH 256u /* blocks per read in check: 1 MiB */

struct model_ent {
	uint32_t id;
	uint32_t gen;
};

struct stamp {
	uint64_t magic;
	uint64_t block;
	uint32_t id;
	uint32_t gen;
	uint32_t writer;
	uint32_t pad;
	uint64_t csum; /* FNV-1a 64 over the block with csum = 0 */
};

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static uint64_t fnv(const unsigned char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	while (n--) {
		h ^= *p++;
		h *= 0x100000001b3ull;
	}
	return h;
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The one true content of block b with (id, gen). */
static void make_block(unsigned char *buf, uint64_t b, uint32_t id, uint32_t gen, uint32_t writer)
{
	struct stamp *st = (struct stamp *)buf;
	uint64_t s = (b * 0x2545f4914f6cdd1dull) ^ ((uint64_t)id << 40) ^ gen;
	uint64_t *w = (uint64_t *)buf;
	unsigned i;

	for (i = sizeof(*st) / 8; i < BS / 8; i++)
		w[i] = splitmix(&s);
	st->magic = MAGIC;
	st->block = b;
	st->id = id;
	st->gen = gen;
	st->writer = 0; /* not part of the content: see below */
	st->pad = 0;
	st->csum = 0;
	st->csum = fnv(buf, BS);
	(void)writer;
}

static int stamp_ok(const unsigned char *buf)
{
	struct stamp st;
	unsigned char tmp[BS];

	memcpy(&st, buf, sizeof(st));
	if (st.magic != MAGIC)
		return 0;
	memcpy(tmp, buf, BS);
	((struct stamp *)tmp)->csum = 0;
	return fnv(tmp, BS) == st.csum;
}

static void describe(char *out, size_t n, const unsigned char *buf)
{
	const struct stamp *st = (const struct stamp *)buf;
	size_t i, zero = 1;

	if (st->magic != MAGIC) {
		for (i = 0; i < BS; i++)
			if (buf[i]) {
				zero = 0;
				break;
			}
		snprintf(out, n, zero ? "all zeroes" : "no stamp (first bytes %016" PRIx64 ")",
			 *(const uint64_t *)buf);
		return;
	}
	snprintf(out, n, "stamp block %" PRIu64 " id %u gen %u%s", st->block, st->id, st->gen,
		 stamp_ok(buf) ? "" : " BAD CHECKSUM (torn or corrupt)");
}

static void usage(void)
{
	fprintf(stderr, "usage: verifier init|write|read|check DEV MODEL [ID] [options] | stat MODEL\n");
	exit(2);
}

static uint64_t dev_blocks(int fd)
{
	struct stat st;
	uint64_t bytes;

	if (fstat(fd, &st) < 0) {
		perror("fstat");
		exit(2);
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &bytes) < 0) {
			perror("BLKGETSIZE64");
			exit(2);
		}
	} else {
		bytes = st.st_size;
	}
	return bytes / BS;
}

static struct model_ent *map_model(const char *path, uint64_t blocks, int create)
{
	int fd = open(path, O_RDWR | (create ? O_CREAT | O_TRUNC : 0), 0644);
	struct stat st;
	void *p;

	if (fd < 0) {
		fprintf(stderr, "verifier: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	if (create && ftruncate(fd, blocks * sizeof(struct model_ent)) < 0) {
		perror("ftruncate");
		exit(2);
	}
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != blocks * sizeof(struct model_ent)) {
		fprintf(stderr, "verifier: model %s does not fit %" PRIu64 " blocks\n", path, blocks);
		exit(2);
	}
	p = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	close(fd);
	return p;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int open_dev(const char *dev, int flags)
{
	int fd = open(dev, flags);
	struct stat st;

	/* A file on a file system without direct I/O (tmpfs): buffered. */
	if (fd < 0 && errno == EINVAL && (flags & O_DIRECT) && !stat(dev, &st) && S_ISREG(st.st_mode))
		fd = open(dev, flags & ~O_DIRECT);
	if (fd < 0) {
		fprintf(stderr, "verifier: %s: %s\n", dev, strerror(errno));
		exit(2);
	}
	return fd;
}

static void *xalloc(size_t n)
{
	void *p;

	if (posix_memalign(&p, BS, n)) {
		fprintf(stderr, "verifier: out of memory\n");
		exit(2);
	}
	return p;
}

static int cmd_init(const char *dev, const char *model, uint32_t id)
{
	int fd = open_dev(dev, O_RDWR | O_DIRECT);
	uint64_t n = dev_blocks(fd), b, i, cnt;
	struct model_ent *m = map_model(model, n, 1);
	unsigned char *buf = xalloc(BATCH * BS);

	for (b = 0; b < n; b += cnt) {
		cnt = n - b < BATCH ? n - b : BATCH;
		for (i = 0; i < cnt; i++)
			make_block(buf + i * BS, b + i, id, 1, 0);
		if (pwrite(fd, buf, cnt * BS, b * BS) != (ssize_t)(cnt * BS)) {
			fprintf(stderr, "verifier: init write at block %" PRIu64 ": %s\n", b, strerror(errno));
			return 2;
		}
		for (i = 0; i < cnt; i++)
			m[b + i] = (struct model_ent){ id, 1 };
	}
	if (fsync(fd) < 0) {
		perror("fsync");
		return 2;
	}
	printf("init: %" PRIu64 " blocks of %s stamped with id %u\n", n, dev, id);
	return 0;
}

struct opts {
	double seconds;
	uint64_t seed;
	unsigned part, parts, max_blocks;
	int buffered, tolerate_eio, quiet, pass;
	int has_writer_id;
	uint32_t writer_id;
};

static void parse_opts(int argc, char **argv, int i, struct opts *o)
{
	o->seconds = 10;
	o->seed = (uint64_t)getpid() * 7919 + (uint64_t)time(NULL);
	o->part = 0;
	o->parts = 1;
	o->max_blocks = 16;
	o->buffered = o->tolerate_eio = o->quiet = o->pass = 0;
	o->has_writer_id = 0;
	o->writer_id = 0;
	for (; i < argc; i++) {
		if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			o->seconds = atof(argv[++i]);
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			o->seed = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--part") && i + 1 < argc) {
			if (sscanf(argv[++i], "%u/%u", &o->part, &o->parts) != 2 || !o->parts ||
			    o->part >= o->parts)
				usage();
		} else if (!strcmp(argv[i], "--max-blocks") && i + 1 < argc)
			o->max_blocks = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--buffered"))
			o->buffered = 1;
		else if (!strcmp(argv[i], "--tolerate-eio"))
			o->tolerate_eio = 1;
		else if (!strcmp(argv[i], "--pass"))
			o->pass = 1;
		else if (!strcmp(argv[i], "--quiet"))
			o->quiet = 1;
		else if (!strcmp(argv[i], "--writer-id") && i + 1 < argc) {
			o->has_writer_id = 1;
			o->writer_id = strtoul(argv[++i], NULL, 0);
		}
		else
			usage();
	}
	if (!o->max_blocks || o->max_blocks > BATCH)
		usage();
}

static int cmd_write(const char *dev, const char *model, uint32_t id, struct opts *o)
{
	int fd = open_dev(dev, O_RDWR | (o->buffered ? 0 : O_DIRECT));
	uint64_t n = dev_blocks(fd);
	struct model_ent *m = map_model(model, n, 0);
	uint64_t lo = n * o->part / o->parts, hi = n * (o->part + 1) / o->parts;
	unsigned char *buf = xalloc(o->max_blocks * BS);
	uint64_t writes = 0, blocks = 0, eio = 0, s = o->seed, next = lo;
	double end = now() + o->seconds;
	int rc = 0;

	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	if (hi <= lo)
		return 0;
	while (!stop && now() < end) {
		uint64_t b = lo + splitmix(&s) % (hi - lo);
		uint64_t cnt = 1 + splitmix(&s) % o->max_blocks, i;
		ssize_t r;

		if (o->pass) {
			if (next >= hi)
				break;
			b = next;
			cnt = o->max_blocks;
			next += cnt;
		}

		if (cnt > hi - b)
			cnt = hi - b;
		for (i = 0; i < cnt; i++)
			make_block(buf + i * BS, b + i, id, m[b + i].gen + 1 ? m[b + i].gen + 1 : 1, o->part);
		r = pwrite(fd, buf, cnt * BS, b * BS);
		if (r == (ssize_t)(cnt * BS) && o->buffered && (writes % 64) == 63 && fdatasync(fd) < 0)
			r = -1;
		if (r != (ssize_t)(cnt * BS)) {
			int e = r < 0 ? errno : EIO;

			if (o->tolerate_eio && e == EIO) {
				/* The blocks' content is unknown now (possibly torn). */
				for (i = 0; i < cnt; i++)
					m[b + i] = (struct model_ent){ 0, 0 };
				eio++;
				rc = 3;
				continue;
			}
			fprintf(stderr, "verifier: write %s blocks %" PRIu64 "+%" PRIu64 ": %s\n", dev, b, cnt,
				r < 0 ? strerror(e) : "short write");
			for (i = 0; i < cnt; i++)
				m[b + i] = (struct model_ent){ 0, 0 };
			rc = 2;
			break;
		}
		for (i = 0; i < cnt; i++) {
			uint32_t g = m[b + i].gen + 1;

			m[b + i] = (struct model_ent){ id, g ? g : 1 };
		}
		writes++;
		blocks += cnt;
	}
	if (o->buffered && fsync(fd) < 0) {
		perror("fsync");
		rc = 2;
	}
	if (!o->quiet)
		printf("write %s part %u/%u: %" PRIu64 " writes, %" PRIu64 " blocks, %" PRIu64 " EIO\n", dev,
		       o->part, o->parts, writes, blocks, eio);
	return rc;
}

static int report_mismatch(const char *dev, uint64_t b, const struct model_ent *want,
			   const unsigned char *got, unsigned shown)
{
	char d[160];

	if (shown < 16) {
		describe(d, sizeof(d), got);
		fprintf(stderr, "verifier: %s block %" PRIu64 " (byte %" PRIu64 "): want id %u gen %u, got %s\n",
			dev, b, b * BS, want->id, want->gen, d);
	}
	return 1;
}

/*
 * May block b, read between the model entries before and after the read,
 * hold the stamp (id, gen)? Exactly one of the two entries, or a write to
 * DEV in flight: DEV's own writers (writer_id) write the generation after
 * the model's and update the model once the write completed, so such a
 * block carries a generation in (before.gen, after.gen + 1].
 */
static int read_ok(const struct model_ent *before, const struct model_ent *after, uint32_t id,
		   uint32_t gen, const struct opts *o)
{
	if ((id == before->id && gen == before->gen) || (id == after->id && gen == after->gen))
		return 1;
	return o->has_writer_id && id == o->writer_id && gen > before->gen &&
	       (uint64_t)gen <= (uint64_t)after->gen + 1;
}

static int cmd_read(const char *dev, const char *model, struct opts *o)
{
	int fd = open_dev(dev, O_RDONLY | O_DIRECT);
	uint64_t n = dev_blocks(fd);
	struct model_ent *m = map_model(model, n, 0);
	unsigned char *buf = xalloc(o->max_blocks * BS);
	unsigned char *exp = xalloc(BS);
	uint64_t reads = 0, bad = 0, eio = 0, s = o->seed;
	double end = now() + o->seconds;

	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	while (!stop && now() < end) {
		uint64_t b = splitmix(&s) % n, cnt = 1 + splitmix(&s) % o->max_blocks, i;
		struct model_ent before[BATCH], after;
		ssize_t r;

		if (cnt > n - b)
			cnt = n - b;
		for (i = 0; i < cnt; i++)
			before[i] = *(volatile struct model_ent *)&m[b + i];
		r = pread(fd, buf, cnt * BS, b * BS);
		if (r != (ssize_t)(cnt * BS)) {
			int e = r < 0 ? errno : EIO;

			if (o->tolerate_eio && e == EIO) {
				eio++;
				usleep(1000); /* leave the CPU to the writers */
				continue;
			}
			fprintf(stderr, "verifier: read %s blocks %" PRIu64 "+%" PRIu64 ": %s\n", dev, b, cnt,
				r < 0 ? strerror(e) : "short read");
			return 2;
		}
		for (i = 0; i < cnt; i++) {
			const unsigned char *got = buf + i * BS;
			const struct stamp *st = (const struct stamp *)got;

			after = *(volatile struct model_ent *)&m[b + i];
			if (!before[i].gen || !after.gen)
				continue;
			if (stamp_ok(got) && st->block == b + i && read_ok(&before[i], &after, st->id, st->gen, o)) {
				/* an allowed stamp of this block; regenerate to check every byte */
				make_block(exp, b + i, st->id, st->gen, 0);
				if (!memcmp(exp, got, BS))
					continue;
			}
			report_mismatch(dev, b + i, &before[i], got, bad++);
		}
		reads++;
	}
	if (bad > 16)
		fprintf(stderr, "verifier: ... %" PRIu64 " mismatching blocks in all\n", bad);
	if (!o->quiet || bad || eio)
		printf("read %s: %" PRIu64 " reads, %" PRIu64 " mismatching blocks, %" PRIu64 " EIO\n", dev,
		       reads, bad, eio);
	return bad ? 1 : eio ? 3 : 0;
}

static int cmd_check(const char *dev, const char *model, struct opts *o)
{
	int fd = open_dev(dev, O_RDONLY | O_DIRECT);
	uint64_t n = dev_blocks(fd), b, i, cnt, bad = 0, known = 0;
	struct model_ent *m = map_model(model, n, 0);
	unsigned char *buf = xalloc(BATCH * BS), *exp = xalloc(BS);

	for (b = 0; b < n; b += cnt) {
		cnt = n - b < BATCH ? n - b : BATCH;
		if (pread(fd, buf, cnt * BS, b * BS) != (ssize_t)(cnt * BS)) {
			fprintf(stderr, "verifier: check read %s at block %" PRIu64 ": %s\n", dev, b,
				strerror(errno));
			return 2;
		}
		for (i = 0; i < cnt; i++) {
			if (!m[b + i].gen)
				continue;
			known++;
			make_block(exp, b + i, m[b + i].id, m[b + i].gen, 0);
			if (memcmp(exp, buf + i * BS, BS))
				report_mismatch(dev, b + i, &m[b + i], buf + i * BS, bad++);
		}
	}
	if (bad > 16)
		fprintf(stderr, "verifier: ... %" PRIu64 " mismatching blocks in all\n", bad);
	if (!o->quiet || bad)
		printf("check %s: %" PRIu64 " blocks, %" PRIu64 " checked, %" PRIu64 " mismatches\n", dev, n,
		       known, bad);
	return bad ? 1 : 0;
}

static int cmd_stat(const char *model)
{
	int fd = open(model, O_RDONLY);
	struct stat st;
	uint64_t n, b, known = 0, maxg = 0;
	struct model_ent *m;

	if (fd < 0 || fstat(fd, &st) < 0) {
		perror(model);
		return 2;
	}
	n = st.st_size / sizeof(*m);
	m = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return 2;
	for (b = 0; b < n; b++) {
		known += m[b].gen != 0;
		if (m[b].gen > maxg)
			maxg = m[b].gen;
	}
	printf("%" PRIu64 " blocks, %" PRIu64 " known, max gen %" PRIu64 "\n", n, known, maxg);
	return 0;
}

static int cmd_forget(const char *model, uint64_t first, uint64_t count)
{
	int fd = open(model, O_RDWR);
	struct stat st;
	struct model_ent *m;
	uint64_t b;

	if (fd < 0 || fstat(fd, &st) < 0) {
		perror(model);
		return 2;
	}
	m = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED || first + count > st.st_size / sizeof(*m))
		return 2;
	for (b = first; b < first + count; b++)
		m[b] = (struct model_ent){ 0, 0 };
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 3)
		usage();
	if (!strcmp(argv[1], "stat"))
		return cmd_stat(argv[2]);
	if (!strcmp(argv[1], "forget") && argc == 5)
		return cmd_forget(argv[2], strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0));
	if (argc < 4)
		usage();
	if (!strcmp(argv[1], "init")) {
		if (argc != 5)
			usage();
		return cmd_init(argv[2], argv[3], strtoul(argv[4], NULL, 0));
	}
	if (!strcmp(argv[1], "write")) {
		if (argc < 5)
			usage();
		parse_opts(argc, argv, 5, &o);
		return cmd_write(argv[2], argv[3], strtoul(argv[4], NULL, 0), &o);
	}
	parse_opts(argc, argv, 4, &o);
	if (!strcmp(argv[1], "read"))
		return cmd_read(argv[2], argv[3], &o);
	if (!strcmp(argv[1], "check"))
		return cmd_check(argv[2], argv[3], &o);
	usage();
	return 2;
}
