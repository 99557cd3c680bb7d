#!/bin/bash
# blksnapctl attach --cbt-metadata DIR: the metadata is a fully allocated file in the directory behind an autoclear loop device that goes away with the origin; the same generation and changes come back after a reboot; a directory on the tracked device and a file in use are refused
# vm: --disks 3 --disk-size 64M --boots 2 --timeout 500
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/ctl-lib.sh"

real=/dev/vda
fsdisk=/dev/vdb
other=/dev/vdc
name=blksnap-vda
origin=/dev/mapper/$name
dir=/mnt/meta
file=$dir/blksnap-cbt-disk-a.meta
meta_tool=$BLKSNAP_TOP/build/tools/cbt-meta
state=$VM_OUT/ctl-cbt-persist-dir
require_target blksnap-origin
mkdir -p "$state" $dir /mnt/other

json_field() { # json_field KEY: from the JSON in $OUT
	jq -r "if .$1 == null then \"null\" else .$1 end" <<< "$OUT"
}
info() { ctl_ok "cbt info --json" cbt info $real --json; }
rand_writes() { # rand_writes N
	local i
	for ((i = 0; i < $1; i++)); do
		dd if=/dev/urandom of=$origin bs=4096 count=$((RANDOM % 8 + 1)) \
			seek=$((RANDOM % 16000)) oflag=direct conv=notrunc status=none
	done
}
# The loop devices whose backing file is $file.
loops_of_file() {
	local b f
	for b in /sys/block/loop*/loop/backing_file; do
		[ -e "$b" ] || continue
		f=$(cat "$b")
		[ "$f" = "$file" ] && basename "$(dirname "$(dirname "$b")")"
	done
	return 0
}
check_loop() { # the origin's metadata is the loop device over $file
	local majmin
	majmin=$(dmsetup table $name | sed -n 's/.* metadata \([0-9:]*\) .*/\1/p')
	check_eq "the table's metadata is a loop device over $file" "$file" \
		"$(cat /sys/dev/block/$majmin/loop/backing_file 2>&1)"
	check_eq "autoclear is set" 1 "$(cat /sys/dev/block/$majmin/loop/autoclear 2>&1)"
}

