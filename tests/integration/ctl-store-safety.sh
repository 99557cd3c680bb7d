#!/bin/bash
# blksnapctl refuses every unsafe store (on the origin, its real device, a device stacked on it, a directory on it, too small, in use, carrying a signature) and changes nothing
# vm: --disks 3 --disk-size 64M --timeout 900 --modules ext4
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/ctl-lib.sh"

require_target blksnap-origin
require_target blksnap-image
work=$(mktemp -d)
at_exit "rm -rf $work"

# /dev/vda is snapshotted; /dev/vdb and /dev/vdc are candidate stores.
# The first 8 MiB: where the data and the signatures are (the whole device
# costs too much under emulation, for each check).
head8() { head -c 8M "$1" | sha256sum; }

ctl_attach /dev/vda
origin=/dev/mapper/blksnap-vda
size_a=$(dev_sectors /dev/vda)
dd if=/dev/urandom of=$origin bs=1M count=4 oflag=direct status=none
sum_a=$(head8 $origin)

unchanged() { # nothing was created, the origin is as it was
	[ "$(dm_names)" = "$1" ] && [ "$(head8 $origin)" = "$sum_a" ] &&
		[ "$(status_field blksnap-vda 5)" = "-" ]
}
before=$(dm_names)

# ---- stores that are, or are on, the snapshotted device ------------------------
ctl_fail "store on the origin" 1 "is, or is stacked on, a device being snapshotted" \
	create /dev/vda --store $origin --name s
check "the refused store on the origin changed nothing" unchanged "$before"
ctl_fail "store on the real device" 1 "is, or is stacked on, a device being snapshotted" \
	create /dev/vda --store /dev/vda --name s
check "the refused store on the real device changed nothing" unchanged "$before"
# dm devices stacked on the real device and on the origin.
dm_create on-real "0 2048 linear /dev/vda $((size_a - 2048))"
dm_create on-origin "0 2048 linear $origin $((size_a - 2048))"
ctl_fail "store stacked on the real device" 1 "stacked on, a device being snapshotted" \
	create /dev/vda --store /dev/mapper/on-real --name s
ctl_fail "store stacked on the origin" 1 "stacked on, a device being snapshotted" \
	create /dev/vda --store /dev/mapper/on-origin --name s
dm_create on-on "0 1024 linear /dev/mapper/on-origin 0"
ctl_fail "store two levels above the origin" 1 "stacked on, a device being snapshotted" \
	create /dev/vda --store /dev/mapper/on-on --name s
before=$(dm_names)
check "the refused stacked stores changed nothing" unchanged "$before"
dmsetup remove on-on on-origin on-real
before=$(dm_names)

# A directory on the snapshotted device: its store file's writes would be copied into itself.
mkfs.ext4 -q $origin
mount_at $origin /mnt/a
mkdir /mnt/a/stores
ctl_fail "store directory on the snapshotted device" 1 "on a device being snapshotted" \
	create /dev/vda --store /mnt/a/stores --store-size 16M --name s
check_eq "no store file was made there" "" "$(ls -A /mnt/a/stores)"
check_eq "no loop device was made" 0 "$(losetup -a | grep -c . || true)"
umount /mnt/a
sum_a=$(head8 $origin)
check "the refused directory store left no device behind" test "$(dm_names)" = "$before"

# ---- stores that are too small, in use, or blksnap's own ---------------------------
dm_create tiny "0 8 linear /dev/vdc 0"
ctl_fail "a store of 4 KiB" 1 "too small" create /dev/vda --store /dev/mapper/tiny --name s
ctl_fail "a directory store of 2 KiB" 2 "--store-size 2K" \
	create /dev/vda --store /tmp --store-size 2K --name s
dmsetup remove tiny
mkfs.ext4 -q /dev/vdc
mount_at /dev/vdc /mnt/c
ctl_fail "a mounted store device" 1 "in use (mounted on /mnt/c)" \
	create /dev/vda --store /dev/vdc --name s
umount /mnt/c
dm_create holder "0 2048 linear /dev/vdc 0"
ctl_fail "a store device held by a dm device" 1 "in use (held by holder" \
	create /dev/vda --store /dev/vdc --name s
dmsetup remove holder
before=$(dm_names)
check "the refused busy stores changed nothing" unchanged "$before"

# A snapshot's own devices are no stores for another one.
wipefs -q -a /dev/vdb /dev/vdc
ctl_attach /dev/vdc
ctl_ok "snapshot s1 of vda on vdb" create /dev/vda --store /dev/vdb --name s1
ctl_fail "the image of another snapshot as store" 1 "is a blksnap device (BLKSNAP-IMAGE-" \
	create /dev/vdc --store /dev/mapper/blksnap-vda-s1 --name s2
ctl_fail "the store of another snapshot as store" 1 "is a blksnap device (BLKSNAP-STORE-" \
	create /dev/vdc --store /dev/mapper/s1-store --name s2
ctl_fail "store add: the origin" 1 "is, or is stacked on, a device being snapshotted" \
	store add s1 $origin
