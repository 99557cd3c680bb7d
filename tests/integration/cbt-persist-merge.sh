#!/bin/bash
# persistent CBT and merge: a power cut in the middle of a merge leaves every chunk the merge writes back marked at the next boot (the merge commits their marks before its sweep)
# vm: --disks 3 --disk-size 64M --boots 2 --timeout 500 --modules dm-delay
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"

real=/dev/vda
mdisk=/dev/vdb
sdisk=/dev/vdc
origin=/dev/mapper/pm
image=/dev/mapper/pmimg
meta_tool=$BLKSNAP_TOP/build/tools/cbt-meta
state=$VM_OUT/cbt-persist-merge
size=$(dev_sectors $real)
ssz=$(dev_sectors $sdisk)
tbs=8 # 4 KiB tracking blocks and chunks: 16384, 5 regions of 4064
require_target blksnap-image
mkdir -p "$state"

pcreate() {
	dm_create pm "0 $size blksnap-origin $real 6 tracking_block_sectors $tbs metadata $mdisk metadata_id disk-m"
}
# Direct writes of N 4 KiB blocks at random in blocks FIRST..FIRST+SPAN-1
# of DEV; each is a CBT model write (the merge writes them back too).
rand_blocks() { # rand_blocks DEV N FIRST SPAN
	local i b
	for ((i = 0; i < $2; i++)); do
		b=$(($3 + (RANDOM * 32768 + RANDOM) % $4))
		dd if=/dev/urandom of="$1" bs=4096 count=1 seek=$b oflag=direct conv=notrunc status=none
		model_write $((b * tbs)) $tbs
	done
}

case ${VM_BOOT:-} in
1)
	check "metadata formatted" $meta_tool format $mdisk "$size" $tbs disk-m
	check "blksnap-origin with metadata" pcreate
	check "store: dm-delay over $sdisk" dm_create pmstore "0 $ssz delay $sdisk 0 0"
	model_init "$size" $tbs
	take_and_check pm
	check "image created" image_create pmimg $real /dev/mapper/pmstore 8
	model_take # the image's first resume is a take
	# Copied chunks in regions 1 (origin writes) and 3 (image writes):
	# the merge writes them all back to the real device.
	rand_blocks $origin 60 4100 3900
	rand_blocks $image 60 12300 3900
	note "chunks copied: $(image_field pmimg 3)"
	check "store reads delayed by 200 ms" \
		dm_reload pmstore "0 $ssz delay $sdisk 0 200 $sdisk 0 0"
	check "merge starts" dm_message pm merge
	ok=0
	for _ in $(seq 300); do
		case $(status_field pm 5) in "merge "[1-9]*) ok=1; break ;; esac
		sleep 0.1
	done
	check "the merge wrote some chunks back ($(status_field pm 5))" test $ok -eq 1
	model_take # what the next boot's take will show
	model_save "$state/model"
	note "crashing the guest mid-merge (sysrq-b)"
	vm_crash
	;;
2)
	. "$state/model"
	check "blksnap-origin after the power cut" pcreate
	check_eq "the generation continues: why=-" "pcbt=ok why=-" "$(pcbt_words pm)"
	capture "cbt_take after the crash" cbt_take pm
	check_eq "the take after the crash is number $M_LAST_TAKE" "$M_LAST_TAKE" "$OUT"
	check_covers pm "after a power cut mid-merge" 2
	check "cbt_close" dm_message pm cbt_close
	check "origin removed" dmsetup remove pm
	;;
*) die "VM_BOOT is '${VM_BOOT:-}': not run by tests/vm/run --boots" ;;
esac
