#!/bin/bash
# malformed blksnap-origin tables and messages fail cleanly and leave the device working
# vm: --disks 1 --disk-size 256M --timeout 300
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"

real=/dev/vda
origin=/dev/mapper/bad
require_target blksnap-origin
size=$(dev_sectors $real)
tbs=$(default_tracking_block "$size")
big=18446744073709551744 # 2^64 + 128: wraps to 128 if parsed without a range check

# ---- tables ----
good_table() { # good_table DESC ARGS...: "0 <len> blksnap-origin ARGS" is accepted
	local desc=$1
	shift
	check "table accepted: $desc" dmsetup create tbl --table "0 $size blksnap-origin $*"
	dmsetup remove tbl
}
# bad_table DESC LOG TABLE [ERRNO]: refused with ERRNO (default EINVAL;
# dmsetup prints its strerror), nothing left behind, and the target's
# error "LOG (-ERRNO)" in the kernel log
bad_table() {
	local errno=${4:-EINVAL} text
	case $errno in
	EINVAL) text="Invalid argument" ;;
	ENOENT) text="No such file or directory" ;;
	esac
	kmsg_mark
	expect_errno "table refused: $1" "$text" dmsetup create tbl --table "$3"
	check "no device is left behind after: $1" bash -c "! dmsetup info tbl > /dev/null 2>&1"
	check "the kernel log names the failure of: $1" \
		kmsg_logged "device-mapper: table: [0-9:]*: blksnap-origin: $2 (-$errno)"
}
good_table "the real device only" $real
good_table "tracking_block_sectors $tbs" $real 2 tracking_block_sectors $tbs
good_table "tracking_block_sectors 8, the minimum" $real 2 tracking_block_sectors 8
good_table "the real device as major:minor" "$(dev_majmin $real)"
check "table accepted: a length shorter than the device" \
	dmsetup create tbl --table "0 $((size / 2)) blksnap-origin $real"
dmsetup remove tbl
at_exit "_dm_remove tbl"

o="0 $size blksnap-origin"
nopts="Invalid number of optional arguments"
pow2="tracking_block_sectors must be a power of two >= 8"
nan="Optional argument value is not a number"
bad_table "no arguments" "Missing the real device argument" "$o"
bad_table "a stray word after the device" "$nopts" "$o $real extra"
bad_table "#opts not a number" "$nopts" "$o $real x 2"
bad_table "#opts larger than the words" "$nopts" "$o $real 3 tracking_block_sectors 128"
bad_table "more words than #opts" "Too many arguments" "$o $real 2 tracking_block_sectors 128 extra"
bad_table "an option without its value" "Optional argument without a value" "$o $real 1 tracking_block_sectors"
bad_table "an unknown option" "Unknown optional argument" "$o $real 2 no_such_option 128"
bad_table "tracking_block_sectors 100, not a power of two" "$pow2" "$o $real 2 tracking_block_sectors 100"
bad_table "tracking_block_sectors 4, below 8" "$pow2" "$o $real 2 tracking_block_sectors 4"
bad_table "tracking_block_sectors 0" "$pow2" "$o $real 2 tracking_block_sectors 0"
bad_table "tracking_block_sectors abc" "$nan" "$o $real 2 tracking_block_sectors abc"
bad_table "tracking_block_sectors -128" "$nan" "$o $real 2 tracking_block_sectors -128"
bad_table "tracking_block_sectors 128k" "$nan" "$o $real 2 tracking_block_sectors 128k"
bad_table "tracking_block_sectors 2^64+128" "$nan" "$o $real 2 tracking_block_sectors $big"
bad_table "a device that does not exist" "Real device lookup failed" "$o /dev/no-such-disk" ENOENT
bad_table "a length larger than the device" "Real device is smaller than the origin" "0 $((size + 8)) blksnap-origin $real"

# ---- messages ----
check "blksnap-origin over $real is created" origin_create bad $real
model_init "$size" "$tbs"
do_write $origin 0 8
take_and_check bad
do_write $origin $((3 * tbs)) 1
uuid=$(status_field bad 3)
blocks=$(status_field bad 2)

