#!/bin/bash
# blksnapctl attach (also from a blksnaptab, and with CBT metadata in a directory)/create/status/list/cbt/destroy/detach and an error path run valgrind-clean
# vm: --disks 3 --disk-size 64M --timeout 1200
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/ctl-lib.sh"

require_target blksnap-origin
command -v valgrind > /dev/null || skip "valgrind is not installed"
vglog=$(mktemp -d)
at_exit "rm -rf $vglog"
# Valgrind runs each command for 12 to 30 seconds in the emulated guest, most
# of it valgrind's own start: one run per command, 12 in all, no more (the
# snapshot's cycle replaced origin status, cbt info and a second error path,
# which take the same library paths as status of a snapshot, list and the
# attach error).
# Valgrind's findings go to a log per run (so that stderr stays the CLI's own)
# and turn the exit status into 99; ctl_ok and ctl_fail check the status.
CTL="valgrind -q --leak-check=full --error-exitcode=99 --log-file=$vglog/%p.log blksnapctl"

# Every valgrind log is empty but for its notes on ioctls it does not know:
# libblkid's CDROM_LAST_WRITTEN (0x5395) and, for the directory store's
# loop device, LOOP_CONFIGURE (0x4c82) and LOOP_SET_BLOCK_SIZE (0x4c0a),
# which only pass values in.
vg_clean() {
	local f bad=0
	for f in "$vglog"/*.log; do
		if grep -v -e 'unhandled ioctl 0x5395' -e 'unhandled ioctl 0x4c82' \
			-e 'unhandled ioctl 0x4c0a' -e 'spurious value errors' \
			-e 'README_MISSING_SYSCALL_OR_IOCTL' "$f" | sed 's/^/#   /' | grep .; then
			bad=1
		fi
	done
	return $bad
}

size_b=$(dev_sectors /dev/vdb)
dm_create lin "0 $size_b linear /dev/vdb 0"

# The disk through a blksnaptab: the table's parser and matching run too.
printf '# vda, by its path\n/dev/vda tracking-block=128K\n' > $vglog/tab
ctl_ok "attach a disk listed in a blksnaptab" attach --from-blksnaptab --tab $vglog/tab /dev/vda
at_exit "undo_attach /dev/vda"
check_eq "it prints the origin" /dev/mapper/blksnap-vda "$OUT"
# The dm device with persistent CBT, its metadata in a directory: an ext4
# on a loop device (the guest's /tmp is on no block device).
truncate -s 16M $vglog/meta.img
mkfs.ext4 -q -F $vglog/meta.img
mkdir -p $vglog/meta
mloop=$(losetup -f --show $vglog/meta.img)
at_exit "losetup -d $mloop"
mount $mloop $vglog/meta
at_exit "umount $vglog/meta"
ctl_ok "attach a dm device, CBT metadata in a directory" \
	attach lin --tracking-block 16K --cbt-metadata $vglog/meta --cbt-metadata-id lin-a
at_exit "undo_attach lin"
check "its metadata file" test -s $vglog/meta/blksnap-cbt-lin-a.meta
# Both origins at once, a store of a device and a directory's unlinked file.
ctl_ok "create a snapshot of both (device and directory store)" \
	create /dev/vda lin --store /dev/vdc,/tmp --store-size 8M --name vg --json
at_exit "undo_snapshot vg"
check_eq "two images" 2 "$(jq '.images | length' <<< "$OUT")"
dd if=/dev/urandom of=/dev/mapper/blksnap-vda bs=64k count=4 seek=3 oflag=direct status=none
dd if=/dev/urandom of=/dev/mapper/lin bs=64k count=4 seek=5 oflag=direct status=none
ctl_ok "status of the snapshot --json" status vg --json
check_eq "its store has two parts" 2 "$(jq '.store.parts | length' <<< "$OUT")"
ctl_ok "list --json" list --json
check_eq "list shows the snapshot" vg "$(jq -r '.snapshots[0].name' <<< "$OUT")"
ctl_ok "cbt changes --json" cbt changes /dev/vda --since 0 --json
ctl_ok "cbt read" cbt read lin --out $vglog/map
ctl_ok "cbt mark-dirty" cbt mark-dirty /dev/vda 0+8 4096+16
ctl_ok "destroy the snapshot" destroy vg
check_eq "only the origins are left" "blksnap-vda lin lin-bsreal" "$(dm_names)"

ctl_fail "attach of an attached disk" 1 "already attached" attach /dev/vda

ctl_ok "detach the disk" detach /dev/vda
ctl_ok "detach the dm device" detach lin
check_eq "only the linear device is left" lin "$(dm_names)"
check "valgrind found no errors and no leaks" vg_clean
