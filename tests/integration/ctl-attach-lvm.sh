#!/bin/bash
# blksnapctl attach/detach of a mounted LVM LV: same name and minor, mount and data intact; LVM's own snapshot, lvs, lvextend and vgchange -an around it
# vm: --disks 1 --disk-size 512M --timeout 500 --modules ext4,dm-snapshot
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
check_eq "$name-bsreal took over the LV's table" \
	"${old_table}" "$(dmsetup table $name-bsreal)"
check_eq "$name-bsreal has a blksnap uuid" "BLKSNAP-REAL-$name" \
	"$(dmsetup info -c --noheadings -o uuid $name-bsreal)"
check_eq "the LV is now a blksnap-origin over $name-bsreal" \
	"0 $size blksnap-origin $(majmin /dev/mapper/$name-bsreal)" "$(dmsetup table $name)"
check_eq "the mount is untouched" "$mounts" "$(grep " $mnt " /proc/mounts)"
check "the file system is writable" touch $mnt/after-attach

ctl_ok "status of the LV" status $lv --json
check_eq "status: layered" true "$(jq .layered <<< "$OUT")"
check_eq "status: the real device" "/dev/mapper/$name-bsreal" "$(jq -r .real_path <<< "$OUT")"
check_eq "status: the file system" ext4 "$(jq -r .fs_type <<< "$OUT")"
ctl_ok "cbt info by the real device's name" cbt info $name-bsreal --json
check_eq "the real device leads to the origin" "$name" "$(jq -r .origin <<< "$OUT")"
ctl_fail "attaching the real device again is refused" 1 "already attached" attach $name-bsreal

# The change tracker sees the file system's writes.
take=$(dmsetup message $name 0 cbt_take)
check "files written while attached" write_files $mnt post- 8 500 $work/sums
sync
dmsetup message $name 0 cbt_take > /dev/null
ctl_ok "cbt changes --since $take" cbt changes $lv --since "$take" --json
check "the new files show as changed extents" \
	test "$(jq '.changed_sectors' <<< "$OUT")" -ge $((8 * 500 * 2))

# Detach while mounted: the old table comes back, -bsreal goes.
ctl_ok "detach by the dm name while mounted" detach $name
check_eq "the LV has its old table back" "$old_table" "$(dmsetup table $name)"
check "$name-bsreal is gone" test ! -e /dev/mapper/$name-bsreal
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
umount $mnt

# ---- LVM tools after a detach: the LV is LVM's alone again -------------------------
lv_attr() { lvm_cmd lvs --noheadings -o lv_attr vg0/data 2> $work/lvs.err | tr -d ' '; }
check_eq "lvs: an ordinary active LV" "-wi-a-----" "$(lv_attr)"
check_eq "lvs says nothing on stderr" "" "$(cat $work/lvs.err)"
check "lvextend -L +64M after the detach" lvm_cmd lvextend -q -L +64M vg0/data
check "resize2fs" resize2fs -f $lv > /dev/null 2>&1
check_eq "the LV is 320 MiB" $((320 * 2048)) "$(dev_sectors $lv)"
ctl_ok "attach the extended LV" attach $lv
check_eq "the origin has the new size" "0 $((320 * 2048)) blksnap-origin $(majmin /dev/mapper/$name-bsreal)" \
	"$(dmsetup table $name)"
# Attached, lvs still lists it (with warnings about the table it does not know).
check_eq "lvs of the attached LV: the table is not LVM's (X)" "-wi-XX--X-" "$(lv_attr)"
ctl_ok "detach" detach $lv
check_eq "lvs: ordinary again" "-wi-a-----" "$(lv_attr)"
check "vgchange -an after the detach" lvm_cmd vgchange -q -an vg0
check_eq "no dm device is left" "" "$(dm_names)"
check "vgchange -ay" lvm_cmd vgchange -q -ay vg0
check "the file system is intact" fsck.ext4 -fn $lv

# ---- an LV with an LVM snapshot: LVM's <vg>-<lv>-real is not blksnapctl's ----------
check "an LVM snapshot of the LV" lvm_cmd lvcreate -q -y -s -L 32M -n lvsnap vg0/data
check "LVM made $name-real" test -b /dev/mapper/$name-real
ctl_ok "attach the LV that has an LVM snapshot" attach $lv
check_eq "the layer is $name-bsreal over LVM's snapshot-origin" \
	"0 $((320 * 2048)) snapshot-origin $(majmin /dev/mapper/$name-real)" "$(dmsetup table $name-bsreal)"
check "LVM's snapshot stays active" test "$(dmsetup table vg0-lvsnap | cut -d' ' -f3)" = snapshot
ctl_ok "detach it" detach $lv
check_eq "the LV is LVM's snapshot-origin again" \
	"0 $((320 * 2048)) snapshot-origin $(majmin /dev/mapper/$name-real)" "$(dmsetup table $name)"
check "lvremove of the LVM snapshot" lvm_cmd lvremove -q -y vg0/lvsnap
check_eq "lvs: ordinary again" "-wi-a-----" "$(lv_attr)"

# ---- vgchange -an of an attached LV, as at a shutdown -------------------------------
# LVM removes the LV's device, the origin (its CBT state goes with it), and
# leaves the real device it does not know, mapping the LV's extents, until
# a detach of the LV or the next attach removes it.
ctl_ok "attach" attach $lv
check "vgchange -an of the VG with the attached LV succeeds" lvm_cmd vgchange -q -an vg0
check_eq "the origin is gone; $name-bsreal is left" "$name-bsreal" "$(dm_names)"
ctl_ok "detach of the deactivated LV removes what is left" detach $name
check_eq "nothing is left" "" "$(dm_names)"
check "vgchange -ay" lvm_cmd vgchange -q -ay vg0
ctl_ok "attach" attach $lv
check "lvchange -an of the attached LV" lvm_cmd lvchange -q -an vg0/data
check "lvchange -ay" lvm_cmd lvchange -q -ay vg0/data
# The next attach removes the leftover by itself (with a warning).
rc=0
blksnapctl attach $lv > /dev/null 2> $work/attach.err || rc=$?
sed 's/^/#   /' $work/attach.err
check_eq "attach over a leftover succeeds" 0 $rc
check "and says that it removed $name-bsreal" grep -q "warning: removed $name-bsreal" $work/attach.err
check_eq "one origin, one real device" "$name $name-bsreal" "$(dm_names)"
ctl_ok "detach" detach $lv
check "the data is intact" bash -c "mount $lv $mnt && cd $mnt && sha256sum --quiet -c $work/sums; r=\$?; cd /; umount $mnt; exit \$r"
