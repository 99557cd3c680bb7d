# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# tests/lib.sh: helpers shared by the integration tests in tests/integration/.
# Sourced, never run. The tests run as root in the guest of tests/vm/run.
#
#   die MSG...                    stop the test with an error (exit 1)
#   skip MSG...                   stop the test as skipped (exit 77)
#   note MSG...                   a comment line in the output
#   check DESC CMD...             CMD must succeed: "ok - DESC", else "not ok - DESC" and exit 1
#   check_eq DESC EXPECTED GOT    the two strings must be equal (both are shown on failure)
#   capture DESC CMD...           CMD must succeed; its standard output is left in $OUT
#   expect_fail DESC CMD...       CMD must fail; its stderr is kept in $FAIL_OUTPUT
#   expect_errno DESC TEXT CMD... CMD must fail with the strerror TEXT on stderr
#   at_exit CMD...                run CMD at exit, last registered first, even on failure;
#                                 a CMD that fails, or a device, loop device, mount or
#                                 scsi_debug left behind afterwards, fails the test
#   stop_bg PID                   (an at_exit CMD) kill PID if it still runs, wait for it
#   undo_attach DEV / undo_snapshot NAME / undo_loop DEV
#                                 (at_exit CMDs) blksnapctl detach / destroy, losetup -d,
#                                 when there is still something to undo
#   dm_create NAME TABLE          dmsetup create, removed again at exit
#   dm_reload NAME TABLE          suspend, load, resume
#   dev_sectors / dev_majmin DEV  the size of DEV in sectors / its "major:minor"
#   origin_table DEV [TBS [LEN]]  the table line of a blksnap-origin over DEV
#   origin_create NAME DEV [TBS]  a blksnap-origin over the whole of DEV, removed at exit
#   origin_status NAME            the INFO fields of the origin's status
#   status_field NAME N           INFO field N (1: tracking_block_sectors ... 5: state)
#   dm_message NAME ARGS...       dmsetup message NAME 0 ARGS...
#   cbt_take / cbt_changes / cbt_read / cbt_mark_dirty / cbt_reset NAME ARGS...
#   default_tracking_block SECTORS  the contract's default tracking block size
#   model_* (below)               the CBT model the kernel's answers are compared with
#   take_and_check NAME           cbt_take, and the answer and change_number match the model
#   check_changes NAME SINCE      cbt_changes SINCE equals the model's extents
#   check_map NAME [OFF COUNT]    cbt_read equals the model's snapshot map (default: all of it)
#   do_write / do_discard / do_zeroout DEV START SECTORS
#                                 I/O through DEV that is also recorded in the model
#   kmsg_mark / kmsg_since_mark   the kernel log lines written after the mark
#   kmsg_logged PATTERN           such a line matches PATTERN
#   wait_for SECONDS CMD...       CMD succeeds within SECONDS (polled every 0.5 s)
#   vm_crash                      end the guest now, as a power cut would: no sync, no
#                                 at_exit (tests/vm/run --boots boots the next guest)

if [ -z "${BLKSNAP_TOP:-}" ]; then
	BLKSNAP_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fi
export BLKSNAP_TOP
# No udevd in the guest: libdevmapper creates the /dev/mapper nodes itself.
export DM_DISABLE_UDEV=1

SECTOR=512
CBT_MAX_BLOCKS=2097152
CBT_MAX_CHANGE=255
UUID_RE='^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'

# ---- reporting --------------------------------------------------------------

die() {
	echo "error: $*" >&2
	exit 1
}

skip() {
	echo "skip: $*"
	exit 77
}

note() {
	echo "# $*"
}

check() { # check DESC CMD...
	local desc=$1
	shift
	if "$@"; then
		echo "ok - $desc"
	else
		echo "not ok - $desc"
		echo "#   failed: $*"
		exit 1
	fi
}

check_eq() { # check_eq DESC EXPECTED GOT
	if [ "$2" = "$3" ]; then
		echo "ok - $1"
	else
		echo "not ok - $1"
		echo "#   expected: '$2'"
		echo "#   got:      '$3'"
		exit 1
	fi
}

