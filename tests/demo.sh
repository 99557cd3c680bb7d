#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The main job of dm-blksnap, end to end, run inside the test guest by
# `make demo`: a full backup from a snapshot, changes, a second snapshot, an
# incremental backup of only the changed extents, and restores of both
# checked against the device at each point in time.
#
# /dev/vda is the device being protected, /dev/vdb the snapshot store.
set -euo pipefail

dev=/dev/vda
store=/dev/vdb
mnt=/mnt/data
backup=/tmp/backup
bs=$((1024 * 1024))

say() { printf '\n== %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
fail() { echo "DEMO FAILED: $*" >&2; exit 1; }

mkdir -p "$mnt" "$backup"

say "1. Attach change tracking to $dev (blksnap-origin is stacked over it)"
mkfs.ext4 -q -L demo "$dev"
run blksnapctl attach "$dev"
origin=/dev/mapper/blksnap-vda
run mount "$origin" "$mnt"
echo "Writing some files through the origin..."
for i in 1 2 3 4; do head -c $((3 * bs)) /dev/urandom > "$mnt/file$i"; done
sync
run blksnapctl list

say "2. Snapshot: a coherent point-in-time image (the file system is frozen for it)"
run blksnapctl create "$dev" --store "$store" --name monday | tee "$backup/monday.txt"
image=/dev/mapper/blksnap-vda-monday
# create prints each image with its CBT generation and snapshot number: a
# backup tool records both, and asks for the changes since them next time.
gen1=$(sed -n 's/.* generation_uuid=\([^ ]*\) .*/\1/p' "$backup/monday.txt")
n1=$(sed -n 's/.* snapshot_number=\([0-9]*\)$/\1/p' "$backup/monday.txt")
[ -n "$gen1" ] && [ -n "$n1" ] || fail "create printed no CBT numbers"
echo "The snapshot's CBT number is $n1, in generation $gen1."

say "3. Full backup: read the whole image while the file system stays in use"
echo "Meanwhile the application keeps writing to the live device..."
head -c $((2 * bs)) /dev/urandom > "$mnt/file2"
sync
run dd if="$image" of="$backup/full.img" bs=1M status=none
sum_monday=$(sha256sum < "$image" | cut -d' ' -f1)
[ "$(sha256sum < "$backup/full.img" | cut -d' ' -f1)" = "$sum_monday" ] ||
	fail "the full backup differs from the image"
echo "full.img: $(du -h "$backup/full.img" | cut -f1), sha256 ${sum_monday:0:16}..."
run blksnapctl status monday
run blksnapctl destroy monday

say "4. The week goes on: files change"
head -c $((5 * bs)) /dev/urandom > "$mnt/file5"
head -c $((1 * bs)) /dev/urandom > "$mnt/file1"
rm "$mnt/file3"
sync

say "5. Second snapshot, and the extents changed since the first"
run blksnapctl create "$dev" --store "$store" --name tuesday
image=/dev/mapper/blksnap-vda-tuesday
sum_tuesday=$(sha256sum < "$image" | cut -d' ' -f1)
printf '$ blksnapctl cbt changes %s --since %s --generation %s --json > changes.json\n' "$dev" "$n1" "$gen1"
blksnapctl cbt changes "$dev" --since "$n1" --generation "$gen1" --json > "$backup/changes.json"
extents=$(jq -r '.extents[] | "\(.start) \(.sectors)"' "$backup/changes.json")
count=$(echo "$extents" | grep -c . || true)
changed=$(jq '[.extents[].sectors] | add // 0' "$backup/changes.json")
total=$(blockdev --getsz "$dev")
printf '%s extents, %s of %s sectors (%s%%) changed since snapshot %s\n' \
	"$count" "$changed" "$total" "$((changed * 100 / total))" "$n1"

say "6. Incremental backup: copy only those extents from the image"
: > "$backup/incr.data"
while read -r start sectors; do
	dd if="$image" bs=512 skip="$start" count="$sectors" status=none >> "$backup/incr.data"
done <<< "$extents"
cp "$backup/changes.json" "$backup/incr.map"
echo "incr.data: $(du -h "$backup/incr.data" | cut -f1) instead of $((total / 2048)) MiB"
run blksnapctl destroy tuesday

say "7. Restore: full backup, then the incremental on top"
cp "$backup/full.img" "$backup/restore.img"
[ "$(sha256sum < "$backup/restore.img" | cut -d' ' -f1)" = "$sum_monday" ] ||
	fail "restore of monday differs from monday's image"
echo "restore as of monday:  sha256 matches monday's image"
off=0
while read -r start sectors; do
	dd if="$backup/incr.data" of="$backup/restore.img" bs=512 skip="$off" \
		seek="$start" count="$sectors" conv=notrunc status=none
	off=$((off + sectors))
done <<< "$extents"
[ "$(sha256sum < "$backup/restore.img" | cut -d' ' -f1)" = "$sum_tuesday" ] ||
	fail "restore of tuesday differs from tuesday's image"
echo "restore as of tuesday: sha256 matches tuesday's image"

say "8. The restored image is a working file system"
run mkdir -p /mnt/restored
run mount -o ro,loop "$backup/restore.img" /mnt/restored
ls -l /mnt/restored
for f in file1 file2 file4 file5; do
	cmp -s "/mnt/restored/$f" "$mnt/$f" || fail "$f differs in the restore"
done
[ ! -e /mnt/restored/file3 ] || fail "file3 was deleted before tuesday"
echo "every file equals the live one as of tuesday; file3 is gone as it should be"
umount /mnt/restored

say "9. Detach: the device is back to itself"
run umount "$mnt"
run blksnapctl detach "$dev"
echo
echo "Demo complete: full + incremental backups restored and verified."
