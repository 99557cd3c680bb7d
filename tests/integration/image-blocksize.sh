#!/bin/bash
# a 4Kn store under a 512-byte real device: the image has 4096-byte logical blocks, smaller reads are refused, copied chunks read back exact
# vm: --disks 1 --disk-size 64M --timeout 300
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"

# A read of a copied chunk goes to the store. Were the image to keep the
# real device's 512-byte blocks, a 512-byte read of a copied chunk would
# reach a 4096-byte store misaligned and fail there.
real=/dev/vda
origin=/dev/mapper/bsorig
image=/dev/mapper/bsimg
size=$(blockdev --getsize64 $real)
require_target blksnap-image
kmsg_mark

check_eq "the real device has 512-byte logical blocks" 512 "$(blockdev --getss $real)"
scsi_debug_load sector_size=4096 dev_size_mb=32 || skip "no scsi_debug module"
sd=$(scsi_debug_disk)
check "scsi_debug disk present" test -n "$sd" -a -b "/dev/$sd"
store=/dev/$sd
check_eq "the store ($store) has 4096-byte logical blocks" 4096 "$(blockdev --getss $store)"

pre=$IMG_TMP/pre model=$IMG_TMP/model
check "origin filled with random data" fill_random $real $model "$size"
check "blksnap-origin over $real" origin_create bsorig $real
check_eq "the origin keeps 512-byte logical blocks" 512 "$(blockdev --getss $origin)"
cp $model $pre
check "image created (4 KiB chunks) on the 4Kn store" image_create bsimg $real $store 8
check_eq "the image has the store's 4096-byte logical blocks" 4096 "$(blockdev --getss $image)"

# 512-byte origin writes inside 4 KiB chunks: each copies its chunk.
chunks=()
for ((i = 0; i < 24; i++)); do
	c=$(((RANDOM << 15 | RANDOM) % (size / 4096)))
	chunks+=($c)
	model_dd $origin $model $((c * 4096 + 512 * (RANDOM % 8))) 512 direct ||
		die "512-byte origin write at chunk $c failed"
done
echo "ok - 24 512-byte origin writes"
check "chunks were copied ($(image_field bsimg 3))" test "$(image_field bsimg 3)" -gt 0

c=${chunks[0]}
expect_errno "a 512-byte direct read of a copied chunk is refused (EINVAL)" "Invalid argument" \
	dd if=$image of=/dev/null bs=512 count=1 skip=$((c * 8 + 1)) iflag=direct status=none
check "a 4096-byte direct read of the same chunk works" \
	dd if=$image of=/dev/null bs=4096 count=1 skip=$c iflag=direct status=none
check_eq "image state is still valid" valid "$(image_field bsimg 4)"
check_same "image (direct reads) equals the pre-image" $image $pre 4096
check "image (buffered reads) equals the pre-image" cmp -s $image $pre
check_same "origin equals the model" $origin $model 4096

check "image removed" dmsetup remove bsimg
check_eq "origin state is '-'" - "$(status_field bsorig 5)"
check "origin removed" dmsetup remove bsorig
check "scsi_debug unloads (no reference left)" timeout 30 modprobe -r scsi_debug
check_no_kernel_report "no kernel report in the whole run"
