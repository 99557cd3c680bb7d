#!/bin/bash
# blksnapctl store add, many times from two loops, against a monitor growing the same store while a writer fills it: no segment lost, the image exact
# vm: --disks 2 --disk-size 320M --mem 1G --timeout 900
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/ctl-lib.sh"

require_target blksnap-image
work=$(mktemp -d)
at_exit "rm -rf $work"
ADDS=${TEST_LOCK_ADDS:-20}		# per loop, at least
WRITE_MB=64	# more than the store and every add (80 per loop at most): it must grow

mkfs.ext4 -q /dev/vdb
mount_at /dev/vdb /mnt/stores
mkdir -p /mnt/stores/dir
ctl_attach /dev/vda
a=/dev/mapper/blksnap-vda
dd if=/dev/urandom of=$a bs=1M count=256 oflag=direct status=none
pre=$(sha256sum < $a | cut -d' ' -f1)

ctl_ok "snapshot with a 16 MiB directory store" \
	create /dev/vda --store /mnt/stores/dir --store-size 16M --name race
at_exit "undo_snapshot race"
ctl monitor race --grow-by 32M --store-dir /mnt/stores/dir > $work/monitor.log 2>&1 &
mpid=$!
at_exit "stop_bg $mpid"

# The writer: 1 MiB of new chunks at a time, WRITE_MB in all, whatever the
# adders' pace, so that the store must grow (16 MiB + the adds' 256 KiB each
# stay below it) while the adders run.
(
	i=0
	while [ ! -e $work/stop ] && [ $i -lt $WRITE_MB ]; do
		dd if=/dev/urandom of=$a bs=1M count=1 seek=$i oflag=direct status=none
		i=$((i + 1))
		sleep 0.05
	done
	echo $i > $work/written
) &
wpid=$!
at_exit "touch $work/stop; wait $wpid"

# Two loops of store add against each other and against the monitor: each
# makes ADDS adds and goes on until the writer is done (at most 80), and
# counts them in $work/adds.N, the failures in $work/fail.N.
adder() {
	local k=0
	while [ $k -lt 80 ] && { [ $k -lt $ADDS ] || [ ! -e $work/written ]; }; do
		ctl store add race /mnt/stores/dir --size 256K 2>> $work/fail.$1 ||
			echo "store add $k failed" >> $work/fail.$1
		k=$((k + 1))
		sleep 0.3
	done
	echo $k > $work/adds.$1
}
adder 1 &
p1=$!
adder 2 &
p2=$!
wait $p1 $p2
wait $wpid
ADDS=$(($(cat $work/adds.1) + $(cat $work/adds.2)))
note "the writer wrote $(cat $work/written) MiB, $ADDS adds; monitor: $(tr '\n' '|' < $work/monitor.log)"
check_eq "the writer wrote its $WRITE_MB MiB" $WRITE_MB "$(cat $work/written)"
for n in 1 2; do
	check_eq "adder $n: every store add succeeded, nothing on stderr" "" "$(cat $work/fail.$n)"
done

# The store's table: contiguous, and every segment there that was added.
table=$(dmsetup table race-store)
grows=$(grep -c 'store grown by' $work/monitor.log || true)
check "the monitor grew the store while the adders ran ($grows times)" test "$grows" -ge 1
check_eq "one segment per part: the first, $ADDS adds, $grows growths" \
	$((1 + ADDS + grows)) "$(grep -c . <<< "$table")"
check "the segments follow each other, with no gap or overlap" awk '
	$1 != next_start { exit 1 } { next_start = $1 + $2 } END { exit NR == 0 }' <<< "$table"
check_eq "the segments add up to 16 MiB + $ADDS x 256 KiB + $grows x 32 MiB" \
	$((16 * 2048 + ADDS * 512 + grows * 32 * 2048)) "$(awk '{ s += $2 } END { print s }' <<< "$table")"
check_eq "$ADDS segments of 256 KiB" $ADDS "$(awk '$2 == 512' <<< "$table" | grep -c .)"
check_eq "every segment is a device of its own" "$(grep -c . <<< "$table")" \
	"$(awk '{ print $4 }' <<< "$table" | sort -u | grep -c .)"
check_eq "every loop device is in the table (none lost)" "$(grep -c . <<< "$table")" \
	"$(losetup -a | grep -c '(deleted)')"
capture "status of the snapshot" ctl status race --json
check_eq "the image is valid" valid "$(jq -r '.images[0].state' <<< "$OUT")"
check_eq "the store size is the table's" "$(awk '{ s += $2 } END { print s }' <<< "$table")" \
	"$(jq '.store.size_sectors' <<< "$OUT")"
check_eq "the image equals the device before the snapshot" "$pre" \
	"$(sha256sum < /dev/mapper/blksnap-vda-race | cut -d' ' -f1)"

ctl_ok "destroy" destroy race
for _ in $(seq 1 50); do
	kill -0 $mpid 2> /dev/null || break
	sleep 0.2
done
wait $mpid && rc=0 || rc=$?
check_eq "the monitor ends with its snapshot, exit 0" 0 $rc
check_eq "no loop device left" 0 "$(losetup -a | grep -c . || true)"
