#!/bin/bash
# blksnapctl attach/detach with udevd running: udev-synchronised nodes, no hang, no leftovers
# vm: --disks 2 --disk-size 128M --timeout 300
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
check "udev made /dev/mapper/lin-real" test -b /dev/mapper/lin-real
check_eq "lin is an origin over lin-real" \
	"0 $size_b blksnap-origin $(majmin /dev/mapper/lin-real)" "$(dmsetup table lin)"
check "no udev cookie is left" sync_ok
check "detach the dm device (within 60 s)" timeout 60 blksnapctl detach lin
check "lin-real is gone from /dev/mapper" test ! -e /dev/mapper/lin-real
check "detach the disk (within 60 s)" timeout 60 blksnapctl detach /dev/vda
udevadm settle -t 30
check "blksnap-vda is gone from /dev/mapper" test ! -e /dev/mapper/blksnap-vda
check "its by-id link is gone" test ! -e /dev/disk/by-id/dm-name-blksnap-vda
check "no udev cookie is left" sync_ok
check_eq "only lin is left" lin "$(dm_names)"
