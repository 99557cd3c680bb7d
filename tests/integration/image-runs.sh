#!/bin/bash
# coalesced copies: a multi-chunk first write is one read and one store write into contiguous space, also across a store segment added by a reload and for a bio part copied, part not; runs that find only holes fall back to chunk by chunk; whole-chunk image writes skip the copy
# vm: --disks 3 --disk-size 64M --timeout 400
# lanes: 6.1
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"

require_target blksnap-image
modprobe dm-linear 2> /dev/null || true
real=/dev/vda
origin=/dev/mapper/runorig
image=/dev/mapper/runimg
MiB=$((1 << 20))

# I/Os completed on a block device: "reads writes".
io_count() { # io_count DEV
	awk '{ print $1, $5 }' "/sys/dev/block/$(dev_majmin "$1")/stat"
}
# The store holds SECTORS sectors at store sector AT equal to the pre-image at byte OFF.
store_holds() { # store_holds STORE AT OFF SECTORS
	cmp -s <(dd if="$1" bs=512 skip="$2" count="$4" iflag=direct status=none) \
		<(dd if="$pre" bs=512 skip=$(($3 / 512)) count="$4" status=none)
}

pre=$IMG_TMP/pre model=$IMG_TMP/model
check "origin filled with random data" fill_random $real $pre $((64 * MiB))
cp $pre $model
check "blksnap-origin over $real" origin_create runorig $real
# The store: 4 MiB of /dev/vdb; a reload adds 4 MiB from another place later.
seg1="0 8192 linear /dev/vdb 0"
seg2="8192 8192 linear /dev/vdb 65536"
check "store: dm-linear over 4 MiB of /dev/vdb" dm_create runstore "$seg1"
store=/dev/mapper/runstore
check "blksnap-image with 4 KiB chunks" image_create runimg $real $store 8

# ---- one run per bio -----------------------------------------------------
read -r r0 _ < <(io_count $real)
read -r _ w0 < <(io_count $store)
check "origin: 1 MiB first write at 0" model_dd $origin $model 0 $MiB direct
read -r r1 _ < <(io_count $real)
read -r _ w1 < <(io_count $store)
note "a 1 MiB first write of 256 chunks: $((r1 - r0)) reads of the real device, $((w1 - w0)) store writes"
check_eq "copied_chunks is 256" 256 "$(image_field runimg 3)"
# dm counts bios, without the merging of a request queue: one per chunk
# before copies were coalesced.
check "at most 8 store writes for 256 chunks (one copy, split by kcopyd)" \
	test $((w1 - w0)) -le 8
check "the run lies in store sectors 0..2047, in chunk order" store_holds $store 0 0 2048

# ---- part copied, part not -------------------------------------------------
check "origin: 4 KiB first write at 1.5 MiB" model_dd $origin $model $((3 * MiB / 2)) 4096 direct
check "origin: 1 MiB at 1 MiB (chunk 384 copied, 255 not)" model_dd $origin $model $MiB $MiB direct
check_eq "copied_chunks is 512" 512 "$(image_field runimg 3)"
check_eq "used_sectors is 4096" 4096 "$(image_used runimg)"
check "store sectors 2048..2055 hold chunk 384" store_holds $store 2048 $((3 * MiB / 2)) 8
check "store sectors 2056..3079 hold chunks 256..383" store_holds $store 2056 $MiB 1024
check "store sectors 3080..4095 hold chunks 385..511" store_holds $store 3080 $((3 * MiB / 2 + 4096)) 1016
check_same "image equals the pre-image" $image $pre 4096

# ---- a run across a segment boundary -------------------------------------
check "origin: 1.5 MiB more (used 7168 of 8192)" model_dd $origin $model $((2 * MiB)) $((3 * MiB / 2)) direct
check_eq "used_sectors is 7168" 7168 "$(image_used runimg)"
check "store suspended" dmsetup suspend runstore
load_two() { printf '%s\n%s\n' "$seg1" "$seg2" | dmsetup load runstore; }
check "store loaded with a second segment elsewhere on /dev/vdb" load_two
check "store resumed (8 MiB)" dmsetup resume runstore
check "origin: 1 MiB first write at 4 MiB" model_dd $origin $model $((4 * MiB)) $MiB direct
check_eq "used_sectors is 9216" 9216 "$(image_used runimg)"
check "the run lies in store sectors 7168..9215, across the boundary" \
	store_holds $store 7168 $((4 * MiB)) 2048
check "the second segment's part is on /dev/vdb at 65536" \
	store_holds /dev/vdb 65536 $((4 * MiB + 512 * 1024)) 1024
check_same "image equals the pre-image" $image $pre 4096
check_same "origin equals the model" $origin $model 4096

# ---- a stream of image reads cut short of a copied chunk -------------------
# Four readers read chunks 5000-5001 of the image over and over, throttled
# (cgroup io.max: 32 KiB/s of the real device for all four), so that reads
# are always in flight. An origin write copies chunk 5001 while some of them
# read it from the real device: its copy waits for those. The reads that
# start after it are cut before 5001 (it has an exception now): they must
# not keep its copy waiting, or the origin write waits for as long as the
# reads go on.
check "cgroup 'stream' reads $real at 32 KiB/s" cg_throttle stream $real rbps=32768
cg_run stream fio --name=stream --filename=$image --direct=1 --ioengine=psync --numjobs=4 \
	--rw=read --bs=8k --offset=$((5000 * 4096)) --size=8k --time_based --runtime=20 \
	--output=/dev/null &
