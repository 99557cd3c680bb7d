#!/bin/bash
# persistent CBT: the generation and maps survive a table removal after cbt_close, a clean reboot and a power cut (every block written before the cut reads as changed); detach, replaced, another device's id, a bad checksum and a stalled metadata device start a new generation and say why
# vm: --disks 2 --disk-size 64M --boots 3 --timeout 600
# lanes: 6.1
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"

real=/dev/vda
mdisk=/dev/vdb
origin=/dev/mapper/pc
meta_tool=$BLKSNAP_TOP/build/tools/cbt-meta
state=$VM_OUT/cbt-persist
size=$(dev_sectors $real)
tbs=8 # 4 KiB tracking blocks: 16384 of them, 5 regions of 4064
require_target blksnap-origin
mkdir -p "$state"

ptable() { # ptable METADATA_DEV ID
	echo "0 $size blksnap-origin $real 6 tracking_block_sectors $tbs metadata $1 metadata_id $2"
}
pcreate() { dm_create pc "$(ptable "${1:-$mdisk}" "${2:-disk-a}")"; }
pcbt() { pcbt_words pc; }
save_model() { model_save "$state/model"; }
load_model() { . "$state/model"; }
writes() { # writes N [BLOCKS]: N random direct writes of 1-16 blocks below BLOCKS, in the model
	local i below=${2:-$M_BLOCKS}
	for ((i = 0; i < $1; i++)); do
		do_write $origin $(((RANDOM * 32768 + RANDOM) % (below - 16) * tbs)) $(((RANDOM % 16 + 1) * tbs))
	done
}
continues() { # continues GEN WHEN: generation GEN and the maps continue after WHEN
	check_eq "the generation continues: why=-" "pcbt=ok why=-" "$(pcbt)"
	check_eq "same generation $2" "$1" "$(status_field pc 3)"
	check_eq "change number $M_C" "$M_C" "$(status_field pc 4)"
	check_changes pc 1
	check_changes pc 2
	check_map pc
	take_and_check pc
	check_changes pc 2
	check_changes pc 3
}
case ${VM_BOOT:-} in
1)
	check "metadata formatted" $meta_tool format $mdisk "$size" $tbs disk-a
	gen=$($meta_tool sb $mdisk | sed 's/.*gen=//')
	check "blksnap-origin with metadata" pcreate
	check_eq "a fresh format starts a generation: why=new" "pcbt=ok why=new" "$(pcbt)"
	check_eq "the generation is the format's" "$gen" "$(status_field pc 3)"
	check_eq "the table shows the options" \
		"$real 6 tracking_block_sectors $tbs metadata $(dev_majmin $mdisk) metadata_id disk-a" \
		"$(dmsetup table pc | cut -d' ' -f4- | sed "s|^$(dev_majmin $real)|$real|")"
	model_init "$size" $tbs
	writes 20
	take_and_check pc
	writes 20
	do_discard $origin $((100 * tbs)) $((4 * tbs))
	do_zeroout $origin $((9000 * tbs)) $((3 * tbs))
	check "cbt_mark_dirty 0 8" cbt_mark_dirty pc 0 8
	model_mark_dirty 0 8
	take_and_check pc
	writes 10
	check "cbt_close" dm_message pc cbt_close
	check_eq "metadata superblock closed" closed "$($meta_tool sb $mdisk | sed 's/.* state=\([a-z]*\).*/\1/')"
	check "origin removed" dmsetup remove pc
	check "origin created again" pcreate
	continues "$gen" "after the removal"

	# A write after cbt_close reopens the metadata: a removal then is one
	# without a close.
	check "cbt_close" dm_message pc cbt_close
	do_write $origin 0 8
	check_eq "a write after cbt_close reopens the metadata" open \
		"$($meta_tool sb $mdisk | sed 's/.* state=\([a-z]*\).*/\1/')"
	# Removed without cbt_close: another table may write it now.
	check "origin removed without cbt_close" dmsetup remove pc
	check "origin created again" pcreate
	check_eq "a removal without cbt_close: why=replaced" "pcbt=ok why=replaced" "$(pcbt)"
	check "a new generation" test "$(status_field pc 3)" != "$gen"
	check_eq "change number 1" 1 "$(status_field pc 4)"
	model_init "$size" $tbs
	writes 20
	take_and_check pc
	writes 20
	take_and_check pc
	writes 20
	status_field pc 3 > "$state/gen"
	save_model
	check "cbt_close before the reboot" dm_message pc cbt_close
	check "origin removed (shutdown)" dmsetup remove pc
	;;
2)
	load_model
	check "blksnap-origin after a clean reboot" pcreate
	continues "$(cat "$state/gen")" "after the reboot"
	check_map pc
	# Writes, a take, writes, and a power cut with no sync and no close.
	writes 30
	take_and_check pc
	# Only in regions 0 and 1 (blocks below 8128): the other three must
	# come back exact.
	writes 40 8000
	model_take # what the next boot's take will show
	save_model
	note "crashing the guest (sysrq-b)"
	vm_crash
	;;
