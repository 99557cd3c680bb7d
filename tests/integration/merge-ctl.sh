#!/bin/bash
# blksnapctl merge: an ext4 rolled back (files after the snapshot gone, image writes kept, fsck clean), refusals, background merge, progress
# vm: --disks 3 --disk-size 256M --timeout 600 --modules ext4,dm-delay
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/ctl-lib.sh"

o=/dev/mapper/blksnap-vda
img=/dev/mapper/blksnap-vda-s1
sums=$_ctl_tmp/sums

check "attach /dev/vda" blksnapctl attach /dev/vda
at_exit "undo_attach /dev/vda"
check "ext4 on the origin" mkfs.ext4 -q $o
mount_at $o /mnt/o
mkdir -p /mnt/o/before
write_files /mnt/o/before b 20 256 $sums
sync

ctl_ok "snapshot s1 on /dev/vdb" create --name s1 --store /dev/vdb $o
at_exit "undo_snapshot s1"

# After the snapshot: a file on the origin (to be rolled back), a file
# written through the image (to be kept), and a changed file.
mkdir -p /mnt/o/after
write_files /mnt/o/after a 10 256 $_ctl_tmp/after-sums
echo "changed on the origin" > /mnt/o/before/b1
sync
mount_at $img /mnt/i
mkdir -p /mnt/i/inimage
write_files /mnt/i/inimage i 10 128 $_ctl_tmp/image-sums
check "image unmounted" umount /mnt/i

ctl_fail "merge refused while the origin is mounted" 1 "mounted on /mnt/o" merge s1 --wait
check "origin unmounted" umount /mnt/o
mount_at $img /mnt/i
ctl_fail "merge refused while the image is mounted" 1 "mounted on /mnt/i" merge s1 --wait
check "image unmounted" umount /mnt/i
ctl_fail "merge of a missing snapshot" 1 "no snapshot named nope" merge nope

ctl_ok "merge s1 --wait" merge s1 --wait
echo "$OUT" | sed 's/^/#   /'
check "progress ends at 100 %" grep -q '^merge: 100% ' <<< "$OUT"
check "the merge says it removed the images and the store" grep -q 'merge of s1 complete' <<< "$OUT"
check "the image is gone" test ! -e $img
check_eq "the store device is gone" "" "$(dm_names | tr ' ' '\n' | grep -- '-store$' || true)"
check "the snapshot is gone" sh -c '! blksnapctl status s1 > /dev/null 2>&1'
capture "origin status" blksnapctl status /dev/vda
check "origin state is back to -" grep -q '^state: *-$' <<< "$OUT"

check "fsck of the merged file system is clean" fsck.ext4 -fn $o
mount_at $o /mnt/o
check "files written after the snapshot are gone" test ! -e /mnt/o/after
check "files written to the image are there" sh -c "cd /mnt/o/inimage && sha256sum -c --quiet $_ctl_tmp/image-sums"
check "files from before the snapshot are intact" sh -c "cd /mnt/o/before && sha256sum -c --quiet $sums"
check "the file changed on the origin is rolled back" sh -c '! grep -q "changed on the origin" /mnt/o/before/b1'
check "origin unmounted" umount /mnt/o

# ---- a background merge on a slow store ------------------------------------
ssz=$(dev_sectors /dev/vdc)
check "a slow store (dm-delay, 100 ms reads)" dm_create slow "0 $ssz delay /dev/vdc 0 100 /dev/vdc 0 0"
ctl_ok "snapshot s2 on the slow store" create --name s2 --store /dev/mapper/slow $o
at_exit "undo_snapshot s2"
check "4 MiB written to the image" dd if=/dev/urandom of=/dev/mapper/blksnap-vda-s2 bs=1M count=4 oflag=direct status=none
want=$(dd if=/dev/mapper/blksnap-vda-s2 bs=1M iflag=direct status=none | sha256sum)
ctl_ok "merge s2 (no --wait) returns at once" merge s2
echo "$OUT" | sed 's/^/#   /'
check "it says the merge runs in the background" grep -q 'runs in the background' <<< "$OUT"
ctl_fail "destroy refused while merging" 1 "is being merged" destroy s2
capture "status while merging" blksnapctl status /dev/vda --json
check "JSON state is merge" jq -e '.state == "merge" and .merge.total_chunks == 1024' <<< "$OUT"
check "the origin reads as the image during the merge" \
	test "$(dd if=$o bs=1M iflag=direct status=none | sha256sum)" = "$want"
check "store delay off" dm_reload slow "0 $ssz delay /dev/vdc 0 0 /dev/vdc 0 0"
ctl_ok "merge s2 --wait finishes and cleans up" merge s2 --wait
check "the origin equals the image" \
	test "$(dd if=$o bs=1M iflag=direct status=none | sha256sum)" = "$want"
check "the image is gone" test ! -e /dev/mapper/blksnap-vda-s2

# ---- a failed image cannot be merged ---------------------------------------
ctl_ok "snapshot s3 on the slow store" create --name s3 --store /dev/mapper/slow $o
at_exit "undo_snapshot s3"
check "the store turns into dm-error" dm_reload slow "0 $ssz error"
check "an origin write fails the image" dd if=/dev/urandom of=$o bs=4096 count=1 oflag=direct status=none
ctl_fail "merge of a failed image refused" 1 "is failed: only a valid image can be merged" merge s3
ctl_ok "destroy s3" destroy s3