reader=$!
at_exit "stop_bg $reader"
sleep 3
t0=$(date +%s%N)
check "origin: chunk 5001 written while the reads go on" \
	model_dd $origin $model $((5001 * 4096)) 4096 direct
ms=$((($(date +%s%N) - t0) / 1000000))
note "the origin write took $ms ms; the reads go on for 20 s"
check "it completed long before the reads end (< 8 s)" test $ms -lt 8000
check "the image reader stopped" stop_bg $reader

# ---- whole-chunk image writes need no copy ----------------------------------
imodel=$IMG_TMP/imodel
cp $pre $imodel
read -r r0 _ < <(io_count $real)
check "image: 1 MiB write at 8 MiB (256 whole chunks)" model_dd $image $imodel $((8 * MiB)) $MiB direct
read -r r1 _ < <(io_count $real)
check_eq "no read of the real device for it" 0 $((r1 - r0))
check_eq "copied_chunks is 1153 + 256" 1409 "$(image_field runimg 3)"
check_eq "used_sectors is 9224 + 2048" 11272 "$(image_used runimg)"
check "origin: 1 MiB over the same chunks" model_dd $origin $model $((8 * MiB)) $MiB direct
check_eq "no copy for them: used_sectors stays 11272" 11272 "$(image_used runimg)"
# Partial first chunk (copied), a whole one (written at once), a partial last.
check "image: 8 KiB at 12 MiB + 2 KiB" model_dd $image $imodel $((12 * MiB + 2048)) 8192 direct
check_eq "copied_chunks is 1412" 1412 "$(image_field runimg 3)"
check "origin: 16 KiB over them" model_dd $origin $model $((12 * MiB)) 16384 direct
check_eq "copied_chunks is 1413 (the fourth chunk copied for the origin)" 1413 "$(image_field runimg 3)"
check_same "image equals its model" $image $imodel 4096
check_same "origin equals the model" $origin $model 4096

# ---- runs that find only holes ---------------------------------------------
# A second image on /dev/vdc shares the store; the two copy 512 KiB each in
# turn, then the first goes: its chunks leave 512 KiB holes, and a 1 MiB run
# of the second fits nowhere but chunk by chunk.
check "image removed" dmsetup remove runimg
check "origin removed" dmsetup remove runorig
check "store reloaded with its first segment" dmsetup suspend runstore
check "store table: 4 MiB" dmsetup load runstore --table "$seg1"
check "store resumed" dmsetup resume runstore
pre2=$IMG_TMP/pre2 model2=$IMG_TMP/model2
check "second origin disk filled with random data" fill_random /dev/vdc $pre2 $((64 * MiB))
cp $pre2 $model2
check "blksnap-origin over $real again" origin_create runorig $real
check "blksnap-origin over /dev/vdc" origin_create runorig2 /dev/vdc
check "first image" image_create runimg $real $store 8
check "second image on the same store" image_create runimg2 /dev/vdc $store 8
for i in 0 1 2 3; do
	check "first origin: 512 KiB at $((i * 2)) MiB" \
		model_dd $origin $model $((i * 2 * MiB)) $((MiB / 2)) direct
	check "second origin: 512 KiB at $((i * 2)) MiB" \
		model_dd /dev/mapper/runorig2 $model2 $((i * 2 * MiB)) $((MiB / 2)) direct
done
check_eq "used_sectors is 8192: the store is full" 8192 "$(image_used runimg2)"
check "first image removed" dmsetup remove runimg
check_eq "its 4 holes of 1024 sectors are free" 4096 "$(image_used runimg2)"
check "second origin: 1 MiB first write at 16 MiB" \
	model_dd /dev/mapper/runorig2 $model2 $((16 * MiB)) $MiB direct
check_eq "second image still valid: the run was copied chunk by chunk" valid \
	"$(image_field runimg2 4)"
check_eq "used_sectors is 6144" 6144 "$(image_used runimg2)"
check_same "second image equals its pre-image" /dev/mapper/runimg2 $pre2 4096
check_same "second origin equals its model" /dev/mapper/runorig2 $model2 4096

# ---- a whole-chunk image write the store fails -------------------------------
check "store reloaded to an error table" dm_reload runstore "0 8192 error"
expect_errno "image: a whole-chunk write to the failing store fails" "Input/output error" \
	dd if=/dev/zero of=/dev/mapper/runimg2 bs=64K count=1 seek=512 oflag=direct status=none
check_eq "second image failed" failed "$(image_field runimg2 4)"
check "second origin: 1 MiB write after the failure" \
	model_dd /dev/mapper/runorig2 $model2 $((32 * MiB)) $MiB direct
check_same "second origin equals its model" /dev/mapper/runorig2 $model2 4096
check_no_kernel_report "no kernel report"
