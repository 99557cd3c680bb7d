#!/bin/bash
# every blksnapctl error is one "blksnapctl:" line on stderr, exit 1 (failure) or 2 (usage)
# vm: --disks 3 --disk-size 128M --timeout 400 --modules ext4
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/ctl-lib.sh"

work=$(mktemp -d)
at_exit "rm -rf $work"
require_target blksnap-origin

# ---- usage errors: exit 2 ----
ctl_fail "no command" 2 "no command" 
ctl_fail "an unknown command" 2 "unknown command" frobnicate
ctl_fail "an unknown option" 2 "unknown option" list --bogus
ctl_fail "cbt without a subcommand" 2 "needs a subcommand" cbt
ctl_fail "an unknown cbt subcommand" 2 "unknown command" cbt frob /dev/vda
ctl_fail "attach without a device" 2 "attach: missing <device>" attach
ctl_fail "attach with two devices" 2 "too many arguments" attach /dev/vda /dev/vdb
ctl_fail "attach --tracking-block without a value" 2 "needs a value" attach /dev/vda --tracking-block
ctl_fail "attach --tracking-block that is no size" 2 "tracking-block" attach /dev/vda --tracking-block 12Q
ctl_fail "--json where a command prints nothing" 2 "unknown option" detach /dev/vda --json
ctl_fail "cbt changes without --since" 2 "--since N is required" cbt changes /dev/vda
ctl_fail "cbt changes --since 256" 2 "0..255" cbt changes /dev/vda --since 256
ctl_fail "cbt changes --since -1" 2 "0..255" cbt changes /dev/vda --since -1
ctl_fail "cbt read without --out" 2 "--out FILE is required" cbt read /dev/vda
ctl_fail "cbt mark-dirty without an extent" 2 "missing <start>+<sectors>" cbt mark-dirty /dev/vda
ctl_fail "cbt mark-dirty of a malformed extent" 2 "cbt mark-dirty" cbt mark-dirty /dev/vda 12-4
ctl_fail "cbt mark-dirty of an empty extent" 2 "cbt mark-dirty" cbt mark-dirty /dev/vda 12+0
ctl_fail "create without --store" 2 "--store is required" create /dev/vda
ctl_fail "store add without a store" 2 "store add: missing <dev|dir>" store add snap1
ctl_fail "destroy without a snapshot" 2 "destroy: missing <snapshot>" destroy
ctl_fail "cbt changes without a device" 2 "cbt changes: missing <device>" cbt changes --since 1
# The same size syntax everywhere, and every bad value exit 2.
ctl_fail "--chunk 3K: parses, but no power of two" 2 "--chunk 3K: chunk size 3 KiB: must be a power of two" \
	create /dev/vda --store /tmp --chunk 3K
ctl_fail "--chunk 1.5G: parses, too large" 2 "--chunk 1.5G: chunk size 1.5 GiB" \
	create /dev/vda --store /tmp --chunk 1.5G
ctl_fail "--store-size of 1000 bytes" 2 "--store-size 1000: store size 1000 B" \
	create /dev/vda --store /tmp --store-size 1000
ctl_fail "--tracking-block 2K" 2 "--tracking-block 2K: tracking block 2 KiB" attach /dev/vda --tracking-block 2K
ctl_fail "--grow-by 6000" 2 "--grow-by 6000: growth 5.8 KiB: must be a multiple of 4 KiB" \
	monitor s1 --grow-by 6000
ctl_fail "--size 1.5" 2 "not a whole number of bytes" store add s1 /tmp --size 1.5

# ---- not root: the cause is named, and the errno is EACCES ----
rc=0
setpriv --reuid=65534 --regid=65534 --clear-groups blksnapctl --debug list > /dev/null 2> $work/err || rc=$?
sed 's/^/#   /' $work/err
check_eq "list as nobody fails" 1 $rc
check "saying that device-mapper needs root" grep -q "^blksnapctl: cannot list device-mapper devices: permission denied: device-mapper needs root" $work/err
check "with EACCES, not ENOMEM" grep -q "^blksnapctl: debug: the call returned -13 (EACCES" $work/err
rc=0
setpriv --reuid=65534 --regid=65534 --clear-groups blksnapctl destroy s1 2> $work/err || rc=$?
check "destroy as nobody fails on the lock or device-mapper, saying why" \
	grep -q -e "are you root" -e "needs root" $work/err

# ---- devices that are not there, or not attached: exit 1 ----
for cmd in "attach" "detach" "status" "cbt info" "cbt read --out $work/m" \
	"cbt changes --since 0" "cbt mark-dirty"; do
	# shellcheck disable=SC2086
	if [ "$cmd" = "cbt mark-dirty" ]; then
		ctl_fail "$cmd of a missing device" 1 "/dev/nosuch" $cmd /dev/nosuch 0+8
	else
		ctl_fail "$cmd of a missing device" 1 "/dev/nosuch" $cmd /dev/nosuch
	fi
