#!/bin/bash
# stress: 384 MiB guest, 4 KiB chunks, a whole 384 MiB origin copied under buffered and direct writes: no OOM, data correct
# vm: --disks 3 --disk-size 384M --mem 384M --timeout 600
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"
. "$BLKSNAP_TOP/tests/stress-lib.sh"

real=/dev/vda
origin=/dev/mapper/smorig
image=/dev/mapper/smimg
store=/dev/mapper/smstore # vdb + vdc: room for every chunk plus the image's writes
om=$IMG_TMP/origin.model
im=$IMG_TMP/image.model
# Pressure: ballast fills memory until about this much is left available
# (STRESS_BALLAST_MB overrides the ballast itself). A debug kernel guest
# has less than that to begin with and runs without ballast.
left=${STRESS_LEFT_MB:-160}
require_target blksnap-image
kmsg_mark
vf_build

note "memory: $(grep -E 'MemTotal|MemAvailable' /proc/meminfo | tr -s ' ' | tr '\n' ' ')"
check "store: dm-linear over vdb and vdc" linear_create smstore /dev/vdb 0 "$(dev_sectors /dev/vdb)" /dev/vdc 0 "$(dev_sectors /dev/vdc)"
check "real device stamped" vf_init $real $om 1
check "blksnap-origin over $real" origin_create smorig $real
cp $om $im
check "image with 4 KiB chunks" image_create smimg $real $store 8
# Unreclaimable memory: a file in the guest's tmpfs, within its free space.
avail=$(($(awk '/^MemAvailable:/ {print $2}' /proc/meminfo) / 1024))
tmpfree=$(($(df -k --output=avail "$IMG_TMP" | tail -n 1) / 1024))
ballast=${STRESS_BALLAST_MB:-$((avail - left))}
((ballast <= tmpfree - 16)) || ballast=$((tmpfree - 16))
((ballast >= 0)) || ballast=0
note "${avail} MiB available, ${tmpfree} MiB free in $IMG_TMP: ${ballast} MiB of ballast"
check "${ballast} MiB of tmpfs ballast" dd if=/dev/zero of=$IMG_TMP/ballast bs=1M count="$ballast" status=none
note "memory with the ballast: $(grep -E 'MemAvailable' /proc/meminfo | tr -s ' ')"
# One sequential pass over each half: every chunk of the origin is copied
# (--seconds only stops a runaway; the debug kernel is slow).
vf_bg ow0 "$VF" write $origin $om 1 --pass --part 0/2 --max-blocks 64 --seconds 1800 --quiet
vf_bg ow1 "$VF" write $origin $om 1 --pass --part 1/2 --max-blocks 256 --buffered --seconds 1800 --quiet
vf_bg iw0 "$VF" write $image $im 2 --seconds 20 --max-blocks 16 --quiet
vf_bg ir "$VF" read $image $im --writer-id 2 --seconds 20 --max-blocks 64 --quiet
for w in ow0 ow1 iw0 ir; do vf_wait $w; done
note "image status: $(image_field smimg 1-4)"
note "memory: $(grep -E 'MemAvailable|Slab|SUnreclaim' /proc/meminfo | tr -s ' ' | tr '\n' ' ')"
check_eq "image is valid" valid "$(img_state smimg)"
chunks=$(($(dev_sectors $real) / 8))
check "every chunk of the origin was copied ($(image_field smimg 3) of $chunks)" test "$(image_field smimg 3)" -ge "$chunks"
vf_check "origin equals its model" $origin $om
vf_check "image equals the point-in-time model plus its writes" $image $im
check "image removed" dmsetup remove smimg
vf_check "origin equals its model after the removal" $origin $om
no_oom "no OOM kill, no page allocation failure"
check_no_kernel_report "no kernel report in the whole run"
