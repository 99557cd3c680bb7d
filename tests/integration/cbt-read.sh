#!/bin/bash
# cbt_read returns the snapshot map byte for byte, ENODATA before the first take
# vm: --disks 1 --disk-size 1048580K --timeout 300
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"

# tracking_block_sectors 1024 over 1 GiB + 4 KiB: 2049 blocks, the last partial.
real=/dev/vda
origin=/dev/mapper/rd
tbs=1024
require_target blksnap-origin
size=$(dev_sectors $real)
check "blksnap-origin with tracking_block_sectors $tbs is created" origin_create rd $real $tbs
model_init "$size" $tbs
check_eq "tracking_block_sectors is $tbs" $tbs "$(status_field rd 1)"
check_eq "tracking_blocks is $M_BLOCKS" "$M_BLOCKS" "$(status_field rd 2)"

do_write $origin 0 8
expect_errno "cbt_read before the first take fails with ENODATA" "No data available" \
	cbt_read rd 0 1

# Three takes, so that the map holds the values 1, 2 and 3.
do_write $origin $((10 * tbs)) $((3 * tbs))
do_write $origin $((size - 1)) 1
take_and_check rd
check_map rd
do_write $origin $((11 * tbs + 5)) 1
do_discard $origin $((500 * tbs)) $((tbs / 2))
do_write $origin $((1024 * tbs - 8)) 16
take_and_check rd
do_zeroout $origin $((2000 * tbs)) $((4 * tbs))
do_write $origin 0 1
take_and_check rd
check_map rd
check_map rd 0 16
check_map rd $((M_BLOCKS - 1)) 1
check_map rd 1023 2

# Writes after the take change the active map, not the snapshot map.
do_write $origin $((700 * tbs)) 8
check_map rd

# cbt_mark_dirty sets the snapshot map to the last snapshot's number.
check "cbt_mark_dirty $((1500 * tbs)) 1 succeeds" cbt_mark_dirty rd $((1500 * tbs)) 1
model_mark_dirty $((1500 * tbs)) 1
check_map rd 1490 20

# The map read in pieces of 100 bytes is the map read at once.
capture "cbt_read of the whole map" cbt_read rd 0 "$M_BLOCKS"
whole=$OUT
check_eq "the whole map has two hex digits per block" $((2 * M_BLOCKS)) ${#whole}
pieces=
for ((off = 0; off < M_BLOCKS; off += 100)); do
	n=$((M_BLOCKS - off < 100 ? M_BLOCKS - off : 100))
	capture "cbt_read $off $n" cbt_read rd $off $n
	pieces+=$OUT
done
check_eq "the map read in pieces of 100 bytes equals the map read at once" "$whole" "$pieces"
check_map rd

# Past the end.
expect_fail "cbt_read at offset tracking_blocks fails" cbt_read rd "$M_BLOCKS" 1
expect_fail "cbt_read far past the end fails" cbt_read rd 4000000000 1
if capture_straddle=$(cbt_read rd $((M_BLOCKS - 1)) 2 2>&1); then
	check_eq "cbt_read across the end returns only the last block" \
		"$(model_read $((M_BLOCKS - 1)) 1)" "$capture_straddle"
	note "cbt_read across the end is truncated to the map"
else
	echo "ok - cbt_read across the end fails cleanly"
	note "$capture_straddle"
fi
check_map rd

# A larger map (the default tracking block: 16385 blocks) read in one message.
check "the origin is removed" dmsetup remove rd
check "blksnap-origin with the default tracking block is created" origin_create rd $real
model_init "$size" "$(default_tracking_block "$size")"
do_write $origin 0 8
do_write $origin $((size - 1)) 1
do_write $origin $((8000 * M_TBS + 3)) $((5 * M_TBS))
take_and_check rd
check_map rd
