#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tests/bench/guest.sh: the guest half of `make bench` (see
# Documentation/benchmark.md). Run as root inside the test guest by
# tests/bench/run; writes one JSON object per measurement to
# $VM_OUT/results.jsonl and a human-readable log to standard output.
#
# Devices (all RAM-backed, so that device speed does not hide CPU cost; all
# pages of ram0..ram3 are written once before any measurement):
#   /dev/ram0, ram1    blksnap: the origin's real device and the store
#   /dev/ram2, ram3    dm-snapshot: the origin and the COW device
#   /dev/ram4..ram11   untouched devices for the snapshot-time measurement
#   /dev/ram12, ram13  metadata of persistent tracking: blksnap's CBT
#                      metadata and dm-era's (4 KiB tracking blocks for both)
#   bench-zero-*       dm "zero" targets of 4 and 64 TiB for memory per TiB
# blksnap and dm-snapshot get devices of their own so that their jobs can run
# alternately in one fio process: the host this guest runs on is shared, and
# jobs that run side by side in time see the same disturbance.
#
# Knobs (environment): BENCH_REPS (3), BENCH_RUNTIME_MS (per fio job, 1500),
# BENCH_RAMP_MS (reads only, 300), BENCH_REGION_MB (128), BENCH_CHUNK
# (sectors, 8), BENCH_SNAP_REPS (3), BENCH_QUICK=1 (one rep, short jobs).
# The first writes run a second time with 64 KiB chunks (CHUNK64; not a knob,
# its targets bs-first64 and dms-first64 are named after it).
set -uo pipefail

OUT=${VM_OUT:-/tmp/bench-out}
mkdir -p "$OUT"
RES=$OUT/results.jsonl
: > "$RES"

REPS=${BENCH_REPS:-3}
RT=${BENCH_RUNTIME_MS:-1500}
RAMP=${BENCH_RAMP_MS:-300}
REGION_MB=${BENCH_REGION_MB:-128}
CHUNK=${BENCH_CHUNK:-8}
CHUNK64=128                          # sectors: the second first-write set
SNAP_REPS=${BENCH_SNAP_REPS:-3}
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	REPS=1 RT=1000 RAMP=200 SNAP_REPS=1
fi
DEV_MB=$((4 * REGION_MB))            # what the origins use
SZ=$((DEV_MB * 2048))                # sectors
QDS="1 16"
WRITES="randwrite:4k,write:1m"       # first writes: 2 x 2 depths = 4 regions
READS="randread:4k,read:1m"

now() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }   # ms
T0=$(now)
log() { local t=$(($(now) - T0)); printf '[%4d.%ds] %s\n' $((t / 1000)) $((t % 1000 / 100)) "$*"; }
die() { log "FATAL: $*"; exit 1; }
emit() { printf '%s\n' "$1" >> "$RES"; }

cleanup() {
	local d
	for d in bench-image bench-dms-snap bench-dms-origin bench-origin bench-linear \
		bench-porigin bench-era bench-morigin \
		bench-zimage bench-zorigin bench-zero-64t bench-zero-4t \
		bench-ti-a bench-ti-b bench-to-a bench-to-b bench-tz-s bench-tz-a bench-tz-b; do
		dmsetup remove --retry "$d" >/dev/null 2>&1 || true
	done
}
trap cleanup EXIT

# ---- setup ---------------------------------------------------------------
command -v fio >/dev/null || die "fio missing"
modprobe dm-snapshot || die "modprobe dm-snapshot"
modprobe dm-era || die "modprobe dm-era"
TOP=$(cd "$(dirname "$0")/../.." && pwd)
META_TOOL=$TOP/build/tools/cbt-meta   # formats blksnap's CBT metadata (make tools)
[ -x "$META_TOOL" ] || die "$META_TOOL missing (make tools)"
PTB=8                                # sectors: the tracking block of section 4
modprobe -r brd 2>/dev/null || true
# 16 MiB more than the origins use, so that a store never fills up exactly
modprobe brd rd_nr=14 rd_size=$(((DEV_MB + 16) * 1024)) max_part=0 || die "modprobe brd"
pids=()
for i in 0 1 2 3; do
	dd if=/dev/zero of=/dev/ram$i bs=4M count=$(((DEV_MB + 16) / 4)) oflag=direct status=none &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || die "prefill"; done
