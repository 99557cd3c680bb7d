#!/bin/bash
# blksnapctl attach/detach with udevd running: udev-synchronised nodes, no hang, no leftovers; blksnaptab auto-attach by the udev rule, and a detach that stays
# vm: --disks 3 --disk-size 128M --timeout 300
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/ctl-lib.sh"

require_target blksnap-origin
udevd=/lib/systemd/systemd-udevd
[ -x $udevd ] || skip "systemd-udevd is not installed"
[ -e /lib/udev/rules.d/95-dm-notify.rules ] || skip "the dm udev rules are not installed"

# Real systems run udevd and libdevmapper waits for it (cookies): that is
# the path taken here, unlike the other tests.
unset DM_DISABLE_UDEV
$udevd --daemon
at_exit "udevadm control --exit"
udevadm trigger --action=add --subsystem-match=block
udevadm settle -t 30

sync_ok() { # no udev cookie semaphore is left behind
	[ "$(dmsetup udevcookies | tail -n +2 | wc -l)" -eq 0 ]
}

check "attach a disk with udev (within 60 s)" timeout 60 blksnapctl attach /dev/vda
check "udev made /dev/mapper/blksnap-vda" test -b /dev/mapper/blksnap-vda
check "udev made the by-id link" test -L /dev/disk/by-id/dm-name-blksnap-vda
size_b=$(dev_sectors /dev/vdb)
dm_create lin "0 $size_b linear /dev/vdb 0"
udevadm settle -t 30
check "attach a dm device with udev (within 60 s)" timeout 60 blksnapctl attach lin
check "udev made /dev/mapper/lin-bsreal" test -b /dev/mapper/lin-bsreal
check_eq "lin is an origin over lin-bsreal" \
	"0 $size_b blksnap-origin $(majmin /dev/mapper/lin-bsreal)" "$(dmsetup table lin)"
check "no udev cookie is left" sync_ok
check "detach the dm device (within 60 s)" timeout 60 blksnapctl detach lin
check "lin-bsreal is gone from /dev/mapper" test ! -e /dev/mapper/lin-bsreal
check "detach the disk (within 60 s)" timeout 60 blksnapctl detach /dev/vda
udevadm settle -t 30
check "blksnap-vda is gone from /dev/mapper" test ! -e /dev/mapper/blksnap-vda
check "its by-id link is gone" test ! -e /dev/disk/by-id/dm-name-blksnap-vda
check "no udev cookie is left" sync_ok
check_eq "only lin is left" lin "$(dm_names)"

# ---- attaching at boot: the blksnaptab and 69-dm-blksnap-attach.rules --------------
# The rule as make install writes it, with this tree's blksnapctl; a
# blksnaptab that names vdc by its label and a loop device's file system by
# its label. Without systemd the rule runs blksnapctl within the event, and
# other events may come first, so the checks wait for the origins to appear.
attached() { test -b "/dev/mapper/blksnap-$1"; }
work=$(mktemp -d)
at_exit "rm -rf $work"
mkfs.ext4 -q -L tabdisk /dev/vdc
for l in tabloop other; do
	truncate -s 32M "$work/$l.img"
	mkfs.ext4 -q -F -L $l "$work/$l.img"
done
udevadm settle -t 30
mkdir -p /etc/blksnap /etc/udev/rules.d
cat > /etc/blksnap/blksnaptab << 'EOF'
# the test's table
LABEL=tabdisk   tracking-block=128K
LABEL=tabloop   -
/dev/disk/by-label/not-there  -
EOF
sed "s|@SBINDIR@|$BLKSNAP_TOP/build/bin|g" "$BLKSNAP_TOP/udev/69-dm-blksnap-attach.rules.in" \
	> /etc/udev/rules.d/69-dm-blksnap-attach.rules
cp "$BLKSNAP_TOP/udev/56-dm-blksnap.rules" /etc/udev/rules.d/
at_exit "rm -f /etc/blksnap/blksnaptab"
check "udevd reloads its rules" udevadm control --reload

check "udevadm trigger --action=add vdc" udevadm trigger --action=add /sys/class/block/vdc
at_exit "undo_attach /dev/vdc"
check "the rule attached vdc, listed by LABEL= (within 60 s)" wait_for 60 attached vdc
udevadm settle -t 30
capture "cbt info of vdc" blksnapctl cbt info /dev/vdc --json
check_eq "with the tracking block of the blksnaptab" 256 "$(jq .tracking_block_sectors <<< "$OUT")"
check_eq "udev's by-label link points at the origin" "$(readlink -f /dev/mapper/blksnap-vdc)" \
	"$(readlink -f /dev/disk/by-label/tabdisk)"

