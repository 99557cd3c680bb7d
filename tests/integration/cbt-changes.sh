#!/bin/bash
# cbt_changes lists exactly the blocks written, discarded or zeroed since each take
# vm: --disks 1 --disk-size 1048580K --timeout 300
# lanes: 6.1
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"

# 1 GiB + 4 KiB: the last tracking block is partial (8 of 128 sectors).
real=/dev/vda
origin=/dev/mapper/chg
require_target blksnap-origin
size=$(dev_sectors $real)
tbs=$(default_tracking_block "$size")
check "blksnap-origin over $real is created" origin_create chg $real

model_init "$size" "$tbs"
check_eq "tracking_block_sectors is the default for $size sectors" "$tbs" "$(status_field chg 1)"
check_eq "tracking_blocks counts the partial last block" "$M_BLOCKS" "$(status_field chg 2)"
uuid=$(status_field chg 3)
check "generation_uuid is a lowercase UUID ($uuid)" is_uuid "$uuid"
check_eq "change_number starts at 1" 1 "$(status_field chg 4)"
check_eq "state is '-' with no image" - "$(status_field chg 5)"

# Round 1: every kind of I/O and every shape of range.
do_write $origin 10 8 # inside block 0
do_write $origin $((5 * tbs - 4)) 8 # straddles blocks 4 and 5
do_write $origin $((7 * tbs - 1)) 1 # the last sector of block 6: merges with 4-5
do_write $origin $((100 * tbs + 64)) $((3 * tbs)) # blocks 100..103
do_write $origin $((size - 8)) 8 # the partial last block
do_discard $origin $((2000 * tbs + 8)) $((2 * tbs)) # blocks 2000..2002
do_zeroout $origin $((3000 * tbs)) $tbs # exactly block 3000
sync
blockdev --flushbufs $origin # empty flushes mark nothing
dd if=$origin of=/dev/null bs=1M count=4 skip=64 iflag=direct status=none # nor do reads
take_and_check chg
check_changes chg 0
check_changes chg 1

# Round 2: rewrite some blocks, add neighbours of old extents.
do_write $origin 0 1 # block 0 again
do_write $origin $((7 * tbs)) 8 # block 7, next to 4..6
do_write $origin $((9000 * tbs + 100)) 200 # blocks 9000..9002
take_and_check chg
check_changes chg 0
check_changes chg 1
check_changes chg 2

# Round 3: nothing but flushes and reads.
sync
blockdev --flushbufs $origin
dd if=$origin of=/dev/null bs=64K count=16 iflag=direct status=none
take_and_check chg
check_changes chg 2
check_changes chg 1

# Round 4: a large write across many blocks, and the very last sector.
do_write $origin $((12000 * tbs + 1)) 20000 # 157 blocks
do_write $origin $((size - 1)) 1
take_and_check chg
check_changes chg 3
check_changes chg 0
check_changes chg 200

# cbt_mark_dirty marks the snapshot map with the last snapshot's number and
# the active map with C: the next take sees the range again.
check "cbt_mark_dirty 640003 300 succeeds" cbt_mark_dirty chg 640003 300
model_mark_dirty 640003 300
check_eq "cbt_mark_dirty does not change change_number" "$M_C" "$(status_field chg 4)"
check_changes chg 3
check_changes chg 4
take_and_check chg
check_changes chg 4
check_changes chg 0
check_eq "generation_uuid did not change across the takes" "$uuid" "$(status_field chg 3)"
