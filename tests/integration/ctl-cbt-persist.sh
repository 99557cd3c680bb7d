#!/bin/bash
# blksnapctl attach --cbt-metadata: formats the metadata, refuses a device with a signature and a device without an identity, and after cbt close and a reboot the same generation and changes come back; detach starts a new generation on purpose
# vm: --disks 3 --disk-size 64M --boots 2 --timeout 500
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/ctl-lib.sh"

real=/dev/vda
mdisk=/dev/vdb
fsdisk=/dev/vdc
name=blksnap-vda
origin=/dev/mapper/$name
state=$VM_OUT/ctl-cbt-persist
require_target blksnap-origin
mkdir -p "$state"

json_field() { # json_field KEY: from the JSON in $OUT (python3 reads it)
	python3 -c 'import json, sys
d = json.loads(sys.argv[1])
for k in sys.argv[2].split("."):
    d = d[k] if d is not None else None
print("null" if d is None else d)' "$OUT" "$1"
}
info() { ctl_ok "cbt info --json" cbt info $real --json; }
rand_writes() { # rand_writes N
	local i
	for ((i = 0; i < $1; i++)); do
		dd if=/dev/urandom of=$origin bs=4096 count=$((RANDOM % 8 + 1)) \
			seek=$((RANDOM % 16000)) oflag=direct conv=notrunc status=none
	done
}

case ${VM_BOOT:-} in
1)
	ctl_fail "a device without an identity" 1 "cbt-metadata-id" \
		attach $real --tracking-block 4K --cbt-metadata $mdisk
	mkfs.ext4 -q -F $fsdisk
	ctl_fail "a metadata device with a file system" 1 "ext4" \
		attach $real --tracking-block 4K --cbt-metadata $fsdisk --cbt-metadata-id disk-a
	ctl_attach $real --tracking-block 4K --cbt-metadata $mdisk --cbt-metadata-id disk-a
	info
	check_eq "persistent, state ok" ok "$(json_field persistent.state)"
	check_eq "a fresh format: reason new" new "$(json_field persistent.new_generation_reason)"
	ctl_ok "cbt info (text)" cbt info $real
	check "the text says persistent" grep -q "^persistent: *yes (ok)" <<< "$OUT"
	rand_writes 20
	ctl_ok "cbt take" cbt take $real
	rand_writes 20
	ctl_ok "cbt take" cbt take $real
	rand_writes 5
	ctl_ok "cbt changes --since 1" cbt changes $real --since 1 --json
	echo "$OUT" > "$state/changes"
	info
	json_field generation_uuid > "$state/gen"
	ctl_ok "cbt close --all" cbt close --all
	# The shutdown's dm teardown, not a detach.
	check "origin removed" dmsetup remove $name
	;;
2)
	ctl_attach $real --tracking-block 4K --cbt-metadata $mdisk --cbt-metadata-id disk-a
	info
	check_eq "the generation continues: reason null" null "$(json_field persistent.new_generation_reason)"
	check_eq "same generation" "$(cat "$state/gen")" "$(json_field generation_uuid)"
	ctl_ok "cbt changes --since 1" cbt changes $real --since 1 --json
	check_eq "the same changes since 1 as before the reboot" "$(cat "$state/changes")" "$OUT"
	ctl_ok "detach" detach $real
	ctl_attach $real --tracking-block 4K --cbt-metadata $mdisk --cbt-metadata-id disk-a
	info
	check_eq "after a detach: reason detached" detached "$(json_field persistent.new_generation_reason)"
	check "a new generation" test "$(json_field generation_uuid)" != "$(cat "$state/gen")"
	ctl_ok "cbt close" cbt close $real
	ctl_ok "detach" detach $real
	wipefs -q -a $fsdisk
	ctl_fail "another device's metadata" 1 "disk-a" \
		attach $fsdisk --tracking-block 4K --cbt-metadata $mdisk --cbt-metadata-id disk-c
	;;
*) die "VM_BOOT is '${VM_BOOT:-}': not run by tests/vm/run --boots" ;;
esac
