#!/bin/bash
# merge with dmsetup alone: the origin reads as the image at once, writes during the merge, CBT after, store errors, removals
# vm: --disks 2 --disk-size 64M --timeout 900 --modules dm-delay
# lanes: 6.1 debug
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"

real=/dev/vda
sdisk=/dev/vdb
chunk=8 # 4 KiB
cb=4096
origin=/dev/mapper/morig
image=/dev/mapper/mimg
store=/dev/mapper/mstore
size=$(blockdev --getsize64 $real)
ssz=$(dev_sectors $sdisk)
require_target blksnap-image
# KASAN and lockdep under emulation: the same cases with half the random
# writes (each one is also a CBT model update in bash).
nw() { if debug_kernel; then echo $(($1 / 2)); else echo "$1"; fi; }

rnd() { echo $(((RANDOM << 15 | RANDOM) % $1)); }

# The store sits on dm-delay: a read delay makes a merge last long enough
# to write, fail or remove things while it runs.
store_delay() { dm_reload mstore "0 $ssz delay $sdisk 0 $1 $sdisk 0 0"; }

merge_state() { status_field morig 5; }

# Until the state is "merge D/T" with D == T; fails on anything else.
wait_merged() {
	local st d i
	for ((i = 0; i < 3000; i++)); do
		st=$(merge_state)
		case $st in
		"merge "*)
			d=${st#merge }
			[ "${d%/*}" != "${d#*/}" ] || return 0
			;;
		*)
			echo "#   state '$st'"
			return 1
			;;
		esac
		sleep 0.1
	done
	echo "#   still '$st' after 300 s"
	return 1
}

wait_state() { # wait_state PATTERN: until the origin's state matches
	local i
	for ((i = 0; i < 600; i++)); do
		# shellcheck disable=SC2053
		[[ $(merge_state) == $1 ]] && return 0
		sleep 0.1
	done
	echo "#   state '$(merge_state)', wanted '$1'"
	return 1
}

# chunk_scan DEV MODEL OFF LEN: "<equal> <unreadable>" over the 4 KiB chunks
# of DEV in OFF..OFF+LEN read with O_DIRECT; a readable chunk that differs
# from MODEL is reported and fails the scan unless ALLOW_DIFF=1.
chunk_scan() {
	python3 - "$@" << 'PY'
import mmap, os, sys
dev, model, off, length = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 4096)
equal = bad = differ = 0
with open(model, "rb") as m:
    for pos in range(off, off + length, 4096):
        try:
            os.preadv(fd, [buf], pos)
        except OSError:
            bad += 1
            continue
        m.seek(pos)
        if buf[:] == m.read(4096):
            equal += 1
        else:
            differ += 1
if differ and os.environ.get("ALLOW_DIFF") != "1":
    print(f"{differ} readable chunk(s) differ from {model}", file=sys.stderr)
    sys.exit(1)
print(equal, bad)
PY
}

