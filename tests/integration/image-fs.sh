#!/bin/bash
# ext4 and xfs frozen under a writer: the image is a clean filesystem holding the point in time
# vm: --disks 3 --disk-size 512M --timeout 600
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"

store=/dev/vdc
require_target blksnap-image

# The writer's file N holds gen_content N; a file is complete once its number
# is in the writer's log (written after fsync).
gen_content() { # gen_content N
	# "|| :": yes dies of SIGPIPE, which pipefail and set -e would make fatal
	(yes "file $1 of the writer, a line of text" || :) | head -c $((($1 * 7919) % 200000 + 4096))
}

writer() { # writer DIR LOG: numbered files, each fsync'ed, until killed
	local n=0
	mkdir -p "$1/busy"
	while :; do
		n=$((n + 1))
		gen_content $n > "$1/busy/$n"
		sync "$1/busy/$n" # fsync of the one file (coreutils sync FILE)
		echo $n >> "$2"
		# churn: remove an old file now and then
		((n % 5)) || rm -f "$1/busy/$((n - 3))"
	done
}

run_fs() { # run_fs FS DEV
	local fs=$1 real=$2 o=forig_$1 i=fimg_$1
	local odev=/dev/mapper/forig_$1 idev=/dev/mapper/fimg_$1
	local omnt=/mnt/o_$fs imnt=/mnt/i_$fs log=$IMG_TMP/writer.$fs.log
	local mkfs_opts=() mount_opts=()
	note "---- $fs ----"
	check "$fs: blksnap-origin over $real" origin_create "$o" "$real"
	case $fs in
	ext4) mkfs_opts=(-q -F) ;;
	xfs) mkfs_opts=(-q -f); mount_opts=(-o nouuid) ;;
	esac
	check "$fs: mkfs on the origin" mkfs.$fs "${mkfs_opts[@]}" "$odev"
	check "$fs: origin mounted" mount_at "$odev" $omnt

	# Stable files: never touched by the writer; changed after the snapshot.
	mkdir -p $omnt/stable/sub
	local k
	for k in 1 2 3 4 5 6 7 8; do
		head -c $((k * 37000 + 100)) /dev/urandom > $omnt/stable/f$k
	done
	head -c $((3 << 20)) /dev/urandom > $omnt/stable/sub/big
	ln -s f1 $omnt/stable/link
	: > "$log"
	writer $omnt "$log" &
	local wpid=$!
	at_exit "stop_bg $wpid"
	check "$fs: the writer completed 3 files" timeout 120 sh -c "until [ \$(wc -l < $log) -ge 3 ]; do sleep 1; done"

	# Checksums just before the suspend (the stable files do not change until after it).
	(cd $omnt/stable && find . -type f -print0 | sort -z | xargs -0 sha256sum) > $IMG_TMP/stable.$fs.sha
	(cd $omnt/stable && find . | sort) > $IMG_TMP/stable.$fs.list
	check "$fs: origin suspended with lockfs (filesystem frozen)" dmsetup suspend "$o"
	local last
	last=$(tail -n 1 "$log")
	check "$fs: image created while the origin is suspended" image_create "$i" "$real" $store 8
	check "$fs: origin resumed" dmsetup resume "$o"
	note "$fs: writer had completed $last files at the suspend"
	check_eq "$fs: image state is valid" valid "$(image_field "$i" 4)"

	# Change the stable files on the origin after the point in time.
	head -c 5000 /dev/urandom > $omnt/stable/f1
	rm $omnt/stable/f2
	truncate -s 10 $omnt/stable/f3
	dd if=/dev/urandom of=$omnt/stable/sub/big bs=64K count=8 seek=10 conv=notrunc status=none
	echo new > $omnt/stable/new
	sync
	sleep 2

	case $fs in
	ext4) check "$fs: e2fsck -fn on the unmounted image is clean" e2fsck -fn "$idev" ;;
	xfs)
		# A frozen XFS keeps its metadata in the log (as with any block-level
		# snapshot): xfs_repair -n is meaningful only after the mount below has
		# replayed it. Here it must at least find the log, not a broken filesystem.
		xfs_repair -n "$idev" > $IMG_TMP/repair.out 2>&1 || true
		check "$fs: xfs_repair -n before log replay reports only the unreplayed log" \
			grep -q 'metadata changes in a log' $IMG_TMP/repair.out
		;;
	esac
	mkdir -p $imnt
	check "$fs: image mounted read-write" mount "${mount_opts[@]}" "$idev" $imnt
	at_exit "! mountpoint -q $imnt || umount $imnt"
	check "$fs: image files match the checksums from before the suspend" \
		sh -c "cd $imnt/stable && sha256sum --quiet -c $IMG_TMP/stable.$fs.sha"
	check_eq "$fs: image holds exactly the stable files of the point in time" \
		"$(cat $IMG_TMP/stable.$fs.list)" "$(cd $imnt/stable && find . | sort)"
	# Writer files: every one is a prefix of its content; those logged before the suspend are complete.
	local f n bad=0 complete=0
	for f in $imnt/busy/*; do
		[ -e "$f" ] || continue
		n=${f##*/}
		if ! cmp -s "$f" <(gen_content "$n" | head -c "$(stat -c %s "$f")"); then
			echo "#   $f is not a prefix of its content"
			bad=$((bad + 1))
		elif ((n <= last)); then
			cmp -s "$f" <(gen_content "$n") || { echo "#   $f (logged before suspend) is incomplete"; bad=$((bad + 1)); }
			complete=$((complete + 1))
		fi
	done
	check_eq "$fs: every writer file on the image is intact ($complete complete)" 0 $bad
	for ((n = last > 4 ? last - 2 : 1; n <= last; n++)); do
		# the last ones logged were not yet churned away
		check "$fs: writer file $n (logged before the suspend) is on the image" test -e $imnt/busy/$n
	done

	# The image is writable and its writes stay there.
	check "$fs: write a file on the image" sh -c "head -c 1000000 /dev/urandom > $imnt/image-only && sync"
	local isha
	isha=$(sha256sum < $imnt/image-only)
	check "$fs: the image's file is not on the origin" test ! -e $omnt/image-only
	kill $wpid
	wait $wpid || true
	check "$fs: image unmounted" umount $imnt
	case $fs in
	ext4) check "$fs: e2fsck -fn of the image after the rw mount is clean" e2fsck -fn "$idev" ;;
	xfs) check "$fs: xfs_repair -n of the image after the rw mount is clean" xfs_repair -n "$idev" ;;
	esac
	check "$fs: image mounted again" mount "${mount_opts[@]}" "$idev" $imnt
	check_eq "$fs: the image's own file survived" "$isha" "$(sha256sum < $imnt/image-only)"
	check "$fs: image unmounted again" umount $imnt
	check_eq "$fs: image state is still valid" valid "$(image_field "$i" 4)"
	check "$fs: image removed" dmsetup remove "$i"
	check_eq "$fs: origin state is '-' after the image is gone" - "$(status_field "$o" 5)"
	check "$fs: origin unmounted" umount $omnt
	case $fs in
	ext4) check "$fs: e2fsck -fn of the origin is clean" e2fsck -fn "$odev" ;;
	xfs) check "$fs: xfs_repair -n of the origin is clean" xfs_repair -n "$odev" ;;
	esac
}

run_fs ext4 /dev/vda
run_fs xfs /dev/vdb