case ${VM_BOOT:-} in
1)
	mkfs.ext4 -q -F $fsdisk
	mount $fsdisk $dir
	ctl_attach $real --tracking-block 4K --cbt-metadata $dir --cbt-metadata-id disk-a
	check "the metadata file is there" test -f $file
	total=$($meta_tool layout "$(dev_sectors $real)" 8 | sed 's/.*total=\([0-9]*\).*/\1/')
	check_eq "its size is what the metadata needs" $((total * 4096)) "$(stat -c %s $file)"
	check "it is fully allocated" test "$(($(stat -c '%b * %B' $file)))" -ge $((total * 4096))
	check_loop
	info
	check_eq "persistent, state ok" ok "$(json_field persistent.state)"
	check_eq "a fresh format: reason new" new "$(json_field persistent.new_generation_reason)"
	rand_writes 20
	ctl_ok "cbt take" cbt take $real
	rand_writes 20
	ctl_ok "cbt take" cbt take $real
	rand_writes 5

	ctl_fail "the file in use by another origin" 1 "in use already" \
		attach $other --tracking-block 4K --cbt-metadata $dir --cbt-metadata-id disk-a
	mkfs.ext4 -q -F $other
	mount $other /mnt/other
	ctl_fail "a directory on the device it would track" 1 "through the device it tracks" \
		attach $other --tracking-block 4K --cbt-metadata /mnt/other --cbt-metadata-id disk-c
	check "no metadata file made there" test ! -e /mnt/other/blksnap-cbt-disk-c.meta
	umount /mnt/other
	# No block device holds it: tmpfs, and the guest's root (overlayfs).
	mkdir -p /mnt/tmpfs /var/tmp/meta
	mount -t tmpfs -o mode=755 tmpfs /mnt/tmpfs
	ctl_fail "a directory on tmpfs" 1 "cannot tell which block device holds" \
		attach $other --tracking-block 4K --cbt-metadata /mnt/tmpfs --cbt-metadata-id disk-c
	umount /mnt/tmpfs
	ctl_fail "a directory on overlayfs" 1 "cannot tell which block device holds" \
		attach $other --tracking-block 4K --cbt-metadata /var/tmp/meta --cbt-metadata-id disk-c
	# Nobody else may plant the file.
	mkdir -p $dir/open
	chmod 1777 $dir/open
	ctl_fail "a directory others can write" 1 "can be written by others" \
		attach $other --tracking-block 4K --cbt-metadata $dir/open --cbt-metadata-id disk-c
	chmod 755 $dir/open
	ln -s /dev/null $dir/open/blksnap-cbt-disk-c.meta
	ctl_fail "a symbolic link at the file's name" 1 "cannot open CBT metadata file" \
		attach $other --tracking-block 4K --cbt-metadata $dir/open --cbt-metadata-id disk-c
	rm $dir/open/blksnap-cbt-disk-c.meta
	: > $dir/planted
	ln $dir/planted $dir/open/blksnap-cbt-disk-c.meta
	ctl_fail "a file with a second link" 1 "with one link" \
		attach $other --tracking-block 4K --cbt-metadata $dir/open --cbt-metadata-id disk-c
	rm -r $dir/open $dir/planted
	# The blksnaptab only uses the file (its file system may not be mounted yet).
	mkdir -p $dir/empty
	echo "$other tracking-block=4K,cbt-metadata=$dir/empty,cbt-metadata-id=disk-c" > "$state/tab"
	rc=0
	blksnapctl attach --from-blksnaptab --tab "$state/tab" $other 2> "$state/err" || rc=$?
	sed 's/^/#   stderr: /' "$state/err"
	check "from the blksnaptab a missing file is refused" test $rc -ne 0
	check "it says the blksnaptab never creates it" grep -q "never created" "$state/err"
	check "no file made there" test ! -e $dir/empty/blksnap-cbt-disk-c.meta
	rmdir $dir/empty

	ctl_ok "cbt changes --since 1" cbt changes $real --since 1 --json
	echo "$OUT" > "$state/changes"
	info
	json_field generation_uuid > "$state/gen"
	ctl_ok "cbt close --all" cbt close --all
	# The shutdown's dm teardown: the loop device goes with the origin.
	check "origin removed" dmsetup remove $name
	udevadm settle 2> /dev/null || true
	check_eq "no loop device over the file any more" "" "$(loops_of_file)"
	check "the file system can be unmounted" umount $dir
	;;
2)
	mount $fsdisk $dir
	ctl_attach $real --tracking-block 4K --cbt-metadata $dir --cbt-metadata-id disk-a
	check_loop
	info
	check_eq "the generation continues: reason null" null "$(json_field persistent.new_generation_reason)"
	check_eq "same generation" "$(cat "$state/gen")" "$(json_field generation_uuid)"
	ctl_ok "cbt changes --since 1" cbt changes $real --since 1 --json
	check_eq "the same changes since 1 as before the reboot" "$(cat "$state/changes")" "$OUT"
	# Without a block size given, the file's own continues.
	ctl_ok "detach" detach $real
	check_eq "detach lets the loop device go" "" "$(loops_of_file)"
	ctl_attach $real --cbt-metadata $dir --cbt-metadata-id disk-a
	info
	check_eq "after a detach: reason detached" detached "$(json_field persistent.new_generation_reason)"
	check_eq "the file's tracking block" 8 "$(json_field tracking_block_sectors)"
	ctl_ok "cbt close" cbt close $real
	ctl_ok "detach" detach $real
	check "the file system can be unmounted" umount $dir
	;;
*) die "VM_BOOT is '${VM_BOOT:-}': not run by tests/vm/run --boots" ;;
esac
