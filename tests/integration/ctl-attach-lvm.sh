#!/bin/bash
# blksnapctl attach/detach of a mounted LVM LV: same name and minor, mount and data intact
# vm: --disks 1 --disk-size 512M --timeout 400 --modules ext4
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/ctl-lib.sh"

lv=/dev/vg0/data
name=vg0-data
mnt=/mnt/data
work=$(mktemp -d)
at_exit "rm -rf $work"

require_target blksnap-origin
check "an LVM LV on /dev/vda" lvm_lv vg0 data 256M /dev/vda
check "mkfs.ext4 on the LV" mkfs.ext4 -q $lv
check "the LV mounts" mount_at $lv $mnt
check "files written before attach" write_files $mnt pre- 12 300 $work/sums
sync

size=$(dev_sectors $lv)
devno=$(majmin $lv)
uuid=$(dmsetup info -c --noheadings -o uuid $name)
old_table=$(dmsetup table $name)
mounts=$(grep " $mnt " /proc/mounts)

# Attach while a writer is busy on the file system: the single
# suspend/resume must neither lose nor block its writes.
(write_files $mnt bg- 100 64 $work/bg.sums) &
writer=$!
ctl_attach $lv
check "the writer that ran across the attach finished" wait $writer
check_eq "attach prints the LV's own path" /dev/mapper/$name "$OUT"
check_eq "the LV keeps its device number" "$devno" "$(majmin $lv)"
check_eq "the LV keeps its dm uuid" "$uuid" "$(dmsetup info -c --noheadings -o uuid $name)"
check_eq "$name-real took over the LV's table" \
	"${old_table}" "$(dmsetup table $name-real)"
check_eq "$name-real has a blksnap uuid" "BLKSNAP-REAL-$name" \
	"$(dmsetup info -c --noheadings -o uuid $name-real)"
check_eq "the LV is now a blksnap-origin over $name-real" \
	"0 $size blksnap-origin $(majmin /dev/mapper/$name-real)" "$(dmsetup table $name)"
check_eq "the mount is untouched" "$mounts" "$(grep " $mnt " /proc/mounts)"
check "the file system is writable" touch $mnt/after-attach

ctl_ok "status of the LV" status $lv --json
check_eq "status: layered" true "$(jq .layered <<< "$OUT")"
check_eq "status: the real device" "/dev/mapper/$name-real" "$(jq -r .real_path <<< "$OUT")"
check_eq "status: the file system" ext4 "$(jq -r .fs_type <<< "$OUT")"
ctl_ok "cbt info by the real device's name" cbt info $name-real --json
check_eq "the real device leads to the origin" "$name" "$(jq -r .origin <<< "$OUT")"
ctl_fail "attaching the real device again is refused" 1 "already attached" attach $name-real

# The change tracker sees the file system's writes.
take=$(dmsetup message $name 0 cbt_take)
check "files written while attached" write_files $mnt post- 8 500 $work/sums
sync
dmsetup message $name 0 cbt_take > /dev/null
ctl_ok "cbt changes --since $take" cbt changes $lv --since "$take" --json
check "the new files show as changed extents" \
	test "$(jq '.changed_sectors' <<< "$OUT")" -ge $((8 * 500 * 2))

# Detach while mounted: the old table comes back, -real goes.
ctl_ok "detach by the dm name while mounted" detach $name
check_eq "the LV has its old table back" "$old_table" "$(dmsetup table $name)"
check "$name-real is gone" test ! -e /dev/mapper/$name-real
check_eq "only the LV is left" "$name" "$(dm_names)"
check_eq "the LV still has its device number" "$devno" "$(majmin $lv)"
check_eq "the mount is untouched" "$mounts" "$(grep " $mnt " /proc/mounts)"
check "files written across attach are intact" bash -c "cd $mnt && sha256sum --quiet -c $work/bg.sums"
check "every other file is intact" bash -c "cd $mnt && sha256sum --quiet -c $work/sums"

# On disk, after a clean unmount.
check "umount" umount $mnt
check "fsck finds the file system clean" fsck.ext4 -fn $lv
check "mount again" mount $lv $mnt
check "the files read back from disk" bash -c "cd $mnt && sha256sum --quiet -c $work/sums && sha256sum --quiet -c $work/bg.sums"
check "the file touched after attach is there" test -e $mnt/after-attach
