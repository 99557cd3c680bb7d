# SPDX-License-Identifier: GPL-2.0
#
# tests/image-lib.sh: helpers for the blksnap-image tests
# (tests/integration/image-*.sh). Sourced after tests/lib.sh, never run.
#
#   image_table REAL STORE CHUNK [OPT...]   the table line of a blksnap-image over REAL
#   image_create NAME REAL STORE CHUNK [OPT...]  create it (snapshot taken), removed at exit
#   image_field NAME N            INFO field N (1: used/store, 2: chunk, 3: copied, 4: state)
#   image_used / image_store_sectors NAME   the two halves of field 1
#   dm_events NAME                the device's dm event counter
#   linear_create NAME DEV START LEN [DEV START LEN]...  dm-linear segments, removed at exit
#   scsi_debug_load [ARGS...]     load scsi_debug with ARGS (unloaded at exit); 1 if it cannot
#   scsi_debug_disk               its disk's name (sdX), once the node exists; empty if none
#   fill_random DEV MODEL BYTES   random data on DEV from byte 0, also saved in MODEL
#   model_dd DEV MODEL OFF LEN [direct]  LEN random bytes at byte OFF of DEV and MODEL
#   dev_read DEV [OFF LEN]        DEV's bytes (direct I/O when 512-aligned) to stdout
#   file_read FILE [OFF LEN]      the same for a file
#   dev_sha DEV [OFF LEN]         sha256 of DEV's bytes
#   check_same DESC DEV MODEL CHUNK_BYTES [OFF LEN]
#                                 DEV equals MODEL (byte range OFF..OFF+LEN); on a
#                                 difference, names the first byte and the chunks

# The guest has no udevd, so /dev/fd may be missing; process substitution
# (cmp <(...) <(...)) needs it.
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd

# Scratch files live in the guest's tmpfs; removed at exit.
IMG_TMP=$(mktemp -d /tmp/image-test.XXXXXX)
at_exit "rm -rf $IMG_TMP"

# check_same's compare (tests/tools/devcmp.c, built by make tools): under
# software emulation, pipes made "cmp <(dd) <(dd)" several times slower.
DEVCMP=$BLKSNAP_TOP/build/tools/devcmp
[ -x "$DEVCMP" ] || { echo "not ok - $DEVCMP is missing: run make tools"; exit 1; }

