#!/bin/bash
# a dm-linear store grown by a reload is used at once; low_water fires once per crossing and re-arms; a store reloaded smaller than its used space fails the image
# vm: --disks 2 --disk-size 128M --timeout 400
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"

real=/dev/vda
origin=/dev/mapper/grorig
image=/dev/mapper/grimg
size=$(blockdev --getsize64 $real)
require_target blksnap-image
modprobe dm-linear 2> /dev/null || true

seg1="0 8192 linear /dev/vdb 0"
seg2="8192 8192 linear /dev/vdb 65536"

pre=$IMG_TMP/pre model=$IMG_TMP/model
check "origin filled with random data" fill_random $real $pre "$size"
cp $pre $model
check "blksnap-origin over $real" origin_create grorig $real
check "store: dm-linear over 4 MiB of /dev/vdb" dm_create grstore "$seg1"
check "blksnap-image with 4 KiB chunks, low_water 2048 (1 MiB)" \
	image_create grimg $real /dev/mapper/grstore 8 low_water 2048
ev0=$(dm_events grimg)

next=0 # the next untouched byte of the origin: every write copies new chunks
wr() { # wr BYTES [BLOCK]: write BYTES at $next in BLOCK pieces (default 1 MiB)
	local left=$1 bs=${2:-$((1 << 20))}
	while ((left > 0)); do
		((bs <= left)) || bs=$left
		model_dd $origin $model $next $bs direct || return
		next=$((next + bs))
		left=$((left - bs))
	done
}

check "origin: 2.5 MiB of writes (past half the store)" wr $((5 << 19))
check_eq "used_sectors is 5120" 5120 "$(image_used grimg)"
check_eq "no event while free space (3072) is above low_water" "$ev0" "$(dm_events grimg)"
check "origin: 1 MiB more (free space drops to 1024)" wr $((1 << 20))
check_eq "used_sectors is 7168" 7168 "$(image_used grimg)"
check_eq "one low_water event" $((ev0 + 1)) "$(dm_events grimg)"
check "origin: 256 KiB more (still below low_water)" wr $((256 << 10))
check_eq "no second event while still below" $((ev0 + 1)) "$(dm_events grimg)"
check_eq "image state is valid" valid "$(image_field grimg 4)"

# Grow the store while the origin is being written: the last 64 chunks of the first segment.
( wr $((256 << 10)) 4096 ) &
writer=$!
at_exit "stop_bg $writer"
check "store suspended" dmsetup suspend grstore
load_two() { printf '%s\n%s\n' "$seg1" "$seg2" | dmsetup load grstore; }
check "store loaded with a second segment" load_two
check "store resumed (8 MiB)" dmsetup resume grstore
check "origin writes during the reload finished" wait $writer
next=$((next + (256 << 10)))
check_eq "store_sectors is 16384 after the reload" 16384 "$(image_store_sectors grimg)"
check_eq "used_sectors is 8192 (the first segment is full)" 8192 "$(image_used grimg)"
check_eq "image state is still valid" valid "$(image_field grimg 4)"
check_eq "no event from the growth itself" $((ev0 + 1)) "$(dm_events grimg)"

check "origin: 3.5 MiB beyond the first segment" wr $((7 << 19))
check_eq "used_sectors is 15360" 15360 "$(image_used grimg)"
check_eq "image state is valid" valid "$(image_field grimg 4)"
check_eq "low_water re-armed by the growth and raised again" $((ev0 + 2)) "$(dm_events grimg)"
note "image status: $(image_field grimg 1-4)"
check_same "image equals the pre-image" $image $pre 4096
check_same "origin equals the model" $origin $model 4096
check_eq "the image's chunks in the second segment read back (sha256)" \
	"$(sha256sum < $pre | cut -d' ' -f1)" "$(dev_sha $image)"

# A store reloaded smaller than the space in use has lost chunks: the next
# allocation turns the image failed (not overflow); the origin carries on.
ev=$(dm_events grimg)
check "store suspended again" dmsetup suspend grstore
check "store loaded with the first segment only (8192 sectors, 15360 in use)" \
	dmsetup load grstore --table "$seg1"
check "store resumed (4 MiB)" dmsetup resume grstore
check "origin: a write that needs a copy" wr 4096
check_eq "image state is failed" failed "$(image_field grimg 4)"
check "the image raised an event" test "$(dm_events grimg)" -gt "$ev"
check "the kernel log names the cause" sh -c "dmesg | grep -q 'failed: the store is smaller than the space handed out, or went away'"
check_same "origin equals the model" $origin $model 4096
