#!/bin/bash
# merge safety: the real device is flushed before a merge reports done == total, and the merge message drains image writes still on their way to the store (or refuses with EBUSY), so an acknowledged image write is in the merged origin
# vm: --disks 2 --disk-size 64M --timeout 600
# lanes: debug
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"

real=/dev/vda
sdisk=/dev/vdb
origin=/dev/mapper/msorig
image=/dev/mapper/msimg
size=$(blockdev --getsize64 $real)
require_target blksnap-image
modprobe dm-linear 2> /dev/null || true

merge_state() { status_field msorig 5; }
# Field 16 of the disk's stat file: flush requests completed (Linux >= 5.5).
flushes() { awk '{ print $16 }' "/sys/block/${real#/dev/}/stat"; }

pre=$IMG_TMP/pre model=$IMG_TMP/model
check "origin filled with random data" fill_random $real $pre "$size"
check "blksnap-origin over $real" origin_create msorig $real

# --- (a) a flush of the real device before the merge says it is done --------
wc=$(cat "/sys/block/${real#/dev/}/queue/write_cache")
note "$real write cache: $wc"
check_eq "$real has a volatile write cache (flushes reach it)" "write back" "$wc"
check "store: dm-linear over $sdisk" linear_create msstore $sdisk 0 "$(dev_sectors $sdisk)"
check "blksnap-image with 4 KiB chunks" image_create msimg $real /dev/mapper/msstore 8
cp $pre $model
for k in 0 3 7 11; do
	check "origin: 64 KiB written at ${k}M" model_dd $origin $model $((k << 20)) $((64 << 10)) direct
done
f0=$(flushes)
check "merge started" dm_message msorig merge
check "merge reports done == total" merge_wait_done msorig
f1=$(flushes)
note "flushes of $real: $f0 before the merge, $f1 once it reports done"
check "the real device was flushed before the merge reported done ($f0 -> $f1)" test "$f1" -gt "$f0"
check "image removed" dmsetup remove msimg
check_same "origin rolled back to the pre-image" $origin $pre 4096

# --- (b) an image write still on its way to the store ------------------------
# Chunk 0 is copied (an origin write), so an image write to it goes to the
# store; a cgroup throttles that write to 512 bytes/s (8 s for 4 KiB).
check "blksnap-image again, copy_timeout 60" image_create msimg $real /dev/mapper/msstore 8 copy_timeout 60
check "origin: chunk 0 overwritten (copied to the store)" model_dd $origin $model 0 4096 direct
pat=$IMG_TMP/pattern
head -c 4096 /dev/urandom > $pat
check "cgroup 'slowst' writes the store at 512 B/s" cg_throttle slowst $sdisk wbps=512
cg_run slowst dd if=$pat of=$image bs=4096 count=1 oflag=direct status=none &
writer=$!
sleep 2
check "the image write is still in flight" kill -0 $writer
check "merge message (waits for the image write)" dm_message msorig merge
check "the image write completed before the merge started" wait $writer
expect_errno "image I/O fails once the merge runs" "Input/output error" \
	dd if=$image of=/dev/null bs=4096 count=1 iflag=direct status=none
check "merge reports done == total" merge_wait_done msorig
check "the acknowledged image write is in the merged origin" \
	cmp $pat <(dev_read $origin 0 4096)
check "image removed" dmsetup remove msimg
dd if=$pat of=$pre bs=4096 count=1 conv=notrunc status=none
check_same "origin is the pre-image with the image write" $origin $pre 4096

# --- (c) an image write that does not end within copy_timeout ----------------
# The merge message then refuses (EBUSY) instead of merging behind it, and
# the image keeps working; a later merge succeeds.
cp $pre $model
check "blksnap-image, copy_timeout 2" image_create msimg $real /dev/mapper/msstore 8 copy_timeout 2
check_eq "the table shows the option" "2 copy_timeout 2" "$(dmsetup table msimg | cut -d' ' -f7-)"
check "origin: chunk 1 overwritten (copied)" model_dd $origin $model 4096 4096 direct
cg_run slowst dd if=$pat of=$image bs=4096 count=1 seek=1 oflag=direct status=none &
writer=$!
sleep 1
kmsg_mark
expect_errno "merge refused while an image write is held longer than copy_timeout" \
	"Device or resource busy" dm_message msorig merge
check "the log says why" kmsg_logged "did not end within copy_timeout"
check "the image write completes" wait $writer
check_eq "origin state is still snap" snap "$(merge_state)"
check "image reads work again" cmp $pat <(dev_read $image 4096 4096)
dd if=$pat of=$pre bs=4096 count=1 seek=1 conv=notrunc status=none
check "merge started" dm_message msorig merge
check "merge reports done == total" merge_wait_done msorig
check "image removed" dmsetup remove msimg
check_same "origin is the pre-image with both image writes" $origin $pre 4096
