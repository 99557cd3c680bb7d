#!/bin/bash
# blksnapctl monitor grows a store through several low-water events while a writer fills it
# vm: --disks 2 --disk-size 256M --timeout 600
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"

mkfs.ext4 -q /dev/vdb
mkdir -p /mnt/stores
mount_at /dev/vdb /mnt/stores
mkdir -p /mnt/stores/dir

check "attach /dev/vda" blksnapctl attach /dev/vda
at_exit "undo_attach /dev/vda"
a=/dev/mapper/blksnap-vda
dd if=/dev/urandom of="$a" bs=1M count=96 oflag=direct status=none
pre=$(sha256sum < "$a" | cut -d' ' -f1)

check "snapshot with a 16 MiB directory store" \
	blksnapctl create /dev/vda --store /mnt/stores/dir --store-size 16M --name mon
at_exit "undo_snapshot mon"

blksnapctl monitor mon --grow-by 16M --limit 112M --store-dir /mnt/stores/dir \
	> /tmp/monitor.log 2>&1 &
mpid=$!
at_exit "stop_bg $mpid"
sleep 2
check "monitor is running" kill -0 "$mpid"

# 80 MiB of first writes, in 2 MiB steps with a breath between them so that
# the monitor can react to each low-water event; without it the 16 MiB store
# overflows after 16 MiB.
for i in $(seq 0 39); do
	dd if=/dev/urandom of="$a" bs=1M count=2 seek=$((i * 2)) oflag=direct status=none
	sleep 0.5
done

capture "status after the writes" blksnapctl status mon --json
note "monitor said: $(tr '\n' '|' < /tmp/monitor.log)"
check_eq "the image is still valid" "valid" "$(jq -r '.images[0].state' <<< "$OUT")"
check_eq "80 MiB were copied" "20480" "$(jq -r '.images[0].copied_chunks' <<< "$OUT")"
size=$(jq -r '.store.size_sectors' <<< "$OUT")
check "the store grew to hold them (now $((size / 2048)) MiB)" test "$size" -ge $((80 * 2048))
check "the store stayed within --limit" test "$size" -le $((112 * 2048))
grows=$(grep -c -i 'grew\|grow' /tmp/monitor.log || true)
check "the monitor logged one line per growth (saw $grows)" test "$grows" -ge 4
check_eq "the image equals the device before the snapshot" "$pre" \
	"$(sha256sum < /dev/mapper/blksnap-vda-mon | cut -d' ' -f1)"

check "destroy the snapshot" blksnapctl destroy mon
for _ in $(seq 1 50); do
	kill -0 "$mpid" 2>/dev/null || break
	sleep 0.2
done
check "monitor ends when its snapshot is destroyed" bash -c "! kill -0 $mpid 2>/dev/null"
wait "$mpid" && rc=0 || rc=$?
check_eq "monitor exits 0 after a destroy" "0" "$rc"
check_eq "no loop device left" "0" "$(losetup -a | grep -c . || true)"
