#!/bin/bash
# the CBT state survives a reload of the origin and is dropped when no table maps the device
# vm: --disks 2 --disk-size 256M --timeout 300
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"

real=/dev/vda
other=/dev/vdb
origin=/dev/mapper/rl
require_target blksnap-origin
size=$(dev_sectors $real)
tbs=$(default_tracking_block "$size")
check "blksnap-origin over $real is created" origin_create rl $real
model_init "$size" "$tbs"
uuid=$(status_field rl 3)

do_write $origin 0 8
do_write $origin $((50 * tbs)) $((2 * tbs))
take_and_check rl
do_write $origin $((70 * tbs + 1)) 1

# Suspend and resume, then a reload of the same table.
check "the origin suspends and resumes" bash -c "dmsetup suspend rl && dmsetup resume rl"
check "the origin reloads with the same table" dm_reload rl "$(origin_table $real)"
check_eq "the reload keeps generation_uuid" "$uuid" "$(status_field rl 3)"
check_eq "the reload keeps change_number" "$M_C" "$(status_field rl 4)"
check_map rl
do_write $origin $((90 * tbs)) 1
take_and_check rl
check_changes rl 1
check_changes rl 0

# A reload that names the default tracking block size keeps the state too.
check "the origin reloads with tracking_block_sectors $tbs given" \
	dm_reload rl "$(origin_table $real $tbs)"
check_eq "that reload keeps generation_uuid" "$uuid" "$(status_field rl 3)"
check_eq "that reload keeps change_number" "$M_C" "$(status_field rl 4)"
check_map rl
do_write $origin $((91 * tbs)) 1
take_and_check rl
check_changes rl 2

# A different tracking block size on a live tracker: the contract does not
# say; it must fail cleanly or take effect, and the device must keep working.
kmsg_mark
if out=$(dm_reload rl "$(origin_table $real $((tbs * 2)))" 2>&1); then
	note "a reload with tracking_block_sectors $((tbs * 2)) on a live tracker succeeded:" \
		"status '$(origin_status rl)'"
	check "after it, the status still has a lowercase generation_uuid" is_uuid "$(status_field rl 3)"
	check "after it, cbt_take works" cbt_take rl
	check "the origin reloads back to the default" dm_reload rl "$(origin_table $real)"
	# What the maps hold now is not specified: start the model from this take.
	check "a take after it succeeds" cbt_take rl
	model_init "$size" "$tbs"
	M_C=$(status_field rl 4)
	M_LAST_TAKE=$((M_C - 1))
	uuid=$(status_field rl 3)
	do_write $origin 0 1
	take_and_check rl
	check_changes rl $((M_LAST_TAKE - 1))
else
	echo "ok - a reload with tracking_block_sectors $((tbs * 2)) on a live tracker fails"
	note "$(echo "$out" | head -n 1)"
	note "kernel: $(kmsg_since_mark | grep -i 'blksnap' | head -n 1)"
	check_eq "the failed reload leaves tracking_block_sectors" "$tbs" "$(status_field rl 1)"
	check_eq "the failed reload keeps generation_uuid" "$uuid" "$(status_field rl 3)"
	check_eq "the failed reload keeps change_number" "$M_C" "$(status_field rl 4)"
	check_map rl
	do_write $origin $((92 * tbs)) 1
	take_and_check rl
	check_changes rl $((M_LAST_TAKE - 1))
fi

# Remove and create again: the tracker went away with the last table.
check "the origin is removed" dmsetup remove rl
check "the origin is created again" origin_create rl $real
check "a new origin has a new generation_uuid" test "$(status_field rl 3)" != "$uuid"
check_eq "a new origin starts at change_number 1" 1 "$(status_field rl 4)"
expect_errno "a new origin has no snapshot map (ENODATA)" "No data available" cbt_read rl 0 1
uuid=$(status_field rl 3)
model_init "$size" "$tbs"
do_write $origin $((3 * tbs)) 1
take_and_check rl

# Reloading the device onto another real device drops the tracker of the
# first; mapping the first again starts a new one.
check "the device is reloaded as an origin over $other" dm_reload rl "$(origin_table $other)"
uuid_other=$(status_field rl 3)
check "the origin over $other has its own generation ($uuid_other)" test "$uuid_other" != "$uuid"
check_eq "the origin over $other starts at change_number 1" 1 "$(status_field rl 4)"
check "the device is reloaded as an origin over $real again" dm_reload rl "$(origin_table $real)"
new_uuid=$(status_field rl 3)
check "the tracker of $real was dropped: new generation_uuid" \
	test "$new_uuid" != "$uuid" -a "$new_uuid" != "$uuid_other"
check_eq "the new tracker starts at change_number 1" 1 "$(status_field rl 4)"

# So does a reload with a table of another target.
uuid=$new_uuid
check "the device is reloaded as a linear mapping of $real" \
	dm_reload rl "0 $size linear $real 0"
check "the device is reloaded as an origin over $real again" dm_reload rl "$(origin_table $real)"
check "the tracker of $real was dropped by the linear table: new generation_uuid" \
	test "$(status_field rl 3)" != "$uuid"
check_eq "the new tracker starts at change_number 1" 1 "$(status_field rl 4)"

# The device keeps working after all that.
model_init "$size" "$tbs"
do_write $origin $((7 * tbs)) 8
take_and_check rl
check_changes rl 0
