#!/bin/bash
# blksnapctl --json of list, status, cbt info and cbt changes: valid, snake_case, equal to dmsetup
# vm: --disks 2 --disk-size 128M --timeout 300
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/ctl-lib.sh"

require_target blksnap-origin

ctl_ok "list --json with nothing attached" list --json
check_eq "an empty list" '{"origins":[],"snapshots":[]}' "$(jq -c . <<< "$OUT")"

# A plain disk, and a dm device (a linear over vdb) attached by layering.
size_b=$(dev_sectors /dev/vdb)
dm_create lin "0 $size_b linear /dev/vdb 0"
ctl_attach /dev/vda
ctl_attach /dev/mapper/lin --tracking-block 8K

origin_keys='["change_number","fs_type","fs_uuid","generation_uuid","image","layered","merge","name","path","persistent","real_name","real_path","size_sectors","snapshot","snapshot_number","state","tracking_block_sectors","tracking_blocks"]'

ctl_ok "list --json" list --json
list=$OUT
check "list --json: every key is snake_case" json_keys_ok "$list"
check_eq "list: two origins, sorted by nothing but both there" '["blksnap-vda","lin"]' \
	"$(jq -c '[.origins[].name] | sort' <<< "$list")"
check_eq "list: no snapshots" '[]' "$(jq -c .snapshots <<< "$list")"
check_eq "list: the origin fields" "$origin_keys" "$(jq -c '.origins[0] | keys' <<< "$list")"

check_origin() { # check_origin JSON NAME REAL_NAME REAL_PATH LAYERED
	local j=$1 name=$2
	read -r tbs blocks gen change state <<< "$(origin_status "$name")"
	check_eq "$name: name" "$name" "$(jq -r .name <<< "$j")"
	check_eq "$name: path" "/dev/mapper/$name" "$(jq -r .path <<< "$j")"
	check_eq "$name: real_name" "$3" "$(jq -r .real_name <<< "$j")"
	check_eq "$name: real_path" "$4" "$(jq -r .real_path <<< "$j")"
	check_eq "$name: layered" "$5" "$(jq .layered <<< "$j")"
	check_eq "$name: size_sectors" "$(dev_sectors /dev/mapper/$name)" "$(jq .size_sectors <<< "$j")"
	check_eq "$name: tracking_block_sectors (a number)" "$tbs" "$(jq .tracking_block_sectors <<< "$j")"
	check_eq "$name: tracking_blocks" "$blocks" "$(jq .tracking_blocks <<< "$j")"
	check_eq "$name: generation_uuid" "\"$gen\"" "$(jq .generation_uuid <<< "$j")"
	check_eq "$name: change_number" "$change" "$(jq .change_number <<< "$j")"
	check_eq "$name: snapshot_number, none yet" null "$(jq .snapshot_number <<< "$j")"
	check_eq "$name: state" "$state" "$(jq -r .state <<< "$j")"
	check_eq "$name: no merge, snapshot or image" "[null,null,null]" \
		"$(jq -c '[.merge, .snapshot, .image]' <<< "$j")"
	check_eq "$name: tracking in memory only (persistent null)" null "$(jq -c .persistent <<< "$j")"
}
check_origin "$(jq '.origins[] | select(.name == "blksnap-vda")' <<< "$list")" \
	blksnap-vda vda /dev/vda false
check_origin "$(jq '.origins[] | select(.name == "lin")' <<< "$list")" \
	lin lin-bsreal /dev/mapper/lin-bsreal true

ctl_ok "status --json of a disk" status /dev/vda --json
check "status --json: snake_case" json_keys_ok "$OUT"
check_eq "status --json equals the list entry" \
	"$(jq -cS '.origins[] | select(.name == "blksnap-vda")' <<< "$list")" "$(jq -cS . <<< "$OUT")"
ctl_ok "status --json of a layered device by its real device" status lin-bsreal --json
check_eq "status --json of lin equals the list entry" \
	"$(jq -cS '.origins[] | select(.name == "lin")' <<< "$list")" "$(jq -cS . <<< "$OUT")"

# A file system shows in the origin's fs fields.
mkfs.ext4 -q /dev/mapper/blksnap-vda
ctl_ok "status --json with a file system" status blksnap-vda --json
check_eq "fs_type" ext4 "$(jq -r .fs_type <<< "$OUT")"
check_eq "fs_uuid" "$(blkid -p -s UUID -o value /dev/mapper/blksnap-vda)" "$(jq -r .fs_uuid <<< "$OUT")"