loop_listed=$(losetup -f --show "$work/tabloop.img")
at_exit "undo_loop $loop_listed"
at_exit "undo_attach $loop_listed"
loop_other=$(losetup -f --show "$work/other.img")
at_exit "undo_loop $loop_other"
# The table goes first at exit: the rule does nothing without it.
at_exit "rm -f /etc/blksnap/blksnaptab"
check "the rule attached the new ${loop_listed#/dev/}, listed by LABEL= (within 60 s)" \
	wait_for 60 attached "${loop_listed#/dev/}"
udevadm settle -t 30
sleep 2
udevadm settle -t 30
check "it did not attach ${loop_other#/dev/}, not listed" sh -c "! test -e /dev/mapper/blksnap-${loop_other#/dev/}"

# Idempotent: another event, or the command by hand, changes nothing.
before=$(dm_names)
check "udevadm trigger --action=add vdc again" udevadm trigger --action=add /sys/class/block/vdc
udevadm settle -t 30
sleep 2
udevadm settle -t 30
check_eq "no device came or went" "$before" "$(dm_names)"
ctl_ok "attach --from-blksnaptab vdc by hand" attach --from-blksnaptab /dev/vdc
check_eq "prints the origin" /dev/mapper/blksnap-vdc "$OUT"
ctl_ok "attach --from-blksnaptab ${loop_other#/dev/}: named by no entry, nothing to do" \
	attach --from-blksnaptab "$loop_other"
check_eq "prints nothing" "" "$OUT"
rc=0
out=$(blksnapctl attach --from-blksnaptab 2> "$work/err") || rc=$?
sed 's/^/#   stderr: /' "$work/err"
check_eq "attach --from-blksnaptab of the whole table: the missing device fails it" 1 $rc
check "the failed entry is named with its line number" \
	grep -q "^blksnapctl: /etc/blksnap/blksnaptab:4: /dev/disk/by-label/not-there: " "$work/err"
check "the last line counts the failures" \
	grep -q "^blksnapctl: 1 of the 3 devices of /etc/blksnap/blksnaptab were not attached" "$work/err"