OUT=
capture() { # capture DESC CMD...
	local desc=$1
	shift
	if ! OUT=$("$@"); then
		echo "not ok - $desc"
		echo "#   failed: $*"
		exit 1
	fi
}

FAIL_OUTPUT=
expect_fail() { # expect_fail DESC CMD...
	local desc=$1
	shift
	if FAIL_OUTPUT=$("$@" 2>&1); then
		echo "not ok - $desc"
		echo "#   succeeded but should have failed: $*"
		[ -z "$FAIL_OUTPUT" ] || echo "#   output: $FAIL_OUTPUT"
		exit 1
	fi
	echo "ok - $desc"
	echo "$FAIL_OUTPUT" | sed -n '1s/^/#   /p'
}

expect_errno() { # expect_errno DESC STRERROR CMD...
	local desc=$1 text=$2
	shift 2
	if FAIL_OUTPUT=$("$@" 2>&1); then
		echo "not ok - $desc"
		echo "#   succeeded but should have failed with '$text': $*"
		exit 1
	fi
	if [[ $FAIL_OUTPUT != *"$text"* ]]; then
		echo "not ok - $desc"
		echo "#   failed, but not with '$text': $FAIL_OUTPUT"
		exit 1
	fi
	echo "ok - $desc"
}

# ---- cleanup ----------------------------------------------------------------

_at_exit=()

at_exit() { # at_exit CMD...: CMD is one shell word list, run with eval
	_at_exit+=("$*")
}

# What exists before the test: the teardown must leave no more than that.
_lib_state() { # _lib_state: dm devices, attached loop devices, mounts, scsi_debug
	dmsetup info -c --noheadings -o name 2> /dev/null | sed 's/^/dm device /'
	local l
	for l in /sys/block/loop*; do
		[ ! -e "$l/loop/backing_file" ] || echo "loop device /dev/${l##*/} ($(cat "$l/loop/backing_file"))"
	done
	awk '{ print "mount " $2 " (" $1 ", " $3 ")" }' /proc/self/mounts
	[ ! -e /sys/module/scsi_debug ] || echo "module scsi_debug"
}
if [ -z "${_lib_state_before+set}" ]; then
	_lib_state_before=$(_lib_state | sort)
fi

