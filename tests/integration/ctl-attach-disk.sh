#!/bin/bash
# blksnapctl attach/detach of a plain disk: blksnap-<kname>, data intact, cbt changes exact
# vm: --disks 1 --disk-size 256M --timeout 300
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/ctl-lib.sh"

real=/dev/vda
name=blksnap-vda
origin=/dev/mapper/$name
work=$(mktemp -d)
at_exit "rm -rf $work"

require_target blksnap-origin
size=$(dev_sectors $real)
dd if=/dev/urandom of=$real bs=1M count=4 oflag=direct status=none
before=$(sha256sum < $real)

ctl_attach $real
check_eq "attach prints the origin's path" "$origin" "$OUT"
check "the origin is a block device" test -b $origin
check_eq "the origin's table maps the whole disk" \
	"0 $size blksnap-origin $(majmin $real)" "$(dmsetup table $name)"
check_eq "the origin's dm uuid" "BLKSNAP-ORIGIN-vda" "$(dmsetup info -c --noheadings -o uuid $name)"
check_eq "the origin reads what the disk held" "$before" "$(sha256sum < $origin)"
ctl_fail "a second attach is refused" 1 "already attached" attach $real
ctl_fail "attaching the origin itself is refused" 1 "already attached" attach $origin

# CBT through the CLI, against the model of tests/lib.sh.
tbs=$(status_field $name 1)
check_eq "the default tracking block" "$(default_tracking_block "$size")" "$tbs"
model_init "$size" "$tbs"
take_and_check $name
for spec in "0 8" "800 24" "4095 2" "65536 2048" "$((size - 8)) 8"; do
	read -r start n <<< "$spec"
	check "write $n sectors at $start through $origin" do_write $origin "$start" "$n"
done
take_and_check $name

json_extents() { jq -r '[.extents[] | "\(.start)+\(.sectors)"] | join(" ")'; }
for since in 0 1; do
	ctl_ok "cbt changes --since $since --json" cbt changes $real --since $since --json
	check_eq "cbt changes --since $since lists the written extents" \
		"$(model_changes $since)" "$(json_extents <<< "$OUT")"
	check_eq "changed_sectors adds up the extents" \
		"$(jq '[.extents[].sectors] | add // 0' <<< "$OUT")" "$(jq .changed_sectors <<< "$OUT")"
done
ctl_fail "cbt changes --since 2, the last snapshot, lists nothing by construction: refused" 1 \
	"that is its last snapshot" cbt changes $real --since 2
ctl_ok "cbt changes --since 1 as text, by the dm name" cbt changes $name --since 1
check_eq "the text output is one extent per line" \
	"$(model_changes 1)" "$(tr '\n' ' ' <<< "$OUT" | sed 's/ $//')"

# More writes, one more take: only they show after the newest snapshot number.
check "write 16 sectors at 100000" do_write $origin 100000 16
take_and_check $name
ctl_ok "cbt changes --since $((M_LAST_TAKE - 1))" cbt changes $origin --since $((M_LAST_TAKE - 1)) --json
check_eq "only the blocks written since the last take" "$(model_changes $((M_LAST_TAKE - 1)))" \
	"$(json_extents <<< "$OUT")"

# Detach: the disk holds what was written through the origin.
through=$(sha256sum < $origin)
exec 3< $origin
ctl_fail "detach of an open origin is refused" 1 "in use" detach $real
exec 3<&-
check "the origin is still there after the refused detach" test -b $origin
ctl_ok "detach by the disk's path" detach $real
check "the origin device is gone" test ! -e $origin
check_eq "no dm device is left" "" "$(dm_names)"
check_eq "the disk holds every write made through the origin" "$through" "$(sha256sum < $real)"
ctl_fail "a second detach names the cause" 1 "no blksnap-origin on $real" detach $real

# A chosen tracking block, and attach by the kernel name.
ctl_ok "attach vda --tracking-block 16K" attach vda --tracking-block 16K
check_eq "the table carries the tracking block" \
	"0 $size blksnap-origin $(majmin $real) 2 tracking_block_sectors 32" "$(dmsetup table $name)"
check_eq "status reports it" 32 "$(status_field $name 1)"
ctl_ok "detach by the origin's dm name" detach $name
check_eq "no dm device is left" "" "$(dm_names)"