check_eq "the two others are attached already: their origins are printed" \
	"$(printf '/dev/mapper/blksnap-vdc\n/dev/mapper/blksnap-%s' "${loop_listed#/dev/}")" "$out"
check_eq "nothing else changed" "$before" "$(dm_names)"
check "no udev cookie is left" sync_ok

# ---- 56-dm-blksnap.rules: what udev makes of each kind of device ----------------
# A snapshot of the origin over vdc (a plain disk, attached by the rule) and
# of lin, layered, with a store on the loop device no entry names.
ctl_ok "attach lin (layered)" attach lin
at_exit "undo_attach lin"
# (The loop device's ext4 of the test above is no data to keep: --force.)
ctl_ok "create a snapshot of both" create /dev/vdc lin --store "$loop_other" --name udevsnap --force
at_exit "undo_snapshot udevsnap"
udevadm settle -t 30
prop() { udevadm info --query=property "/dev/mapper/$1" | sed -n "s/^$2=//p"; }
check_eq "origin: dm uuid" BLKSNAP-ORIGIN-vdc "$(prop blksnap-vdc DM_UUID)"
check_eq "origin: probed by blkid" tabdisk "$(prop blksnap-vdc ID_FS_LABEL)"
for d in lin-bsreal udevsnap-store; do
	check_eq "$d: no disk rules" 1 "$(prop $d DM_UDEV_DISABLE_DISK_RULES_FLAG)"
	check_eq "$d: no other rules" 1 "$(prop $d DM_UDEV_DISABLE_OTHER_RULES_FLAG)"
	check_eq "$d: not ready for systemd" 0 "$(prop $d SYSTEMD_READY)"
	check "$d: no /dev/disk/by-id link" test ! -e "/dev/disk/by-id/dm-name-$d"
done
img=blksnap-vdc-udevsnap
check_eq "image: probed by blkid (the origin's label)" tabdisk "$(prop $img ID_FS_LABEL)"
check_eq "image: no other rules" 1 "$(prop $img DM_UDEV_DISABLE_OTHER_RULES_FLAG)"
check_eq "image: not ready for systemd" 0 "$(prop $img SYSTEMD_READY)"
check "image: its /dev/disk/by-id/dm-name link" test -L /dev/disk/by-id/dm-name-$img
check_eq "by-label still points at the origin, not at the image" \
	"$(readlink -f /dev/mapper/blksnap-vdc)" "$(readlink -f /dev/disk/by-label/tabdisk)"
sleep 2
udevadm settle -t 30
check_eq "the attach rule left the images, the store and the layers alone" \
	"$(printf '%s\n' blksnap-vdc blksnap-vdc-udevsnap "blksnap-${loop_listed#/dev/}" lin lin-bsreal \
		lin-udevsnap udevsnap-store | sort | tr '\n' ' ' | sed 's/ $//')" "$(dm_names)"
ctl_ok "destroy" destroy udevsnap
ctl_ok "detach lin" detach lin
check "no udev cookie is left" sync_ok

# ---- a detach of a listed dm device stays: the rule does not undo it ------------
# The detach reloads lin and its resume sends a change event, which the rule
# sees like any other. An LV listed in the blksnaptab is this case.
is_origin() { dmsetup table "$1" | grep -q ' blksnap-origin '; }
settle_more() { udevadm settle -t 30; sleep 3; udevadm settle -t 30; }
echo "/dev/mapper/lin -" >> /etc/blksnap/blksnaptab
lin_k=$(basename "$(readlink -f /dev/mapper/lin)")
ctl_ok "attach lin, now listed" attach lin
settle_more
check "lin is attached" is_origin lin
ctl_ok "detach lin, listed in the blksnaptab" detach lin
settle_more
check "lin stays detached after the detach's own change event" bash -c '! dmsetup table lin | grep -q blksnap-origin'
check_eq "lin has its linear table" "0 $size_b linear $(majmin /dev/vdb) 0" "$(dmsetup table lin | sed 's/ *$//')"
check "udevadm trigger --action=change lin again" udevadm trigger --action=change /sys/class/block/$lin_k
settle_more
check "another change event does not attach it either" bash -c '! dmsetup table lin | grep -q blksnap-origin'
check "the detach's note is in /run/blksnap/detached" test -e /run/blksnap/detached/name-lin
# Attached by hand, the table's rule takes care of it again.
ctl_ok "attach lin by hand" attach lin
check "the note is gone" test ! -e /run/blksnap/detached/name-lin
ctl_ok "detach lin again" detach lin
settle_more
check "detached again, lin stays detached" bash -c '! dmsetup table lin | grep -q blksnap-origin'
sed -i '\|^/dev/mapper/lin |d' /etc/blksnap/blksnaptab
check "no udev cookie is left" sync_ok

# ---- the attach rule under systemd: a transient unit ----------------------------
# No systemd runs in the guest: /run/systemd/system says it does, and a
# stand-in systemd-run records its arguments and runs the command detached,
# as --no-block does. Only in the guest, whose root is a throwaway overlay.
[ "$(findmnt -n -o FSTYPE /)" = overlay ] && [ -d /vm-out ] ||
	die "not in the test guest: refusing to replace /usr/bin/systemd-run"
note "the rule's systemd branch, with a stand-in systemd-run"
ctl_ok "detach ${loop_listed#/dev/}" detach "$loop_listed"
losetup -d "$loop_listed"
mkdir -p /run/systemd/system
at_exit "rmdir /run/systemd/system"
printf '%s\n' '#!/bin/sh' \
	"echo \"\$*\" >> $work/systemd-run.log" \
	'while [ $# -gt 0 ]; do case $1 in --*) shift ;; *) break ;; esac; done' \
	'"$@" < /dev/null > /dev/null 2>&1 &' > /usr/bin/systemd-run
chmod +x /usr/bin/systemd-run
loop_listed=$(losetup -f --show "$work/tabloop.img")
at_exit "undo_loop $loop_listed"
at_exit "undo_attach $loop_listed"
k=${loop_listed#/dev/}
check "the rule attached the new $k through systemd-run (within 60 s)" wait_for 60 attached "$k"
sed 's/^/#   systemd-run /' "$work/systemd-run.log"
check_eq "systemd-run made a no-block transient unit named after the device" \
	"--no-block --quiet --collect --property=DefaultDependencies=no --property=After=systemd-remount-fs.service --unit=blksnap-attach-$k $BLKSNAP_TOP/build/bin/blksnapctl attach --from-blksnaptab $loop_listed" \
	"$(grep -- "--unit=blksnap-attach-$k " "$work/systemd-run.log" | sort -u)"
ctl_ok "detach $k" detach "$loop_listed"
check "no udev cookie is left" sync_ok
