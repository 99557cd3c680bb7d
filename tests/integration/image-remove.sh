#!/bin/bash
# removing the image under origin writes, the origin under a busy mounted image, a refused second image: no error, crash or hang
# vm: --disks 2 --disk-size 256M --timeout 600
set -euo pipefail
# (A mounted image force-removed under writes: fault-remove.)
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"

real=/dev/vda
store=/dev/vdb
origin=/dev/mapper/rmorig
image=/dev/mapper/rmimg
size=$(blockdev --getsize64 $real)
require_target blksnap-image
kmsg_mark

model=$IMG_TMP/model
check "origin filled with random data" fill_random $real $model "$size"

# ---- (a) the image removed while fio writes to the origin -----------------
note "(a) remove the image under origin writes"
check "(a) blksnap-origin over $real" origin_create rmorig $real
check "(a) image created" image_create rmimg $real $store 8
fio --output-format=json --output=$IMG_TMP/fio.json --filename=$origin \
	--name=a --rw=randwrite --direct=1 --ioengine=psync --numjobs=2 \
	--offset_increment=16M --size=16M --bssplit=4k/60:64k/40 \
	--verify=crc32c --do_verify=1 > /dev/null &
fio_pid=$!
at_exit "stop_bg $fio_pid"
sleep 4
check "(a) fio is still running when the image is removed" kill -0 $fio_pid
check "(a) image removed during the writes" timeout 60 dmsetup remove rmimg
check "(a) fio finished and verified without error" wait $fio_pid
check_eq "(a) fio reports no error" 0 "$(fio_json $IMG_TMP/fio.json '[.jobs[].error] | add')"
check_eq "(a) fio wrote and verified 32M" "$((32 << 20)) $((32 << 20))" \
	"$(fio_json $IMG_TMP/fio.json '[.jobs[].write.io_bytes] | add') $(fio_json $IMG_TMP/fio.json '[.jobs[].read.io_bytes] | add')"
check_eq "(a) origin state is '-'" - "$(status_field rmorig 5)"
check_same "(a) origin beyond fio's 32M equals the model" $origin $model 4096 $((32 << 20)) $((size - (32 << 20)))
dev_read $origin 0 $((32 << 20)) | dd of=$model bs=1M conv=notrunc status=none # fio's data, verified by fio
check "(a) origin write after the removal" model_dd $origin $model $((40 << 20)) 65536 direct

# ---- (c) a second image is refused and does not disturb the first ---------
note "(c) a second image on the same origin"
pre=$IMG_TMP/pre
cp $model $pre
check "(c) first image created" image_create rmimg $real $store 8
check "(c) origin write under the first image" model_dd $origin $model $((50 << 20)) 65536 direct
expect_errno "(c) a second image (dmsetup create) fails with EBUSY" "Device or resource busy" \
	dmsetup create rmimg2 --table "$(image_table $real $store 8)"
at_exit "_dm_remove rmimg2"
if dmsetup info rmimg2 > /dev/null 2>&1; then
	check "(c) the failed attempt's device removed" dmsetup remove rmimg2
else
	echo "ok - (c) dmsetup removed the failed attempt's device itself"
fi
check "(c) an empty device for a second attempt" dmsetup create rmimg3 --notable
at_exit "_dm_remove rmimg3"
expect_errno "(c) loading a second image table fails with EBUSY" "Device or resource busy" \
	dmsetup load rmimg3 --table "$(image_table $real $store 8)"
check "(c) the failed attempt's device removed" dmsetup remove rmimg3
check_eq "(c) first image is still valid" valid "$(image_field rmimg 4)"
check_eq "(c) origin state is still snap" snap "$(status_field rmorig 5)"
check "(c) origin write after the refused attempts" model_dd $origin $model $((60 << 20)) 65536 direct
check_same "(c) first image still equals its pre-image" $image $pre 4096
check_same "(c) origin equals the model" $origin $model 4096
check "(c) first image removed" dmsetup remove rmimg
check_eq "(c) origin state is '-'" - "$(status_field rmorig 5)"
check "(c) a new image can be created afterwards" image_create rmimg $real $store 8
check_same "(c) the new image equals the origin" $image $model 4096
check "(c) and removed" dmsetup remove rmimg

# ---- (b) the origin removed while the image is mounted --------------------
note "(b) remove the origin under a mounted image"
check "(b) ext4 on the origin" mkfs.ext4 -q -F $origin
check "(b) origin mounted" mount_at $origin /mnt/o
head -c $((8 << 20)) /dev/urandom > /mnt/o/data
umount /mnt/o
check "(b) image created" image_create rmimg $real $store 8
check "(b) image mounted" mount_at $image /mnt/i
check "(b) image file readable" cmp /mnt/i/data /mnt/i/data
ev=$(dm_events rmimg)
(while :; do dd if=$image of=/dev/null bs=64K count=64 iflag=direct status=none 2> /dev/null || :; done) &
reader=$!
at_exit "stop_bg $reader"
(while :; do { head -c 1M /dev/urandom > /mnt/i/w; sync /mnt/i/w; } 2> /dev/null || :; done) &
iwriter=$!
at_exit "stop_bg $iwriter"
sleep 2
check "(b) origin removed while the image is mounted and busy" timeout 60 dmsetup remove rmorig
check_eq "(b) image state is failed" failed "$(image_field rmimg 4)"
check "(b) image raised an event" test "$(dm_events rmimg)" -gt "$ev"
expect_errno "(b) image read fails with EIO" "Input/output error" \
	dd if=$image of=/dev/null bs=4096 count=1 skip=1000 iflag=direct status=none
expect_errno "(b) image write fails with EIO" "Input/output error" \
	dd if=/dev/zero of=$image bs=4096 count=1 seek=1000 oflag=direct status=none
kill $reader $iwriter 2> /dev/null || true # they may have stopped on EIO (set -e)
wait $reader $iwriter 2> /dev/null || true
check "(b) image unmounted" timeout 60 umount /mnt/i
check "(b) image removed" timeout 60 dmsetup remove rmimg
check "(b) a new origin over $real" origin_create rmorig $real
check "(b) the origin's filesystem is clean" e2fsck -fn $origin

check_no_kernel_report "no kernel report in the whole run"
