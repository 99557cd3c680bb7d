#!/bin/bash
# writes to the image read back exactly, never reach the origin, and mark the snapshot's CBT map
# vm: --disks 2 --disk-size 128M --timeout 400
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"

real=/dev/vda
store=/dev/vdb
chunk=8 # 4 KiB
cb=4096
origin=/dev/mapper/worig
image=/dev/mapper/wimg
size=$(blockdev --getsize64 $real)
require_target blksnap-image

pre=$IMG_TMP/pre omodel=$IMG_TMP/origin.model imodel=$IMG_TMP/image.model
check "origin filled with random data" fill_random $real $pre "$size"
check "blksnap-origin over $real" origin_create worig $real
tbs=$(status_field worig 1)
model_init $((size / SECTOR)) "$tbs"
take_and_check worig # snapshot 1: cbt only, no image

# Writes through the origin before the image: snapshot 2 will list them.
owrite() { # owrite OFF LEN: an origin write, in the origin model and the CBT model
	model_dd $origin $omodel "$1" "$2" direct && model_write $(($1 / SECTOR)) $((($2 + SECTOR - 1) / SECTOR))
}
cp $pre $omodel
owrite $((10 << 20)) 8192
owrite $((50 << 20)) 512
cp $omodel $pre # the pre-image: the origin at the snapshot
cp $pre $imodel

check "blksnap-image with 4 KiB chunks, snapshot taken" image_create wimg $real $store $chunk
model_take
check_eq "the image's snapshot is number $M_LAST_TAKE (change_number $M_C)" "$M_C" "$(status_field worig 4)"

iwrite() { # iwrite OFF LEN: an image write, in the image model and the snapshot map
	local b
	model_dd $image $imodel "$1" "$2" direct || return
	for ((b = $1 / SECTOR / M_TBS; b <= ($1 + $2 - 1) / SECTOR / M_TBS; b++)); do
		M_SNAP[b]=$M_LAST_TAKE
	done
}
n=0
# 1 KiB writes straddling chunk boundaries (both chunks uncopied).
for c in 100 2001 2003 9000 20000; do
	check "image: 1 KiB direct write straddling chunk $c|$((c + 1))" iwrite $(((c + 1) * cb - 512)) 1024
	n=$((n + 1))
done
# 512 bytes in the middle of an uncopied chunk: the rest of the chunk stays the pre-image.
check "image: 512 bytes in the middle of chunk 3000" iwrite $((3000 * cb + 1536)) 512
# An origin write first (the chunk is copied), then an image write to it.
check "origin: 4 KiB over chunk 4000" owrite $((4000 * cb)) 4096
check "image: 1 KiB into chunk 4000, already copied by the origin write" iwrite $((4000 * cb + 1024)) 1024
# An image write first, then an origin write to the same chunk: no second copy.
check "image: 2 KiB into chunk 5000" iwrite $((5000 * cb + 2048)) 2048
check "origin: 4 KiB over chunk 5000, after the image wrote it" owrite $((5000 * cb)) 4096
check "origin: 8 KiB straddling chunks 5000..5002" owrite $((5000 * cb + 2048)) 8192
# Large image writes across many chunks, one starting unaligned to a chunk.
check "image: 256 KiB from the middle of chunk 6000" iwrite $((6000 * cb + 512)) $((256 << 10))
check "image: 1 MiB at 100 MiB" iwrite $((100 << 20)) $((1 << 20))
# Rewrites of image-written ranges.
check "image: rewrite of a straddling 1 KiB range" iwrite $((2002 * cb - 512)) 1024
check "image: 4 KiB rewriting part of the 256 KiB range" iwrite $((6010 * cb)) 4096
# The last sectors of the device, through both.
check "image: the last 1 KiB" iwrite $((size - 1024)) 1024
check "origin: the last 4 KiB" owrite $((size - 4096)) 4096
# Random straddling writes, through both devices.
rnd() { echo $(((RANDOM << 15 | RANDOM) % $1)); }
for ((i = 0; i < 40; i++)); do
	c=$((1 + $(rnd $((size / cb - 2)))))
	iwrite $((c * cb - 512)) 1024 || die "image write at $((c * cb - 512)) failed"
	c=$((1 + $(rnd $((size / cb - 2)))))
	owrite $((c * cb - 1024)) 2048 || die "origin write at $((c * cb - 1024)) failed"
done
echo "ok - 80 random straddling writes to the image and the origin"

check_eq "image state is valid" valid "$(image_field wimg 4)"
note "image status: $(image_field wimg 1-4)"
check_same "image equals the pre-image with the image writes" $image $imodel $cb
check_same "origin equals its own model (no image write reached it)" $origin $omodel $cb
check_same "real device equals the origin model" $real $omodel $cb
# After dropping the image's page cache and reading again (direct I/O above already).
blockdev --flushbufs $image
check_eq "image sha256 (buffered read) equals the model" \
	"$(sha256sum < $imodel | cut -d' ' -f1)" "$(sha256sum < $image | cut -d' ' -f1)"

# CBT: the snapshot map holds the origin writes before it (value 2) and the image writes (value 2).
check_changes worig $((M_LAST_TAKE - 1))
check_changes worig 0
check_changes worig "$M_LAST_TAKE"
check_map worig
