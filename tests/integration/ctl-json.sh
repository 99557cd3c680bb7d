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

origin_keys='["change_number","fs_type","fs_uuid","generation_uuid","image","layered","merge","name","path","real_name","real_path","size_sectors","snapshot","state","tracking_block_sectors","tracking_blocks"]'

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
	check_eq "$name: state" "$state" "$(jq -r .state <<< "$j")"
	check_eq "$name: no merge, snapshot or image" "[null,null,null]" \
		"$(jq -c '[.merge, .snapshot, .image]' <<< "$j")"
}
check_origin "$(jq '.origins[] | select(.name == "blksnap-vda")' <<< "$list")" \
	blksnap-vda vda /dev/vda false
check_origin "$(jq '.origins[] | select(.name == "lin")' <<< "$list")" \
	lin lin-real /dev/mapper/lin-real true

ctl_ok "status --json of a disk" status /dev/vda --json
check "status --json: snake_case" json_keys_ok "$OUT"
check_eq "status --json equals the list entry" \
	"$(jq -cS '.origins[] | select(.name == "blksnap-vda")' <<< "$list")" "$(jq -cS . <<< "$OUT")"
ctl_ok "status --json of a layered device by its real device" status lin-real --json
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
	'["change_number","generation_uuid","merge","origin","path","state","tracking_block_sectors","tracking_blocks"]' \
	"$(jq -c keys <<< "$OUT")"
check_eq "cbt info: the tracking block of lin" 16 "$(jq .tracking_block_sectors <<< "$OUT")"
check_eq "cbt info: origin and path" '["lin","/dev/mapper/lin"]' "$(jq -c '[.origin, .path]' <<< "$OUT")"

take=$(cbt_take lin)
ctl_ok "cbt changes --json with no changes" cbt changes lin --since "$take" --json
check "cbt changes --json: snake_case" json_keys_ok "$OUT"
check_eq "cbt changes: its fields" \
	'["change_number","changed_sectors","device","extents","generation_uuid","since","tracking_block_sectors"]' \
	"$(jq -c keys <<< "$OUT")"
check_eq "cbt changes: no extents, 0 sectors" '[[],0]' "$(jq -c '[.extents, .changed_sectors]' <<< "$OUT")"
check_eq "cbt changes: since, device, change_number" "[$take,\"lin\",$((take + 1))]" \
	"$(jq -c '[.since, .device, .change_number]' <<< "$OUT")"

ctl_ok "list as text" list
check "the text list names both origins" grep -q "^lin .*/dev/mapper/lin-real" <<< "$OUT"