ctl_fail "store add: the real device" 1 "is, or is stacked on, a device being snapshotted" \
	store add s1 /dev/vda
ctl_fail "store add: the store in use" 1 "in use (held by s1-store" store add s1 /dev/vdb
check_eq "s1's store still has one part" 1 "$(ctl status s1 --json | jq '.store.parts | length')"
ctl_ok "destroy s1" destroy s1
ctl_ok "detach vdc" detach /dev/vdc

# ---- signatures: what pvcreate and mkfs check ---------------------------------------
sig_refused() { # sig_refused DESC TEXT: create and store add refuse /dev/vdb, which keeps it
	local before_b
	before_b=$(head8 /dev/vdb)
	ctl_fail "create: a store with $1" 1 "carries a signature, $2" create /dev/vda --store /dev/vdb --name s
	check_eq "create: the store with $1 is untouched" "$before_b" "$(head8 /dev/vdb)"
	check "create: nothing was created" unchanged "$before"
}
mkfs.ext4 -q -L keepme /dev/vdb
sig_refused "an ext4 file system" "ext4 file system (LABEL=keepme"
check "the message says how to go on" grep -q -- "wipefs -a /dev/vdb.*--force" <<< "$FAIL_OUTPUT"
wipefs -q -a /dev/vdb
lvm_cmd pvcreate -q -y /dev/vdb > /dev/null
sig_refused "an LVM PV" "LVM physical volume label"
lvm_cmd pvremove -q -y /dev/vdb > /dev/null
wipefs -q -a /dev/vdb
mkswap /dev/vdb > /dev/null
sig_refused "swap" "swap"
wipefs -q -a /dev/vdb
# A DOS partition table with one partition, written by hand (no fdisk needed).
printf '\x83' | dd of=/dev/vdb bs=1 seek=450 conv=notrunc status=none
printf '\x00\x08\x00\x00\x00\x10\x00\x00' | dd of=/dev/vdb bs=1 seek=454 conv=notrunc status=none
printf '\x55\xaa' | dd of=/dev/vdb bs=1 seek=510 conv=notrunc status=none
sig_refused "a partition table" "dos partition table"
wipefs -q -a /dev/vdb
# An md RAID member: metadata 1.2, checksummed as the kernel does.
python3 - /dev/vdb << 'EOF'
import struct, sys
sb = bytearray(1024)
struct.pack_into('<IIII', sb, 0, 0xa92b4efc, 1, 0, 0)
sb[16:32] = b'0123456789abcdef'
sb[32:41] = b'host:raid'
struct.pack_into('<I', sb, 72, 1)              # level
struct.pack_into('<I', sb, 88, 2)              # raid_disks
struct.pack_into('<Q', sb, 128, 2048)          # data_offset
struct.pack_into('<Q', sb, 136, 4096)          # data_size
struct.pack_into('<Q', sb, 144, 8)             # super_offset
struct.pack_into('<I', sb, 220, 2)             # max_dev
size = 256 + 2 * 2
s = sum(struct.unpack_from('<I', sb, i)[0] for i in range(0, size - size % 4, 4))
struct.pack_into('<I', sb, 216, (s & 0xffffffff) + (s >> 32))
with open(sys.argv[1], 'r+b') as f:
    f.seek(4096)
    f.write(sb)
EOF
sig_refused "a RAID member signature" "linux_raid_member RAID member signature"

# --force uses it, like pvcreate -ff: the snapshot is right, then the device
# is marked as a store part and used again without --force.
wipefs -q -a /dev/vdb
mkfs.ext4 -q -L keepme /dev/vdb
ctl_ok "create --force with the ext4 store" create /dev/vda --store /dev/vdb --name f1 --force
check_eq "the image equals the origin" "$sum_a" "$(head8 /dev/mapper/blksnap-vda-f1)"
dd if=/dev/urandom of=$origin bs=1M count=2 oflag=direct status=none
check_eq "the image still equals the origin before the write" "$sum_a" \
	"$(head8 /dev/mapper/blksnap-vda-f1)"
ctl_ok "destroy f1" destroy f1
check "the store's first sector names it a store part" \
	bash -c "head -c 21 /dev/vdb | grep -q '^BLKSNAP-STORE-PART-1'"
ctl_ok "a former store part is used again without --force" create /dev/vda --store /dev/vdb --name f2
ctl_ok "destroy f2" destroy f2

# store add refuses a signature too, and takes --force.
ctl_ok "snapshot g1 on a directory" create /dev/vda --store /tmp --store-size 16M --name g1
mkfs.ext4 -q /dev/vdc
ctl_fail "store add: a store with ext4" 1 "carries a signature, ext4 file system" store add g1 /dev/vdc
check_eq "g1's store still has one part" 1 "$(ctl status g1 --json | jq '.store.parts | length')"
ctl_ok "store add --force" store add g1 /dev/vdc --force
check_eq "g1's store has two parts now" 2 "$(ctl status g1 --json | jq '.store.parts | length')"
ctl_ok "destroy g1" destroy g1
