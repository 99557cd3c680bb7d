#!/bin/bash
# the 255th take and cbt_reset start a new CBT generation: new UUID, cleared maps, C=1
# vm: --disks 1 --disk-size 64M --timeout 400
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"

real=/dev/vda
origin=/dev/mapper/wrap
tbs=8
require_target blksnap-origin
check "blksnap-origin with tracking_block_sectors $tbs is created" origin_create wrap $real $tbs
model_init "$(dev_sectors $real)" $tbs
uuid1=$(status_field wrap 3)
check "generation_uuid is a lowercase UUID ($uuid1)" is_uuid "$uuid1"

# Takes 1..254; before some of them a write to block k, which then holds k.
bad=
for ((k = 1; k <= 254; k++)); do
	case $k in 1 | 2 | 3 | 127 | 128 | 200 | 253 | 254) do_write $origin $((k * tbs)) 1 ;; esac
	model_take
	got=$(cbt_take wrap) || got="failed"
	if [ "$got" != "$M_LAST_TAKE" ]; then
		bad="take $k returned '$got'"
		break
	fi
done
check "takes 1 to 254 return 1 to 254${bad:+ ($bad)}" test -z "$bad"
check_eq "change_number is 255 after 254 takes" 255 "$(status_field wrap 4)"
check_eq "the generation is the same after 254 takes" "$uuid1" "$(status_field wrap 3)"
check_map wrap 0 256
check_changes wrap 250
check_changes wrap 0

# The 255th take finds C = 255: new generation, and the write made at C = 255
# belongs to the old one.
do_write $origin $((300 * tbs)) 1
take_and_check wrap
uuid2=$(status_field wrap 3)
check "the 255th take starts a new generation ($uuid2)" test "$uuid2" != "$uuid1"
check "the new generation_uuid is a lowercase UUID" is_uuid "$uuid2"
check_map wrap
check_changes wrap 0

do_write $origin $((5 * tbs)) $((2 * tbs))
take_and_check wrap
check_eq "the generation is kept by the next take" "$uuid2" "$(status_field wrap 3)"
check_changes wrap 1
check_map wrap 0 16

# cbt_reset: new generation, zeroed maps, C = 1.
do_write $origin $((40 * tbs)) 1
check "cbt_reset succeeds" cbt_reset wrap
model_reset
uuid3=$(status_field wrap 3)
check "cbt_reset starts a new generation ($uuid3)" test "$uuid3" != "$uuid2" -a "$uuid3" != "$uuid1"
check "the reset generation_uuid is a lowercase UUID" is_uuid "$uuid3"
check_eq "change_number is 1 after cbt_reset" 1 "$(status_field wrap 4)"
# Whether the snapshot map can be read before the first take of the new
# generation is not in the contract: zeros and ENODATA are both accepted.
if map=$(cbt_read wrap 0 64 2>&1); then
	check_eq "the snapshot map is zeroed by cbt_reset" "$(model_read 0 64)" "$map"
else
	check "cbt_read after cbt_reset, before a take, fails with ENODATA ($map)" \
		test -z "${map##*No data available*}"
fi
do_write $origin $((41 * tbs)) 1
take_and_check wrap
check_changes wrap 0
check_map wrap 0 64
check_eq "the generation is kept by the take after the reset" "$uuid3" "$(status_field wrap 3)"