log "prefilled ram0..ram3 ($((DEV_MB + 16)) MiB each)"

emit "$(jq -cn --arg k "$(uname -r)" --arg fio "$(fio --version)" \
	--argjson cpus "$(nproc)" --argjson mem "$(awk '/MemTotal/ {print $2}' /proc/meminfo)" \
	--argjson reps "$REPS" --argjson rt "$RT" --argjson ramp "$RAMP" \
	--argjson region "$REGION_MB" --argjson chunk "$CHUNK" --argjson chunk64 "$CHUNK64" \
	'{kind:"env", kernel:$k, fio:$fio, cpus:$cpus, mem_kib:$mem, reps:$reps,
	  runtime_s:($rt / 1000), ramp_s:($ramp / 1000), region_mib:$region, chunk_sectors:$chunk,
	  chunk64_sectors:$chunk64}')"
log "kernel $(uname -r), $(nproc) CPUs, reps=$REPS runtime=${RT}ms region=${REGION_MB}MiB chunk=$CHUNK (and $CHUNK64 for first writes)"

# ---- fio -----------------------------------------------------------------
# fio_run REP SEGMENT...: one fio process (starting processes is slow under
# emulation) that runs all jobs one after the other (stonewall), libaio,
# O_DIRECT. A SEGMENT is a space-separated list of sets; the segments run in
# order, and within a segment the sets take turns job by job (workload by
# workload, queue depth by queue depth), so that the figures to be compared
# are measured next to each other in time. A set is
# "TARGET@DEV@RW:BS,RW:BS...@MODE[@CHUNK]", one job per workload and queue
# depth; CHUNK (sectors, default $CHUNK) is the chunk of the snapshot that the
# set's writes go through: the "chunk" field of its results and, in MODE
# first, the layout of its writes:
#   MODE ""       time-based over the first REGION_MB of DEV, reads with a ramp;
#   MODE first    first writes after a fresh snapshot: the set's jobs get
#                 consecutive, disjoint regions of DEV (4*REGION_MB in all), are
#                 bounded by their region and the runtime, not time-based, and
#                 every write finds its chunk untouched since the snapshot.
#                 With 4 KiB chunks, 4K jobs get REGION_MB/2 each, 1M jobs
#                 3*REGION_MB/2 each, and use fio's random map: each block is
#                 written at most once. With larger chunks, a write smaller
#                 than a chunk copies the whole chunk, so a 4K job uses up its
#                 region 16 times as fast (64 KiB chunks) as with 4 KiB chunks:
#                 every job gets REGION_MB (each copies about as much), and a
#                 job whose writes are smaller than a chunk replays a log of one
#                 write per chunk, at the chunk's start, in a random order (the
#                 same each run) for random writes: with fio's random map most
#                 of its writes would find their chunk copied by an earlier
#                 one, and fio's blockalign turns the random map off. Such
#                 sets' jobs copy their whole region whatever they write, and
#                 end before the runtime (0.5 to 1 s under emulation);
#   MODE precopy  one unmeasured sequential write of the first REGION_MB, so
#                 that every chunk in it is copied (no workloads).
bytes() { case $1 in *k) echo $((${1%k} * 1024)) ;; *m) echo $((${1%m} * 1048576)) ;; *) echo "$1" ;; esac; }
# iolog_per_chunk LOG DEV RW BS OFFSET_MB SIZE_MB CHUNK: a fio replay log of one
# BS-byte write at the start of each CHUNK-sector chunk of the region, in a
# random order for random writes (srand(1): the same each run)
iolog_per_chunk() {
	awk -v dev="$2" -v rnd="$([[ $3 == rand* ]] && echo 1 || echo 0)" -v bs="$(bytes "$4")" \
		-v off="$(($5 * 1048576))" -v n="$(($6 * 2048 / $7))" -v cs="$(($7 * 512))" '
	BEGIN {
		srand(1)
		for (i = 0; i < n; i++) a[i] = i
		if (rnd) for (i = n - 1; i > 0; i--) { j = int(rand() * (i + 1)); t = a[i]; a[i] = a[j]; a[j] = t }
		printf "fio version 2 iolog\n%s add\n%s open\n", dev, dev
		for (i = 0; i < n; i++) printf "%s write %.0f %d\n", dev, off + a[i] * cs, bs
		printf "%s close\n", dev
	}' > "$1"
}
fio_run() {
	local rep=$1 seg set target dev list mode chunk w rw bs qd size jf=/tmp/bench.fio iolog chunks
	local -A off tchunk
	shift
	{
		printf '[global]\nthread\ndirect=1\nioengine=libaio\nruntime=%sms\nnorandommap=0\nrandrepeat=1\n' "$RT"
		for seg in "$@"; do
			# the workloads of the segment, in order of first mention
			local wls=()
			for set in $seg; do
				IFS=@ read -r target dev list mode chunk <<< "$set"
				tchunk[$target]=${chunk:-$CHUNK}
				for w in ${list//,/ }; do
					[[ " ${wls[*]} " == *" $w "* ]] || wls+=("$w")
				done
			done
			for set in $seg; do
				IFS=@ read -r target dev list mode chunk <<< "$set"
				[ "$mode" = precopy ] || continue
				printf '\n[precopy:%s]\nstonewall\nfilename=%s\nrw=write\nbs=1m\niodepth=16\n' "$target" "$dev"
				printf 'offset=0\nsize=%sM\nruntime=0\n' "$REGION_MB"
			done
			for w in "${wls[@]}"; do
				rw=${w%%:*} bs=${w##*:}
				for qd in $QDS; do
					for set in $seg; do
						IFS=@ read -r target dev list mode chunk <<< "$set"
						chunk=${chunk:-$CHUNK}
						[[ ",$list," == *",$w,"* ]] || continue
						printf '\n[%s:%s:%s:%s]\nstonewall\nfilename=%s\nrw=%s\nbs=%s\niodepth=%s\n' \
							"$target" "$rw" "$bs" "$qd" "$dev" "$rw" "$bs" "$qd"
						if [ "$mode" = first ]; then
							if [ $((chunk * 512)) -gt 4096 ]; then
								size=$REGION_MB
							else
								case $bs in 4k) size=$((REGION_MB / 2)) ;; *) size=$((REGION_MB * 3 / 2)) ;; esac
							fi
							# offset and size are for the record only when replaying
							printf 'offset=%sM\nsize=%sM\n' "${off[$target]:-0}" "$size"
							if [ "$(bytes "$bs")" -lt $((chunk * 512)) ]; then
								iolog=/tmp/bench-$target-$rw-$bs-$qd.iolog
								iolog_per_chunk "$iolog" "$dev" "$rw" "$bs" "${off[$target]:-0}" "$size" "$chunk"
								printf 'read_iolog=%s\n' "$iolog"
							fi
							off[$target]=$((${off[$target]:-0} + size))
						else
							printf 'offset=0\nsize=%sM\ntime_based\n' "$REGION_MB"
							case $rw in *read) printf 'ramp_time=%sms\n' "$RAMP" ;; esac
						fi
					done
				done
			done
		done
	} > "$jf"
	chunks=$(for target in "${!tchunk[@]}"; do printf '{"%s":%s}\n' "$target" "${tchunk[$target]}"; done | jq -cs 'add // {}')
	log "fio: $(grep -c '^\[.*:' "$jf") jobs"
	fio --output-format=json "$jf" > /tmp/bench.json 2>/tmp/bench.err ||
		{ log "fio failed: $(head -c 500 /tmp/bench.err)"; return 1; }
	# A replayed job (read_iolog) leaves the completions of its last iodepth-1
	# writes out of io_bytes and bw_bytes, though not out of iops and the
	# runtime (fio 3.33): take its bytes from its I/O count instead.
	jq -c --argjson rep "$rep" --argjson chunk "$CHUNK" --argjson chunks "$chunks" '
		def bytes: if test("k$") then (.[:-1] | tonumber) * 1024
			elif test("m$") then (.[:-1] | tonumber) * 1048576 else tonumber end;
		.jobs[] | select(.jobname | startswith("precopy:") | not) |
		(.jobname | split(":")) as [$t, $rw, $bs, $qd] |
		(if ($rw | test("read")) then .read else .write end) as $d |
		(.["job options"].read_iolog != null) as $replay |
		{kind:"fio", target:$t, rw:$rw, bs:$bs, qd:($qd | tonumber), rep:$rep, chunk:($chunks[$t] // $chunk),
		 offset:(.["job options"].offset // "0"), size:.["job options"].size,
		 iops:$d.iops,
		 bw_bytes:(if $replay then $d.iops * ($bs | bytes) else $d.bw_bytes end),
		 io_bytes:(if $replay then $d.total_ios * ($bs | bytes) else $d.io_bytes end),
		 runtime_ms:$d.runtime, lat_mean_ns:$d.lat_ns.mean,
		 clat_p99_ns:($d.clat_ns.percentile["99.000000"] // null), errors:.error} +
		(if $replay then {one_write_per_chunk:true} else {} end)' \
		/tmp/bench.json | tee -a "$RES" | cut -c1-160 | sed "s/^/  /"
}

dm_create() { dmsetup create "$1" --table "$2" || die "dmsetup create $1: $2"; }
dm_remove() { dmsetup remove --retry "$1" >/dev/null || die "dmsetup remove $1"; }

image_create() { dm_create bench-image "0 $SZ blksnap-image /dev/ram0 /dev/ram1 ${1:-$CHUNK}"; } # [chunk]
dms_create() { # [chunk]; the way LVM does it: suspend the origin around the snapshot's creation
	dmsetup suspend bench-dms-origin || die "suspend dms origin"
	dm_create bench-dms-snap "0 $SZ snapshot /dev/ram2 /dev/ram3 N ${1:-$CHUNK}"
	dmsetup resume bench-dms-origin || die "resume dms origin"
}
# Check that a snapshot survived the runs (a full or failed store would turn
# every later figure into nonsense) and record how much it copied.
check_valid() { # dev target rep
	local st
	st=$(dmsetup status "$1")
	log "status $1: $st"
	case $st in
	*Invalid* | *Overflow* | *overflow* | *failed*) die "$1 is no longer valid" ;;
	esac
	emit "{\"kind\":\"status\",\"target\":\"$2\",\"rep\":$3,\"status\":\"$st\"}"
}

# ---- throughput ----------------------------------------------------------
# Every rep runs every target, so that disturbances from outside the guest
# spread over all of them instead of hitting one.
B=/dev/mapper
for ((rep = 1; rep <= REPS; rep++)); do
	log "== rep $rep/$REPS"
	# 1. no snapshot: dm-linear (the limit) and blksnap-origin tracking only,
	# both over ram0, taking turns
	dm_create bench-linear "0 $SZ linear /dev/ram0 0"
	dm_create bench-origin "0 $SZ blksnap-origin /dev/ram0"
	fio_run "$rep" "linear@$B/bench-linear@$READS,$WRITES@ origin@$B/bench-origin@$READS,$WRITES@"

	# 2. a snapshot held, by blksnap and by dm-snapshot: reads of the device,
	# the blksnap image and the dm-snapshot snapshot (nothing copied yet: the
	# reads go to the origin device); a copy of the first region of both
	# origins; overwrites of those copied chunks, next to dm-linear; reads of
	# the copied chunks (from the store)
	image_create
	dm_create bench-dms-origin "0 $SZ snapshot-origin /dev/ram2"
	dms_create
	fio_run "$rep" "raw@/dev/ram0@$READS@ image@$B/bench-image@$READS@ dms-snap@$B/bench-dms-snap@$READS@" \
		"x@$B/bench-origin@@precopy y@$B/bench-dms-origin@@precopy" \
		"linear2@$B/bench-linear@$WRITES@ bs-overwrite@$B/bench-origin@$WRITES@ dms-overwrite@$B/bench-dms-origin@$WRITES@" \
		"image-copied@$B/bench-image@read:1m@ dms-snap-copied@$B/bench-dms-snap@read:1m@"
	check_valid bench-image image "$rep"
	check_valid bench-dms-snap dms-snap "$rep"
	dm_remove bench-image
	dm_remove bench-dms-snap

	# 3. first writes (copy-on-write) after a fresh snapshot, blksnap and
	# dm-snapshot taking turns, each job on its own untouched region
	image_create
	dms_create
	fio_run "$rep" "bs-first@$B/bench-origin@$WRITES@first dms-first@$B/bench-dms-origin@$WRITES@first"
	check_valid bench-image bs-first "$rep"
	check_valid bench-dms-snap dms-first "$rep"
	dm_remove bench-image
	dm_remove bench-dms-snap

	# 3b. the same with 64 KiB chunks: a fresh image and snapshot, so that
	# the same regions are untouched again; each set copies at most
	# 4*REGION_MB (512 MiB) into its store (ram1, ram3: 16 MiB more), as
	# in 3 (see MODE first). 10 to 15 s per rep: the jobs are bounded by
	# their regions.
	image_create "$CHUNK64"
	dms_create "$CHUNK64"
	fio_run "$rep" "bs-first64@$B/bench-origin@$WRITES@first@$CHUNK64 dms-first64@$B/bench-dms-origin@$WRITES@first@$CHUNK64"
	check_valid bench-image bs-first64 "$rep"
	check_valid bench-dms-snap dms-first64 "$rep"
	dm_remove bench-image
	dm_remove bench-dms-snap
	dm_remove bench-dms-origin
	dm_remove bench-origin

	# 4. change tracking that survives reboots: blksnap-origin with its CBT
	# metadata on ram12 (pcbt) and dm-era with its metadata on ram13 (era),
	# both over ram0 with 4 KiB blocks, next to dm-linear over ram0 and to
	# blksnap's in-memory tracking with the same block (morigin, over ram2,
	# which is prefilled like ram0: blksnap tracks a device once). First a
	# steady state: every block of the first region written once since the
	# last take (checkpoint), then reads and writes there. Then a take (a
	# checkpoint for dm-era) and first writes: each job on untouched blocks
	# of its own region (MODE first), so that every write is the first to its
	# blocks since the take, next to dm-linear writing as much.
	"$META_TOOL" format /dev/ram12 "$SZ" "$PTB" bench >/dev/null || die "format the CBT metadata"
	dm_create bench-porigin "0 $SZ blksnap-origin /dev/ram0 6 tracking_block_sectors $PTB metadata /dev/ram12 metadata_id bench"
	dm_create bench-era "0 $SZ era /dev/ram13 /dev/ram0 $PTB"
	dm_create bench-morigin "0 $SZ blksnap-origin /dev/ram2 2 tracking_block_sectors $PTB"
	pstatus=$(dmsetup status bench-porigin)
	log "status bench-porigin: $pstatus"
	case $pstatus in *pcbt=ok*) ;; *) die "bench-porigin: tracking is not persistent: $pstatus" ;; esac
	fio_run "$rep" "a@$B/bench-porigin@@precopy b@$B/bench-era@@precopy c@$B/bench-morigin@@precopy" \
		"linear3@$B/bench-linear@$READS,$WRITES@ pcbt@$B/bench-porigin@$READS,$WRITES@ era@$B/bench-era@$READS,$WRITES@ morigin@$B/bench-morigin@$READS,$WRITES@"
	dmsetup message bench-porigin 0 cbt_take >/dev/null || die "cbt_take bench-porigin"
	dmsetup message bench-morigin 0 cbt_take >/dev/null || die "cbt_take bench-morigin"
	dmsetup message bench-era 0 checkpoint || die "checkpoint bench-era"
	# (@$PTB: the layout of 4 KiB blocks whatever BENCH_CHUNK is)
	fio_run "$rep" "linear-first@$B/bench-linear@$WRITES@first@$PTB pcbt-first@$B/bench-porigin@$WRITES@first@$PTB era-first@$B/bench-era@$WRITES@first@$PTB morigin-first@$B/bench-morigin@$WRITES@first@$PTB"
	pstatus=$(dmsetup status bench-porigin)
	case $pstatus in *pcbt=ok*) ;; *) die "bench-porigin: persistent tracking failed: $pstatus" ;; esac
	emit "{\"kind\":\"status\",\"target\":\"pcbt\",\"rep\":$rep,\"status\":\"$pstatus\"}"
	emit "{\"kind\":\"status\",\"target\":\"era\",\"rep\":$rep,\"status\":\"$(dmsetup status bench-era)\"}"
	dmsetup message bench-porigin 0 cbt_close >/dev/null || die "cbt_close bench-porigin"
	dm_remove bench-porigin
	dm_remove bench-era
	dm_remove bench-morigin
	dm_remove bench-linear
