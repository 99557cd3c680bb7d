#!/bin/bash
# the reviewers' use-after-free reproducers: force-removing a mounted busy image; a refused second image, then the first removed
# vm: --disks 2 --disk-size 256M --timeout 600
# lanes: debug
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"
. "$BLKSNAP_TOP/tests/stress-lib.sh"

# Upstream blksnap v3 (seeds/003, Donald Buczek): (1) a snapshot destroyed
# while its image is mounted and dd writes to it: KASAN use-after-free in
# chunk_notify_store; (2) a second snapshot of the same device created and
# destroyed, then the first destroyed: wild-memory-access in snapshot_free.
# The dm equivalents, with copy-on-write in flight from origin writers.

real=/dev/vda
store=/dev/vdb
origin=/dev/mapper/frorig
image=/dev/mapper/frimg
om=$IMG_TMP/origin.model
fsblocks=$((128 << 8)) # ext4 on the first 128 MiB of the origin, stamps on the rest
# KASAN and lockdep under emulation: the same cases with shorter writers
# and fewer rounds of (b).
wsecs_a=20 wsecs_b=25 rounds=6
! debug_kernel || { wsecs_a=12 wsecs_b=15 rounds=3; }
require_target blksnap-image
kmsg_mark
vf_build

check "real device stamped" vf_init $real $om 1
check "blksnap-origin over $real" origin_create frorig $real
check "ext4 on the origin's first 128 MiB" mkfs.ext4 -q -F $origin 128M
check "the file system's blocks leave the model" "$VF" forget $om 0 $fsblocks
check "origin mounted" mount_at $origin /mnt/o
head -c $((4 << 20)) /dev/urandom > /mnt/o/data
fsum=$(sha256sum < /mnt/o/data)
check "origin unmounted" umount /mnt/o

origin_writers() { # origin_writers SECS: two writers on the stamped part (parts 2 and 3 of 4)
	local k
	VF_WRITERS=()
	for k in 2 3; do
		vf_bg "ow$k" "$VF" write $origin $om 1 --seconds "$1" --part "$k/4" --seed $RANDOM --quiet
		VF_WRITERS+=("ow$k")
	done
}

# ---- (a1) dmsetup remove --force of the mounted image under dd ------------
force_remove_case() { # force_remove_case LABEL HOW
	local label=$1 how=$2 filler
	note "($label) $how while the image is mounted and dd writes to it"
	check "($label) image created" image_create frimg $real $store 8
	check "($label) image mounted" mount_at $image /mnt/i
	check "($label) the image's file equals the origin's" sh -c "[ \"\$(sha256sum < /mnt/i/data)\" = \"$fsum\" ]"
	# dd of zeroes into a file, again and again, until a write fails
	sh -c 'while dd if=/dev/zero of=/mnt/i/x bs=1M count=48 conv=fsync 2>/dev/null; do rm -f /mnt/i/x; done' &
	filler=$!
	at_exit "stop_bg $filler"
	origin_writers $wsecs_a
	sleep 4
	check "($label) dd is still writing" kill -0 $filler
	case $how in
	remove--force)
		timeout 60 dmsetup remove --force frimg > $IMG_TMP/rm.out 2>&1 || true
		note "($label) dmsetup remove --force: $(tr '\n' ' ' < $IMG_TMP/rm.out)"
		;;
	error-table)
		check "($label) image suspended (noflush)" timeout 60 dmsetup suspend --noflush --nolockfs frimg
		check "($label) error table loaded" dmsetup load frimg --table "0 $(dev_sectors $real) error"
		check "($label) resumed with the error table" timeout 60 dmsetup resume frimg
		expect_fail "($label) remove fails while mounted" dmsetup remove frimg
		;;
	esac
	check "($label) dd ends (no hang)" timeout 90 sh -c "while kill -0 $filler 2>/dev/null; do sleep 1; done"
	wait $filler 2> /dev/null || true
	vf_wait_writers 0
	check "($label) image unmounted" timeout 60 umount /mnt/i
	if dmsetup info frimg > /dev/null 2>&1; then
		check "($label) image removed after the unmount" timeout 60 dmsetup remove frimg
	else
		echo "ok - ($label) image already removed"
	fi
	check_eq "($label) origin state is '-'" - "$(status_field frorig 5)"
	vf_check "($label) origin's stamped part equals the model" $origin $om
	check "($label) the origin's file system is clean" e2fsck -fn $origin
	check_no_kernel_report "($label) no kernel report"
}
force_remove_case a1 remove--force
force_remove_case a2 error-table

# ---- (b) a second image on the same origin, removed; then the first -------
note "(b) second image refused, removed, then the first removed; $rounds rounds under origin writes"
origin_writers $wsecs_b
for ((round = 1; round <= rounds; round++)); do
	check "(b$round) first image created" image_create frimg $real $store $((8 << (round % 4)))
	if ((round % 2)); then
		expect_errno "(b$round) a second image (dmsetup create) fails with EBUSY" "Device or resource busy" \
			dmsetup create frimg2 --table "$(image_table $real $store 8)"
	else
		check "(b$round) an empty device" dmsetup create frimg2 --notable
		expect_errno "(b$round) loading a second image table fails with EBUSY" "Device or resource busy" \
			dmsetup load frimg2 --table "$(image_table $real $store 8)"
	fi
	if dmsetup info frimg2 > /dev/null 2>&1; then
		check "(b$round) the failed device removed" dmsetup remove frimg2
	fi
	check_eq "(b$round) first image still valid" valid "$(img_state frimg)"
	check "(b$round) first image readable" dd if=$image of=/dev/null bs=1M count=8 iflag=direct status=none
	check "(b$round) first image removed" dmsetup remove frimg
	check_eq "(b$round) origin state is '-'" - "$(status_field frorig 5)"
done
vf_wait_writers 0
vf_check "(b) origin's stamped part equals the model" $origin $om

# ---- (c) the same with blksnapctl ------------------------------------------
note "(c) blksnapctl: create s1, create s2 (refused), destroy s2, destroy s1"
check "(c) origin removed (blksnapctl attaches its own)" dmsetup remove frorig
check "(c) attach $real" blksnapctl attach $real
# (a) and (b) used the store through dmsetup, which leaves no blksnapctl
# mark on it: when the origin's chunk 0 was the first one copied, the
# store's head holds the origin's ext4 superblock, and create refuses a
# device with a signature (it did on the debug lane). Start it blank.
check "(c) store's head zeroed" dd if=/dev/zero of=$store bs=1M count=1 oflag=direct status=none
at_exit "undo_attach $real"
check "(c) create s1" blksnapctl create $real --store $store --name s1
at_exit "undo_snapshot s1"
expect_fail "(c) create s2 on the same device fails" blksnapctl create $real --store $store --name s2
expect_fail "(c) destroy s2 fails (no such snapshot)" blksnapctl destroy s2
check "(c) s1 is still there" blksnapctl status s1
check "(c) destroy s1" blksnapctl destroy s1
check "(c) detach $real" blksnapctl detach $real
vf_check "(c) real device's stamped part equals the model" $real $om
check_no_kernel_report "no kernel report in the whole run"
