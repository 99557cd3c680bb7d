#!/bin/bash
# stress: 20 origin reloads and suspend/resume steps (origin and image) under writes with a snapshot held; the verifier checks all
# vm: --disks 2 --disk-size 128M --timeout 600
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"
. "$BLKSNAP_TOP/tests/stress-lib.sh"

real=/dev/vda
store=/dev/vdb
origin=/dev/mapper/srorig
image=/dev/mapper/srimg
om=$IMG_TMP/origin.model
im=$IMG_TMP/image.model
iterations=${STORM_ITERATIONS:-20}
limit=${STORM_SECONDS:-90} # the storm stops after this many seconds even if short of iterations
require_target blksnap-image
kmsg_mark
vf_build

check "real device stamped" vf_init $real $om 1
check "blksnap-origin over $real" origin_create srorig $real
otable=$(dmsetup table srorig)
cp $om $im
check "image with 8 KiB chunks" image_create srimg $real $store 16
itable=$(dmsetup table srimg)
uuid=$(status_field srorig 3)
cn=$(status_field srorig 4)

# The I/O runs until the storm is over (SIGTERM: a verifier finishes its
# current write and its model entry, then exits 0).
vf_bg ow0 "$VF" write $origin $om 1 --part 0/2 --seconds 600 --quiet
vf_bg ow1 "$VF" write $origin $om 1 --part 1/2 --seconds 600 --buffered --quiet
vf_bg iw0 "$VF" write $image $im 2 --seconds 600 --max-blocks 4 --quiet
vf_bg ir "$VF" read $image $im --writer-id 2 --seconds 600 --quiet
sleep 1

end=$((SECONDS + limit))
n=0 reloads=0 suspends=0 isuspends=0
fail() { echo "not ok - $1 (iteration $n)"; exit 1; }
slowest=0
while ((n < iterations && SECONDS < end)); do
	n=$((n + 1))
	t0=$SECONDS
	case $((n % 5)) in
	0 | 1)
		timeout 60 dmsetup suspend srorig || fail "origin suspend"
		dmsetup load srorig --table "$otable" || fail "origin load of the same table"
		timeout 60 dmsetup resume srorig || fail "origin resume after the reload"
		reloads=$((reloads + 1))
		;;
	2)
		timeout 60 dmsetup suspend srorig || fail "origin suspend"
		timeout 60 dmsetup resume srorig || fail "origin resume"
		suspends=$((suspends + 1))
		;;
	3)
		timeout 60 dmsetup suspend --noflush --nolockfs srorig || fail "origin suspend --noflush"
		sleep 0.$((RANDOM % 5))
		timeout 60 dmsetup resume srorig || fail "origin resume"
		suspends=$((suspends + 1))
		;;
	4)
		timeout 60 dmsetup suspend srimg || fail "image suspend"
		timeout 60 dmsetup resume srimg || fail "image resume"
		isuspends=$((isuspends + 1))
		;;
	esac
	((SECONDS - t0 <= slowest)) || slowest=$((SECONDS - t0))
	[ "$(status_field srorig 5)" = snap ] || fail "origin state is no longer snap"
	[ "$(img_state srimg)" = valid ] || fail "image is no longer valid"
	[ "$(status_field srorig 3)" = "$uuid" ] || fail "the generation changed"
	[ "$(status_field srorig 4)" = "$cn" ] || fail "the change number changed"
done
echo "ok - $n storm iterations in $((SECONDS - end + limit)) s: $reloads origin reloads, $suspends origin suspends, $isuspends image suspends; slowest step ${slowest} s"
for w in ow0 ow1 iw0 ir; do
	check "$w still running at the end of the storm" kill -0 "${VF_PID[$w]}"
	kill -TERM "${VF_PID[$w]}"
	vf_wait $w
done
check "at least 5 storm iterations" test $n -ge 5

expect_fail "reloading the image with its own table is refused (no second point in time)" \
	dmsetup load srimg --table "0 $(dev_sectors $real) blksnap-image $itable"
dmsetup clear srimg > /dev/null 2>&1 || true
check_eq "image still valid" valid "$(img_state srimg)"
note "image status: $(image_field srimg 1-4)"
vf_check "origin equals its model" $origin $om
vf_check "image equals the point-in-time model plus its writes" $image $im
vf_check "real device equals the origin's model" $real $om
check "image removed" dmsetup remove srimg
check_eq "origin state is '-'" - "$(status_field srorig 5)"
check "origin reload without an image" dm_reload srorig "$otable"
vf_check "origin equals its model at the end" $origin $om
check_no_kernel_report "no kernel report in the whole run"