done

# ---- kernel memory -------------------------------------------------------
# Unreclaimable slab plus vmalloc pages, in KiB, after letting deferred work
# and RCU frees settle.
kmem() {
	sync
	sleep 1
	awk '/^SUnreclaim:/ {s = $2} /^VmallocUsed:/ {v = $2} END {print s, v}' /proc/meminfo
}
# active objects and object size of a slab cache (0 0 if merged away)
slab() {
	awk -v n="$1" '$1 == n {print $2, $4; f = 1} END {if (!f) print 0, 0}' /proc/slabinfo
}
mem_delta() { # what before(s v) after(s v) units per-unit-name [extra]
	local what=$1 s0=$2 v0=$3 s1=$4 v1=$5 units=$6 extra=${7:-null}
	emit "$(jq -cn --arg w "$what" --argjson s "$((s1 - s0))" --argjson v "$((v1 - v0))" \
		--argjson u "$units" --argjson x "$extra" \
		'{kind:"mem", what:$w, slab_kib:$s, vmalloc_kib:$v, units:$u,
		  bytes_per_unit:((($s + $v) * 1024) / $u)} + (if $x == null then {} else $x end)')"
	log "mem $what: slab ${s1}-${s0} KiB, vmalloc ${v1}-${v0} KiB over $units units"
}

