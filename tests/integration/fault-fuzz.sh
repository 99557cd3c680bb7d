#!/bin/bash
# fuzz: random and boundary tables and messages for both targets for 2 x 30 s (and at least 30 tries each): errors only, no kernel report, devices still work
# vm: --disks 3 --disk-size 64M --timeout 600
set -uo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"
. "$BLKSNAP_TOP/tests/stress-lib.sh"

real=/dev/vda
store=/dev/vdb
spare=/dev/vdc
origin=/dev/mapper/fzorig
image=/dev/mapper/fzimg
om=$IMG_TMP/origin.model
im=$IMG_TMP/image.model
secs=${FUZZ_SECONDS:-30}
# A slow kernel (the debug lane) may need more than $secs s for this many
# tries; a phase goes on for them, up to 10 x $secs s.
min_tries=${FUZZ_MIN_TRIES:-30}
seed=${FUZZ_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
RANDOM=$seed
size=$(dev_sectors $real)
require_target blksnap-image
kmsg_mark
vf_build
note "fuzz seed $seed (FUZZ_SEED=$seed make check T=fault-fuzz replays the sequence)"

check "real device stamped" vf_init $real $om 1
check "blksnap-origin over $real" origin_create fzorig $real
cp $om $im
check "image over $real" image_create fzimg $real $store 8

# The word pools are read through pick's nameref.
long=$(head -c 300 /dev/zero | tr '\0' 9)
# shellcheck disable=SC2034
nums=(0 1 -1 2 7 8 9 15 16 127 128 129 255 256 4096 65535 65536 131071 131072 131073 262144
	2097152 2097153 268435456 2147483647 2147483648 4294967295 4294967296
	9223372036854775807 9223372036854775808 18446744073709551615 18446744073709551616
	"$long" 0x10 010 1e3 +5 -0 08 " 1" abc "%s%n" "$size" $((size - 1)) $((size + 1))
	$((size / 8)) $((size * 8)))
# shellcheck disable=SC2034
devs=("$real" "$store" "$spare" "$origin" "$image" "$(dev_majmin $real)" "$(dev_majmin $store)"
	"$(dev_majmin $origin)" "$(dev_majmin $image)" 0:0 7:0 253:999 999999:999999 /dev/null
	/nonexistent /dev/mapper/fzjunk "")
# shellcheck disable=SC2034
optnames=(tracking_block_sectors low_water tracking_block_sectors low_water bogus "")
# A bare "merge" to the origin starts a real merge (merge-kernel tests it),
# which would end phase 1's snapshot: "merge" is only sent with arguments,
# which the contract refuses (rand_message).
# shellcheck disable=SC2034
msgs=(cbt_read cbt_changes cbt_mark_dirty cbt_reset cbt_take cbt_read cbt_changes cbt_mark_dirty merge status foo "")

# The generators set REPLY (no command substitution: a fork costs much under emulation).
pick() { # pick ARRAY_NAME: a random element in REPLY
	local -n a=$1
	REPLY=${a[RANDOM % ${#a[@]}]}
}

word() { # a random word of any kind
	case $((RANDOM % 4)) in
	0 | 1) pick nums ;;
	2) pick devs ;;
	3) pick optnames ;;
	esac
}

rand_table() { # a random table line in REPLY, close enough to a valid one to get past the first checks
	local target start len args=() n i
	if ((RANDOM % 2)); then target=blksnap-origin; else target=blksnap-image; fi
	start=0
	((RANDOM % 6)) || { pick nums; start=$REPLY; }
	case $((RANDOM % 5)) in
	0) pick nums; len=$REPLY ;;
	1) len=$((size - RANDOM % 16)) ;;
	*) len=$size ;;
	esac
	if [ $target = blksnap-origin ]; then
		pick devs; args=("$REPLY")
	else
		pick devs; args=("$REPLY")
		pick devs; args+=("$REPLY")
		pick nums; args+=("$REPLY")
		((RANDOM % 3)) || args=("$real" "$store" "$REPLY")
	fi
	case $((RANDOM % 4)) in
	0) ;;
	1)
		pick nums
		if [ $target = blksnap-origin ]; then args+=(2 tracking_block_sectors "$REPLY"); else args+=(2 low_water "$REPLY"); fi
		;;
	2) pick nums; args+=("$REPLY"); pick optnames; args+=("$REPLY"); pick nums; args+=("$REPLY") ;;
	3) n=$((RANDOM % 5)); for ((i = 0; i < n; i++)); do word; args+=("$REPLY"); done ;;
	esac
	REPLY="$start $len $target ${args[*]}"
}

