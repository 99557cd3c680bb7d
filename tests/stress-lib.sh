# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# tests/stress-lib.sh: helpers for the stress and fault tests
# (tests/integration/stress-*.sh, fault-*.sh). Sourced after tests/lib.sh and
# tests/image-lib.sh, never run. See Documentation/reliability.md.
#
#   vf_build                      the verifier in $VF: build/tools/verifier, else compiled
#   vf_init DEV MODEL ID          stamp every 4 KiB block of DEV, new model
#   vf_check DESC DEV MODEL       the whole of DEV equals MODEL (the verifier's check), else exit 1
#   vf_bg NAME CMD...             run CMD in the background; its pid in VF_PID[NAME], killed at exit
#   vf_wait NAME [OK_RCS]         wait for it; exit status must be one of OK_RCS (default "0")
#   vf_writers PREFIX DEV MODEL ID N SECONDS [OPT...]
#                                 N verifier writers (PREFIX0..) on disjoint parts of DEV
#   vf_wait_writers [OK_RCS]      wait for the writers started by vf_writers
#   img_state NAME                the image's state (valid, overflow, failed)
#   wait_state NAME STATE SECS    poll until the image's state is STATE
#   no_oom DESC                   no OOM kill in the kernel log since the mark

VF=/tmp/verifier.$$
declare -A VF_PID=()
VF_WRITERS=()

vf_build() {
	local out built=$BLKSNAP_TOP/build/tools/verifier
	# make check builds it on the host (make tools): a compile in the
	# guest costs 17 s on the debug kernel.
	if [ -x "$built" ] && [ "$built" -nt "$BLKSNAP_TOP/tests/verifier/verifier.c" ]; then
		VF=$built
		echo "ok - verifier built on the host ($built)"
		return 0
	fi
	if ! out=$(cc -O2 -Wall -Wextra -Werror -o "$VF" "$BLKSNAP_TOP/tests/verifier/verifier.c" 2>&1); then
		echo "not ok - verifier compiles with -Wall -Wextra -Werror"
		echo "$out" | sed 's/^/#   /'
		exit 1
	fi
	at_exit "rm -f $VF"
	echo "ok - verifier compiles with -Wall -Wextra -Werror"
}

vf_init() { # vf_init DEV MODEL ID
	"$VF" init "$1" "$2" "$3" > /dev/null
}

vf_check() { # vf_check DESC DEV MODEL
	local out rc=0
	out=$("$VF" check "$2" "$3" 2>&1) || rc=$?
	if [ $rc -eq 0 ]; then
		echo "ok - $1"
		echo "#   $out"
		return 0
	fi
	echo "not ok - $1 (verifier exit $rc)"
	echo "$out" | head -n 24 | sed 's/^/#   /'
	exit 1
}

vf_bg() { # vf_bg NAME CMD...
	local name=$1
	shift
	"$@" &
	VF_PID[$name]=$!
	at_exit "stop_bg ${VF_PID[$name]}"
}

vf_wait() { # vf_wait NAME [OK_RCS]
	local rc=0 ok=${2:-0}
	wait "${VF_PID[$1]}" || rc=$?
	if [[ " $ok " == *" $rc "* ]]; then
		echo "ok - $1 ended with status $rc"
		return 0
	fi
	echo "not ok - $1 ended with status $rc (wanted: $ok)"
	exit 1
}

vf_writers() { # vf_writers PREFIX DEV MODEL ID N SECONDS [OPT...]
	local prefix=$1 dev=$2 model=$3 id=$4 n=$5 secs=$6 k
	shift 6
	VF_WRITERS=()
	for ((k = 0; k < n; k++)); do
		vf_bg "$prefix$k" "$VF" write "$dev" "$model" "$id" --seconds "$secs" --part "$k/$n" \
			--seed $((RANDOM * 65536 + RANDOM)) --quiet "$@"
		VF_WRITERS+=("$prefix$k")
	done
}

vf_wait_writers() { # vf_wait_writers [OK_RCS]
	local w
	for w in "${VF_WRITERS[@]}"; do
		vf_wait "$w" "${1:-0}"
	done
}

img_state() { image_field "$1" 4; }

wait_state() { # wait_state NAME STATE SECS
	local i
	for ((i = 0; i < $3 * 5; i++)); do
		[ "$(img_state "$1")" = "$2" ] && return 0
		sleep 0.2
	done
	return 1
}

no_oom() { # no_oom DESC
	local bad
	bad=$(kmsg_since_mark | grep -iE 'out of memory|oom-kill|invoked oom-killer|page allocation failure' || true)
	if [ -n "$bad" ]; then
		echo "not ok - $1"
		echo "$bad" | head -n 10 | sed 's/^/#   /'
		exit 1
	fi
	echo "ok - $1"
}