merged_count() { local st; st=$(merge_state); st=${st#* }; echo "${st%/*}"; }

wait_events_above() { # wait_events_above NAME N: a dm event arrives
	local i
	for ((i = 0; i < 100; i++)); do
		(($(dm_events "$1") > $2)) && return 0
		sleep 0.1
	done
	return 1
}

pre=$IMG_TMP/pre omodel=$IMG_TMP/origin.model imodel=$IMG_TMP/image.model
check "origin filled with random data" fill_random $real $pre "$size"
check "blksnap-origin over $real" origin_create morig $real
tbs=$(status_field morig 1)
model_init $((size / SECTOR)) "$tbs"
take_and_check morig
check "store on dm-delay" dm_create mstore "0 $ssz delay $sdisk 0 0 $sdisk 0 0"

expect_errno "merge without an image: ENOENT" "No such file or directory" dm_message morig merge
expect_errno "merge with an argument: EINVAL" "Invalid argument" dm_message morig merge now

# Writes through the origin and the image, both in the CBT model: every
# chunk either of them touched is merged and so marked changed.
owrite() { # owrite OFF LEN
	model_dd $origin $omodel "$1" "$2" direct &&
		model_write $(($1 / SECTOR)) $((($2 + SECTOR - 1) / SECTOR))
}
iwrite() { # iwrite OFF LEN
	model_dd $image $imodel "$1" "$2" direct &&
		model_write $(($1 / SECTOR)) $((($2 + SECTOR - 1) / SECTOR))
}
# random_writes DEV MODEL N [OFF LEN]: N random 512 B..12 KiB O_DIRECT writes
# inside OFF..OFF+LEN (default: the device), on DEV and MODEL, in one
# process (dd per write is slow under emulation); marked in the CBT model.
random_writes() {
	local dev=$1 model=$2 out
	out=$(python3 - "$dev" "$model" "$3" "${4:-0}" "${5:-$size}" << 'PY'
import mmap, os, random, sys
dev, model, n, off, length = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
with open(model, "r+b") as m:
    for _ in range(n):
        sectors = random.randint(1, 24)
        pos = off + random.randrange(0, length // 512 - sectors) * 512
        data = os.urandom(sectors * 512)
        buf = mmap.mmap(-1, len(data))
        buf[:] = data
        if os.pwritev(fd, [buf], pos) != len(data):
            sys.exit(f"short write at {pos}")
        m.seek(pos)
        m.write(data)
        print(pos // 512, sectors)
os.fsync(fd)
PY
) || return
	while read -r start sectors; do
		model_write "$start" "$sectors"
	done <<< "$out"
}
new_image() { # new_image: a snapshot of the origin as it is (== $pre)
	cp $pre $omodel
	cp $pre $imodel
	image_create mimg $real $store $chunk || return
	model_take
}

# ---- 1. merge with no concurrent I/O ---------------------------------------
note "1. merge with no I/O during it"
check "image 1 created" new_image
snap1=$M_LAST_TAKE
check "origin: $(nw 80) random writes" random_writes $origin $omodel "$(nw 80)"
check "image: $(nw 80) random writes" random_writes $image $imodel "$(nw 80)"
check "image: 2 MiB at 40 MiB" iwrite $((40 << 20)) $((2 << 20))
check "origin: the last 4 KiB" owrite $((size - 4096)) 4096
check "image: the last 1 KiB" iwrite $((size - 1024)) 1024
check_same "image before the merge" $image $imodel $cb
check_same "origin before the merge" $origin $omodel $cb
copied=$(image_field mimg 3)
events=$(dm_events morig)

check "merge starts" dm_message morig merge
check "the origin reads as the image right away" wait_state "merge */$copied"
check_same "origin equals the image while merging" $origin $imodel $cb
expect_fail "image I/O fails once the merge started" dd if=$image of=/dev/null bs=4096 count=1 iflag=direct status=none
expect_errno "a second merge: EBUSY" "Device or resource busy" dm_message morig merge
check "the merge completes" wait_merged
check_eq "origin state after the merge" "merge $copied/$copied" "$(merge_state)"
check_eq "image state after the merge" merging "$(image_field mimg 4)"
check "a dm event on the origin at the end" wait_events_above morig "$events"
check_same "origin equals the image after the merge" $origin $imodel $cb
check_same "real device equals the image" $real $imodel $cb
check "image removed" dmsetup remove mimg
check_eq "origin state with the image gone" "-" "$(merge_state)"
take_and_check morig
check_changes morig "$snap1"
cp $imodel $pre

# ---- 2. origin writes while the merge runs --------------------------------
note "2. origin writes while merging"
check "image 2 created" new_image
snap2=$M_LAST_TAKE
check "image: 8 MiB at 16 MiB" iwrite $((16 << 20)) $((8 << 20))
check "image: $(nw 100) random writes" random_writes $image $imodel "$(nw 100)"
check "origin: $(nw 100) random writes" random_writes $origin $omodel "$(nw 100)"
copied=$(image_field mimg 3)
check "store reads delayed by 100 ms" store_delay 100
check "merge starts" dm_message morig merge
# From here the expected origin is the image with the new writes on top.
cp $imodel $omodel
mid=$IMG_TMP/mid
check "origin: 40 writes into the unmerged 8 MiB" random_writes $origin $omodel 40 $((16 << 20)) $((8 << 20))
note "after them: $(merge_state)"
check "origin: $(nw 60) random writes" random_writes $origin $omodel "$(nw 60)"
check_eq "the writes landed while the merge was still running" yes \
	"$([ "$(merged_count)" -lt "$copied" ] && echo yes || echo "no ($(merge_state))")"
cp $omodel $mid
check_same "origin equals image + new writes while merging" $origin $mid $cb
check "store delay off" store_delay 0
check "the merge completes" wait_merged
check_same "origin equals image + new writes after the merge" $origin $omodel $cb
check_same "real device too" $real $omodel $cb
check "image removed" dmsetup remove mimg
take_and_check morig
check_changes morig "$snap2"
cp $omodel $pre

# ---- 3. the store fails during the merge -----------------------------------
note "3. store errors during the merge"
check "image 3 created" new_image
region=$((32 << 20)) rlen=$((4 << 20))
check "image: 4 MiB at 32 MiB" iwrite $region $rlen
copied=$(image_field mimg 3)
check "store reads delayed by 100 ms" store_delay 100
check "merge starts" dm_message morig merge
check "some chunks merged" wait_state "merge [1-9]*/$copied"
check "the store turns into dm-error" dm_reload mstore "0 $ssz error"
check "the merge fails" wait_state "merge_failed */$copied"
check_eq "image state" failed "$(image_field mimg 4)"
sleep 1 # copies that had read the store before the switch finish
done_chunks=$(merged_count)
note "merged before the failure: $done_chunks of $copied"
check_eq "merge stopped before the end" yes "$([ "$done_chunks" -lt "$copied" ] && echo yes || echo no)"
check_same "origin before the merged region unchanged" $origin $pre $cb 0 $region
# Each chunk of the region: readable with the image's data, or an I/O error.
capture "origin region read chunk by chunk" chunk_scan $origin $imodel $region $rlen
note "region chunks: $OUT (readable, unreadable)"
check_eq "merged chunks read as the image, the rest fail" "$done_chunks $((rlen / cb - done_chunks))" "$OUT"
expect_fail "a write to an unmerged chunk fails" \
	dd if=/dev/zero of=$origin bs=4096 count=1 seek=$(((region + rlen) / cb - 1)) oflag=direct status=none
check "a write outside the merge passes" owrite $((60 << 20)) 4096
check "image removed" dmsetup remove mimg
check_eq "the failure stays in the origin's status" "merge_failed $done_chunks/$copied" "$(merge_state)"
expect_errno "merge without an image: ENOENT" "No such file or directory" dm_message morig merge
dm_reload mstore "0 $ssz delay $sdisk 0 0 $sdisk 0 0"
# The real device: the merged chunks hold the image, the rest the origin's data.
ALLOW_DIFF=1 capture "real device: chunks equal to the image" chunk_scan $real $imodel $region $rlen
check_eq "real device: the merged chunks hold the image" "$done_chunks 0" "$OUT"
ALLOW_DIFF=1 capture "real device: chunks equal to the origin" chunk_scan $real $pre $region $rlen
check_eq "real device: the other chunks hold the origin's data" "$((rlen / cb - done_chunks))" "${OUT%% *}"
dev_read $real > $pre

# ---- 4. the origin is removed during a merge -------------------------------
note "4. origin removed while merging"
check "image 4 created" new_image
check "image: 4 MiB at 48 MiB" iwrite $((48 << 20)) $((4 << 20))
check "the merge state clears with a new image" test "$(merge_state)" = snap
check "store reads delayed by 100 ms" store_delay 100
check "merge starts" dm_message morig merge
check "some chunks merged" wait_state "merge [1-9]*/*"
check "origin removed while merging" dmsetup remove morig
check_eq "image state" failed "$(image_field mimg 4)"
check "image removed" dmsetup remove mimg
check "a new origin on the same device" origin_create morig $real
check_eq "its state" "-" "$(merge_state)"
check_no_kernel_report "no kernel report"