log "== memory"
# Per TiB tracked: origin over a 64 TiB dm-zero device (default tracking
# block), then an image with 64 KiB chunks; and an image with 4 KiB chunks
# over a 4 TiB one (a 4 KiB-chunk bitmap of 64 TiB would be 2 GiB).
for spec in "64t 64 128" "4t 4 8"; do
	set -- $spec
	name=bench-zero-$1 tib=$2 chunk=$3
	zsz=$((tib * 1024 * 1024 * 1024 * 2))
	dm_create "$name" "0 $zsz zero"
	read -r s0 v0 <<< "$(kmem)"
	dm_create bench-zorigin "0 $zsz blksnap-origin /dev/mapper/$name"
	read -r s1 v1 <<< "$(kmem)"
	tb=$(dmsetup status bench-zorigin | awk '{print $4}')
	mem_delta "tracking_per_tib" "$s0" "$v0" "$s1" "$v1" "$tib" \
		"{\"device_tib\":$tib,\"tracking_block_sectors\":$tb}"
	dm_create bench-zimage "0 $zsz blksnap-image /dev/mapper/$name /dev/ram1 $chunk"
	read -r s2 v2 <<< "$(kmem)"
	mem_delta "snapshot_per_tib" "$s1" "$v1" "$s2" "$v2" "$tib" \
		"{\"device_tib\":$tib,\"chunk_sectors\":$chunk,\"bitmap_bytes_per_tib\":$((1024 * 1024 * 1024 * 2 / chunk / 8))}"
	dm_remove bench-zimage
	dm_remove bench-zorigin
	dm_remove "$name"
