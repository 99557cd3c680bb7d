#!/bin/bash
# chunk sizes 4 KiB, 64 KiB and 1 MiB: the image keeps the pre-image under model-tracked origin writes
# vm: --disks 2 --disk-size 64M --timeout 600
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"

real=/dev/vda
store=/dev/vdb
origin=/dev/mapper/chorig
image=/dev/mapper/chimg
size=$(blockdev --getsize64 $real)
require_target blksnap-image

pre=$IMG_TMP/pre model=$IMG_TMP/model
check "origin filled with random data" fill_random $real $model "$size"
check "blksnap-origin over $real" origin_create chorig $real
rnd() { echo $(((RANDOM << 15 | RANDOM) % $1)); }

for chunk in 8 128 2048; do
	cb=$((chunk * SECTOR))
	cp $model $pre
	check "chunk $chunk: image created" image_create chimg $real $store $chunk
	check_eq "chunk $chunk: status shows the chunk size" $chunk "$(image_field chimg 2)"
	# Writes of every shape relative to the chunk: inside, straddling, spanning, unaligned.
	touched=()
	for ((i = 0; i < 6; i++)); do
		c=$((1 + $(rnd $((size / cb - 3)))))
		model_dd $origin $model $((c * cb + 512 * $(rnd $((chunk - 1))))) 512 direct # inside one chunk
		touched+=($c)
		c=$((1 + $(rnd $((size / cb - 3)))))
		model_dd $origin $model $((c * cb - 2048)) 4096 direct # straddling c-1|c
		touched+=($((c - 1)) $c)
		c=$((1 + $(rnd $((size / cb - 4)))))
		model_dd $origin $model $((c * cb + 1000)) $((2 * cb + 7)) # 3 chunks, byte-unaligned, buffered
		touched+=($c $((c + 1)) $((c + 2)))
	done
	# A second write to chunks already copied must not copy them again.
	for c in "${touched[@]:0:6}"; do
		model_dd $origin $model $((c * cb)) 4096 direct
	done
	check_eq "chunk $chunk: image state is valid" valid "$(image_field chimg 4)"
	distinct=$(printf '%s\n' "${touched[@]}" | sort -un | wc -l)
	check_eq "chunk $chunk: copied_chunks counts each touched chunk once" "$distinct" "$(image_field chimg 3)"
	check_eq "chunk $chunk: used_sectors is copied_chunks * $chunk" $((distinct * chunk)) "$(image_used chimg)"
	check_same "chunk $chunk: image equals the pre-image" $image $pre $cb
	check_same "chunk $chunk: origin equals the model" $origin $model $cb
	check "chunk $chunk: image removed" dmsetup remove chimg
done