ctl_ok "cbt info --json" cbt info lin --json
check "cbt info --json: snake_case" json_keys_ok "$OUT"
check_eq "cbt info: its fields" \
	'["change_number","generation_uuid","merge","name","origin","path","persistent","snapshot_number","state","tracking_block_sectors","tracking_blocks"]' \
	"$(jq -c keys <<< "$OUT")"
check_eq "cbt info: the tracking block of lin" 16 "$(jq .tracking_block_sectors <<< "$OUT")"
check_eq "cbt info: name (as status and list call it), origin and path" \
	'["lin","lin","/dev/mapper/lin"]' "$(jq -c '[.name, .origin, .path]' <<< "$OUT")"

t1=$(cbt_take lin)
t2=$(cbt_take lin)
ctl_ok "cbt changes --json with no changes" cbt changes lin --since "$t1" --json
check "cbt changes --json: snake_case" json_keys_ok "$OUT"
check_eq "cbt changes: its fields" \
	'["change_number","changed_sectors","device","extents","generation_uuid","since","snapshot_number","tracking_block_sectors"]' \
	"$(jq -c keys <<< "$OUT")"
check_eq "cbt changes: no extents, 0 sectors" '[[],0]' "$(jq -c '[.extents, .changed_sectors]' <<< "$OUT")"
check_eq "cbt changes: since, device, snapshot_number, change_number" \
	"[$t1,\"lin\",$t2,$((t2 + 1))]" \
	"$(jq -c '[.since, .device, .snapshot_number, .change_number]' <<< "$OUT")"
ctl_fail "cbt changes --since the last snapshot, which lists nothing by construction" 1 \
	"that is its last snapshot" cbt changes lin --since "$t2" --json

# A snapshot's numbers: create prints them, and they are what cbt changes wants.
dd if=/dev/urandom of=/dev/mapper/lin bs=64k count=1 seek=10 oflag=direct status=none
ctl_ok "create --json" create lin --store /tmp --store-size 8M --name j1 --json
at_exit "undo_snapshot j1"
check "create --json: snake_case" json_keys_ok "$OUT"
check_eq "create --json: the image's snapshot number is the origin's last" "$((t2 + 1))" \
	"$(jq '.images[0].snapshot_number' <<< "$OUT")"
check_eq "create --json: the image's generation" "\"$(status_field lin 3)\"" \
	"$(jq '.images[0].generation_uuid' <<< "$OUT")"
ctl_ok "status --json of the snapshot has them too" status j1 --json
check_eq "status: snapshot_number" "$((t2 + 1))" "$(jq '.images[0].snapshot_number' <<< "$OUT")"
# The store's file in /tmp is unlinked: the kernel's " (deleted)" is a flag.
file=$(jq -r '.store.parts[0].backing_file' <<< "$OUT")
check "status: the store file's path without \" (deleted)\" ($file)" \
	test "${file#/tmp/}" != "$file" -a "${file% (deleted)}" = "$file"
check_eq "status: the store file is flagged deleted" true \
	"$(jq '.store.parts[0].backing_file_deleted' <<< "$OUT")"
ctl_ok "cbt changes since the snapshot before it" cbt changes lin --since "$t2" --json
check_eq "the write before the snapshot is listed" '[{"start":1280,"sectors":128}]' \
	"$(jq -c .extents <<< "$OUT")"
ctl_ok "destroy j1" destroy j1
ctl_ok "create as text" create lin --store /tmp --store-size 8M --name j2
at_exit "undo_snapshot j2"
check_eq "create prints the name, then the image with its CBT numbers" \
	"j2|/dev/mapper/lin-j2 generation_uuid=$(status_field lin 3) snapshot_number=$((t2 + 2))" \
	"$(tr '\n' '|' <<< "$OUT" | sed 's/|$//')"
ctl_ok "destroy j2" destroy j2

ctl_ok "list as text" list
check "the text list names both origins" grep -q "^lin .*/dev/mapper/lin-bsreal" <<< "$OUT"
check "the text list heads the CBT numbers LAST and NEXT" grep -q "CBT BLOCK LAST NEXT STATE" <<< "$OUT"
check "lin's LAST and NEXT" grep -q "^lin .* 8 KiB  *$((t2 + 2))  *$((t2 + 3))  *- " <<< "$OUT"
