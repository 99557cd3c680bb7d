#!/bin/bash
# the image keeps the pre-snapshot content under fio and model-tracked dd writes to the origin
# vm: --disks 2 --disk-size 128M --timeout 600
# lanes: debug
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"

real=/dev/vda
store=/dev/vdb
chunk=16 # 8 KiB
cb=$((chunk * SECTOR))
origin=/dev/mapper/dorig
image=/dev/mapper/dimg
size=$(blockdev --getsize64 $real)
fio_len=$((48 << 20)) # fio: bytes 0..48M; model-tracked dd: 48M..end
fio_mb=16 # each job's share of its 16M slice
rounds=20 # of the model-tracked dd writes
! debug_kernel || { fio_mb=6 rounds=10; }
model_off=$fio_len
model_len=$((size - model_off))
require_target blksnap-origin
require_target blksnap-image

pre=$IMG_TMP/pre model=$IMG_TMP/model
check "origin filled with random data (the pre-image model)" fill_random $real $pre "$size"
pre_sha=$(sha256sum < $pre | cut -d' ' -f1)
check "blksnap-origin over $real" origin_create dorig $real
check "blksnap-image with $chunk-sector chunks, snapshot taken" image_create dimg $real $store $chunk
check_eq "image state is valid" valid "$(image_field dimg 4)"
check_eq "origin state is snap" snap "$(status_field dorig 5)"
cp $pre $model

# fio on 0..48M: three jobs in their own 16M slices, direct and buffered, mixed sizes.
# Each job writes its whole slice (checked below); --runtime only stops a
# runaway, with room for the debug kernel (which needs more than 150 s).
fio_out=$IMG_TMP/fio.json
fio --output-format=json --output=$fio_out --filename=$origin \
	--ioengine=psync --rw=randwrite --verify=crc32c --do_verify=1 --randrepeat=0 \
	--runtime=1200 --size=${fio_mb}M \
	--name=direct4 --offset=0 --direct=1 --bssplit=4k/50:16k/30:64k/20 \
	--name=buffered --offset=16M --direct=0 --bssplit=512/20:8k/40:128k/40 \
	--name=direct512 --offset=32M --direct=1 --bssplit=512/30:1k/30:12k/40 &
fio_pid=$!
at_exit "stop_bg $fio_pid"

# Three full reads of the image while the origin is written.
for i in 1 2 3; do
	(sleep $((i * 3)); dev_sha $image > $IMG_TMP/read.$i) &
	at_exit "stop_bg $!"
	eval "reader_$i=$!"
done

# Model-tracked dd writes on 64M..end, in step with the model copy.
# R=0..N-1 without a subshell: a fork costs about 0.5 s on the debug kernel.
rnd() { R=$(((RANDOM << 15 | RANDOM) % $1)); }
n=0
for ((i = 0; i < rounds; i++)); do
	# 512 bytes, direct, at an odd sector
	rnd $((model_len / 1024))
	off=$((model_off + R * 1024 + 512))
	model_dd $origin $model $off 512 direct
	# straddling a chunk boundary: 512..chunk+4K bytes, direct
	rnd $((model_len - 3 * cb))
	c=$(((model_off + cb + R) / cb))
	rnd $(((cb + 4096) / 512 - 1))
	len=$((512 * (2 + R)))
	rnd $((len / 512 - 1))
	model_dd $origin $model $((c * cb - 512 * (1 + R))) $len direct
	# byte-unaligned, buffered, then fsync
	rnd $((model_len - 20000))
	off=$((model_off + R))
	rnd 10000
	model_dd $origin $model $off $((1 + R))
	n=$((n + 3))
	if ((i % 10 == 0)); then
		# 1 MiB, direct, 4 KiB aligned
		rnd $(((model_len - (1 << 20)) / 4096))
		off=$((model_off + R * 4096))
		model_dd $origin $model $off $((1 << 20)) direct
		n=$((n + 1))
	fi
done
echo "ok - $n model-tracked dd writes on the origin"

check "fio (verify=crc32c) finished without error" wait $fio_pid
for i in 1 2 3; do
	r=reader_$i
	check "concurrent image read $i finished" wait ${!r}
	check_eq "concurrent image read $i equals the pre-image" "$pre_sha" "$(cat $IMG_TMP/read.$i)"
done
written=$(fio_json $fio_out '[.jobs[].write.io_bytes] | add')
verified=$(fio_json $fio_out '[.jobs[].read.io_bytes] | add')
errors=$(fio_json $fio_out '[.jobs[].error] | add')
check_eq "fio jobs report no error" 0 "$errors"
check_eq "fio wrote its whole $((3 * fio_mb))M" $((3 * fio_mb << 20)) "$written"
check_eq "fio verified all it wrote" "$written" "$verified"

check_eq "image state is still valid" valid "$(image_field dimg 4)"
note "image status: $(image_field dimg 1-4)"
export CHECK_SAME_ALT=$origin # on a difference: does the image show new data?
check_eq "image sha256 equals the pre-image" "$pre_sha" "$(dev_sha $image)"
check_same "image equals the pre-image byte for byte" $image $pre $cb
check_same "origin equals the model on the dd region" $origin $model $cb $model_off $model_len
check_same "real device equals the model on the dd region" $real $model $cb $model_off $model_len
((copied = $(image_field dimg 3))) || true
check "copied_chunks ($copied) is positive" test "$copied" -gt 0
