#!/bin/bash
# blksnapctl attach/status/list/cbt/detach and their error paths run valgrind-clean
# vm: --disks 2 --disk-size 128M --timeout 1200
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/ctl-lib.sh"

require_target blksnap-origin
command -v valgrind > /dev/null || skip "valgrind is not installed"
vglog=$(mktemp -d)
at_exit "rm -rf $vglog"
# Valgrind runs each command for about half a minute in the emulated guest:
# one run per command and per kind of error path, no more.
# Valgrind's findings go to a log per run (so that stderr stays the CLI's own)
# and turn the exit status into 99; ctl_ok and ctl_fail check the status.
CTL="valgrind -q --leak-check=full --error-exitcode=99 --log-file=$vglog/%p.log blksnapctl"

# Every valgrind log is empty but for its note on libblkid's CD-ROM ioctl
# (CDROM_LAST_WRITTEN, 0x5395), which valgrind does not know.
vg_clean() {
	local f bad=0
	for f in "$vglog"/*.log; do
		if grep -v -e 'unhandled ioctl 0x5395' -e 'spurious value errors' \
			-e 'README_MISSING_SYSCALL_OR_IOCTL' "$f" | sed 's/^/#   /' | grep .; then
			bad=1
		fi
	done
	return $bad
}

size_b=$(dev_sectors /dev/vdb)
dm_create lin "0 $size_b linear /dev/vdb 0"

ctl_ok "attach a disk" attach /dev/vda
at_exit "blksnapctl detach /dev/vda"
ctl_ok "attach a dm device" attach lin --tracking-block 16K
at_exit "blksnapctl detach lin"
ctl_ok "status --json" status lin-real --json
ctl_ok "list --json" list --json
ctl_ok "cbt info --json" cbt info lin --json
cbt_take blksnap-vda > /dev/null
dd if=/dev/urandom of=/dev/mapper/blksnap-vda bs=64k count=4 seek=3 oflag=direct status=none
cbt_take blksnap-vda > /dev/null
ctl_ok "cbt changes --json" cbt changes /dev/vda --since 0 --json
ctl_ok "cbt read" cbt read /dev/vda --out $vglog/map
ctl_ok "cbt mark-dirty" cbt mark-dirty /dev/vda 0+8 4096+16

ctl_fail "attach of an attached disk" 1 "already attached" attach /dev/vda
exec 3< /dev/mapper/blksnap-vda
ctl_fail "detach of an open origin" 1 "in use" detach /dev/vda
exec 3<&-

ctl_ok "detach the disk" detach /dev/vda
ctl_ok "detach the dm device" detach lin
check_eq "only the linear device is left" lin "$(dm_names)"
check "valgrind found no errors and no leaks" vg_clean