# A teardown that fails fails the test: each at_exit command must succeed
# (write them to undo only what is still there), and afterwards nothing the
# test set up may be left (a dm device still open, say, that dmsetup remove
# could not remove: EBUSY).
_run_at_exit() {
	local rc=$? i crc bad=0 out left
	set +e
	trap - EXIT INT TERM
	out=$(mktemp /tmp/at-exit.XXXXXX)
	for ((i = ${#_at_exit[@]} - 1; i >= 0; i--)); do
		eval "${_at_exit[i]}" > "$out" 2>&1
		crc=$?
		if [ $crc -ne 0 ]; then
			echo "not ok - teardown: '${_at_exit[i]}' failed (exit $crc)"
			sed -n '1,4s/^/#   /p' "$out"
			bad=1
		fi
	done
	# (no process substitution: the guest may have no /dev/fd)
	echo "$_lib_state_before" > "$out"
	left=$(_lib_state | sort | comm -13 "$out" -)
	rm -f "$out"
	if [ -n "$left" ]; then
		echo "not ok - teardown: the test left behind:"
		echo "$left" | sed 's/^/#   /'
		bad=1
	fi
	if [ $bad -eq 1 ] && { [ $rc -eq 0 ] || [ $rc -eq 77 ]; }; then
		rc=1
	fi
	exit $rc
}
trap _run_at_exit EXIT
trap 'exit 130' INT TERM

stop_bg() { # stop_bg PID: kill PID (and its children: a loop's dd) if it still runs, wait
	local kids i
	kids=$(pgrep -P "$1" 2> /dev/null) || true
	kill "$1" 2> /dev/null || return 0
	# shellcheck disable=SC2086
	[ -z "$kids" ] || kill $kids 2> /dev/null
	wait "$1" 2> /dev/null
	for ((i = 0; i < 300; i++)); do
		kill -0 "$1" 2> /dev/null || return 0
		sleep 0.1
	done
	echo "process $1 still runs 30 s after SIGTERM"
	return 1
}

# The undo_* helpers succeed when there is nothing (left) to undo, e.g. the
# test detached the device itself, and fail when the undo itself fails.
undo_attach() { # undo_attach DEV: detach DEV if it is attached (the tree's blksnapctl)
	local err
	err=$(blksnapctl detach "$1" 2>&1) && return 0
	case $err in *"no blksnap-origin on $1"*) return 0 ;; esac
	echo "$err"
	return 1
}

undo_snapshot() { # undo_snapshot NAME: destroy snapshot NAME if it exists
	local err
	err=$(blksnapctl destroy "$1" 2>&1) && return 0
	case $err in *"no snapshot named $1 "*) return 0 ;; esac
	echo "$err"
	return 1
}

undo_loop() { # undo_loop DEV: detach loop device DEV if it is attached
	[ -e "/sys/block/${1#/dev/}/loop/backing_file" ] || return 0
	losetup -d "$1"
}

_dm_remove() { # _dm_remove NAME: remove even a suspended device
	dmsetup info "$1" > /dev/null 2>&1 || return 0
	dmsetup resume "$1"
	dmsetup remove --retry "$1" || dmsetup remove --force "$1"
}

mount_at() { # mount_at DEV DIR [MOUNT_OPTIONS...]: mount, unmounted again at exit
	local dev=$1 dir=$2
	shift 2
	mkdir -p "$dir"
	mount "$@" "$dev" "$dir" || return
	at_exit "! mountpoint -q $dir || umount $dir"
}

# ---- device-mapper ----------------------------------------------------------

dm_create() { # dm_create NAME TABLE
	dmsetup create "$1" --table "$2" || return
	at_exit "_dm_remove $1"
}

dm_reload() { # dm_reload NAME TABLE
	dmsetup suspend "$1" &&
		{ dmsetup load "$1" --table "$2" || { dmsetup resume "$1"; return 1; }; } &&
		dmsetup resume "$1"
}

dev_sectors() { # dev_sectors DEV
	blockdev --getsz "$1"
}

dev_majmin() { # dev_majmin DEV: "major:minor", as dm prints a device
	local hex
	hex=$(stat -c '%t %T' "$1") || return
	printf '%d:%d\n' "0x${hex% *}" "0x${hex#* }"
}

origin_table() { # origin_table DEV [TBS [LEN]]
	local len=${3:-$(dev_sectors "$1")}
	if [ -n "${2:-}" ]; then
		echo "0 $len blksnap-origin $1 2 tracking_block_sectors $2"
	else
		echo "0 $len blksnap-origin $1"
	fi
}

origin_create() { # origin_create NAME DEV [TBS]
	dm_create "$1" "$(origin_table "$2" "${3:-}")"
}

# The status helpers split the line with bash itself: on the debug kernel
# under emulation every exec costs about half a second, and a test reads
# the status hundreds of times.
info_fields() { # info_fields SPEC LINE: fields N, N-M or N- of a status line's INFO part
	local spec=$1 from to i out=
	local -a f
	read -r -a f <<< "$2"
	f=("${f[@]:3}") # without "<start> <len> <target>"
	case $spec in
	*-) from=${spec%-} to=${#f[@]} ;;
	*-*) from=${spec%-*} to=${spec#*-} ;;
	*) from=$spec to=$spec ;;
	esac
	for ((i = from; i <= to && i <= ${#f[@]}; i++)); do
		out+=${out:+ }${f[i - 1]}
	done
	printf '%s\n' "$out"
}

origin_status() { # origin_status NAME: the INFO fields, without "<start> <len> <target>"
	local l
	l=$(dmsetup status "$1") || return
	info_fields 1- "$l"
}

status_field() { # status_field NAME N; field 5 (state) includes its argument
	local l
	l=$(dmsetup status "$1") || return
	if [ "$2" -eq 5 ]; then
		info_fields 5- "$l"
	else
		info_fields "$2" "$l"
	fi
}

dm_message() { # dm_message NAME ARGS...
	local name=$1
	shift
	dmsetup message -- "$name" 0 "$@" # "--": a message word may start with "-"
}

cbt_take() { dm_message "$1" cbt_take; }
cbt_reset() { dm_message "$1" cbt_reset; }
cbt_changes() { dm_message "$1" cbt_changes "$2"; }
cbt_read() { dm_message "$1" cbt_read "$2" "$3"; }
cbt_mark_dirty() { dm_message "$1" cbt_mark_dirty "$2" "$3"; }

is_uuid() { [[ $1 =~ $UUID_RE ]]; }

require_target() { # require_target NAME: the module must provide it
	dmsetup targets | grep -qw "$1" || die "target $1 is not registered"
}

# The contract's default: the smallest power of two >= 128 sectors that keeps
# the number of tracking blocks <= 2,097,152.
default_tracking_block() { # default_tracking_block SECTORS
	local tbs=128
	while (((${1} + tbs - 1) / tbs > CBT_MAX_BLOCKS)); do
		tbs=$((tbs * 2))
	done
	echo $tbs
}

# ---- the CBT model ----------------------------------------------------------
#
# The contract, played in bash: one value per tracking block in the active
# map (M_ACTIVE) and the snapshot map (M_SNAP), both sparse arrays in which an
# unset element is 0, and the change number M_C. The kernel's answers are
# compared with what these functions compute.

model_init() { # model_init DEVICE_SECTORS TRACKING_BLOCK_SECTORS
	M_SIZE=$1
	M_TBS=$2
	M_BLOCKS=$(((M_SIZE + M_TBS - 1) / M_TBS))
	M_C=1
	M_ACTIVE=()
	M_SNAP=()
	M_LAST_TAKE=0
}

model_new_generation() {
	M_ACTIVE=()
	M_SNAP=()
	M_C=1
}

model_write() { # model_write START SECTORS: a write, discard or write-zeroes
	local b
	for ((b = $1 / M_TBS; b <= ($1 + $2 - 1) / M_TBS; b++)); do
		M_ACTIVE[b]=$M_C
	done
}

model_mark_dirty() { # model_mark_dirty START SECTORS
	local b
	for ((b = $1 / M_TBS; b <= ($1 + $2 - 1) / M_TBS; b++)); do
		M_ACTIVE[b]=$M_C
		M_SNAP[b]=$M_LAST_TAKE
	done
}

model_take() { # model_take: the snapshot number is left in M_LAST_TAKE
	local b
	if ((M_C == CBT_MAX_CHANGE)); then
		model_new_generation
	fi
	M_SNAP=()
	for b in "${!M_ACTIVE[@]}"; do
		M_SNAP[b]=${M_ACTIVE[b]}
	done
	M_LAST_TAKE=$M_C
	M_C=$((M_C + 1))
}

model_reset() {
	model_new_generation
}

# Appends to the caller's array "words": a command substitution per extent
# cost 15 s for 3000 extents in the guest (a fork each).
_model_extent() { # _model_extent FIRST LAST: blocks as "<start>+<sectors>", clipped
	local start=$(($1 * M_TBS)) end=$((($2 + 1) * M_TBS))
	((end <= M_SIZE)) || end=$M_SIZE
	words+=("$start+$((end - start))")
}

model_changes() { # model_changes SINCE: the expected cbt_changes answer
	local b first=-1 prev=-2 words=()
	for b in "${!M_SNAP[@]}"; do
		((M_SNAP[b] > $1)) || continue
		if ((b != prev + 1)); then
			((first < 0)) || _model_extent "$first" "$prev"
			first=$b
		fi
		prev=$b
	done
	((first < 0)) || _model_extent "$first" "$prev"
	echo "${words[*]}"
}

model_read() { # model_read OFFSET COUNT: the expected cbt_read answer
	local b values=()
	for ((b = $1; b < $1 + $2; b++)); do
		values+=("${M_SNAP[b]:-0}")
	done
	((${#values[@]} == 0)) || printf '%02x' "${values[@]}"
	echo
}

# ---- the kernel compared with the model -------------------------------------

take_and_check() { # take_and_check NAME
	model_take
	capture "cbt_take on $1" cbt_take "$1"
	check_eq "cbt_take returns snapshot number $M_LAST_TAKE" "$M_LAST_TAKE" "$OUT"
	check_eq "change_number is $M_C after the take" "$M_C" "$(status_field "$1" 4)"
}

check_changes() { # check_changes NAME SINCE
	capture "cbt_changes $2 on $1" cbt_changes "$1" "$2"
	check_eq "cbt_changes $2 lists the model's extents" "$(model_changes "$2")" "$OUT"
	note "cbt_changes $2: ${OUT:-(none)}"
}

check_map() { # check_map NAME [OFFSET COUNT]
	local off=${2:-0} count=${3:-$M_BLOCKS}
	capture "cbt_read $off $count on $1" cbt_read "$1" "$off" "$count"
	check_eq "cbt_read $off $count equals the model's snapshot map" \
		"$(model_read "$off" "$count")" "$OUT"
}

# ---- persistent CBT ------------------------------------------------------------

wait_for() { # wait_for SECONDS CMD...: CMD succeeds within SECONDS
	local end=$(($(date +%s) + $1))
	shift
	until "$@"; do
		[ "$(date +%s)" -lt $end ] || return 1
		sleep 0.5
	done
}

pcbt_words() { # pcbt_words NAME: "pcbt=<mode> why=<reason>", the status line's last two words
	local -a f
	read -r -a f <<< "$(dmsetup status "$1")"
	echo "${f[*]: -2}"
}

model_save() { # model_save FILE: the model, for a later boot to source
	declare -p M_SIZE M_TBS M_BLOCKS M_C M_ACTIVE M_SNAP M_LAST_TAKE |
		sed 's/^declare -\(-\)\{0,1\}\([a-zA-Z]*\)/declare -g\2/' > "$1"
}

# After a crash: every block the model has changed is changed in the
# kernel's snapshot map too (kernel >= model, entry by entry), and the
# over-reports lie in at most MAX regions (4064 tracking blocks each).
check_covers() { # check_covers NAME DESC MAX
	local b k m over=0 lost=0 region=4064
	local -A regions=()
	capture "cbt_read of the whole map" cbt_read "$1" 0 "$M_BLOCKS"
	for ((b = 0; b < M_BLOCKS; b++)); do
		k=$((16#${OUT:2*b:2}))
		m=${M_SNAP[b]:-0}
		if ((k < m)); then
			lost=$((lost + 1))
		elif ((k > m)); then
			over=$((over + 1))
			regions[$((b / region))]=1
		fi
	done
	check_eq "$2: no block the model changed is missing" 0 $lost
	note "$2: $over blocks over-reported in ${#regions[@]} regions"
	check "$2: over-reports in at most $3 regions" test ${#regions[@]} -le "$3"
}

# ---- I/O recorded in the model ----------------------------------------------

do_write() { # do_write DEV START SECTORS: random data, direct I/O
	dd if=/dev/urandom of="$1" bs=1M count=$(($3 * SECTOR)) \
		seek=$(($2 * SECTOR)) iflag=count_bytes,fullblock \
		oflag=direct,seek_bytes conv=notrunc status=none || return
	model_write "$2" "$3"
}

do_discard() { # do_discard DEV START SECTORS
	blkdiscard -o $(($2 * SECTOR)) -l $(($3 * SECTOR)) "$1" || return
	model_write "$2" "$3"
}

do_zeroout() { # do_zeroout DEV START SECTORS: write-zeroes (BLKZEROOUT)
	blkdiscard -z -o $(($2 * SECTOR)) -l $(($3 * SECTOR)) "$1" || return
	model_write "$2" "$3"
}

# ---- the kernel log ---------------------------------------------------------

_kmsg_mark=0
kmsg_mark() {
	_kmsg_mark=$(dmesg | wc -l)
}

kmsg_since_mark() {
	dmesg | tail -n +$((_kmsg_mark + 1))
}

kmsg_logged() { # kmsg_logged PATTERN: a line since the mark matches (grep -i)
	kmsg_since_mark | grep -qi -- "$1"
}

vm_crash() { # vm_crash: the guest ends now; what is not on the disks is lost
	: > "$VM_OUT/crash" || die "cannot tell the harness about the crash"
	echo b > /proc/sysrq-trigger
	sleep 60
	die "the guest is still running after sysrq-b"
}
