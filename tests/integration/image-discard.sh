#!/bin/bash
# discards and write-zeroes while an image exists: fstrim of a mounted file system copies nothing into the store, discards are marked in CBT and not passed down, write-zeroes keep copy-on-write; origin, image and CBT exact
# vm: --disks 2 --disk-size 128M --timeout 900 --append slab_nomerge
# lanes: debug
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"

real=/dev/vda
sdisk=/dev/vdb
origin=/dev/mapper/diorig
image=/dev/mapper/diimg
size=$(blockdev --getsize64 $real)
sectors=$(dev_sectors $real)
require_target blksnap-image
mnt=/mnt/di

# --- (a) fstrim of a mostly empty file system during a backup ----------------
check "blksnap-origin over $real" origin_create diorig $real
check "ext4 on the origin" mkfs.ext4 -q -E nodiscard,lazy_itable_init=0,lazy_journal_init=0 $origin
check "mounted" mount_at $origin $mnt
check "10 MiB of files" sh -c "for i in 1 2 3 4 5; do head -c 2M /dev/urandom > $mnt/f\$i; done; sync"
( cd $mnt && sha256sum f1 f2 f3 f4 f5 ) > $IMG_TMP/files.sha
# The point in time with the file system frozen (lockfs), as blksnapctl does.
pre=$IMG_TMP/pre
check "origin suspended (file system frozen)" dmsetup suspend diorig
check "pre-image read from the real device" dd if=$real of=$pre bs=1M iflag=direct status=none
check "blksnap-image with 4 KiB chunks, store $sdisk" image_create diimg $real $sdisk 8
check "origin resumed" dmsetup resume diorig
u0=$(image_used diimg)
check "fstrim of the mounted file system" fstrim -v $mnt
u1=$(image_used diimg)
note "store used: $u0 sectors before fstrim, $u1 after"
check "fstrim copied no free space into the store (used $u0 -> $u1 sectors, at most 1 MiB more)" \
	test $((u1 - u0)) -le 2048
check_eq "image state is valid" valid "$(image_field diimg 4)"
check_same "image equals the pre-image" $image $pre 4096
check "the files read back" sh -c "cd $mnt && sha256sum -c --quiet $IMG_TMP/files.sha"
check "unmounted" umount $mnt
check "image removed" dmsetup remove diimg
check "fsck of the origin is clean" fsck.ext4 -n -f $origin > /dev/null

# --- (b) the raw device: discard and write-zeroes against a model ------------
check "cbt_reset: a new generation for the model" cbt_reset diorig
tbs=$(status_field diorig 1)
model_init "$sectors" "$tbs"
check "origin filled with random data" fill_random $origin $pre "$size"
model_write 0 "$sectors"
omodel=$IMG_TMP/omodel imodel=$IMG_TMP/imodel
cp $pre $omodel
cp $pre $imodel
check "blksnap-image with 4 KiB chunks" image_create diimg $real $sdisk 8
model_take
u0=$(image_used diimg)
# A discard is marked in CBT and completes without reaching the device.
check "origin: 16 MiB discard at 16 MiB" do_discard $origin $((16 << 11)) $((16 << 11))
check_eq "the discard copied nothing into the store" "$u0" "$(image_used diimg)"
check_same "origin still holds the discarded range (not passed down)" $origin $omodel 4096
check_same "image equals the pre-image after the discard" $image $imodel 4096
# Write-zeroes carry data: copy-on-write as for a write.
check "origin: 8 MiB write-zeroes at 40 MiB" do_zeroout $origin $((40 << 11)) $((8 << 11))
dd if=/dev/zero of=$omodel bs=1M seek=40 count=8 conv=notrunc status=none
check_eq "the write-zeroes copied 8 MiB into the store" $((u0 + (8 << 11))) "$(image_used diimg)"
check_same "origin reads zeroes there" $origin $omodel 4096
check_same "image equals the pre-image after the write-zeroes" $image $imodel 4096
# On the image: discards are not supported, write-zeroes are written out
# as zeroes by the block layer (into the store, never the origin).
expect_fail "a discard of the image is refused" blkdiscard -o $((56 << 20)) -l $((1 << 20)) $image
check "image: 1 MiB write-zeroes at 56 MiB" blkdiscard -z -o $((56 << 20)) -l $((1 << 20)) $image
dd if=/dev/zero of=$imodel bs=1M seek=56 count=1 conv=notrunc status=none
check_same "image reads zeroes there and the pre-image elsewhere" $image $imodel 4096
check_same "origin untouched by the image's write-zeroes" $origin $omodel 4096

# A big write-zeroes: up to one bio over 16384 chunks. The copies in flight are
# bounded (1024 for 4 KiB chunks, plus the pool's 64 spare elements).
slab=/sys/kernel/slab/blksnap_pending/objects
peak=0
do_zeroout $origin $((64 << 11)) $((64 << 11)) &
zpid=$!
while kill -0 $zpid 2> /dev/null; do
	n=$(cut -d' ' -f1 $slab 2> /dev/null || echo 0)
	[ "$n" -le "$peak" ] || peak=$n
	sleep 0.1
done
check "origin: 64 MiB write-zeroes at 64 MiB" wait $zpid
model_write $((64 << 11)) $((64 << 11))
dd if=/dev/zero of=$omodel bs=1M seek=64 count=64 conv=notrunc status=none
note "blksnap_pending objects at most $peak during the write-zeroes"
if [ -r $slab ] && ! debug_kernel; then # KASAN quarantines freed objects: not a count of those in use
	check "copies in flight stayed bounded ($peak objects)" test "$peak" -le $((1024 + 64 + 128))
fi
check_same "origin equals its model" $origin $omodel 4096
check_same "image equals its model" $image $imodel 4096
check_eq "image state is valid" valid "$(image_field diimg 4)"
check "image removed" dmsetup remove diimg
# The discard and both write-zeroes are in the next take's changes.
take_and_check diorig
check_changes diorig $((M_LAST_TAKE - 1))
