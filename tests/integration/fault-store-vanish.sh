#!/bin/bash
# a store that vanishes mid-snapshot (loop detach, dm store force-removed, scsi_debug disk deleted): image failed, origin correct
# vm: --disks 2 --disk-size 128M --timeout 600
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"
. "$BLKSNAP_TOP/tests/stress-lib.sh"

real=/dev/vda
origin=/dev/mapper/svorig
image=/dev/mapper/svimg
om=$IMG_TMP/origin.model
im=$IMG_TMP/image.model
require_target blksnap-image
# Case v3 needs scsi_debug, which Debian's kernels and the debug kernel
# have: only a kernel without it skips the test (before anything ran).
modinfo scsi_debug > /dev/null 2>&1 || skip "no scsi_debug module in kernel $(uname -r) (case v3 needs it)"
kmsg_mark
vf_build

check "real device stamped" vf_init $real $om 1
check "blksnap-origin over $real" origin_create svorig $real

failed_image_checks() { # failed_image_checks LABEL EVENTS_BEFORE
	# More origin writes now that the store is gone: on a slow kernel the
	# first writers may have ended before it went, with no copy since.
	vf_writers ow $origin $om 1 2 3
	vf_wait_writers 0
	check "($1) image turns failed" wait_state svimg failed 60
	check "($1) image raised a dm event" test "$(dm_events svimg)" -gt "$2"
	expect_errno "($1) image read fails with EIO" "Input/output error" \
		dd if=$image of=/dev/null bs=4096 count=1 skip=7 iflag=direct status=none
	note "($1) image status: $(image_field svimg 1-4)"
}

# ---- (v1) loop store detached and its file unlinked while in use ----------
note "(v1) loop-backed store: losetup -d and rm of the file mid-snapshot"
# The image must stay valid, so the store must hold whatever the writers
# below can write: they write anywhere on the origin and the image, and a
# chunk takes one store chunk at most (copied or written to through the
# image), so the origin's size plus a margin can never fill.
store_bytes=$(($(dev_sectors $real) * 512 + (16 << 20)))
truncate -s $store_bytes $IMG_TMP/store.img
loopdev=$(losetup -f --show $IMG_TMP/store.img)
at_exit "undo_loop $loopdev"
note "(v1) store is $loopdev, $((store_bytes >> 20)) MiB: more than the origin's $(($(dev_sectors $real) >> 11)) MiB"
cp $om $im
check "(v1) image created on $loopdev" image_create svimg $real $loopdev 8
vf_writers ow $origin $om 1 2 10
vf_writers iw $image $im 2 1 10 --max-blocks 4
VF_WRITERS=(ow0 ow1 iw0)
sleep 3
check "(v1) losetup -d while the image holds the store" losetup -d $loopdev
check "(v1) backing file unlinked" rm $IMG_TMP/store.img
vf_wait_writers 0
check_eq "(v1) the image is still valid (the loop device lives until closed)" valid "$(img_state svimg)"
vf_check "(v1) origin equals its model" $origin $om
vf_check "(v1) image equals its model" $image $im
check "(v1) image removed" dmsetup remove svimg
check "(v1) the loop device is gone after the image closed it" \
	timeout 30 sh -c "while [ -e /sys/block/${loopdev#/dev/}/loop/backing_file ]; do sleep 0.5; done"

# ---- (v2) a dm store force-removed under origin writes --------------------
note "(v2) dm-linear store: dmsetup remove --force mid-snapshot"
check "(v2) store: dm-linear over /dev/vdb" dm_create svstore "0 $(dev_sectors /dev/vdb) linear /dev/vdb 0"
check "(v2) image created" image_create svimg $real /dev/mapper/svstore 8
ev=$(dm_events svimg)
vf_writers ow $origin $om 1 2 10
sleep 3
timeout 60 dmsetup remove --force svstore > $IMG_TMP/rm.out 2>&1 || true
note "(v2) dmsetup remove --force svstore: $(tr '\n' ' ' < $IMG_TMP/rm.out)"
vf_wait_writers 0
failed_image_checks v2 "$ev"
vf_check "(v2) origin equals its model" $origin $om
check "(v2) image removed" dmsetup remove svimg
check "(v2) store device gone or removable" sh -c "! dmsetup info svstore >/dev/null 2>&1 || dmsetup remove svstore"
check_eq "(v2) origin state is '-'" - "$(status_field svorig 5)"

# ---- (v3) a SCSI disk store deleted (hot unplug) ---------------------------
note "(v3) scsi_debug store deleted through sysfs mid-snapshot"
# 160 MiB: more than the origin, it cannot overflow first.
check "(v3) scsi_debug loaded (a 160 MiB disk)" scsi_debug_load dev_size_mb=160
sd=$(scsi_debug_disk)
check "(v3) scsi_debug disk present" test -n "$sd" -a -b "/dev/$sd"
note "(v3) store is /dev/$sd"
check "(v3) image created" image_create svimg $real /dev/$sd 8
ev=$(dm_events svimg)
vf_writers ow $origin $om 1 2 10
sleep 3
check "(v3) disk deleted" sh -c "echo 1 > /sys/block/$sd/device/delete"
vf_wait_writers 0
failed_image_checks v3 "$ev"
vf_check "(v3) origin equals its model" $origin $om
check "(v3) image removed" dmsetup remove svimg
check "(v3) scsi_debug unloads (no reference left)" timeout 30 modprobe -r scsi_debug

cp $om $im
check "a new image on /dev/vdb afterwards" image_create svimg $real /dev/vdb 8
vf_writers ow $origin $om 1 2 3
vf_wait_writers 0
vf_check "the new image equals the point-in-time model" $image $im
vf_check "origin equals its model at the end" $origin $om
check "image removed" dmsetup remove svimg
check_no_kernel_report "no kernel report in the whole run"
