#!/bin/bash
# copies that fail (a store segment that errors) give their store space back: the pool's used space is exactly the copied chunks, for the failed image and for another image sharing the store
# vm: --disks 3 --disk-size 64M --timeout 600
# lanes: debug
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"

require_target blksnap-image
modprobe dm-linear 2> /dev/null || true

pre=$IMG_TMP/pre model=$IMG_TMP/model
check "vda filled with random data" fill_random /dev/vda $pre $((64 << 20))
cp $pre $model
check "blksnap-origin over vda" origin_create ceorig /dev/vda
check "blksnap-origin over vdc" origin_create ceorig2 /dev/vdc
# The store: 1 MiB that works, then 1 MiB that fails every I/O.
printf '0 2048 linear /dev/vdb 0\n2048 8192 error\n' | dmsetup create cestore
at_exit "_dm_remove cestore"
check "store: 1 MiB of vdb, then 1 MiB of dm-error" dmsetup info cestore
check "image of vdc on the store" image_create ceimg2 /dev/vdc /dev/mapper/cestore 8
check "image of vda on the store" image_create ceimg /dev/vda /dev/mapper/cestore 8
check "vdc: 64 KiB written (16 chunks copied)" dd if=/dev/urandom of=/dev/mapper/ceorig2 bs=64K count=1 oflag=direct status=none
# 512 KiB of first writes copy into the working half (one run of 128 chunks).
check "origin: 512 KiB written" model_dd /dev/mapper/ceorig $model $((8 << 20)) $((512 << 10)) direct
check_eq "image of vda is valid" valid "$(image_field ceimg 4)"
kmsg_mark
# 2 MiB of first writes: copies run into the failing half; a run that
# fails gives all its space back.
check "origin: 2 MiB written (every write succeeds)" model_dd /dev/mapper/ceorig $model $((17 << 19)) $((2 << 20)) direct
check_eq "image of vda is failed" failed "$(image_field ceimg 4)"
check "the log names the store write error" kmsg_logged "cannot write the store"
c1=$(image_field ceimg 3) c2=$(image_field ceimg2 3)
used=$(image_used ceimg)
note "copied chunks: $c1 (vda) + $c2 (vdc); store used $used sectors"
check "the copies before the failure are kept" test "$c1" -ge 128
check_eq "used space is exactly the copied chunks (failed copies gave theirs back)" \
	$(((c1 + c2) * 8)) "$used"
check "image of vda removed" dmsetup remove ceimg
check_eq "the pool now holds the other image's chunks only" $((c2 * 8)) "$(image_used ceimg2)"
check_eq "the other image is still valid" valid "$(image_field ceimg2 4)"
check_same "vda equals the model (origin unaffected)" /dev/mapper/ceorig $model 4096
