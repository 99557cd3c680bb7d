#!/bin/bash
# the boot path with persistent CBT: the udev rule attaches blksnaptab entries with cbt-metadata (a device, and a directory whose file an attach by hand made; a boot never makes one) before anything mounts them, blksnap-cbt-close.service's stop command closes them at shutdown, and the next boot continues the same generation with the same changes
# vm: --disks 4 --disk-size 64M --boots 2 --timeout 400
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/ctl-lib.sh"

require_target blksnap-origin
udevd=/lib/systemd/systemd-udevd
[ -x $udevd ] || skip "systemd-udevd is not installed"
[ -e /lib/udev/rules.d/95-dm-notify.rules ] || skip "the dm udev rules are not installed"

# vda: a file system listed by its label, its metadata on vdb; vdc: listed
# by path, its metadata in a directory on vdd's file system.
state=$VM_OUT/ctl-udev-persist
mkdir -p "$state" /meta /mnt/a
attached() { test -b "/dev/mapper/blksnap-$1"; }
info_of() { # info_of DEV: "generation change_number persistent.state reason"
	capture "cbt info $1" blksnapctl cbt info "$1" --json
	jq -r '"\(.generation_uuid) \(.change_number) \(.persistent.state) \(.persistent.new_generation_reason)"' <<< "$OUT"
}
rand_writes() { # rand_writes DEV N
	local i
	for ((i = 0; i < $2; i++)); do
		dd if=/dev/urandom of="$1" bs=4096 count=$((RANDOM % 8 + 1)) \
			seek=$((RANDOM % 15000)) oflag=direct conv=notrunc status=none
	done
}
# udevd with the rules as make install writes them, this tree's blksnapctl,
# and the table; the guest's root is a new overlay at every boot.
start_udev() {
	mkdir -p /etc/blksnap /etc/udev/rules.d
	cat > /etc/blksnap/blksnaptab << 'EOF'
LABEL=pdisk   tracking-block=4K,cbt-metadata=/dev/vdb,cbt-metadata-id=disk-a
/dev/vdc      tracking-block=4K,cbt-metadata=/meta,cbt-metadata-id=disk-c
EOF
	sed "s|@SBINDIR@|$BLKSNAP_TOP/build/bin|g" "$BLKSNAP_TOP/udev/69-dm-blksnap-attach.rules.in" \
		> /etc/udev/rules.d/69-dm-blksnap-attach.rules
	cp "$BLKSNAP_TOP/udev/56-dm-blksnap.rules" /etc/udev/rules.d/
	unset DM_DISABLE_UDEV
	$udevd --daemon
	at_exit "udevadm control --exit 2> /dev/null || true"
	at_exit "rm -f /etc/blksnap/blksnaptab"
	udevadm trigger --action=add --subsystem-match=block
	udevadm settle -t 30
}
# What blksnap-cbt-close.service runs when it stops at shutdown.
close_cmd=$(sed -n 's/^ExecStop=//p' "$BLKSNAP_TOP/systemd/blksnap-cbt-close.service.in" |
	sed "s|@SBINDIR@|$BLKSNAP_TOP/build/bin|g")

