// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests: the signatures a store device must not carry without
 * --force (libblkid on image files: the probe reads any file), and the
 * holder descriptions of busy devices.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sys.h"

#define IMG_SIZE (4 << 20)

static char path[64];

static int setup(void **state)
{
	(void)state;
	snprintf(path, sizeof(path), "/tmp/blksnap-probe-XXXXXX");
	return mkstemp(path) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

/* A zeroed image with @len bytes of @data at @off. */
static void image(off_t off, const void *data, size_t len)
{
	static char zero[IMG_SIZE];
	int fd = open(path, O_WRONLY | O_TRUNC);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, zero, sizeof(zero), 0), sizeof(zero));
	if (len)
		assert_int_equal(pwrite(fd, data, len, off), (ssize_t)len);
	close(fd);
}

static int probe(char *what, size_t len)
{
	int r = bs_probe_signature(path, what, len);

	printf("# %d: %s\n", r, what);
	return r;
}

static void test_nothing(void **state)
{
	char what[256];

	(void)state;
	image(0, NULL, 0);
	assert_int_equal(probe(what, sizeof(what)), 0);
	assert_string_equal(what, "");
	/* Random data is no signature either. */
	{
		char buf[8192];

		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = (char)(i * 7919 % 251);
		image(0, buf, sizeof(buf));
		assert_int_equal(probe(what, sizeof(what)), 0);
	}
	assert_true(bs_probe_signature("/nonexistent/x", what, sizeof(what)) < 0);
}

/* An LVM physical volume: "LABELONE" in sector 1, "LVM2 001" at its byte 24. */
static void test_lvm(void **state)
{
	char label[512] = "LABELONE", what[256];

	(void)state;
	label[8] = 1;					/* sector number */
	memcpy(label + 20, "\x20\0\0\0", 4);		/* offset of the contents */
	memcpy(label + 24, "LVM2 001", 8);
	memcpy(label + 32, "abcdefghijklmnopqrstuvwxyz012345", 32);	/* PV uuid */
	image(512, label, sizeof(label));
	assert_int_equal(probe(what, sizeof(what)), 1);
	assert_non_null(strstr(what, "LVM physical volume"));
}

/* Swap: "SWAPSPACE2" at the end of the first 4 KiB page. */
static void test_swap(void **state)
{
	char hdr[4096], what[256];

	(void)state;
	memset(hdr, 0, sizeof(hdr));
	hdr[1024] = 1;					/* version 1 */
	hdr[1028] = 0xff;				/* last page */
	hdr[1029] = 0x03;
	memcpy(hdr + 4096 - 10, "SWAPSPACE2", 10);
	image(0, hdr, sizeof(hdr));
	assert_int_equal(probe(what, sizeof(what)), 1);
	assert_non_null(strstr(what, "swap"));
}

/* A DOS partition table with one partition. */
static void test_partition_table(void **state)
{
	unsigned char mbr[512], *e = mbr + 446;
	char what[256];

	(void)state;
	memset(mbr, 0, sizeof(mbr));
	e[4] = 0x83;					/* Linux */
	e[8] = 2048 & 0xff;				/* first LBA 2048 */
	e[9] = 2048 >> 8;
	e[12] = 4096 & 0xff;				/* 4096 sectors */
	e[13] = 4096 >> 8;
	mbr[440] = 0x12;				/* disk signature */
	mbr[510] = 0x55;
	mbr[511] = 0xaa;
	image(0, mbr, sizeof(mbr));
	assert_int_equal(probe(what, sizeof(what)), 1);
	assert_non_null(strstr(what, "dos partition table"));
}

/* The md superblock 1.2 checksum (the kernel's calc_sb_1_csum). */
static uint32_t md_csum(const unsigned char *sb, unsigned int max_dev)
{
	uint64_t sum = 0;
	unsigned int size = 256 + max_dev * 2;

	for (unsigned int i = 0; i + 4 <= size; i += 4)
		sum += (uint32_t)sb[i] | (uint32_t)sb[i + 1] << 8 | (uint32_t)sb[i + 2] << 16 |
		       (uint32_t)sb[i + 3] << 24;
	if (size % 4 == 2)
		sum += (uint32_t)sb[size - 2] | (uint32_t)sb[size - 1] << 8;
	return (uint32_t)((sum & 0xffffffff) + (sum >> 32));
}

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* An md RAID member, metadata 1.2 (the superblock 4 KiB into the device). */
static void test_raid(void **state)
{
	unsigned char sb[1024];
	char what[256];

	(void)state;
	memset(sb, 0, sizeof(sb));
	put32(sb + 0, 0xa92b4efc);			/* magic */
	put32(sb + 4, 1);				/* major_version */
	memcpy(sb + 16, "0123456789abcdef", 16);	/* set_uuid */
	memcpy(sb + 32, "host:raid", 9);		/* set_name */
	put32(sb + 72, 1);				/* level */
	put32(sb + 88, 2);				/* raid_disks */
	put32(sb + 128, 2048);				/* data_offset */
	put32(sb + 136, 4096);				/* data_size */
	put32(sb + 144, 8);				/* super_offset: 4 KiB */
	put32(sb + 220, 2);				/* max_dev */
	put32(sb + 216, md_csum(sb, 2));		/* sb_csum, computed with 0 in it */
	image(4096, sb, sizeof(sb));
	assert_int_equal(probe(what, sizeof(what)), 1);
	assert_non_null(strstr(what, "linux_raid_member"));
	assert_non_null(strstr(what, "RAID member"));
}

/* ext4: its magic 0xEF53 at byte 1080, with a plausible superblock. */
static void test_filesystem(void **state)
{
	unsigned char sb[1024];
	char what[256];

	(void)state;
	memset(sb, 0, sizeof(sb));
	put32(sb + 0, 1024);				/* s_inodes_count */
	put32(sb + 4, 4096);				/* s_blocks_count */
	put32(sb + 20, 1);				/* s_first_data_block */
	put32(sb + 24, 0);				/* s_log_block_size: 1 KiB */
	put32(sb + 32, 8192);				/* s_blocks_per_group */
	put32(sb + 40, 1024);				/* s_inodes_per_group */
	sb[56] = 0x53;					/* s_magic */
	sb[57] = 0xef;
	put32(sb + 76, 1);				/* s_rev_level */
	sb[88] = 128;					/* s_inode_size */
	memcpy(sb + 104, "\x01\x23\x45\x67\x89\xab\xcd\xef\x01\x23\x45\x67\x89\xab\xcd\xef", 16);
	memcpy(sb + 120, "data", 4);			/* s_volume_name */
	put32(sb + 96, 0x40);				/* incompat: extents */
	image(1024, sb, sizeof(sb));
	assert_int_equal(probe(what, sizeof(what)), 1);
	assert_non_null(strstr(what, "file system"));
	assert_non_null(strstr(what, "LABEL=data"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nothing),
		cmocka_unit_test(test_lvm),
		cmocka_unit_test(test_swap),
		cmocka_unit_test(test_partition_table),
		cmocka_unit_test(test_raid),
		cmocka_unit_test(test_filesystem),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
