# SPDX-License-Identifier: GPL-2.0
#
# tests/ctl-lib.sh: helpers of the blksnapctl tests (tests/integration/ctl-*.sh)
# on top of tests/lib.sh, which it sources. Sourced, never run.
#
#   CTL                           the blksnapctl command line, e.g. "valgrind ... blksnapctl"
#   ctl ARGS...                   run $CTL ARGS...
#   ctl_ok DESC ARGS...           blksnapctl must exit 0 with nothing on stderr; stdout in $OUT
#   ctl_fail DESC CODE TEXT ARGS...
#                                 blksnapctl must exit CODE (1: failure, 2: usage), print
#                                 nothing on stdout and exactly one line on stderr that
#                                 starts with "blksnapctl: " and contains TEXT
#   ctl_attach DEV [OPTS...]      attach, detached again at exit; the origin path in $OUT
#   majmin DEV                    "major:minor" of a block device
#   dm_names                      the dm device names, sorted, one line
#   json_keys_ok JSON             every object key in JSON is snake_case
#   lvm_cmd ARGS...               lvm with a configuration for a guest without udev
#   lvm_lv VG LV SIZE PV...       a volume group with one linear LV, removed at exit
#   write_files DIR PREFIX N KIB SUMS
#                                 N files of random data; their sha256sums appended to SUMS

. "${BLKSNAP_TOP:-$(dirname "${BASH_SOURCE[0]}")/..}/tests/lib.sh"

CTL=${CTL:-blksnapctl}
_ctl_tmp=$(mktemp -d)
at_exit "rm -rf $_ctl_tmp"

ctl() {
	# shellcheck disable=SC2086
	$CTL "$@"
}

ctl_ok() { # ctl_ok DESC ARGS...
	local desc=$1 rc=0
	shift
	OUT=$(ctl "$@" 2> "$_ctl_tmp/err") || rc=$?
	if [ $rc -ne 0 ] || [ -s "$_ctl_tmp/err" ]; then
		echo "not ok - $desc"
		echo "#   blksnapctl $* exited $rc"
		sed 's/^/#   stderr: /' "$_ctl_tmp/err"
		exit 1
	fi
	echo "ok - $desc"
}

ctl_fail() { # ctl_fail DESC CODE TEXT ARGS...
	local desc=$1 code=$2 text=$3 rc=0 out err lines
	shift 3
	out=$(ctl "$@" 2> "$_ctl_tmp/err") || rc=$?
	err=$(cat "$_ctl_tmp/err")
	lines=$(wc -l < "$_ctl_tmp/err")
	FAIL_OUTPUT=$err
	if [ $rc -ne "$code" ] || [ -n "$out" ] || [ "$lines" -ne 1 ] ||
		[[ $err != "blksnapctl: "* ]] || [[ $err != *"$text"* ]]; then
		echo "not ok - $desc"
		echo "#   blksnapctl $*: exit $rc (want $code), want one stderr line with '$text'"
		[ -z "$out" ] || echo "$out" | sed 's/^/#   stdout: /'
		sed 's/^/#   stderr: /' "$_ctl_tmp/err"
		exit 1
	fi
	echo "ok - $desc"
	echo "#   $err"
}

ctl_attach() { # ctl_attach DEV [OPTS...]
	ctl_ok "blksnapctl attach $*" attach "$@"
	at_exit "undo_attach $1"
}

majmin() {
	printf '%d:%d\n' "0x$(stat -L -c %t "$1")" "0x$(stat -L -c %T "$1")"
}

dm_names() {
	dmsetup info -c --noheadings -o name 2> /dev/null | sed '/^No devices found/d' |
		sort | tr '\n' ' ' | sed 's/ $//'
}

json_keys_ok() { # json_keys_ok JSON: every key matches ^[a-z][a-z0-9_]*$
	[ "$(jq '[paths | .[] | strings] | all(test("^[a-z][a-z0-9_]*$"))' <<< "$1")" = true ]
}

# No udevd in the guest: LVM must neither wait for udev nor ask it for devices.
LVM_CONFIG='activation { udev_sync=0 udev_rules=0 } devices { obtain_device_list_from_udev=0 use_devicesfile=0 }'

lvm_cmd() { # lvm_cmd COMMAND ARGS...
	local cmd=$1
	shift
	lvm "$cmd" --config "$LVM_CONFIG" "$@"
}

lvm_lv() { # lvm_lv VG LV SIZE PV...
	local vg=$1 lv=$2 size=$3
	shift 3
	lvm_cmd pvcreate -q -y "$@" > /dev/null || return
	lvm_cmd vgcreate -q "$vg" "$@" > /dev/null || return
	at_exit "lvm_cmd vgremove -q -f $vg"
	lvm_cmd lvcreate -q -y -Zn -n "$lv" -L "$size" "$vg" > /dev/null 2>&1
}

write_files() { # write_files DIR PREFIX N KIB SUMS
	local i
	for ((i = 1; i <= $3; i++)); do
		head -c $(($4 * 1024 + i)) /dev/urandom > "$1/$2$i" || return
		(cd "$1" && sha256sum "$2$i") >> "$5" || return
	done
}