rand_message() { # a random message in REPLY
	local args=() n i
	pick msgs
	args=("$REPLY")
	n=$((RANDOM % 4))
	[ "${args[0]}" != merge ] || ((n > 0)) || n=1
	for ((i = 0; i < n; i++)); do pick nums; args+=("$REPLY"); done
	REPLY="${args[*]}"
}

declare -A stats=()
tries=0
count() { stats[$1]=$((${stats[$1]:-0} + 1)); tries=$((tries + 1)); }

fuzz_for() { # fuzz_for SECONDS LABEL: at least SECONDS and $min_tries tries
	local end=$((SECONDS + $1)) cap=$((SECONDS + 10 * $1)) t m dev rc
	tries=0
	while ((SECONDS < end || (tries < min_tries && SECONDS < cap))); do
		case $((RANDOM % 5)) in
		0 | 1)
			rand_table
			t=$REPLY
			if timeout 30 dmsetup create fzjunk --table "$t" > /dev/null 2>&1; then
				count "$2 create ok"
				echo "# $2 accepted: $t"
			else
				rc=$?
				[ $rc -ne 124 ] || { echo "not ok - dmsetup create hangs: $t"; exit 1; }
				count "$2 create refused"
			fi
			if [ -e /dev/mapper/fzjunk ] || dmsetup info fzjunk > /dev/null 2>&1; then
				dmsetup remove fzjunk > /dev/null 2>&1 || dmsetup remove --force fzjunk > /dev/null 2>&1
			fi
			;;
		2)
			# a reload of the live origin's inactive slot, cleared again: ctor + dtor
			rand_table
			t=$REPLY
			if timeout 30 dmsetup load fzorig --table "$t" > /dev/null 2>&1; then
				count "$2 load ok"
				echo "# $2 load accepted (then cleared): $t"
			else
				rc=$?
				[ $rc -ne 124 ] || { echo "not ok - dmsetup load hangs: $t"; exit 1; }
				count "$2 load refused"
			fi
			dmsetup clear fzorig > /dev/null 2>&1
			;;
		3 | 4)
			rand_message
			m=$REPLY
			dev=fzorig
			if [ -e $image ] && ((RANDOM % 3 == 0)); then dev=fzimg; fi
			# shellcheck disable=SC2086
			if timeout 30 dmsetup message $dev 0 $m > /dev/null 2>&1; then
				count "$2 message ok"
				[[ $m != merge* ]] || { echo "not ok - a merge message with arguments was accepted: $dev $m"; exit 1; }
			else
				rc=$?
				[ $rc -ne 124 ] || { echo "not ok - dmsetup message hangs: $dev $m"; exit 1; }
				count "$2 message refused"
			fi
			;;
		esac
		((RANDOM % 16)) || dmsetup status > /dev/null 2>&1 || true
	done
}

# ---- phase 1: an image exists ---------------------------------------------
note "phase 1: $secs s with an image on $real"
fuzz_for "$secs" p1
for k in "${!stats[@]}"; do note "$k: ${stats[$k]}"; done
check "phase 1 made at least $min_tries tries ($tries)" test "$tries" -ge "$min_tries"
check_eq "origin state is still snap" snap "$(status_field fzorig 5)"
check_eq "image is still valid" valid "$(img_state fzimg)"
vf_writers ow $origin $om 1 2 3
vf_wait_writers 0
vf_check "origin equals its model after phase 1" $origin $om
vf_check "image equals its model after phase 1" $image $im
check "image removed" dmsetup remove fzimg

# ---- phase 2: no image (image constructors get further) -------------------
note "phase 2: $secs s without an image"
stats=()
fuzz_for "$secs" p2
for k in "${!stats[@]}"; do note "$k: ${stats[$k]}"; done
check "phase 2 made at least $min_tries tries ($tries)" test "$tries" -ge "$min_tries"

# ---- the devices still work -----------------------------------------------
check "no fuzz device left" sh -c "! dmsetup info fzjunk >/dev/null 2>&1"
check_eq "origin state is '-'" - "$(status_field fzorig 5)"
check "origin status parses" sh -c "dmsetup status fzorig | grep -Eq 'blksnap-origin [0-9]+ [0-9]+ [0-9a-f-]{36} [0-9]+ -$'"
cp $om $im
check "a new image on $real" image_create fzimg $real $store 8
vf_writers ow $origin $om 1 2 3
vf_wait_writers 0
vf_check "origin equals its model at the end" $origin $om
vf_check "the new image equals the point-in-time model" $image $im
check "image removed" dmsetup remove fzimg
check_no_kernel_report "no kernel report in the whole run"
