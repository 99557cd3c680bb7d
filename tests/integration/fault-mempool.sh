#!/bin/bash
# copy-on-write and merge make progress when the pending pool's slab fails every allocation (failslab): many 64 KiB writers on fresh chunks, then a merge, no hang, data exact
# vm: --disks 2 --disk-size 128M --timeout 900 --append slab_nomerge
# lanes: debug
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"

# With every slab allocation of blksnap_pending failing, only the pool's
# reserve is left. A copy-on-write pass that held pool elements without
# starting their copies while it slept for the next one (F2) deadlocks as
# soon as the reserve is spread over sleeping writers. On a kernel without
# CONFIG_FAILSLAB (Debian's) the same load runs without the fault.
real=/dev/vda
origin=/dev/mapper/mporig
image=/dev/mapper/mpimg
size=$(blockdev --getsize64 $real)
require_target blksnap-image
command -v fio > /dev/null || die "fio is missing"

pre=$IMG_TMP/pre
check "origin filled with random data" fill_random $real $pre "$size"
check "blksnap-origin over $real" origin_create mporig $real
check "blksnap-image with 4 KiB chunks, store /dev/vdb" image_create mpimg $real /dev/vdb 8

fs=/sys/kernel/debug/failslab
slab=/sys/kernel/slab/blksnap_pending
inject=0
mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug 2> /dev/null || true
if [ -d $fs ] && [ -w $slab/failslab ]; then
	inject=1
	echo 0 > $fs/verbose
	echo Y > $fs/cache-filter
	echo N > $fs/ignore-gfp-wait
	echo 100 > $fs/probability
	echo 0 > $fs/interval
	echo -1 > $fs/times
	echo 1 > $slab/failslab
	at_exit "echo 0 > $slab/failslab"
	note "failslab: every allocation from the blksnap_pending slab fails"
else
	note "no failslab on this kernel ($(uname -r)): the load runs without the fault"
fi

# 16 jobs x 4 in flight x 16 chunks per write: far more pendings wanted at
# once than the pool's 64 reserve elements.
check "fio: 64 KiB random writes on fresh chunks, 16 jobs, iodepth 4 (bounded by timeout)" \
	timeout 300 fio --name=mp --filename=$origin --rw=randwrite --bs=64k --direct=1 \
	--ioengine=libaio --iodepth=4 --numjobs=16 --size=$((size / 16)) --offset_increment=$((size / 16)) \
	--randrepeat=0 --norandommap --io_size=4M --group_reporting --output=$IMG_TMP/fio.out
[ $inject -eq 0 ] || note "blksnap_pending objects now: $(cat $slab/objects)"
check_eq "image state is valid" valid "$(image_field mpimg 4)"
check "chunks were copied ($(image_field mpimg 3))" test "$(image_field mpimg 3)" -gt 1000
check_same "image equals the pre-image" $image $pre 4096

# The merge sweep takes pool elements too: roll the origin back under the
# same fault.
check "merge started" dm_message mporig merge
check "merge complete within 300 s" merge_wait_done mporig 300
[ $inject -eq 0 ] || echo 0 > $slab/failslab
check "image removed" dmsetup remove mpimg
check_same "origin rolled back to the pre-image" $origin $pre 4096
