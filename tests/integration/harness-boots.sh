#!/bin/bash
# tests/vm/run --boots: a second guest boots on the first one's disks after a crash on purpose (sysrq-b, no sync) and finds its direct write there, and nothing else
# vm: --disks 1 --disk-size 16M --boots 2 --timeout 300
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"

disk=/dev/vda
state=$VM_OUT/harness-boots
case ${VM_BOOT:-} in
1)
	check_eq "boot 1 of 2" "1 2" "$VM_BOOT $VM_BOOTS"
	check "the disk starts empty" cmp -s -n $((16 << 20)) $disk /dev/zero
	off=$((RANDOM % 15 + 1))
	head -c 1M /dev/urandom > /tmp/blob
	check "1 MiB at $off MiB, direct I/O" \
		dd if=/tmp/blob of=$disk bs=1M seek="$off" oflag=direct conv=notrunc status=none
	mkdir -p "$state"
	echo "$off $(sha256sum < /tmp/blob | cut -d' ' -f1)" > "$state/expect"
	note "crashing the guest (sysrq-b)"
	vm_crash
	;;
2)
	check_eq "boot 2 of 2" "2 2" "$VM_BOOT $VM_BOOTS"
	check "boot 1's notes in /vm-out survive" test -s "$state/expect"
	read -r off sum < "$state/expect"
	check_eq "boot 1's direct write is on the disk" "$sum" \
		"$(dd if=$disk bs=1M skip="$off" count=1 status=none | sha256sum | cut -d' ' -f1)"
	check "nothing else was written" cmp -s -n $((off << 20)) $disk /dev/zero
	;;
*) die "VM_BOOT is '${VM_BOOT:-}': not run by tests/vm/run --boots" ;;
esac
