#!/bin/bash
# the default tracking block is the smallest power of two >= 128 keeping <= 2,097,152 blocks
# vm: --disks 1 --disk-size 300G --timeout 300
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"

# The scratch disk is sparse: linear slices of it stand for devices of every
# size around the limits.
real=/dev/vda
require_target blksnap-origin
disk=$(dev_sectors $real)
limit=$((CBT_MAX_BLOCKS * 128)) # 128 GiB: the largest device with 64 KiB blocks

i=0
for spec in "8 128" "2048 128" "2097152 128" "2097160 128" "$limit 128" \
	"$((limit + 1)) 256" "$((limit * 2)) 256" "$((limit * 2 + 8)) 512" "$disk 512"; do
	read -r sectors want <<< "$spec"
	check_eq "the contract's rule gives $want sectors for $sectors (the test's own arithmetic)" \
		"$want" "$(default_tracking_block "$sectors")"
	i=$((i + 1))
	dev=$real
	if [ "$sectors" -ne "$disk" ]; then
		check "a linear device of $sectors sectors is created" \
			dm_create slice$i "0 $sectors linear $real 0"
		dev=/dev/mapper/slice$i
	fi
	check "blksnap-origin over $sectors sectors is created" origin_create def$i $dev
	check_eq "tracking_block_sectors is $want for $sectors sectors" "$want" "$(status_field def$i 1)"
	check_eq "tracking_blocks is $(((sectors + want - 1) / want)) for $sectors sectors" \
		"$(((sectors + want - 1) / want))" "$(status_field def$i 2)"
	dmsetup remove def$i
	[ "$dev" = "$real" ] || dmsetup remove slice$i
done

# An explicit size overrides the default.
check "blksnap-origin over the whole disk with tracking_block_sectors 2048" \
	origin_create big $real 2048
check_eq "tracking_block_sectors is 2048 as asked" 2048 "$(status_field big 1)"
check_eq "tracking_blocks is $(((disk + 2047) / 2048))" "$(((disk + 2047) / 2048))" "$(status_field big 2)"
dmsetup remove big

# Change tracking at the far end of the large device, with the default size.
check "blksnap-origin over the whole disk is created" origin_create big $real
model_init "$disk" "$(default_tracking_block "$disk")"
do_write /dev/mapper/big $((disk - 1)) 1
do_write /dev/mapper/big $((disk / 2 + 5)) 3000
do_discard /dev/mapper/big $((disk - 4 * M_TBS)) $M_TBS
take_and_check big
check_changes big 0
check_map big $((M_BLOCKS - 8)) 8
