#!/bin/bash
# blksnapctl monitor grows a store through several low-water events while a writer fills it; SIGTERM stops it; create --monitor starts one (with and without systemd)
# vm: --disks 2 --disk-size 256M --timeout 900
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

# ---- SIGTERM (systemctl stop) ends the monitor cleanly ----------------------------
check "snapshot mon2" blksnapctl create /dev/vda --store /mnt/stores/dir --store-size 16M --name mon2
at_exit "blksnapctl destroy mon2 >/dev/null 2>&1 || true"
blksnapctl monitor mon2 > /tmp/monitor2.log 2>&1 &
mpid=$!
sleep 2
check "monitor mon2 is running" kill -0 "$mpid"
kill -TERM "$mpid"
for _ in $(seq 1 50); do
	kill -0 "$mpid" 2>/dev/null || break
	sleep 0.2
done
check "SIGTERM ends the monitor within 10 s" bash -c "! kill -0 $mpid 2>/dev/null"
wait "$mpid" && rc=0 || rc=$?
check_eq "it exits 0" 0 "$rc"
check "it says so" grep -q "mon2: monitor stopped" /tmp/monitor2.log
check "destroy mon2" blksnapctl destroy mon2

# ---- an overflow ends the monitor with exit 1 -------------------------------------
check "snapshot ovf with a 4 MiB store" blksnapctl create /dev/vda --store /mnt/stores/dir --store-size 4M --name ovf
at_exit "blksnapctl destroy ovf >/dev/null 2>&1 || true"
blksnapctl monitor ovf --limit 4M > /tmp/monitor-ovf.log 2>&1 &
mpid=$!
sleep 2
dd if=/dev/urandom of="$a" bs=1M count=8 oflag=direct status=none
for _ in $(seq 1 50); do
	kill -0 "$mpid" 2>/dev/null || break
	sleep 0.2
done
wait "$mpid" && rc=0 || rc=$?
sed 's/^/#   /' /tmp/monitor-ovf.log
check_eq "the monitor exits 1 on the overflow" 1 "$rc"
check "naming the image" grep -q "image blksnap-vda-ovf overflowed" /tmp/monitor-ovf.log
check "destroy ovf" blksnapctl destroy ovf

# ---- create --monitor: without systemd, a monitor of its own ---------------------
mkdir -p /etc/blksnap
[ ! -e /etc/blksnap/monitor.conf ] || cp /etc/blksnap/monitor.conf /tmp/monitor.conf.saved
printf 'BLKSNAP_MONITOR_OPTS="--grow-by 16M --limit 112M --store-dir /mnt/stores/dir"\n' \
	> /etc/blksnap/monitor.conf
at_exit "rm -f /etc/blksnap/monitor.conf; [ ! -e /tmp/monitor.conf.saved ] || mv /tmp/monitor.conf.saved /etc/blksnap/monitor.conf"
pre=$(sha256sum < "$a" | cut -d' ' -f1)
capture "create --monitor" blksnapctl create /dev/vda --store /mnt/stores/dir --store-size 16M \
	--name mon3 --monitor
at_exit "blksnapctl destroy mon3 >/dev/null 2>&1 || true"
check_eq "create prints the snapshot as usual" mon3 "$(head -n 1 <<< "$OUT")"
log=/run/blksnap/monitor-mon3.log
watching() { grep -q "mon3: watching 1 image" $log 2>/dev/null; }
check "the monitor runs, with the options of monitor.conf (within 30 s)" wait_for 30 watching
mpid=$(pgrep -f "blksnapctl monitor mon3") || true
check "its process is there" test -n "$mpid"
check "it is not in the session of the shell that ran create" \
	test "$(ps -o sid= -p "$mpid" | tr -d ' ')" != "$(ps -o sid= -p $$ | tr -d ' ')"
for i in $(seq 0 23); do
	dd if=/dev/urandom of="$a" bs=1M count=2 seek=$((i * 2)) oflag=direct status=none
	sleep 0.5
done
note "the monitor said: $(tr '\n' '|' < $log)"
capture "status of mon3" blksnapctl status mon3 --json
check_eq "the image is still valid" valid "$(jq -r '.images[0].state' <<< "$OUT")"
check "the store grew beyond 48 MiB" test "$(jq -r '.store.size_sectors' <<< "$OUT")" -ge $((48 * 2048))
check "the growths are logged" grep -q "mon3: store grown by 16 MiB" $log
check_eq "the image equals the device before the snapshot" "$pre" \
	"$(sha256sum < /dev/mapper/blksnap-vda-mon3 | cut -d' ' -f1)"
check "destroy mon3" blksnapctl destroy mon3
check "its monitor ends (within 10 s)" wait_for 10 bash -c "! kill -0 $mpid 2>/dev/null"
check "having said so" grep -q "mon3: the snapshot is gone" $log

# ---- create --monitor with systemd: the shipped unit -----------------------------
# No systemd in the guest: /run/systemd/system says there is, and a stand-in
# systemctl records its arguments (only in the throwaway guest root).
[ "$(findmnt -n -o FSTYPE /)" = overlay ] && [ -d /vm-out ] ||
	die "not in the test guest: refusing to replace /usr/bin/systemctl"
mkdir -p /run/systemd/system
at_exit "rmdir /run/systemd/system"
printf '%s\n' '#!/bin/sh' 'echo "$*" >> /tmp/systemctl.log' 'exit ${SYSTEMCTL_RC:-0}' \
	> /usr/bin/systemctl
chmod +x /usr/bin/systemctl
check "create --monitor under systemd" blksnapctl create /dev/vda --store /mnt/stores/dir \
	--store-size 16M --name mon4 --monitor
check_eq "it started blksnap-monitor@mon4.service" "start blksnap-monitor@mon4.service" \
	"$(cat /tmp/systemctl.log)"
check "destroy mon4" blksnapctl destroy mon4
rc=0
SYSTEMCTL_RC=5 blksnapctl create /dev/vda --store /mnt/stores/dir --store-size 16M \
	--name mon5 --monitor > /tmp/mon5.out 2> /tmp/mon5.err || rc=$?
sed 's/^/#   /' /tmp/mon5.err
check_eq "a monitor that does not start fails create" 1 "$rc"
check "saying why" grep -q "systemctl start blksnap-monitor@mon5.service' failed" /tmp/mon5.err
check "without leaving the snapshot" bash -c "! blksnapctl status mon5 > /dev/null 2>&1"
check_eq "no loop device left" "0" "$(losetup -a | grep -c . || true)"
