#!/bin/bash
# a store that stops answering (a suspended dm device): status and messages stay answerable, origin writes waiting on a copy complete once copy_timeout fails the snapshot, and the image can be removed once the store answers again
# vm: --disks 2 --disk-size 64M --timeout 600
# lanes: debug
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"

real=/dev/vda
sdisk=/dev/vdb
origin=/dev/mapper/ssorig
image=/dev/mapper/ssimg
size=$(blockdev --getsize64 $real)
require_target blksnap-image
modprobe dm-linear 2> /dev/null || true

# A hang here lasts until the test resumes the store; the bound only has
# to tell that from a slow guest (a debug-kernel guest starved by two
# others once took 27 s to get a dmsetup call into the kernel).
answer_s=30
answers() { # answers CMD...: CMD returns within $answer_s s
	timeout $answer_s "$@" > /dev/null
}
wait_gone() { # wait_gone PID SECONDS: the process ends within SECONDS
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		kill -0 "$1" 2> /dev/null || return 0
		sleep 0.1
	done
	return 1
}

pre=$IMG_TMP/pre model=$IMG_TMP/model
check "origin filled with random data" fill_random $real $pre "$size"
cp $pre $model
check "blksnap-origin over $real" origin_create ssorig $real
check "store: dm-linear over $sdisk" linear_create ssstore $sdisk 0 "$(dev_sectors $sdisk)"
check "blksnap-image with 4 KiB chunks, copy_timeout 5" image_create ssimg $real /dev/mapper/ssstore 8 copy_timeout 5
check "origin: 64 KiB written (copies reach the store)" model_dd $origin $model 0 $((64 << 10)) direct
check_eq "16 chunks copied" 16 "$(image_field ssimg 3)"

kmsg_mark
check "store suspended: its I/O is held" dmsetup suspend --nolockfs ssstore
at_exit "dmsetup resume ssstore || true" # a failed check must not leave the removals hanging
t0=$(date +%s)
model_dd $origin $model $((1 << 20)) 4096 direct &
writer=$!
sleep 1
check "the origin write waits for its copy" kill -0 $writer
check "image status answers during the stall" answers dmsetup status ssimg
# Removing the image closes the origin's write gate behind that write: a
# status that waited for the gate's lock would hang with it.
dmsetup remove ssimg &
remover=$!
sleep 1
check "origin status answers during the stall" answers dmsetup status ssorig
check "cbt_changes answers during the stall" answers dmsetup message ssorig 0 cbt_changes 0
check "cbt_take answers (EBUSY) during the stall" \
	sh -c "timeout $answer_s dmsetup message ssorig 0 cbt_take 2> /dev/null; [ \$? -ne 124 ]"
check "the origin write completes within copy_timeout + $answer_s s" wait_gone $writer $((5 + answer_s))
check "the origin write succeeded" wait $writer
note "the origin write took $(($(date +%s) - t0)) s"
check "the log names the timeout" kmsg_logged "did not end within copy_timeout"
check "origin writes pass at once now" timeout $answer_s dd if=/dev/urandom of=$origin bs=4096 count=16 seek=1000 oflag=direct status=none
dd if=$origin of=$model bs=4096 count=16 skip=1000 seek=1000 iflag=direct conv=notrunc status=none
check "the image removal still waits for the store's copy" kill -0 $remover
check "origin status still answers" answers dmsetup status ssorig
check "store resumed" dmsetup resume ssstore
check "the image removal ends once the store answers" wait_gone $remover 60
check "image removal succeeded" wait $remover
check_eq "origin state is '-'" - "$(status_field ssorig 5)"
check_same "origin equals the model (nothing lost)" $origin $model 4096
check_same "real device equals the model" $real $model 4096