done

# Per copied chunk: copy REGION_MB/2 worth of chunks in random order, blksnap
# then dm-snapshot (which merges the exceptions of chunks that are
# consecutive both on the origin and in the COW device: a sequential copy
# would be its best case, not a typical one).
nchunks=$((REGION_MB / 2 * 2048 / CHUNK))
precopy_random() {
	fio --name=p --filename="$1" --direct=1 --ioengine=libaio --iodepth=16 --rw=randwrite \
		--bs=$((CHUNK * 512)) --size="$((REGION_MB / 2))M" --norandommap=0 --output=/dev/null ||
		die "random copy on $1"
}
dm_create bench-origin "0 $SZ blksnap-origin /dev/ram0"
image_create
read -r s0 v0 <<< "$(kmem)"
read -r e0 esz <<< "$(slab blksnap_exception)"
precopy_random /dev/mapper/bench-origin
read -r s1 v1 <<< "$(kmem)"
read -r e1 esz1 <<< "$(slab blksnap_exception)"
copied=$(dmsetup status bench-image | awk '{print $6}')
mem_delta "blksnap_per_copied_chunk" "$s0" "$v0" "$s1" "$v1" "$copied" \
	"{\"expected_chunks\":$nchunks,\"exception_objs\":$((e1 - e0)),\"exception_objsize\":$esz1,\"slabinfo_has_cache\":$([ "$esz1" -gt 0 ] && echo true || echo false)}"
