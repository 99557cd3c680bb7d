#!/bin/bash
# a full store turns the image 'overflow' with a dm event and EIO; the origin's writes never fail
# vm: --disks 2 --disk-size 64M --timeout 600
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"

real=/dev/vda
origin=/dev/mapper/ovorig
image=/dev/mapper/ovimg
size=$(blockdev --getsize64 $real)
require_target blksnap-image
modprobe dm-linear 2> /dev/null || true

pre=$IMG_TMP/pre model=$IMG_TMP/model
check "origin filled with random data" fill_random $real $pre "$size"
cp $pre $model
check "blksnap-origin over $real" origin_create ovorig $real
check "store: a 2 MiB dm-linear over /dev/vdb" linear_create ovstore /dev/vdb 2048 4096
# low_water 0: the only event is the overflow.
check "blksnap-image with 4 KiB chunks, low_water 0" image_create ovimg $real /dev/mapper/ovstore 8 low_water 0
check_eq "store_sectors is 4096" 4096 "$(image_store_sectors ovimg)"
ev0=$(dm_events ovimg)
note "image event counter before the writes: $ev0"
timeout 120 dmsetup wait ovimg "$ev0" > /dev/null 2>&1 &
waiter=$!
at_exit "stop_bg $waiter"

# 1 MiB of writes fits (256 chunks of 512).
for k in 0 1 2 3; do
	check "origin: 256 KiB direct write at $((k * 4))M (fits)" model_dd $origin $model $((k << 22)) $((256 << 10)) direct
done
check_eq "image state is valid with 1 MiB copied" valid "$(image_field ovimg 4)"
check_eq "used_sectors is 2048" 2048 "$(image_used ovimg)"
check_same "image equals the pre-image before the overflow" $image $pre 4096
check "no event yet (waiter still waiting)" kill -0 $waiter

# 6 MiB more: the store runs out part way; every origin write must still succeed.
for k in 10 11 12 13 14 15; do
	check "origin: 1 MiB direct write at ${k}M (store overflows)" model_dd $origin $model $((k << 20)) $((1 << 20)) direct
done
check "origin: 4 KiB buffered writes after the overflow" model_dd $origin $model $((20 << 20)) 4096
check "origin: unaligned buffered write after the overflow" model_dd $origin $model $((21 << 20 | 1234)) 7777
check "dmsetup wait ovimg $ev0 returned (event raised)" wait $waiter
check_eq "image state is overflow" overflow "$(image_field ovimg 4)"
ev1=$(dm_events ovimg)
check "event counter moved on ($ev0 -> $ev1)" test "$ev1" -gt "$ev0"
note "image status: $(image_field ovimg 1-4)"
check "used_sectors ($(image_used ovimg)) does not exceed the store" test "$(image_used ovimg)" -le 4096

expect_errno "image read fails with EIO (direct)" "Input/output error" \
	dd if=$image of=/dev/null bs=4096 count=1 iflag=direct status=none
expect_errno "image read of an untouched chunk fails with EIO" "Input/output error" \
	dd if=$image of=/dev/null bs=4096 count=1 skip=$((40 << 8)) iflag=direct status=none
expect_errno "image write fails with EIO" "Input/output error" \
	dd if=/dev/zero of=$image bs=4096 count=1 seek=5000 oflag=direct status=none
check_same "origin equals the model (nothing lost)" $origin $model 4096
check_same "real device equals the model" $real $model 4096
check_eq "no further event from the I/O errors" "$ev1" "$(dm_events ovimg)"

check "image removed" dmsetup remove ovimg
check_eq "origin state is '-' after the image is gone" - "$(status_field ovorig 5)"
check "origin: write after the image is gone" model_dd $origin $model $((30 << 20)) $((1 << 20)) direct
check_same "origin equals the model at the end" $origin $model 4096
# The pool is free again: a new image on the same store works.
check "a new image on the same store" image_create ovimg2 $real /dev/mapper/ovstore 8
check_eq "the new image starts with used_sectors 0" 0 "$(image_used ovimg2)"
check_same "the new image equals the origin" /dev/mapper/ovimg2 $model 4096
