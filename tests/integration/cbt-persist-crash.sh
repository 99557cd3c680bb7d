#!/bin/bash
# persistent CBT under power cuts at random moments: ext4 on the origin with O_DIRECT and buffered writers, the guest killed (sysrq-b, no sync) over three rounds; at each next boot every 4 KiB block that differs from the saved copy of snapshot N lies in cbt_changes N
# vm: --disks 3 --disk-size 64M --boots 4 --timeout 600
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"

real=/dev/vda
mdisk=/dev/vdb
copy=/dev/vdc # the device's content at snapshot N, saved right after the take
origin=/dev/mapper/pcr
meta_tool=$BLKSNAP_TOP/build/tools/cbt-meta
state=$VM_OUT/cbt-persist-crash
size=$(dev_sectors $real)
tbs=8 # 4 KiB tracking blocks
require_target blksnap-origin
mkdir -p "$state" /mnt/pcr

pcreate() {
	dm_create pcr "0 $size blksnap-origin $real 6 tracking_block_sectors $tbs metadata $mdisk metadata_id disk-r"
}

# The 4 KiB blocks of DEV_A that differ from DEV_B, and how many of them
# lie outside the extents ("start+sectors ...") in EXTENTS: "differ outside".
diff_outside() { # diff_outside DEV_A DEV_B EXTENTS
	python3 - "$1" "$2" "$3" << 'EOF'
import sys
a, b, ext = sys.argv[1], sys.argv[2], sys.argv[3].split()
cover = []
for e in ext:
    s, n = e.split("+")
    cover.append((int(s), int(s) + int(n)))
differ = outside = 0
with open(a, "rb", buffering=0) as fa, open(b, "rb", buffering=0) as fb:
    blk = 0
    while True:
        x, y = fa.read(1 << 20), fb.read(1 << 20)
        if not x:
            break
        for i in range(0, len(x), 4096):
            if x[i:i + 4096] != y[i:i + 4096]:
                differ += 1
                sec = (blk + i // 4096) * 8
                if not any(s <= sec and sec + 8 <= e for s, e in cover):
                    outside += 1
                    if outside <= 5:
                        print(f"block {blk + i // 4096} differs, not in cbt_changes", file=sys.stderr)
        blk += len(x) // 4096
print(differ, outside)
EOF
}

# Take snapshot N with the file system unmounted, save the device as it is
# then, mount again, start the writers and cut the power at a random moment.
round() {
	local n ms
	umount /mnt/pcr
	capture "cbt_take" cbt_take pcr
	n=$OUT
	echo "$n" > "$state/snap"
	check "save the content of snapshot $n" \
		dd if=$origin of=$copy bs=1M iflag=direct oflag=direct status=none
	check "mount again" mount $origin /mnt/pcr
	# O_DIRECT writes into a preallocated file, buffered writes of new and
	# rewritten files (some with fdatasync, as applications do), no sync.
	(while :; do
		dd if=/dev/urandom of=/mnt/pcr/direct.bin bs=4096 count=$((RANDOM % 4 + 1)) \
			seek=$((RANDOM % 4000)) oflag=direct conv=notrunc status=none
	done) &
	(i=0; while :; do
		i=$((i + 1))
		if ((i % 5)); then f=; else f=conv=fdatasync; fi
		dd if=/dev/urandom of=/mnt/pcr/buf-$((i % 40)) bs=16k count=$((RANDOM % 16 + 1)) $f status=none
	done) &
	ms=$((500 + RANDOM % 3500))
	note "round $VM_BOOT: snapshot $n saved; writers running; the power goes in $ms ms"
	sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
	vm_crash
}

# After a power cut: the generation continues; a take makes the writes
# since snapshot N listable; every block that differs from the saved copy
# is in cbt_changes N.
verify() {
	local n d out
	n=$(cat "$state/snap")
	check "blksnap-origin after a power cut" pcreate
	check_eq "the generation continues after the power cut" "pcbt=ok why=-" "$(pcbt_words pcr)"
	check_eq "the same generation" "$(cat "$state/gen")" "$(status_field pcr 3)"
	capture "cbt_take" cbt_take pcr
	check_eq "the take is snapshot $((n + 1))" $((n + 1)) "$OUT"
	capture "cbt_changes $n" cbt_changes pcr "$n"
	read -r d out <<< "$(diff_outside $origin $copy "$OUT")"
	note "round $((VM_BOOT - 1)): $d blocks differ from snapshot $n"
	check "the writers changed the device before the power cut" test "${d:-0}" -gt 0
	check_eq "every block that differs from snapshot $n is in cbt_changes $n" 0 "${out:-x}"
}

case ${VM_BOOT:-} in
1)
	check "metadata formatted" $meta_tool format $mdisk "$size" $tbs disk-r
	check "blksnap-origin with metadata" pcreate
	status_field pcr 3 > "$state/gen"
	check "mkfs.ext4 on the origin" mkfs.ext4 -q $origin
	check "mount" mount $origin /mnt/pcr
	check "a preallocated file for the direct writer" \
		dd if=/dev/zero of=/mnt/pcr/direct.bin bs=1M count=16 oflag=direct status=none
	round
	;;
2 | 3)
	verify
	check "mount (the journal replays through the origin)" mount $origin /mnt/pcr
	round
	;;
4)
	verify
	check "the file system is clean after the replay" mount $origin /mnt/pcr
	umount /mnt/pcr
	check "fsck" fsck.ext4 -n -f $origin
	check "cbt_close" dm_message pcr cbt_close
	check "origin removed" dmsetup remove pcr
	;;
*) die "VM_BOOT is '${VM_BOOT:-}': not run by tests/vm/run --boots" ;;
esac
