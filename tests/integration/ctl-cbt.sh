#!/bin/bash
# blksnapctl cbt read/changes/mark-dirty/info/take/reset equal the kernel's messages and the CBT model; impossible --since and --generation are refused
# vm: --disks 1 --disk-size 1G --timeout 400
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/ctl-lib.sh"

real=/dev/vda
name=blksnap-vda
origin=/dev/mapper/$name
work=$(mktemp -d)
at_exit "rm -rf $work"

require_target blksnap-origin
size=$(dev_sectors $real)
# 4 KiB blocks: 262144 of them, so cbt read needs several messages.
ctl_attach $real --tracking-block 4K
model_init "$size" 8
check_eq "tracking blocks" "$M_BLOCKS" "$(status_field $name 2)"

ctl_fail "cbt read before the first take" 1 "no CBT snapshot map" cbt read $real --out $work/map
check "the failed read left no file behind" test ! -e $work/map

hex_of() { od -An -v -tx1 "$1" | tr -d ' \n'; echo; }

# A map as "<block>:<value>" lines of its non-zero bytes: from a file, and
# from the model.
map_bytes() { od -An -v -tu1 -w1 "$1" | awk '$1 != 0 { print NR - 1 ":" $1 }'; }
model_map_bytes() {
	local b
	for b in "${!M_SNAP[@]}"; do
		((M_SNAP[b] == 0)) || echo "$b:${M_SNAP[b]}"
	done
}

take_and_check $name
for spec in "0 8" "9 7" "1000 100" "262136 16" "$((size - 1)) 1"; do
	read -r start n <<< "$spec"
	check "write $n sectors at $start" do_write $origin "$start" "$n"
done
take_and_check $name
check "write 8 sectors at 4096 after the second take" do_write $origin 4096 8
# A take through blksnapctl: it prints the snapshot number.
ctl_ok "cbt take" cbt take $real
model_take
check_eq "cbt take prints the snapshot number" "$M_LAST_TAKE" "$OUT"
check_eq "the change number is the next one" "$M_C" "$(status_field $name 4)"

ctl_ok "cbt read --out" cbt read $real --out $work/map
check_eq "the map has one byte per tracking block" "$M_BLOCKS" "$(stat -c %s $work/map)"
capture "cbt_read of the whole map by message" cbt_read $name 0 "$M_BLOCKS"
check_eq "cbt read equals the kernel's cbt_read, byte for byte" "$OUT" "$(hex_of $work/map)"
check_eq "cbt read equals the model's snapshot map" "$(model_map_bytes)" "$(map_bytes $work/map)"
check "cbt read --out - writes the map to stdout" eval "ctl cbt read $name --out - > $work/stdout"
check "the same bytes as with --out FILE" cmp $work/map $work/stdout

# mark-dirty: a single extent and many in one call (a long cbt_changes reply).
ctl_ok "cbt mark-dirty of one extent" cbt mark-dirty $real 8192+1
model_mark_dirty 8192 1
extents=()
for ((b = 20000; b < 20000 + 2 * 3000; b += 2)); do
	extents+=("$((b * 8))+8")
	model_mark_dirty $((b * 8)) 8
done
ctl_ok "cbt mark-dirty of ${#extents[@]} extents" cbt mark-dirty $origin "${extents[@]}"
for since in 0 $((M_LAST_TAKE - 1)); do
	ctl_ok "cbt changes --since $since" cbt changes $real --since $since --json
	check_eq "cbt changes --since $since lists the model's extents" "$(model_changes $since)" \
		"$(jq -r '[.extents[] | "\(.start)+\(.sectors)"] | join(" ")' <<< "$OUT")"
	capture "cbt_changes $since by message" cbt_changes $name $since
	check_eq "cbt changes --since $since equals the kernel's cbt_changes" "$OUT" \
		"$(ctl cbt changes $real --since $since | tr '\n' ' ' | sed 's/ $//')"
done
# What --since cannot be: the last snapshot (nothing after it, by
# construction) or past it; another generation than the one named.
last=$M_LAST_TAKE
ctl_fail "cbt changes --since the last snapshot" 1 "that is its last snapshot" \
	cbt changes $real --since $last
ctl_fail "cbt changes --since past the last snapshot" 1 "its last snapshot is number $last" \
	cbt changes $real --since $((last + 1))
ctl_fail "cbt changes --since 255" 1 "its last snapshot is number $last" \
	cbt changes $real --since 255
gen=$(status_field $name 3)
ctl_fail "cbt changes --generation of another generation" 1 "make a full backup" \
	cbt changes $real --since 0 --generation 00000000-0000-0000-0000-000000000000
ctl_ok "cbt changes --generation of this one" cbt changes $real --since 1 --generation "$gen" --json
check_eq "it lists the model's extents" "$(model_changes 1)" \
	"$(jq -r '[.extents[] | "\(.start)+\(.sectors)"] | join(" ")' <<< "$OUT")"
check_eq "the JSON has the last snapshot's number" "$last" "$(jq .snapshot_number <<< "$OUT")"
ctl_ok "--generation in capitals" cbt changes $real --since 1 --generation "${gen^^}"

ctl_ok "cbt read after mark-dirty" cbt read $real --out $work/map
check_eq "the map shows the marked blocks" "$(model_map_bytes)" "$(map_bytes $work/map)"
ctl_fail "mark-dirty beyond the end is refused" 1 "outside" cbt mark-dirty $real "$size+8"
ctl_fail "mark-dirty across the end is refused" 1 "outside" cbt mark-dirty $real "$((size - 8))+16"
ctl cbt read $real --out $work/map2
check "nothing was marked by the refused calls" cmp $work/map $work/map2

# cbt info follows a new generation.
ctl_ok "cbt info --json" cbt info $real --json
gen=$(jq -r .generation_uuid <<< "$OUT")
check_eq "cbt info: the generation" "$(status_field $name 3)" "$gen"
check_eq "cbt info: the change number" "$M_C" "$(jq .change_number <<< "$OUT")"
check_eq "cbt info: the last snapshot's number" "$M_LAST_TAKE" "$(jq .snapshot_number <<< "$OUT")"
check_eq "cbt info: the tracking block" 8 "$(jq .tracking_block_sectors <<< "$OUT")"
check_eq "cbt info: the state" "-" "$(jq -r .state <<< "$OUT")"
ctl_ok "cbt reset" cbt reset $real
ctl_ok "cbt info after cbt reset" cbt info $real --json
check "a new generation uuid" test "$(jq -r .generation_uuid <<< "$OUT")" != "$gen"
check_eq "change number 1" 1 "$(jq .change_number <<< "$OUT")"
check_eq "no snapshot in the new generation" null "$(jq .snapshot_number <<< "$OUT")"
ctl_fail "cbt changes before the new generation's first snapshot" 1 "no snapshot in CBT generation" \
	cbt changes $real --since 0
ctl_fail "cbt changes --generation of the old one" 1 "make a full backup" \
	cbt changes $real --since 1 --generation "$gen"
ctl_ok "cbt info as text" cbt info $real
check "the text names the generation" grep -q "generation: *$(status_field $name 3)" <<< "$OUT"
check "the text says change_number is the next snapshot's" \
	grep -q "change number: *1 (the next snapshot's number)" <<< "$OUT"
check "and that there is no last snapshot" grep -q "last snapshot: *none" <<< "$OUT"
