#!/bin/bash
# blksnapctl create: coherent across two devices, directory stores leave nothing behind, store add under load
# vm: --disks 3 --disk-size 256M --timeout 600
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"

# /dev/vda and /dev/vdb are snapshotted together; /dev/vdc holds a file
# system with the store directory.
mkfs.ext4 -q /dev/vdc
mkdir -p /mnt/stores
mount_at /dev/vdc /mnt/stores
mkdir -p /mnt/stores/dir

check "attach /dev/vda" blksnapctl attach /dev/vda
check "attach /dev/vdb" blksnapctl attach /dev/vdb
at_exit "undo_attach /dev/vda"
at_exit "undo_attach /dev/vdb"
a=/dev/mapper/blksnap-vda
b=/dev/mapper/blksnap-vdb

# ---- coherence ---------------------------------------------------------
# A writer stamps sequence number N into sector 0 of A, then the same N into
# sector 0 of B, with direct I/O, one after the other. At every instant A's
# number equals B's or is one ahead of it. A snapshot of both taken at one
# point in time must show exactly that; two separate snapshots would let A
# run further ahead.
stamp() { # stamp DEV N
	printf 'seq %012d\n' "$2" | dd of="$1" bs=512 count=1 conv=sync oflag=direct status=none
}
seq_of() { # seq_of DEV
	dd if="$1" bs=512 count=1 iflag=direct status=none | awk '/^seq/ {print $2 + 0}'
}
writer() {
	local n=1
	while [ ! -e /tmp/stop-writer ]; do
		stamp "$a" "$n"
		stamp "$b" "$n"
		n=$((n + 1))
	done
}
stamp "$a" 0
stamp "$b" 0
writer &
wpid=$!
at_exit "touch /tmp/stop-writer; wait $wpid 2>/dev/null || true"
sleep 2

for round in 1 2 3; do
	capture "coherent snapshot $round of both devices" \
		blksnapctl create /dev/vda /dev/vdb --store /mnt/stores/dir --store-size 64M --name pair$round
	images=$(printf '%s\n' "$OUT" | grep '^/dev/mapper/' || true)
	check_eq "create prints the snapshot name then one image per device" \
		"pair$round /dev/mapper/blksnap-vda-pair$round /dev/mapper/blksnap-vdb-pair$round" \
		"$(printf '%s\n' "$OUT" | awk '{ print $1 }' | tr '\n' ' ' | sed 's/ $//')"
	check_eq "round $round: each image with its origin's generation and snapshot number" \
		"generation_uuid=$(status_field blksnap-vda 3) snapshot_number=$round|generation_uuid=$(status_field blksnap-vdb 3) snapshot_number=$round" \
		"$(printf '%s\n' "$OUT" | sed -n '2,$p' | cut -d' ' -f2- | tr '\n' '|' | sed 's/|$//')"
	sa=$(seq_of /dev/mapper/blksnap-vda-pair$round)
	sb=$(seq_of /dev/mapper/blksnap-vdb-pair$round)
	note "round $round: image of A at $sa, image of B at $sb, live A at $(seq_of "$a")"
	check "round $round: the two images show one point in time (A == B or A == B+1)" \
		test "$sa" -eq "$sb" -o "$sa" -eq $((sb + 1))
	check "round $round: the images stay put while the writer runs" \
		test "$(seq_of /dev/mapper/blksnap-vda-pair$round)" = "$sa"

	# The directory store is an unlinked file behind a loop device.
	check_eq "round $round: the store directory looks empty" "" "$(ls -A /mnt/stores/dir)"
	loops=$(losetup -a | grep -c '(deleted)' || true)
	check "round $round: a loop device backs the store" test "$loops" -ge 1
	check "round $round: destroy" blksnapctl destroy pair$round
	check_eq "round $round: no loop device left after destroy" "0" \
		"$(losetup -a | grep -c . || true)"
	check "round $round: no image or store device left" \
		test -z "$(dmsetup ls | grep -E "pair$round" || true)"
done
touch /tmp/stop-writer
wait "$wpid" || true
check_eq "the space of the unlinked store files is freed again" "0" \
	"$(df --output=used -B1M /mnt/stores | tail -n 1 | awk '{print ($1 > 8)}')"

# ---- store add under load ---------------------------------------------
# A 16 MiB store cannot hold 48 MiB of copied chunks: grow it twice while a
# writer fills it, and the image must stay valid and equal the pre-image.
dd if=/dev/urandom of="$a" bs=1M count=64 oflag=direct status=none
pre=$(sha256sum < "$a" | cut -d' ' -f1)
check "snapshot of A with a 16 MiB directory store" \
	blksnapctl create /dev/vda --store /mnt/stores/dir --store-size 16M --name grow
at_exit "undo_snapshot grow"
dd if=/dev/urandom of="$a" bs=1M count=12 oflag=direct status=none
check "store add 24 MiB while writing" blksnapctl store add grow /mnt/stores/dir --size 24M
dd if=/dev/urandom of="$a" bs=1M count=20 seek=12 oflag=direct status=none &
dpid=$!
check "store add another 24 MiB while writing" blksnapctl store add grow /mnt/stores/dir --size 24M
wait "$dpid"
dd if=/dev/urandom of="$a" bs=1M count=16 seek=32 oflag=direct status=none
capture "status of the grown snapshot" blksnapctl status grow --json
check_eq "the image is still valid" "valid" "$(jq -r '.images[0].state' <<< "$OUT")"
check_eq "the store is 64 MiB now" "131072" "$(jq -r '.store.size_sectors' <<< "$OUT")"
check_eq "48 MiB were copied" "12288" "$(jq -r '.images[0].copied_chunks' <<< "$OUT")"
check_eq "the image equals the device before the snapshot" "$pre" \
	"$(sha256sum < /dev/mapper/blksnap-vda-grow | cut -d' ' -f1)"
check "destroy" blksnapctl destroy grow
check_eq "no loop device left" "0" "$(losetup -a | grep -c . || true)"