done
ctl_fail "attach of a regular file" 1 "not a block device" attach /etc/hostname
for cmd in "detach" "cbt info" "cbt read --out $work/m" "cbt changes --since 0"; do
	# shellcheck disable=SC2086
	ctl_fail "$cmd of a disk that is not attached" 1 "no blksnap-origin on /dev/vda" $cmd /dev/vda
done
ctl_fail "cbt mark-dirty of a disk that is not attached" 1 "no blksnap-origin on /dev/vda" \
	cbt mark-dirty /dev/vda 0+8
ctl_fail "status of a disk that is not attached" 1 "no blksnap-origin on /dev/vda" status /dev/vda
ctl_fail "status of a name that is nothing" 1 "no snapshot and no device named nosuch" status nosuch
check "cbt read left no file behind" test ! -e $work/m

# ---- snapshots that do not exist: exit 1 ----
ctl_fail "destroy of a missing snapshot" 1 "no snapshot named nosnap" destroy nosnap
ctl_fail "store add to a missing snapshot" 1 "no snapshot named nosnap" store add nosnap /dev/vdc
ctl_fail "monitor of a missing snapshot" 1 "no snapshot named nosnap" monitor nosnap
ctl_fail "merge of a missing snapshot" 1 "nosnap" merge nosnap

# ---- busy devices: exit 1 ----
mkfs.ext4 -q /dev/vdb
mount_at /dev/vdb /mnt/b
ctl_fail "attach of a mounted disk names the mount" 1 "/dev/vdb is in use (mounted on /mnt/b)" attach /dev/vdb
umount /mnt/b
dm_create hold "0 $(dev_sectors /dev/vdc) linear /dev/vdc 0"
ctl_fail "attach of a disk held by a dm device names it" 1 "/dev/vdc is in use (held by hold (dm-" attach /dev/vdc
dmsetup suspend hold
ctl_fail "attach of a suspended dm device" 1 "is suspended" attach hold
check "the refused attach left it suspended" bash -c "dmsetup info hold | grep -q SUSPENDED"
dmsetup resume hold
dmsetup load hold --table "0 8 zero"
ctl_fail "attach of a dm device with an inactive table" 1 "inactive table" attach /dev/mapper/hold
check_eq "the refused attach kept the other program's table" "0 8 zero" "$(dmsetup table --inactive hold | sed "s/ *$//")"
dmsetup clear hold
check_eq "no -bsreal device was left behind" "hold" "$(dm_names)"
ctl_attach /dev/vda
ctl_fail "attach of an attached disk" 1 "already attached" attach /dev/vda
ctl_fail "attach --tracking-block below 4K" 2 "tracking block" attach /dev/vdb --tracking-block 2K
ctl_fail "attach --tracking-block not a power of two" 2 "tracking block" attach /dev/vdb --tracking-block 12K
ctl_fail "cbt read before any take" 1 "no CBT snapshot map" cbt read /dev/vda --out $work/m
ctl_fail "cbt mark-dirty outside the device" 1 "outside" cbt mark-dirty /dev/vda 999999999+8
mkfs.ext4 -q /dev/mapper/blksnap-vda
mount_at /dev/mapper/blksnap-vda /mnt/a
ctl_fail "detach of a mounted origin names the mount" 1 "blksnap-vda is in use (mounted on /mnt/a)" detach /dev/vda
check "the refused detach left the mount alone" mountpoint -q /mnt/a
# destroy of a snapshot whose image is mounted names the mount too.
if dmsetup targets | grep -qw blksnap-image; then
	ctl_ok "a snapshot of the mounted origin" create /dev/vda --store /tmp --store-size 16M --name busy
	check "its image mounted" mount_at /dev/mapper/blksnap-vda-busy /mnt/i -o ro,noload
	ctl_fail "destroy of a snapshot with its image mounted names the mount" 1 \
		"image blksnap-vda-busy is in use (mounted on /mnt/i)" destroy busy
	ctl_fail "detach of an origin with a snapshot names it" 1 \
		"snapshot image blksnap-vda-busy exists" detach /dev/vda
	umount /mnt/i
	ctl_ok "destroy once unmounted" destroy busy
fi
ctl_fail "attach of a blksnap device" 1 "already attached" attach blksnap-vda

# (blksnapctl's "no blksnap-image target" error cannot happen here: the one
# module registers both targets, and blksnap-origin is attached above.)

# Nothing was created or changed by any of the failures.
check_eq "only the attached disk and the holder exist" "blksnap-vda hold" "$(dm_names)"
check_eq "the origin is untouched" "0 $(dev_sectors /dev/vda) blksnap-origin $(majmin /dev/vda)" \
	"$(dmsetup table blksnap-vda)"
umount /mnt/a
ctl_ok "detach after the unmount" detach /dev/vda

# Output that cannot be written (a full disk) fails with its cause.
check "list into /dev/full: exit 1, ENOSPC named" sh -c \
	'blksnapctl list > /dev/full 2> /tmp/full.err; rc=$?; cat /tmp/full.err; [ $rc -eq 1 ] && grep -q "cannot write the output: No space left on device" /tmp/full.err'
