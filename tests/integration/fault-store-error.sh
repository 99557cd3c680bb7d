#!/bin/bash
# store write errors (error table, dm-flakey) and real-device read errors: the image fails with EIO, the origin stays correct
# vm: --disks 2 --disk-size 128M --timeout 600 --modules dm-flakey
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"
. "$BLKSNAP_TOP/tests/stress-lib.sh"

vda=/dev/vda
vdb=/dev/vdb
real=/dev/mapper/fsreal   # a dm-linear over vda, reloaded to dm-flakey for read errors
origin=/dev/mapper/fsorig
image=/dev/mapper/fsimg
store=/dev/mapper/fsstore # a dm-linear over vdb, reloaded to error / dm-flakey
om=$IMG_TMP/origin.model
im=$IMG_TMP/image.model
size=$(dev_sectors $vda)
ssize=$(dev_sectors $vdb)
require_target blksnap-image
dmsetup targets | grep -qw flakey || skip "no dm-flakey"
kmsg_mark
vf_build

check "real device: dm-linear over $vda" dm_create fsreal "0 $size linear $vda 0"
check "store: dm-linear over $vdb" dm_create fsstore "0 $ssize linear $vdb 0"
check "real device stamped" vf_init $real $om 1
check "blksnap-origin over $real" origin_create fsorig $real

failed_image_checks() { # failed_image_checks LABEL EVENTS_BEFORE
	check "($1) image turns failed" wait_state fsimg failed 60
	check "($1) image raised a dm event" test "$(dm_events fsimg)" -gt "$2"
	expect_errno "($1) image read fails with EIO" "Input/output error" \
		dd if=$image of=/dev/null bs=4096 count=1 skip=7 iflag=direct status=none
	expect_errno "($1) image write fails with EIO" "Input/output error" \
		dd if=/dev/zero of=$image bs=4096 count=1 seek=9 oflag=direct status=none
	check_eq "($1) origin state still snap until the image is removed" snap "$(status_field fsorig 5)"
	note "($1) image status: $(image_field fsimg 1-4); kernel: $(kmsg_since_mark | grep -i blksnap | tail -n 1)"
}

image_roundtrip() { # image_roundtrip LABEL: a new image over the repaired devices works
	cp $om $im
	check "($1) a new image on the repaired devices" image_create fsimg $real $store 8
	vf_writers ow $origin $om 1 2 3
	vf_wait_writers 0
	vf_check "($1) the new image equals the point-in-time model" $image $im
	check "($1) new image removed" dmsetup remove fsimg
}

# ---- (s1) the store's table reloaded to 'error' under origin writes --------
note "(s1) store reloaded to an error table while origin writers run"
cp $om $im
check "(s1) image created" image_create fsimg $real $store 8
ev=$(dm_events fsimg)
vf_writers ow $origin $om 1 2 12
sleep 3
check "(s1) store reloaded to error" dm_reload fsstore "0 $ssize error"
vf_wait_writers 0 # the origin's users see no error
failed_image_checks s1 "$ev"
vf_check "(s1) origin equals its model" $origin $om
check "(s1) image removed" dmsetup remove fsimg
check_eq "(s1) origin state is '-'" - "$(status_field fsorig 5)"
check "(s1) store repaired" dm_reload fsstore "0 $ssize linear $vdb 0"
image_roundtrip s1

# ---- (s2) intermittent store write errors (dm-flakey error_writes) ---------
note "(s2) dm-flakey store: up 1 s, down 1 s, error_writes"
check "(s2) store reloaded to dm-flakey" dm_reload fsstore "0 $ssize flakey $vdb 0 1 1 1 error_writes"
cp $om $im
check "(s2) image created" image_create fsimg $real $store 8
ev=$(dm_events fsimg)
vf_writers ow $origin $om 1 2 10
# The strict reader: every block it gets is the point-in-time content; once
# the image failed, EIO (counted, exit 3), never newer data.
vf_bg ireader "$VF" read $image $im --tolerate-eio --seconds 10 --quiet
vf_wait_writers 0
vf_wait ireader "0 3"
failed_image_checks s2 "$ev"
vf_check "(s2) origin equals its model" $origin $om
check "(s2) image removed" dmsetup remove fsimg
check "(s2) store repaired" dm_reload fsstore "0 $ssize linear $vdb 0"
image_roundtrip s2

# ---- (o1) read errors of the real device: copy-on-write cannot read --------
note "(o1) real device reloaded to dm-flakey error_reads (always down) under a snapshot"
cp $om $im
check "(o1) image created" image_create fsimg $real $store 8
ev=$(dm_events fsimg)
check "(o1) real device reloaded: reads fail, writes pass" dm_reload fsreal "0 $size flakey $vda 0 0 1 1 error_reads"
vf_writers ow $origin $om 1 2 8
vf_wait_writers 0 # writes to the origin still complete
failed_image_checks o1 "$ev"
check "(o1) image removed" dmsetup remove fsimg
check "(o1) real device repaired" dm_reload fsreal "0 $size linear $vda 0"
vf_check "(o1) origin equals its model" $origin $om
vf_check "(o1) the real device equals the origin's model" $vda $om
image_roundtrip o1

# ---- (o2) intermittent real-device read errors while image readers run -----
note "(o2) real device: dm-flakey error_reads up 1 s / down 1 s, image readers and origin writers"
cp $om $im
check "(o2) image created" image_create fsimg $real $store 8
check "(o2) real device reloaded to intermittent read errors" dm_reload fsreal "0 $size flakey $vda 0 1 1 1 error_reads"
vf_writers ow $origin $om 1 2 8
vf_bg ireader "$VF" read $image $im --tolerate-eio --seconds 8 --quiet
vf_wait_writers 0
vf_wait ireader "0 3" # EIO from the real device (exit 3), never other data
state=$(img_state fsimg)
note "(o2) image state after intermittent read errors: $state ($(image_field fsimg 1-4))"
check "(o2) image is valid or failed, nothing else" test "$state" = valid -o "$state" = failed
check "(o2) real device repaired" dm_reload fsreal "0 $size linear $vda 0"
if [ "$state" = valid ]; then
	vf_check "(o2) the still valid image equals the point-in-time model" $image $im
fi
check "(o2) image removed" dmsetup remove fsimg
vf_check "(o2) origin equals its model" $origin $om
check_no_kernel_report "no kernel report in the whole run"
