#!/bin/bash
# The dm-blksnap demo, run inside the test guest by `make demo`.
set -euo pipefail
say() { printf '\n== %s\n' "$*"; }

say "dm-blksnap is loaded; the device-mapper targets of this kernel:"
dmsetup targets

say "Put blksnap-origin over the scratch disk /dev/vda"
size=$(blockdev --getsz /dev/vda)
echo "0 $size blksnap-origin /dev/vda" | dmsetup create demo-origin
dmsetup table demo-origin
dmsetup status demo-origin

say "Make a file system on the origin and write a file through it"
mkfs.ext4 -q /dev/mapper/demo-origin
mkdir -p /mnt/demo
mount /dev/mapper/demo-origin /mnt/demo
head -c 8M /dev/urandom > /mnt/demo/data
sum=$(sha256sum < /mnt/demo/data)
umount /mnt/demo
dmsetup remove demo-origin

say "The same file read straight from the real device"
mount -o ro /dev/vda /mnt/demo
if [ "$(sha256sum < /mnt/demo/data)" = "$sum" ]; then
	echo "checksums match: every write went through to /dev/vda"
else
	echo "checksum mismatch" >&2
	exit 1
fi
umount /mnt/demo