case ${VM_BOOT:-} in
1)
	mkfs.ext4 -q -L pdisk /dev/vda
	mkfs.ext4 -q /dev/vdd
	mount /dev/vdd /meta
	at_exit "! mountpoint -q /meta || umount /meta"
	# The blksnaptab never creates a metadata file: the first attach is by hand.
	ctl_ok "attach vdc by hand: it creates the metadata file" \
		attach /dev/vdc --tracking-block 4K --cbt-metadata /meta --cbt-metadata-id disk-c
	start_udev
	check "the rule attached vda, listed by LABEL= (within 60 s)" wait_for 60 attached vda
	check "the rule attached vdc, metadata in a directory (within 60 s)" wait_for 60 attached vdc
	udevadm settle -t 30
	at_exit "undo_attach /dev/vda"
	at_exit "undo_attach /dev/vdc"
	check_eq "by-label points at the origin (a mount by label uses it)" \
		"$(readlink -f /dev/mapper/blksnap-vda)" "$(readlink -f /dev/disk/by-label/pdisk)"
	read -r gen_a _ st why <<< "$(info_of /dev/vda)"
	check_eq "vda: persistent, a new generation (formatted)" "ok new" "$st $why"
	read -r gen_c _ st why <<< "$(info_of /dev/vdc)"
	check_eq "vdc: persistent, a new generation (formatted)" "ok new" "$st $why"
	check "vdc's metadata file is in the directory" test -f /meta/blksnap-cbt-disk-c.meta

	# Twice: a file through the origin's file system (mounted by label) and
	# writes to vdc, then a take of both.
	for f in f1 f2; do
		check "mount by label" mount LABEL=pdisk /mnt/a
		check "write $f" dd if=/dev/urandom of=/mnt/a/$f bs=1M count=3 status=none
		umount /mnt/a
		rand_writes /dev/mapper/blksnap-vdc 20
		ctl_ok "cbt take vda" cbt take /dev/vda
		ctl_ok "cbt take vdc" cbt take /dev/vdc
	done
	# After the last take: in the maps, listed after the next one.
	rand_writes /dev/mapper/blksnap-vda 5
	rand_writes /dev/mapper/blksnap-vdc 5
	for d in vda vdc; do
		ctl_ok "cbt changes $d --since 1" cbt changes /dev/$d --since 1 --json
		check "$d: something changed since 1" test "$(jq .changed_sectors <<< "$OUT")" -gt 0
		echo "$OUT" > "$state/changes-$d"
	done
	echo "$gen_a $gen_c" > "$state/gens"
	# The shutdown: the unit's stop, then systemd-shutdown's dm teardown.
	check "the unit's stop command: $close_cmd" $close_cmd
	udevadm control --exit
	export DM_DISABLE_UDEV=1
	check "origin vda removed (shutdown)" dmsetup remove blksnap-vda
	check "origin vdc removed (shutdown)" dmsetup remove blksnap-vdc
	umount /meta
	;;
2)
	# A boot that attaches before the directory's file system is mounted:
	# refused, and nothing is made under the mount point.
	mkdir -p /etc/blksnap
	echo "/dev/vdc tracking-block=4K,cbt-metadata=/meta,cbt-metadata-id=disk-c" > "$state/tab"
	rc=0
	blksnapctl attach --from-blksnaptab --tab "$state/tab" /dev/vdc 2> "$state/err" || rc=$?
	sed 's/^/#   stderr: /' "$state/err"
	check "from the blksnaptab, /meta not mounted yet: refused" test $rc -ne 0
	check "the error names the directory" grep -q "CBT metadata directory /meta" "$state/err"
	check "nothing made under the mount point" test ! -e /meta/blksnap-cbt-disk-c.meta
	mount /dev/vdd /meta
	at_exit "! mountpoint -q /meta || umount /meta"
	start_udev
	check "the rule attached vda at boot (within 60 s)" wait_for 60 attached vda
	check "the rule attached vdc at boot (within 60 s)" wait_for 60 attached vdc
	udevadm settle -t 30
	at_exit "undo_attach /dev/vda"
	at_exit "undo_attach /dev/vdc"
	read -r gen_a gen_c < "$state/gens"
	read -r g _ st why <<< "$(info_of /dev/vda)"
	check_eq "vda: the same generation continues" "$gen_a ok null" "$g $st $why"
	read -r g _ st why <<< "$(info_of /dev/vdc)"
	check_eq "vdc: the same generation continues" "$gen_c ok null" "$g $st $why"
	for d in vda vdc; do
		ctl_ok "cbt changes $d --since 1" cbt changes /dev/$d --since 1 --json
		check_eq "$d: the same changes since 1 as before the reboot" "$(cat "$state/changes-$d")" "$OUT"
	done
	check "the files are there" mount LABEL=pdisk /mnt/a
	check "f1 and f2" test -s /mnt/a/f1 -a -s /mnt/a/f2
	umount /mnt/a
	ctl_ok "cbt close --all" cbt close --all
	;;
*) die "VM_BOOT is '${VM_BOOT:-}': not run by tests/vm/run --boots" ;;
esac