image_table() { # image_table REAL STORE CHUNK [OPT...]
	local real=$1 store=$2 chunk=$3
	shift 3
	local opts=""
	[ $# -eq 0 ] || opts=" $# $*"
	echo "0 $(dev_sectors "$real") blksnap-image $real $store $chunk$opts"
}

image_create() { # image_create NAME REAL STORE CHUNK [OPT...]
	local name=$1
	shift
	dm_create "$name" "$(image_table "$@")"
}

image_field() { # image_field NAME N (or N-M): the image's INFO fields
	local l
	l=$(dmsetup status "$1") || return
	info_fields "$2" "$l"
}

image_used() { local u; u=$(image_field "$1" 1) || return; echo "${u%/*}"; }
image_store_sectors() { local u; u=$(image_field "$1" 1) || return; echo "${u#*/}"; }

dm_events() { # dm_events NAME
	local e
	e=$(dmsetup info -c --noheadings -o events "$1") || return
	echo "${e// /}"
}

linear_create() { # linear_create NAME DEV START LEN [DEV START LEN]...
	local name=$1 table="" at=0
	shift
	while [ $# -ge 3 ]; do
		table+="$at $3 linear $1 $2"$'\n'
		at=$((at + $3))
		shift 3
	done
	printf '%s' "$table" | dmsetup create "$name" || return
	at_exit "_dm_remove $name"
}

scsi_debug_load() { # scsi_debug_load [MODULE_ARGS...]: load scsi_debug (unloaded at exit)
	# No udevd in the guest: the SCSI disk driver is loaded by hand.
	modprobe sd_mod 2> /dev/null && modprobe scsi_debug "$@" 2> /dev/null || return 1
	at_exit "[ ! -e /sys/module/scsi_debug ] || modprobe -r scsi_debug"
}

scsi_debug_disk() { # scsi_debug_disk: the scsi_debug disk's name (sdX), waited for; empty if none
	local sd= b
	for _ in $(seq 100); do
		for b in /sys/block/sd*; do
			[ -e "$b/device/model" ] && grep -q scsi_debug "$b/device/model" && sd=${b##*/}
		done
		[ -n "$sd" ] && [ -b "/dev/$sd" ] && break
		sleep 0.2
	done
	echo "$sd"
}

fill_random() { # fill_random DEV MODEL BYTES
	head -c "$3" /dev/urandom > "$2" &&
		dd if="$2" of="$1" bs=1M oflag=direct conv=fsync,notrunc status=none
}

model_dd() { # model_dd DEV MODEL OFF LEN [direct]
	local dev=$1 model=$2 off=$3 len=$4 flags=seek_bytes conv=notrunc
	local buf=$IMG_TMP/dd.$BASHPID
	head -c "$len" /dev/urandom > "$buf" || return
	if [ "${5:-}" = direct ]; then
		flags+=,direct
	else
		conv+=,fsync
	fi
	dd if="$buf" of="$dev" bs="$len" count=1 seek="$off" oflag=$flags \
		conv=$conv status=none || return
	dd if="$buf" of="$model" bs="$len" count=1 seek="$off" oflag=seek_bytes \
		conv=notrunc status=none
}

_read_range() { # _read_range FILE IFLAGS [OFF LEN]
	local f=$1 iflag=$2 off=${3:-0} len=${4:-}
	if [ -z "$len" ]; then
		len=$(($(blockdev --getsize64 "$f" 2> /dev/null || stat -c %s "$f") - off))
	fi
	if ((off % 512 || len % 512)); then
		iflag=""
	fi
	dd if="$f" bs=1M skip="$off" count="$len" status=none \
		iflag=skip_bytes,count_bytes,fullblock${iflag:+,$iflag}
}

dev_read() { _read_range "$1" direct "${2:-0}" "${3:-}"; }
file_read() { _read_range "$1" "" "${2:-0}" "${3:-}"; }

dev_sha() { # dev_sha DEV [OFF LEN]
	dev_read "$@" | sha256sum | cut -d' ' -f1
}

# The chunks (CHUNK_BYTES each, counted from OFF) in which A and B differ,
# as "<count> differing chunk(s): <first few>".
_diff_chunks() { # _diff_chunks A B CHUNK_BYTES OFF
	cmp -l "$1" "$2" 2> /dev/null | head -n 4000000 |
		awk -v cs="$3" -v off="$4" '{ c = int(($1 - 1) / cs); if (!(c in seen)) { seen[c] = 1; n++; if (n <= 8) l = l " " (c + int(off / cs)) } }
			END { printf "%d differing chunk(s) (of %d bytes, counted from 0):%s%s\n", n, cs, l, (n > 8 ? " ..." : "") }'
}

# The chunk at byte OFF (LEN bytes) of FILE, as a short sha256.
_chunk_sha() { # _chunk_sha FILE OFF LEN
	local iflag=""
	[ ! -b "$1" ] || iflag=direct
	_read_range "$1" "$iflag" "$2" "$3" | sha256sum | cut -c1-12
}

# On a difference, check_same names the first differing byte and chunks, says
# whether a second read gives the same answer (a race or a lasting error), and
# shows the first differing chunks next to $CHECK_SAME_ALT (e.g. the origin,
# to see whether an image shows data written after its point in time).
check_same() { # check_same DESC DEV MODEL CHUNK_BYTES [OFF LEN]
	local desc=$1 dev=$2 model=$3 cs=$4 off=${5:-0} len=${6:-}
	if "$DEVCMP" "$dev" "$model" "$off" ${len:+"$len"} > /dev/null; then
		echo "ok - $desc"
		return 0
	fi
	echo "not ok - $desc"
	echo "#   $dev differs from $model (bytes $off..+${len:-end}, chunks of $cs bytes):"
	echo "#   $(cmp <(dev_read "$dev" "$off" "$len") <(file_read "$model" "$off" "$len") 2>&1 | head -n 1)"
	local diff
	diff=$(_diff_chunks <(dev_read "$dev" "$off" "$len") <(file_read "$model" "$off" "$len") "$cs" "$off")
	echo "#   $diff"
	if cmp -s <(dev_read "$dev" "$off" "$len") <(file_read "$model" "$off" "$len"); then
		echo "#   a third read of $dev equals the model: the difference was transient"
	else
		echo "#   a third read of $dev still differs"
	fi
	local c
	for c in $(echo "$diff" | sed 's/.*counted from 0)://; s/\.\.\.//'); do
		echo "#   chunk $c: $dev $(_chunk_sha "$dev" $((c * cs)) "$cs"), model $(_chunk_sha "$model" $((c * cs)) "$cs")${CHECK_SAME_ALT:+, $CHECK_SAME_ALT $(_chunk_sha "$CHECK_SAME_ALT" $((c * cs)) "$cs")}"
	done
	exit 1
}

# The kernel log after kmsg_mark must hold no report (the harness also checks).
check_no_kernel_report() { # check_no_kernel_report DESC
	local bad
	bad=$(kmsg_since_mark | grep -E 'WARNING|BUG|Oops|general protection|hung_task|blocked for more than|KASAN' || true)
	if [ -n "$bad" ]; then
		echo "not ok - $1"
		echo "$bad" | head -n 20 | sed 's/^/#   /'
		exit 1
	fi
	echo "ok - $1"
}

# fio's --output file may start with warnings before the JSON document.
fio_json() { # fio_json FILE JQ_FILTER
	sed -n '/^{/,$p' "$1" | jq "$2"
}

# ---- cgroup v2 I/O throttles (slow readers and writers) ---------------------
#
#   cg_throttle NAME DEV LIMITS   a cgroup whose I/O to DEV is limited by io.max
#                                 LIMITS (e.g. "rbps=4096"), removed at exit
#   cg_run NAME CMD...            run CMD inside that cgroup
#
# Bios that dm clones keep the cgroup of the bio they come from, so a
# throttle on the real device holds an image read there, while kcopyd (a
# kernel thread, in the root cgroup) copies at full speed.

CG_ROOT=/sys/fs/cgroup

_cg_mount() {
	if ! [ -f $CG_ROOT/cgroup.controllers ]; then
		mount -t cgroup2 cgroup2 $CG_ROOT || return
		at_exit "umount $CG_ROOT"
	fi
	grep -qw io $CG_ROOT/cgroup.controllers || { echo "no io controller in cgroup v2" >&2; return 1; }
	grep -qw io $CG_ROOT/cgroup.subtree_control || echo +io > $CG_ROOT/cgroup.subtree_control
}

cg_throttle() { # cg_throttle NAME DEV LIMITS
	_cg_mount || return
	mkdir -p "$CG_ROOT/$1" || return
	at_exit "rmdir $CG_ROOT/$1"
	echo "$(dev_majmin "$2") $3" > "$CG_ROOT/$1/io.max"
}

cg_run() { # cg_run NAME CMD...
	local cg=$1
	shift
	sh -c 'echo $$ > "$0"/cgroup.procs && exec "$@"' "$CG_ROOT/$cg" "$@"
}

# The debug kernel (KASAN, lockdep, kmemleak) runs everything several
# times slower: tests size their loops down on it.
debug_kernel() { [[ $(uname -r) == *-blksnap-debug ]]; }

# Until ORIGIN's state is "merge T/T" (done); fails on any other state, or
# after SECONDS (default 120).
merge_wait_done() { # merge_wait_done ORIGIN [SECONDS]
	local st d i
	for ((i = 0; i < ${2:-120} * 10; i++)); do
		st=$(status_field "$1" 5)
		case $st in
		"merge "*) d=${st#merge }; [ "${d%/*}" != "${d#*/}" ] || return 0 ;;
		*) echo "#   state '$st'"; return 1 ;;
		esac
		sleep 0.1
	done
	echo "#   still '$st'"
	return 1
}