dm_remove bench-image
dm_remove bench-origin

dm_create bench-dms-origin "0 $SZ snapshot-origin /dev/ram2"
dms_create
read -r s0 v0 <<< "$(kmem)"
precopy_random /dev/mapper/bench-dms-origin
read -r s1 v1 <<< "$(kmem)"
used=$(dmsetup status bench-dms-snap | awk '{print $4}')
mem_delta "dm_snapshot_per_copied_chunk" "$s0" "$v0" "$s1" "$v1" "$nchunks" \
	"{\"cow_status\":\"$used\"}"
dm_remove bench-dms-snap
dm_remove bench-dms-origin

# ---- removal of an image from a shared, interleaved store ---------------
# Two origins share one store and are written at the same time, one chunk
# per write, so that their copies interleave chunk by chunk in the store (1M
# writes would copy runs of chunks, leaving fewer, larger holes); then the
# time to remove one image, whose chunks go back to the pool as that many
# separate holes. dm-zero
# devices: nothing but the allocator and the exception table is measured.
TD=${BENCH_TEARDOWN_CHUNKS:-1048576} # chunks per image
[ "${BENCH_QUICK:-0}" = 1 ] && TD=65536
log "== teardown: $TD chunks per image, interleaved in one store"
osz=$((TD * CHUNK))
dm_create bench-tz-a "0 $osz zero"
dm_create bench-tz-b "0 $osz zero"
dm_create bench-tz-s "0 $((2 * osz + 2048)) zero"
dm_create bench-to-a "0 $osz blksnap-origin /dev/mapper/bench-tz-a"
dm_create bench-to-b "0 $osz blksnap-origin /dev/mapper/bench-tz-b"
dm_create bench-ti-a "0 $osz blksnap-image /dev/mapper/bench-tz-a /dev/mapper/bench-tz-s $CHUNK"
dm_create bench-ti-b "0 $osz blksnap-image /dev/mapper/bench-tz-b /dev/mapper/bench-tz-s $CHUNK"
a=$(now)
fio --direct=1 --ioengine=libaio --iodepth=16 --rw=write --bs=$((CHUNK * 512)) \
	--size=$((osz * 512)) --name=ta --filename=$B/bench-to-a --name=tb --filename=$B/bench-to-b \
	--output=/dev/null || die "teardown: fio"
