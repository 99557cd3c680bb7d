#!/bin/bash
# stress: origin writers, image writers and readers over 4 snapshot cycles; the verifier checks origin and image after each
# vm: --disks 2 --disk-size 128M --timeout 600
# lanes: debug
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"
. "$BLKSNAP_TOP/tests/stress-lib.sh"

real=/dev/vda
store=/dev/vdb
origin=/dev/mapper/scorig
image=/dev/mapper/scimg
om=$IMG_TMP/origin.model
im=$IMG_TMP/image.model
secs=${STRESS_SECONDS:-8}
# KASAN and lockdep under emulation: the same cycles with less I/O each.
! debug_kernel || secs=${STRESS_SECONDS:-5}
require_target blksnap-image
kmsg_mark
vf_build

check "real device stamped (id 1)" vf_init $real $om 1
check "blksnap-origin over $real" origin_create scorig $real
vf_check "origin equals the model before any snapshot" $origin $om

# chunk sizes of the cycles: 4 KiB, 16 KiB, 512 KiB, 4 KiB (buffered writers)
cycle=0
for chunk in 8 32 1024 8; do
	cycle=$((cycle + 1))
	opt=()
	[ $cycle -ne 4 ] || opt=(--buffered)
	note "cycle $cycle: chunk $chunk sectors, $secs s of I/O ${opt[*]:-(direct)}"
	cp $om $im # no writer runs: the model of the snapshot's point in time
	check "cycle $cycle: image created" image_create scimg $real $store $chunk
	check_eq "cycle $cycle: origin state is snap" snap "$(status_field scorig 5)"
	vf_writers owriter $origin $om 1 2 "$secs" "${opt[@]}"
	ow=("${VF_WRITERS[@]}")
	vf_writers iwriter $image $im $((100 + cycle)) 1 "$secs" --max-blocks 8
	iw=("${VF_WRITERS[@]}")
	vf_bg ireader "$VF" read $image $im --writer-id $((100 + cycle)) --seconds "$secs" --quiet
	vf_bg oreader "$VF" read $origin $om --writer-id 1 --seconds "$secs" --quiet
	VF_WRITERS=("${ow[@]}" "${iw[@]}")
	vf_wait_writers
	vf_wait ireader
	vf_wait oreader
	check_eq "cycle $cycle: image is still valid" valid "$(img_state scimg)"
	note "cycle $cycle: image status $(image_field scimg 1-4)"
	check "cycle $cycle: chunks were copied" test "$(image_field scimg 3)" -gt 0
	vf_check "cycle $cycle: origin equals its model" $origin $om
	vf_check "cycle $cycle: image equals the point-in-time model plus its own writes" $image $im
	vf_check "cycle $cycle: real device equals the origin's model" $real $om
	check "cycle $cycle: image removed" dmsetup remove scimg
	check_eq "cycle $cycle: origin state is '-'" - "$(status_field scorig 5)"
	vf_check "cycle $cycle: origin unchanged by the removal" $origin $om
done
"$VF" stat $om | sed 's/^/# origin model: /'
check_no_kernel_report "no kernel report in the whole run"