# bad_message DESC LOG ARGS...: refused with EINVAL and logged by the
# target ("device-mapper: blksnap: ...LOG")
bad_message() {
	local desc=$1 log=$2
	shift 2
	kmsg_mark
	expect_errno "message refused: $desc" "Invalid argument" dm_message bad "$@"
	check "the kernel log names the failure of: $desc" kmsg_logged "device-mapper: blksnap: .*$log"
}
bad_message "an unknown message" "unknown message 'no_such_message'" no_such_message
bad_message "cbt_take with an argument" "cbt_take takes 0 argument(s), got 1" cbt_take 1
bad_message "cbt_reset with an argument" "cbt_reset takes 0 argument(s), got 1" cbt_reset now
bad_message "cbt_changes without an argument" "cbt_changes takes 1 argument(s), got 0" cbt_changes
bad_message "cbt_changes with two arguments" "cbt_changes takes 1 argument(s), got 2" cbt_changes 1 2
bad_message "cbt_changes x" "cbt_changes: 'x' is not a change number" cbt_changes x
bad_message "cbt_changes -1" "cbt_changes: '-1' is not a change number" cbt_changes -1
bad_message "cbt_changes 1x" "cbt_changes: '1x' is not a change number" cbt_changes 1x
bad_message "cbt_read without arguments" "cbt_read takes 2 argument(s), got 0" cbt_read
bad_message "cbt_read with one argument" "cbt_read takes 2 argument(s), got 1" cbt_read 0
bad_message "cbt_read with three arguments" "cbt_read takes 2 argument(s), got 3" cbt_read 0 1 2
bad_message "cbt_read x 1" "cbt_read offset: 'x' is not a decimal number" cbt_read x 1
bad_message "cbt_read 0 y" "cbt_read count: 'y' is not a decimal number" cbt_read 0 y
bad_message "cbt_read at offset tracking_blocks" "cbt_read: bytes $blocks+1 are past the end" cbt_read "$blocks" 1
bad_message "cbt_read 2^64-1 2, an offset that wraps" "cbt_read: bytes 18446744073709551615+2 are past the end" cbt_read 18446744073709551615 2
bad_message "cbt_read 2^64+128 1" "cbt_read offset: '$big' is not a decimal number" cbt_read $big 1
bad_message "cbt_mark_dirty with one argument" "cbt_mark_dirty takes 2 argument(s), got 1" cbt_mark_dirty 0
bad_message "cbt_mark_dirty with three arguments" "cbt_mark_dirty takes 2 argument(s), got 3" cbt_mark_dirty 0 8 8
bad_message "cbt_mark_dirty a 8" "cbt_mark_dirty start: 'a' is not a decimal number" cbt_mark_dirty a 8
bad_message "cbt_mark_dirty 0 b" "cbt_mark_dirty sectors: 'b' is not a decimal number" cbt_mark_dirty 0 b
bad_message "cbt_mark_dirty at the device size" "cbt_mark_dirty: $size+8 is not inside" cbt_mark_dirty "$size" 8
bad_message "cbt_mark_dirty far past the end" "cbt_mark_dirty: 4000000000+8 is not inside" cbt_mark_dirty 4000000000 8
bad_message "cbt_mark_dirty with a length that wraps" \
	"cbt_mark_dirty: $((size - 8))+18446744073709551615 is not inside" cbt_mark_dirty $((size - 8)) 18446744073709551615

# A huge count must not make the kernel try to allocate it.
if out=$(cbt_read bad 0 4294967296 2>&1); then
	check_eq "cbt_read 0 2^32 returns at most the whole map" "$(model_read 0 "$M_BLOCKS")" "$out"
else
	echo "ok - cbt_read 0 2^32 fails cleanly"
	note "$out"
fi

# ---- the device after all that ----
check_eq "generation_uuid is unchanged by the refused messages" "$uuid" "$(status_field bad 3)"
check_eq "change_number is unchanged by the refused messages" "$M_C" "$(status_field bad 4)"
check_map bad
do_write $origin $((5 * tbs)) $((2 * tbs))
take_and_check bad
check_changes bad 1
check_changes bad 0
dd if=/dev/urandom of=/tmp/pattern bs=64K count=4 status=none
dd if=/tmp/pattern of=$origin bs=64K seek=10 oflag=direct conv=notrunc status=none
dd if=$real of=/tmp/back bs=64K skip=10 count=4 iflag=direct status=none
check "data written through the origin still reaches the device" cmp /tmp/pattern /tmp/back
