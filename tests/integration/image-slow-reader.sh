#!/bin/bash
# image reads held back by an io.max throttle: origin writes over their chunks wait for them and then complete (16 chunks released at once), and a read that ends after the image failed returns EIO, never newer data
# vm: --disks 2 --disk-size 128M --timeout 600
# lanes: debug
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"

# The image's reads from the real device are throttled to 4 KiB/s: a 64 KiB
# read takes 16 s, during which origin writes to its chunks get their copies
# done and must wait for the read ("draining") before they reach the device.
real=/dev/vda
origin=/dev/mapper/srorig
image=/dev/mapper/srimg
require_target blksnap-image
modprobe dm-linear 2> /dev/null || true

pre=$IMG_TMP/pre model=$IMG_TMP/model
check "origin filled with random data (32 MiB)" fill_random $real $pre $((32 << 20))
cp $pre $model
check "blksnap-origin over $real" origin_create srorig $real
check "cgroup 'slow' reads $real at 4 KiB/s" cg_throttle slow $real rbps=4096

# --- (a) a write over exactly 16 chunks that a slow image read holds --------
check "blksnap-image with 4 KiB chunks, store /dev/vdb" image_create srimg $real /dev/vdb 8
cg_run slow dd if=$image of=$IMG_TMP/read-a bs=64K count=1 iflag=direct status=none &
reader=$!
sleep 2
check "the image read is still in flight after 2 s (throttled)" kill -0 $reader
model_dd $origin $model 0 $((64 << 10)) direct &
writer=$!
sleep 2
check "the origin write over the read's 16 chunks waits for the read" kill -0 $writer
check "the throttled image read ends" wait $reader
ok=0
for _ in $(seq 60); do
	kill -0 $writer 2> /dev/null || { ok=1; break; }
	sleep 0.5
done
check "the origin write completes within 30 s of the read's end" test $ok -eq 1
check "the origin write succeeded" wait $writer
check "the held-back image read returned the pre-image" \
	cmp $IMG_TMP/read-a <(file_read $pre 0 $((64 << 10)))
check_eq "image state is valid" valid "$(image_field srimg 4)"
check_eq "16 chunks copied" 16 "$(image_field srimg 3)"
check_same "image equals the pre-image" $image $pre 4096 0 $((32 << 20))
check_same "origin equals the model" $origin $model 4096 0 $((32 << 20))
check "image removed" dmsetup remove srimg

# --- (b) a read that ends after the image overflowed -----------------------
# A 1 MiB store: 256 chunks. While a slow read of chunk X is in flight, other
# origin writes fill the store, the image turns overflow, and an origin
# write to X then passes without a copy. The read must fail.
cp $model $pre
check "store: a 1 MiB dm-linear over /dev/vdb" linear_create srstore /dev/vdb 0 2048
check "blksnap-image with 4 KiB chunks, 1 MiB store" image_create srimg $real /dev/mapper/srstore 8
x=$((8 << 20))
cg_run slow dd if=$image of=$IMG_TMP/read-b bs=64K count=1 skip=$((x >> 16)) iflag=direct status=none &
reader=$!
sleep 2
check "the image read of chunk $((x >> 12)) is in flight" kill -0 $reader
check "origin: 2 MiB written elsewhere (the store overflows)" model_dd $origin $model $((16 << 20)) $((2 << 20)) direct
check_eq "image state is overflow" overflow "$(image_field srimg 4)"
check "origin: the read's chunks overwritten (no copy any more)" model_dd $origin $model $x $((64 << 10)) direct
rc=0
wait $reader || rc=$?
check "the image read that ended after the overflow failed (exit $rc)" test $rc -ne 0
if [ -s $IMG_TMP/read-b ]; then
	check "whatever it returned is not the new data" \
		! cmp -s $IMG_TMP/read-b <(file_read $model $x "$(stat -c %s $IMG_TMP/read-b)")
fi
expect_errno "a new image read fails with EIO" "Input/output error" \
	dd if=$image of=/dev/null bs=4096 count=1 skip=$((x >> 12)) iflag=direct status=none
check_same "origin equals the model (nothing lost)" $origin $model 4096 0 $((32 << 20))