3)
	load_model
	check "blksnap-origin after a power cut" pcreate
	check_eq "the generation continues after a crash: why=-" "pcbt=ok why=-" "$(pcbt)"
	check_eq "same generation after the crash" "$(cat "$state/gen")" "$(status_field pc 3)"
	capture "cbt_take after the crash" cbt_take pc
	check_eq "the take after the crash is number $M_LAST_TAKE" "$M_LAST_TAKE" "$OUT"
	check_covers pc "after the power cut" 2

	# Detached by intent: untracked writes follow.
	check "cbt_detach" dm_message pc cbt_detach
	check_eq "status says detached" "pcbt=detached why=-" "$(pcbt)"
	check "origin removed" dmsetup remove pc
	dd if=/dev/urandom of=$real bs=4096 count=1 seek=7 oflag=direct status=none
	check "origin created again" pcreate
	check_eq "after cbt_detach: why=detached" "pcbt=ok why=detached" "$(pcbt)"

	# The metadata of another device's identity.
	check "cbt_close" dm_message pc cbt_close
	check "origin removed" dmsetup remove pc
	check "origin with another metadata_id" pcreate $mdisk disk-b
	check_eq "another identity: why=device" "pcbt=ok why=device" "$(pcbt)"

	# A map block that does not verify (not in a region with intent).
	model_init "$size" $tbs
	writes 10
	take_and_check pc
	check "cbt_close" dm_message pc cbt_close
	check "origin removed" dmsetup remove pc
	active=$($meta_tool layout "$size" $tbs | sed 's/.*active=\([0-9]*\).*/\1/')
	printf '\xff' | dd of=$mdisk bs=1 seek=$((active * 4096 + 100)) conv=notrunc status=none
	check "origin created again" pcreate $mdisk disk-b
	check_eq "a bad map block: why=checksum" "pcbt=ok why=checksum" "$(pcbt)"
	check "cbt_close" dm_message pc cbt_close
	check "origin removed" dmsetup remove pc

	# Refusals.
	expect_fail "metadata without metadata_id" dm_create pc \
		"0 $size blksnap-origin $real 2 metadata $mdisk"
	expect_fail "the real device as metadata" dm_create pc "$(ptable $real disk-b)"
	dd if=/dev/zero of=$mdisk bs=4096 count=2 oflag=direct status=none
	expect_fail "unformatted metadata" dm_create pc "$(ptable $mdisk disk-b)"
	check "metadata formatted again" $meta_tool format $mdisk "$size" $tbs disk-b
	check "origin created" pcreate $mdisk disk-b
	expect_fail "a reload that names no metadata" dm_reload pc "$(origin_table $real $tbs)"
	check "a dm-linear over the real device" dm_create pcl "0 $size linear $real 0"
	expect_fail "another origin as metadata" dm_create pc2 \
		"0 $size blksnap-origin /dev/mapper/pcl 6 tracking_block_sectors $tbs metadata $origin metadata_id disk-c"
	expect_fail "a second origin on the same metadata" dm_create pc2 \
		"0 $size blksnap-origin /dev/mapper/pcl 6 tracking_block_sectors $tbs metadata $mdisk metadata_id disk-c"
	check "dm-linear removed" dmsetup remove pcl
	check "cbt_close" dm_message pc cbt_close
	check "origin removed" dmsetup remove pc

	# A metadata device that stops answering: writes go on once
	# metadata_timeout ends persistence, and the next load says so.
	echo 5 > /sys/module/dm_blksnap/parameters/metadata_timeout
	check "metadata on dm-linear" dm_create pcmeta "0 $(dev_sectors $mdisk) linear $mdisk 0"
	check "metadata formatted" $meta_tool format /dev/mapper/pcmeta "$size" $tbs disk-a
	check "origin on it" pcreate /dev/mapper/pcmeta disk-a
	check "metadata suspended" dmsetup suspend --noflush --nolockfs pcmeta
	at_exit "dmsetup resume pcmeta || true"
	t0=$SECONDS
	check "an origin write completes" timeout 60 dd if=/dev/urandom of=$origin bs=4096 count=1 seek=5000 oflag=direct status=none
	note "the write took $((SECONDS - t0)) s"
	check "within metadata_timeout + 10 s" test $((SECONDS - t0)) -le 15
	check_eq "status says failed" "pcbt=failed why=new" "$(pcbt)"
	check "writes pass at once now" timeout 5 dd if=/dev/urandom of=$origin bs=4096 count=1 seek=9000 oflag=direct status=none
	check "metadata resumed" dmsetup resume pcmeta
	check "origin removed" dmsetup remove pc
	check "origin created again" pcreate /dev/mapper/pcmeta disk-a
	check_eq "after a failed metadata device: why=failed" "pcbt=ok why=failed" "$(pcbt)"
	check "origin removed" dmsetup remove pc
	check "metadata removed" dmsetup remove pcmeta
	echo 60 > /sys/module/dm_blksnap/parameters/metadata_timeout
	;;
*) die "VM_BOOT is '${VM_BOOT:-}': not run by tests/vm/run --boots" ;;
esac