b=$(now)
ca=$(dmsetup status bench-ti-a | awk '{print $6}')
cb=$(dmsetup status bench-ti-b | awk '{print $6}')
log "teardown: copied $ca + $cb chunks in $((b - a)) ms"
[ "$ca" = "$TD" ] && [ "$cb" = "$TD" ] || die "teardown: not every chunk copied"
a=$(now)
dm_remove bench-ti-a
b=$(now)
emit "{\"kind\":\"teardown\",\"chunks\":$TD,\"chunk_sectors\":$CHUNK,\"interleaved\":true,\"ms\":$((b - a))}"
log "teardown: removing the interleaved image took $((b - a)) ms"
a=$(now)
dm_remove bench-ti-b
b=$(now)
emit "{\"kind\":\"teardown\",\"chunks\":$TD,\"chunk_sectors\":$CHUNK,\"interleaved\":false,\"ms\":$((b - a))}"
log "teardown: removing the other (its holes coalesce) took $((b - a)) ms"
for d in bench-to-a bench-to-b bench-tz-s bench-tz-a bench-tz-b; do dm_remove $d; done

# ---- time to take a coherent snapshot ------------------------------------
# With blksnapctl, the way a user takes one: `blksnapctl create` suspends all
# origins with lockfs, creates and resumes the images, resumes the origins.
# Measured as the wall time of the command, i.e. including its process
# start-up and the creation of the store's dm-linear device.
log "== snapshot time"
for i in 4 5 6 7 8 9 10 11; do
	blksnapctl attach /dev/ram$i >/dev/null || die "attach ram$i"
done
for n in 1 4 8; do
	devs=()
	for ((i = 4; i < 4 + n; i++)); do devs+=(/dev/ram$i); done
	for ((r = 1; r <= SNAP_REPS; r++)); do
		a=$(date +%s%N)
		blksnapctl create "${devs[@]}" --store /dev/ram1 --chunk $((CHUNK * 512)) \
			--name bench-t$n >/dev/null || die "create $n"
		b=$(date +%s%N)
		blksnapctl destroy bench-t$n || die "destroy $n"
		emit "{\"kind\":\"snaptime\",\"devices\":$n,\"rep\":$r,\"ms\":$(((b - a) / 1000000))}"
		log "snapshot of $n devices: $(((b - a) / 1000000)) ms"
	done
done
for i in 4 5 6 7 8 9 10 11; do
	blksnapctl detach /dev/ram$i >/dev/null || die "detach ram$i"
done

log "done"
