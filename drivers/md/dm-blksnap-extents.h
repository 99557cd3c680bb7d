/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dm-blksnap: extent listing over a change map. Pure logic with no kernel
 * dependencies, so that the unit tests compile this very code in userspace.
 */
#ifndef DM_BLKSNAP_EXTENTS_H
#define DM_BLKSNAP_EXTENTS_H

/*
 * Find the next run of blocks whose map value is greater than @since,
 * starting at block *@pos. On success, *@start and *@count describe the run,
 * *@pos points past it and the function returns 1; at the end of the map it
 * returns 0. Adjacent changed blocks always form one run.
 */
static inline int blksnap_next_extent(const unsigned char *map,
				      unsigned long nr_blocks,
				      unsigned char since, unsigned long *pos,
				      unsigned long *start, unsigned long *count)
{
	unsigned long b = *pos;

	while (b < nr_blocks && map[b] <= since)
		b++;
	if (b >= nr_blocks) {
		*pos = nr_blocks;
		return 0;
	}
	*start = b;
	while (b < nr_blocks && map[b] > since)
		b++;
	*count = b - *start;
	*pos = b;
	return 1;
}

/*
 * The sector range of blocks [@start, @start + @count) with blocks of
 * 2^@shift sectors, clipped to a device of @dev_sectors sectors.
 */
static inline void blksnap_extent_sectors(unsigned long start,
					  unsigned long count,
					  unsigned int shift,
					  unsigned long long dev_sectors,
					  unsigned long long *sector,
					  unsigned long long *sectors)
{
	unsigned long long first = (unsigned long long)start << shift;
	unsigned long long end = (unsigned long long)(start + count) << shift;

	if (end > dev_sectors)
		end = dev_sectors;
	*sector = first;
	*sectors = end > first ? end - first : 0;
}

#endif /* DM_BLKSNAP_EXTENTS_H */
