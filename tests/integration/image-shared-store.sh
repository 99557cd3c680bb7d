#!/bin/bash
# two origins with their images share one store: both images keep their pre-images under concurrent writes
# vm: --disks 3 --disk-size 128M --timeout 600
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"

store=/dev/vdc
require_target blksnap-image
size=$(blockdev --getsize64 /dev/vda)
declare -A chunk=([a]=8 [b]=32)
declare -A real=([a]=/dev/vda [b]=/dev/vdb)

for x in a b; do
	check "origin $x: ${real[$x]} filled with random data" fill_random ${real[$x]} $IMG_TMP/pre.$x "$size"
	check "origin $x: model copy in /tmp" cp $IMG_TMP/pre.$x $IMG_TMP/model.$x
	check "origin $x: blksnap-origin over ${real[$x]}" origin_create sorig_$x ${real[$x]}
done
for x in a b; do
	check "image $x: ${chunk[$x]}-sector chunks on the shared store $store" \
		image_create simg_$x ${real[$x]} $store ${chunk[$x]}
done

# Concurrent model-tracked writes, one writer per origin, plus reads of both images.
writes() { # writes X COUNT
	local x=$1 i off len
	for ((i = 0; i < $2; i++)); do
		len=$(((1 + (RANDOM % 64)) * 4096))
		off=$((((RANDOM << 15 | RANDOM) % ((size - len) / 512)) * 512))
		model_dd /dev/mapper/sorig_$x $IMG_TMP/model.$x $off $len direct || return
	done
}
writes a 80 &
wa=$!
at_exit "stop_bg $wa"
writes b 80 &
wb=$!
at_exit "stop_bg $wb"
dev_sha /dev/mapper/simg_a > $IMG_TMP/read.a &
ra=$!
dev_sha /dev/mapper/simg_b > $IMG_TMP/read.b &
rb=$!
check "origin a: 80 random writes (4..256 KiB) finished" wait $wa
check "origin b: 80 random writes (4..256 KiB) finished" wait $wb
check "image reads during the writes finished" wait $ra $rb
for x in a b; do
	check_eq "image $x: read during the writes equals the pre-image" \
		"$(sha256sum < $IMG_TMP/pre.$x | cut -d' ' -f1)" "$(cat $IMG_TMP/read.$x)"
done

for x in a b; do
	check_eq "image $x: state is valid" valid "$(image_field simg_$x 4)"
	check_same "image $x: equals its pre-image" /dev/mapper/simg_$x $IMG_TMP/pre.$x $((chunk[$x] * SECTOR))
	check_same "origin $x: equals its model" /dev/mapper/sorig_$x $IMG_TMP/model.$x $((chunk[$x] * SECTOR))
done

# The pool: both images report the same used/store, and it covers both images' chunks.
sa=$(image_field simg_a 1) sb=$(image_field simg_b 1)
note "image a: $(image_field simg_a 1-4); image b: $(image_field simg_b 1-4)"
check_eq "both images report the same pool usage" "$sa" "$sb"
check_eq "store_sectors is the size of $store" "$(dev_sectors $store)" "${sa#*/}"
ca=$(image_field simg_a 3) cb=$(image_field simg_b 3)
check "both images copied chunks ($ca, $cb)" test "$ca" -gt 0 -a "$cb" -gt 0
check_eq "used_sectors is the sum of both images' chunks" $((ca * chunk[a] + cb * chunk[b])) "${sa%/*}"

# Removing one image gives its space back; the other is untouched.
check "image a removed" dmsetup remove simg_a
check_eq "used_sectors is image b's share after image a is gone" $((cb * chunk[b])) "$(image_used simg_b)"
check_same "image b: still equals its pre-image" /dev/mapper/simg_b $IMG_TMP/pre.b $((chunk[b] * SECTOR))
check_eq "origin a: state '-' after its image is gone" - "$(status_field sorig_a 5)"
check_same "origin a: still equals its model" /dev/mapper/sorig_a $IMG_TMP/model.a 4096
