#!/bin/bash
# blksnap-origin passes reads, writes, discards and write-zeroes straight to its device
# vm: --disks 1 --disk-size 512M --timeout 300 --modules ext4
# lanes: 6.1
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"

real=/dev/vda
origin=/dev/mapper/pt
mnt=/mnt/pt
work=$(mktemp -d)
at_exit "rm -rf $work"

require_target blksnap-origin
size=$(dev_sectors $real)
check "blksnap-origin over $real is created" origin_create pt $real
check_eq "the origin has the size of its device" "$size" "$(dev_sectors $origin)"
table=$(dmsetup table pt)
majmin=$(dev_majmin $real)
check "dmsetup table names the real device ($table)" \
	test "$table" = "0 $size blksnap-origin $real" -o "$table" = "0 $size blksnap-origin $majmin"

# Raw patterns, both ways: written through the origin and read on the device,
# written on the device and read through the origin (direct I/O both sides).
pattern() { # pattern FILE SECTORS
	dd if=/dev/urandom of="$1" bs=512 count="$2" status=none
}
for spec in "0 8" "13 1" "2047 130" "$((size - 8)) 8" "$((size / 2 - 3)) 2048"; do
	read -r start n <<< "$spec"
	pattern $work/p $n
	dd if=$work/p of=$origin bs=512 seek=$start count=$n oflag=direct conv=notrunc status=none
	dd if=$real of=$work/back bs=512 skip=$start count=$n iflag=direct status=none
	check "a write of $n sectors at $start through the origin is on the device" cmp $work/p $work/back
done
for spec in "64 64" "$((size - 1)) 1"; do
	read -r start n <<< "$spec"
	pattern $work/p $n
	dd if=$work/p of=$real bs=512 seek=$start count=$n oflag=direct conv=notrunc status=none
	dd if=$origin of=$work/back bs=512 skip=$start count=$n iflag=direct status=none
	check "a read of $n sectors at $start through the origin returns the device's data" cmp $work/p $work/back
done

# Write-zeroes and discard.
pattern $work/p 256
dd if=$work/p of=$origin bs=512 seek=4096 count=256 oflag=direct conv=notrunc status=none
check "write-zeroes through the origin succeeds" blkdiscard -z -o $((4096 * 512 + 4096)) -l 65536 $origin
dd if=$real of=$work/back bs=512 skip=4096 count=256 iflag=direct status=none
head -c 4096 $work/p > $work/model
head -c 65536 /dev/zero >> $work/model
tail -c +$((4096 + 65536 + 1)) $work/p >> $work/model
check "write-zeroes zeroed exactly its range on the device" cmp $work/model $work/back
check "discard through the origin succeeds" blkdiscard -o $((8192 * 512)) -l $((1024 * 512)) $origin

# A file system through the origin.
check "mkfs.ext4 on the origin succeeds" mkfs.ext4 -q -F $origin
check "the file system on the origin mounts" mount_at $origin $mnt
for spec in "a 1" "b 3" "c 7" "d 0"; do
	read -r name mib <<< "$spec"
	head -c $((mib * 1048576 + 12345)) /dev/urandom > $mnt/$name
done
(cd $mnt && sha256sum a b c d) > $work/sums
check "files are written and unmounted" umount $mnt
blockdev --flushbufs $origin
blockdev --flushbufs $real
check "the whole device reads the same through the origin and directly" cmp $origin $real

check "it mounts again through the origin" mount_at $origin $mnt
check "the files' checksums match after a remount through the origin" \
	bash -c "cd $mnt && sha256sum --quiet -c $work/sums"
umount $mnt
check "the origin is removed" dmsetup remove pt
check "it mounts on the bare device" mount_at $real $mnt
check "the files' checksums match on the bare device" \
	bash -c "cd $mnt && sha256sum --quiet -c $work/sums"
umount $mnt