# --- (b) a merge whose copy the store holds, and the image removed then ------
# The merge copy of chunk 5 reads the suspended store; copy_timeout fails
# the merge. Removing the image must not let an origin write to chunk 5 go
# on while that copy may still write the real device behind it: the write
# fails (the chunk is not merged) until the copy has ended.
c5=$IMG_TMP/chunk5
file_read $model $((5 << 12)) 4096 > $c5
check "blksnap-image again, copy_timeout 5" image_create ssimg $real /dev/mapper/ssstore 8 copy_timeout 5
check "origin: chunk 5 overwritten (copied)" model_dd $origin $model $((5 << 12)) 4096 direct
check "store suspended" dmsetup suspend --nolockfs ssstore
at_exit "dmsetup resume ssstore || true" # a failed check must not leave the removals hanging
check "merge started" dm_message ssorig merge
ok=0
for _ in $(seq 300); do
	case $(status_field ssorig 5) in merge_failed*) ok=1; break ;; esac
	sleep 0.1
done
check "the merge fails once its copy exceeds copy_timeout ($(status_field ssorig 5))" test $ok -eq 1
dmsetup remove ssimg &
remover=$!
sleep 1
check "the image removal waits for the merge copy the store holds" kill -0 $remover
pat=$IMG_TMP/pat5
head -c 4096 /dev/urandom > $pat
expect_errno "an origin write to the unmerged chunk fails meanwhile" "Input/output error" \
	dd if=$pat of=$origin bs=4096 count=1 seek=5 oflag=direct status=none
check "store resumed" dmsetup resume ssstore
check "the image removal ends" wait_gone $remover 60
check "image removal succeeded" wait $remover
check "chunk 5 holds the image's data (the merge copy ended)" cmp $c5 <(dev_read $origin $((5 << 12)) 4096)
dd if=$c5 of=$model bs=4096 seek=5 conv=notrunc status=none
check "origin: chunk 5 written again" model_dd $origin $model $((5 << 12)) 4096 direct
check_same "origin equals the model" $origin $model 4096
check_eq "origin state says the merge failed" "merge_failed 0/1" "$(status_field ssorig 5)"

# --- (c) a merge that starts while an image write's copy is held --------------
# While the merge waits for that copy, its progress must not read as done
# (0/0 would tell userspace to remove the image). Each step waits for the
# kernel's state, not for a sleep: on a loaded host a process can take
# seconds to start.
check "blksnap-image again, copy_timeout 10" image_create ssimg $real /dev/mapper/ssstore 8 copy_timeout 10
check "store suspended" dmsetup suspend --nolockfs ssstore
at_exit "dmsetup resume ssstore || true" # a failed check must not leave the removals hanging
used0=$(image_used ssimg)
# Half a chunk: a write of whole chunks needs no copy (it would go to the
# store at once, and the merge would wait for it as image I/O: merge-safety).
dd if=$pat of=$image bs=2048 count=1 seek=18 oflag=direct status=none &
iw=$!
ok=0
for _ in $(seq 100); do
	[ "$(image_used ssimg)" = "$used0" ] || { ok=1; break; }
	sleep 0.1
done
check "the image write's copy holds store space (it started)" test $ok -eq 1
dmsetup message ssorig 0 merge &
merger=$!
# The state reads "snap" until the message reaches the kernel: wait for
# the merge's own state (the background dmsetup may start late).
st=-
for _ in $(seq 100); do
	st=$(status_field ssorig 5)
	case $st in merge*) break ;; esac
	sleep 0.1
done
note "origin state while the merge waits for the copy: $st"
check "the merge does not read as done while it starts ($st)" \
	sh -c "case '$st' in 'merge '*) d='${st#merge }'; [ \"\${d%/*}\" != \"\${d#*/}\" ] ;; *) exit 1 ;; esac"
rc=0
wait $merger || rc=$?
check "the merge message fails once the copy exceeds copy_timeout (exit $rc)" test $rc -ne 0
check "store resumed" dmsetup resume ssstore
wait $iw || true
check "image removed" dmsetup remove ssimg
check_same "origin equals the model" $origin $model 4096
