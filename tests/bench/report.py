#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
#
# tests/bench/report.py RAW.jsonl OUTDIR: turn the JSON lines of
# tests/bench/guest.sh (plus the host line of tests/bench/run) into
# OUTDIR/results.json, OUTDIR/report.md and OUTDIR/chart.gp (+ its data),
# which tests/bench/run renders to OUTDIR/chart.png with gnuplot.
# Standard library only.
import json
import statistics
import sys
from pathlib import Path

raw_path, outdir = Path(sys.argv[1]), Path(sys.argv[2])
outdir.mkdir(parents=True, exist_ok=True)
lines = [json.loads(l) for l in raw_path.read_text().splitlines() if l.strip()]
env = next((l for l in lines if l["kind"] == "env"), {})
host = next((l for l in lines if l["kind"] == "host"), {})

WRITES = [("randwrite", "4k"), ("write", "1m")]
READS = [("randread", "4k"), ("read", "1m")]
QDS = sorted({l["qd"] for l in lines if l["kind"] == "fio"}) or [1, 16]
NAMES = {
    "raw": "device",
    "linear": "dm-linear",
    "linear2": "dm-linear (next to overwrites)",
    "origin": "blksnap tracking",
    "bs-overwrite": "blksnap overwrite",
    "bs-first": "blksnap first write",
    "dms-overwrite": "dm-snap overwrite",
    "dms-first": "dm-snap first write",
    "bs-first64": "blksnap first write, 64K chunks",
    "dms-first64": "dm-snap first write, 64K chunks",
    "image": "blksnap image",
    "image-copied": "blksnap image, copied",
    "dms-snap": "dm-snap snapshot",
    "dms-snap-copied": "dm-snap snapshot, copied",
    "linear3": "dm-linear",
    "pcbt": "blksnap persistent",
    "era": "dm-era",
    "morigin": "blksnap in memory",
    "linear-first": "dm-linear",
    "pcbt-first": "blksnap persistent",
    "era-first": "dm-era",
    "morigin-first": "blksnap in memory",
}


def wl_name(rw, bs, qd):
    kind = {"randwrite": "rand write", "write": "seq write",
            "randread": "rand read", "read": "seq read"}[rw]
    return f"{bs.upper()} {kind} QD{qd}"


# ---- aggregate fio samples ------------------------------------------------
samples = {}
for l in lines:
    if l["kind"] != "fio":
        continue
    samples.setdefault((l["target"], l["rw"], l["bs"], l["qd"]), []).append(l)


def stat(target, rw, bs, qd):
    """Median, min, max of throughput in MiB/s and IOPS, or None."""
    s = samples.get((target, rw, bs, qd))
    if not s:
        return None
    bw = [x["bw_bytes"] / 1048576 for x in s]
    iops = [x["iops"] for x in s]
    lat = [x["lat_mean_ns"] / 1000 for x in s]
    med = statistics.median(bw)
    return {
        "n": len(s),
        "mib_s": med, "mib_s_min": min(bw), "mib_s_max": max(bw),
        "iops": statistics.median(iops), "iops_min": min(iops), "iops_max": max(iops),
        "lat_mean_us": statistics.median(lat),
        "spread_pct": (max(bw) - min(bw)) / med * 100 if med else 0,
        "samples_mib_s": [round(b, 2) for b in bw],
    }


def paired(a, b, rw, bs, qd):
    """Throughput of a / throughput of b, per rep (the two were measured
    close together in time in the same rep): median, min, max."""
    sa = {x["rep"]: x["bw_bytes"] for x in samples.get((a, rw, bs, qd), [])}
    sb = {x["rep"]: x["bw_bytes"] for x in samples.get((b, rw, bs, qd), [])}
    r = [sa[k] / sb[k] for k in sorted(sa) if k in sb and sb[k]]
    if not r:
        return None
    return {"median": statistics.median(r), "min": min(r), "max": max(r), "samples": [round(v, 4) for v in r]}


def fmt_val(st, bs):
    if not st:
        return "n/a"
    if bs == "4k":
        v, lo, hi = st["iops"] / 1000, st["iops_min"] / 1000, st["iops_max"] / 1000
        return f"{v:.1f}k ({lo:.1f}-{hi:.1f})"
    return f"{st['mib_s']:.0f} ({st['mib_s_min']:.0f}-{st['mib_s_max']:.0f})"


def pct(r, bold=False):
    if r is None:
        return "n/a"
    m = f"{r['median'] * 100:.0f}%"
    if bold:
        m = f"**{m}**"
    return f"{m} ({r['min'] * 100:.0f}-{r['max'] * 100:.0f})"


def xf(r, bold=False):
    if r is None:
        return "n/a"
    m = f"{r['median']:.2f}x"
    if bold:
        m = f"**{m}**"
    return f"{m} ({r['min']:.2f}-{r['max']:.2f})"


fio_results = []
for (t, rw, bs, qd) in sorted(samples):
    fio_results.append({"target": t, "rw": rw, "bs": bs, "qd": qd, **stat(t, rw, bs, qd)})

# ---- ratios (paired per rep) and goals -----------------------------------
# (name, numerator, denominator): the denominators were measured right next
# to the numerators, except where noted in the report.
WRITE_RATIOS = [("tracking / dm-linear", "origin", "linear"),
                ("overwrite / dm-linear", "bs-overwrite", "linear2"),
                ("dm-snap overwrite / dm-linear", "dms-overwrite", "linear2"),
                ("blksnap first / dm-snap first", "bs-first", "dms-first"),
                ("blksnap first / dm-linear", "bs-first", "linear"),
                ("dm-snap first / dm-linear", "dms-first", "linear"),
                ("blksnap overwrite / dm-snap overwrite", "bs-overwrite", "dms-overwrite"),
                ("blksnap first 64K / dm-snap first 64K", "bs-first64", "dms-first64"),
                ("blksnap first 64K / dm-linear", "bs-first64", "linear"),
                ("dm-snap first 64K / dm-linear", "dms-first64", "linear")]
READ_RATIOS = [("tracking / dm-linear", "origin", "linear"),
               ("dm-linear / device", "linear", "raw"),
               ("image / device", "image", "raw"),
               ("dm-snap / device", "dms-snap", "raw"),
               ("image / dm-snap", "image", "dms-snap"),
               ("image copied / device", "image-copied", "raw"),
               ("dm-snap copied / device", "dms-snap-copied", "raw")]
# Persistent tracking (guest section 4): steady state (blocks marked since
# the last take) and first writes after a take, each paired with the
# dm-linear jobs run between them.
PCBT_RATIOS = [("persistent / dm-linear", "pcbt", "linear3"),
               ("dm-era / dm-linear", "era", "linear3"),
               ("in memory / dm-linear", "morigin", "linear3"),
               ("persistent / dm-era", "pcbt", "era")]
PCBT_FIRST_RATIOS = [("persistent / dm-linear", "pcbt-first", "linear-first"),
                     ("dm-era / dm-linear", "era-first", "linear-first"),
                     ("in memory / dm-linear", "morigin-first", "linear-first"),
                     ("persistent / dm-era", "pcbt-first", "era-first")]
ratios = []
for ops, table in ((WRITES, WRITE_RATIOS), (READS, READ_RATIOS), (WRITES + READS, PCBT_RATIOS),
                   (WRITES, PCBT_FIRST_RATIOS)):
    for rw, bs in ops:
        for qd in QDS:
            for name, a, b in table:
                r = paired(a, b, rw, bs, qd)
                if r:
                    ratios.append({"workload": wl_name(rw, bs, qd), "rw": rw, "bs": bs, "qd": qd,
                                   "ratio": name, "num": a, "den": b, **r})


def R(a, b, rw, bs, qd):
    return paired(a, b, rw, bs, qd)


# ---- first writes against their physical limit -------------------------------
# A first write of B bytes to chunks of C bytes untouched since the snapshot
# copies B bytes (C <= B: the chunks it covers) or one whole chunk (C > B: the
# guest's MODE first gives such writes one untouched chunk each). Its limit
# from the dm-linear figures of the same run and queue depth, R and W the
# read and write throughput at the copy's size, W_B the write throughput at B:
#   "cow"      copy on the write's path: t = copied/R + copied/W + B/W_B
#   "latency"  the store write off the write's path (what buffered
#              copy-on-write could reach): t = copied/R + B/W_B
# dm-linear is measured at 4K (random) and 1M (sequential) only: copies of
# 4 KiB take the 4K figures, larger copies (64 KiB chunks, 1M writes) the 1M
# ones.
FIRST_SETS = [  # (chunk label, blksnap target, dm-snapshot target, chunk sectors)
    ("4K", "bs-first", "dms-first", env.get("chunk_sectors", 8)),
    ("64K", "bs-first64", "dms-first64", env.get("chunk64_sectors", 128)),
]
LIMIT_KINDS = [("cow", "copy-on-write limit (the copy on the write's path)"),
               ("latency", "latency limit (the store write off the write's path)")]
BS_BYTES = {"4k": 4096, "1m": 1048576}
LINEAR_AT = {"4k": ("randread", "randwrite"), "1m": ("read", "write")}


def copy_of(bs, chunk_sectors):
    """Bytes copied by one first write of bs, and the block size of the dm-linear
    figures that stand for the copy."""
    b, c = BS_BYTES[bs], chunk_sectors * 512
    copied = b if c <= b else c
    return copied, ("4k" if copied <= 4096 else "1m")


def limit_per_rep(chunk_sectors, bs, qd, kind):
    """{rep: limit throughput in bytes/s} from the dm-linear jobs of each rep."""
    lin = {(x["rw"], x["bs"], x["rep"]): x["bw_bytes"]
           for (t, _, _, q), xs in samples.items() if t == "linear" and q == qd for x in xs}
    b = BS_BYTES[bs]
    copied, cbs = copy_of(bs, chunk_sectors)
    reps = sorted({k[2] for k in lin})
    out = {}
    for rep in reps:
        r = lin.get((LINEAR_AT[cbs][0], cbs, rep))
        w = lin.get((LINEAR_AT[cbs][1], cbs, rep))
        wb = lin.get((LINEAR_AT[bs][1], bs, rep))
        if not (r and w and wb):
            continue
        t = copied / r + b / wb + (copied / w if kind == "cow" else 0)
        out[rep] = b / t
    return out


def summary(v):
    return {"median": statistics.median(v), "min": min(v), "max": max(v)} if v else None


def limit_stat(chunk_sectors, bs, qd, kind):
    """The limit over the reps in bytes/s: median, min, max, samples."""
    lim = limit_per_rep(chunk_sectors, bs, qd, kind)
    m = summary(list(lim.values()))
    return m and {**m, "samples": [round(v) for v in lim.values()]}


def share(target, chunk_sectors, rw, bs, qd, kind):
    """Measured / limit, paired per rep (the limit of the same rep)."""
    lim = limit_per_rep(chunk_sectors, bs, qd, kind)
    r = [x["bw_bytes"] / lim[x["rep"]] for x in sorted(samples.get((target, rw, bs, qd), []),
                                                       key=lambda x: x["rep"]) if lim.get(x["rep"])]
    m = summary(r)
    return m and {**m, "samples": [round(v, 4) for v in r]}


first_limits = []
for label, bst, dmst, cs in FIRST_SETS:
    for rw, bs in WRITES:
        copied, cbs = copy_of(bs, cs)
        for qd in QDS:
            for kind, _ in LIMIT_KINDS:
                lim = limit_stat(cs, bs, qd, kind)
                if not lim:
                    continue
                for t in (bst, dmst):
                    sh = share(t, cs, rw, bs, qd, kind)
                    if sh:
                        first_limits.append({
                            "target": t, "chunk_sectors": cs, "workload": wl_name(rw, bs, qd),
                            "rw": rw, "bs": bs, "qd": qd, "kind": kind, "copied_bytes": copied,
                            "linear_figures_for_copy": cbs, "limit_bytes_s": lim,
                            "limit_iops": {k: lim[k] / BS_BYTES[bs] for k in ("median", "min", "max")},
                            "share": sh})


mem = {l["what"]: l for l in lines if l["kind"] == "mem"}
snaptime = {}
for l in lines:
    if l["kind"] == "snaptime":
        snaptime.setdefault(l["devices"], []).append(l["ms"])
snap_stats = {n: {"median_ms": statistics.median(v), "min_ms": min(v), "max_ms": max(v),
                  "samples_ms": v} for n, v in sorted(snaptime.items())}

goals = []


def goal_ratio(name, target_text, limit, num, den, ops, strict=False, detail="", unit="%", ref="dm-snapshot"):
    """A goal on the paired ratio num/den: its worst median over the workloads
    ops at every QD must reach limit (exceed it if strict); unit "%" for a
    share of dm-linear or the device, "x" for a speed-up over dm-snapshot."""
    vals = [(R(num, den, rw, bs, qd), wl_name(rw, bs, qd)) for rw, bs in ops for qd in QDS]
    vals = [(r, w) for r, w in vals if r]
    if not vals:
        return
    r, w = min(vals, key=lambda v: v[0]["median"])
    v = r["median"]
    met = v > limit if strict else v >= limit
    if unit == "x":
        per = "; ".join(f"{ww}: {rr['median']:.2f}x" for rr, ww in vals)
        text = f"{v:.2f}x (worst: {w}, runs {r['min']:.2f}-{r['max']:.2f})"
        if met:
            short = None
        elif limit == 1.0:
            short = f"{(1 - v) * 100:.0f}% slower than {ref} in {w}"
        else:
            short = f"{limit - v:.2f}x in {w}"
    else:
        per = "; ".join(f"{ww}: {rr['median'] * 100:.0f}%" for rr, ww in vals)
        text = f"{v * 100:.0f}% (worst: {w}, runs {r['min'] * 100:.0f}-{r['max'] * 100:.0f}%)"
        short = None if met else f"{(limit - v) * 100:.0f} points"
    goals.append({"goal": name, "target": target_text, "measured": v, "measured_text": text,
                  "met": met, "short_by": short, "per_workload": per, "detail": detail})


goal_ratio("Tracking only vs dm-linear", ">= 97%", 0.97, "origin", "linear", WRITES + READS,
           detail="all eight workloads")
goal_ratio("Overwrites of copied chunks vs dm-linear", ">= 90%", 0.90, "bs-overwrite", "linear2", WRITES)
goal_ratio("First writes (copy-on-write) vs dm-snapshot", "faster at every QD", 1.0, "bs-first", "dms-first",
           WRITES, strict=True, unit="x")
goal_ratio("1M sequential first writes vs dm-linear (QD1 and QD16)", ">= 25%", 0.25, "bs-first", "linear",
           [("write", "1m")], detail="4 KiB chunks")
goal_ratio("1M sequential first writes vs dm-snapshot (QD1 and QD16)", ">= 2.5x", 2.5, "bs-first", "dms-first",
           [("write", "1m")], unit="x", detail="4 KiB chunks")
goal_ratio("4K random first writes vs dm-snapshot (QD1 and QD16)", ">= 1.5x", 1.5, "bs-first", "dms-first",
           [("randwrite", "4k")], unit="x", detail="4 KiB chunks")
goal_ratio("Image sequential reads vs the device", ">= 90%", 0.90, "image", "raw", [("read", "1m")],
           detail="chunks not copied: read from the device")
goal_ratio("Persistent tracking, steady state, vs dm-linear", ">= 97%", 0.97, "pcbt", "linear3", WRITES,
           detail="writes to blocks marked since the last take, 4 KiB tracking blocks")
goal_ratio("Persistent tracking vs dm-era, steady state", ">= 1.00x", 1.0, "pcbt", "era", WRITES + READS,
           unit="x", detail="all eight workloads", ref="dm-era")
goal_ratio("Persistent tracking vs dm-era, first writes after a take", ">= 1.00x", 1.0, "pcbt-first",
           "era-first", WRITES, unit="x", detail="every write the first to its blocks since the take",
           ref="dm-era")
per_chunk = mem.get("blksnap_per_copied_chunk")
if per_chunk:
    b = per_chunk["bytes_per_unit"]
    goals.append({"goal": "Kernel memory per copied chunk", "target": "<= 64 B", "measured": b,
                  "measured_text": f"{b:.0f} B", "met": b <= 64,
                  "short_by": None if b <= 64 else f"{b - 64:.0f} B", "detail": ""})
for m in [l for l in lines if l["kind"] == "mem" and l["what"] == "snapshot_per_tib"]:
    b = m["bytes_per_unit"]
    bit = m["bitmap_bytes_per_tib"]
    cs = m["chunk_sectors"] * 512 // 1024
    fixed = (b - bit) * m["device_tib"]
    goals.append({"goal": f"Memory per TiB with a snapshot held, {cs} KiB chunks",
                  "target": f"1 bit/chunk = {bit / 2**20:.0f} MiB/TiB", "measured": b,
                  "measured_text": f"{b / 2**20:.2f} MiB/TiB ({b / bit:.3f} bit/chunk; "
                                   f"{fixed / 1024:.0f} KiB per snapshot beyond the bitmap)",
                  "met": b <= bit * 1.01,
                  "short_by": None if b <= bit * 1.01 else f"{(b - bit) / 2**20:.2f} MiB/TiB",
                  "detail": f"{m['device_tib']} TiB dm-zero origin"})

# ---- results.json -----------------------------------------------------------
results = {
    "schema": 1,
    "env": env, "host": host,
    "fio": fio_results,
    "ratios": ratios,
    "memory": [l for l in lines if l["kind"] == "mem"],
    "snapshot_time": {str(k): v for k, v in snap_stats.items()},
    "cow_status": [l for l in lines if l["kind"] == "status"],
    "teardown": [l for l in lines if l["kind"] == "teardown"],
    "goals": goals,
    "first_write_limits": first_limits,
}
(outdir / "results.json").write_text(json.dumps(results, indent=1) + "\n")

# ---- report.md --------------------------------------------------------------
reps = env.get("reps", "?")
has64 = any(t in ("bs-first64", "dms-first64") for t, _, _, _ in samples)
cs64 = env.get("chunk64_sectors", 128) * 512 // 1024
md = []
md.append("# dm-blksnap benchmark\n")
md.append(f"Kernel {env.get('kernel', '?')} under QEMU software emulation (TCG), "
          f"{env.get('cpus', '?')} vCPUs, {env.get('fio', 'fio')}; brd RAM disks; "
          f"chunk {env.get('chunk_sectors', 8) * 512 // 1024} KiB for blksnap and dm-snapshot"
          f"{f' (first writes also with {cs64} KiB chunks)' if has64 else ''}; "
          f"each fio job <= {env.get('runtime_s', '?')} s over {env.get('region_mib', '?')} MiB; "
          f"libaio, O_DIRECT. {reps} runs per figure: median (min-max). "
          f"Commit {host.get('commit', '?')}{' + uncommitted driver changes' if host.get('dirty') else ''}, "
          f"{host.get('date', '?')}; tests/vm/run (module build, boot, guest) {host.get('guest_seconds', '?')} s; host load average "
          f"{host.get('loadavg_before', '?')} before, {host.get('loadavg_after', '?')} after "
          f"(other guests share the {host.get('host_cpus', '?')} host CPUs). "
          "Emulated absolute numbers mean little: read the ratios.\n")

md.append("## Goals\n")
md.append("| Goal | Target | Measured (median of paired runs) | Met | Short by |")
md.append("|---|---|---|---|---|")
for g in goals:
    md.append(f"| {g['goal']} | {g['target']} | {g['measured_text']} | {'yes' if g['met'] else '**no**'} | "
              f"{g['short_by'] or '-'} |")
md.append("")

md.append("## Writes\n")
md.append("4K: IOPS, 1M: MiB/s; median (min-max) of the runs. \"first write\": the first write to a chunk "
          "since the snapshot (copy-on-write); \"overwrite\": a write to a chunk copied already.\n")
wt = ["linear", "origin", "linear2", "bs-overwrite", "dms-overwrite", "bs-first", "dms-first",
      "bs-first64", "dms-first64"]
md.append("| Workload | " + " | ".join(NAMES[t] for t in wt) + " |")
md.append("|---" * (len(wt) + 1) + "|")
for rw, bs in WRITES:
    for qd in QDS:
        md.append(f"| {wl_name(rw, bs, qd)} | " + " | ".join(fmt_val(stat(t, rw, bs, qd), bs) for t in wt) + " |")
md.append("")
md.append("The 64K first writes: the same with 64 KiB chunks, on a fresh image and snapshot; their 4K "
          "writes go one per untouched chunk (each copies a whole chunk, 16 times what it writes), "
          "each job over 128 MiB: they are shorter than the others.\n")
md.append("Ratios: median (min-max) over the runs of the ratio within each run. Tracking is paired with "
          "the dm-linear jobs of its group, overwrites with the dm-linear jobs run between them, "
          "first writes of blksnap and dm-snapshot with each other (4K and 64K chunks apart), "
          "and with the dm-linear jobs of the same run.\n")
# in bold as before (the 64K ratios are not goals)
BOLD_RATIOS = ("tracking / dm-linear", "overwrite / dm-linear", "blksnap first / dm-snap first",
               "blksnap overwrite / dm-snap overwrite")
md.append("| Workload | " + " | ".join(n for n, _, _ in WRITE_RATIOS) + " |")
md.append("|---" * (len(WRITE_RATIOS) + 1) + "|")
for rw, bs in WRITES:
    for qd in QDS:
        cells = []
        for n, a, b in WRITE_RATIOS:
            r = R(a, b, rw, bs, qd)
            cells.append(xf(r, n in BOLD_RATIOS) if " / dm-snap" in n else pct(r, n in BOLD_RATIOS))
        md.append(f"| {wl_name(rw, bs, qd)} | " + " | ".join(cells) + " |")
md.append("")



def fmt_rate(m, bs):
    """A limit in bytes/s: IOPS for 4K writes, MiB/s for 1M ones, like fmt_val."""
    if not m:
        return "n/a"
    if bs == "4k":
        return f"{m['median'] / 4096 / 1000:.1f}k ({m['min'] / 4096 / 1000:.1f}-{m['max'] / 4096 / 1000:.1f})"
    return f"{m['median'] / 2**20:.0f} ({m['min'] / 2**20:.0f}-{m['max'] / 2**20:.0f})"


md.append("## First writes against the physical limit\n")
md.append("A first write of B bytes to chunks of C bytes untouched since the snapshot copies "
          "B bytes (C <= B: the chunks it covers) or one whole chunk (C > B). From the dm-linear "
          "figures of the same run and queue depth (R, W: read and write throughput at the copy's "
          "size; W_B: write throughput at B), the time per write is at least\n")
md.append("- **copy-on-write limit**, the copy on the write's path (read the old data, write it to "
          "the store, then the write): copied/R + copied/W + B/W_B;")
md.append("- **latency limit**, the store write off the write's path (what buffered copy-on-write "
          "could reach): copied/R + B/W_B.\n")
md.append("dm-linear is measured at 4K (random) and 1M (sequential) only: 4 KiB copies take the 4K "
          "figures, 64 KiB copies (4K writes with 64 KiB chunks) and 1 MiB copies (1M writes) the 1M "
          "sequential ones, which makes the limit of the 64 KiB copies somewhat optimistic. Limits: "
          "4K IOPS, 1M MiB/s, median (min-max) over the runs; share: measured / limit within each "
          "run, median (min-max).\n")
md.append("| Chunk | Workload | Copied per write | Copy-on-write limit | blksnap share | dm-snap share "
          "| Latency limit | blksnap share | dm-snap share |")
md.append("|---" * 9 + "|")
for label, bst, dmst, cs in FIRST_SETS:
    if not any(samples.get((t, rw, bs, qd)) for t in (bst, dmst) for rw, bs in WRITES for qd in QDS):
        continue
    for rw, bs in WRITES:
        copied, cbs = copy_of(bs, cs)
        for qd in QDS:
            cells = [f"{cs * 512 // 1024} KiB", wl_name(rw, bs, qd),
                     f"{copied // 1024} KiB ({'4K' if cbs == '4k' else '1M'} figures)"]
            for kind, _ in LIMIT_KINDS:
                cells.append(fmt_rate(limit_stat(cs, bs, qd, kind), bs))
                cells += [pct(share(t, cs, rw, bs, qd, kind), t == bst) for t in (bst, dmst)]
            md.append("| " + " | ".join(cells) + " |")
md.append("")

md.append("## Reads\n")
md.append("\"copied\": chunks already in the store (read from the store; 1M sequential only); otherwise "
          "the image reads the origin device.\n")
rt = ["raw", "linear", "origin", "image", "dms-snap", "image-copied", "dms-snap-copied"]
md.append("| Workload | " + " | ".join(NAMES[t] for t in rt) + " |")
md.append("|---" * (len(rt) + 1) + "|")
for rw, bs in READS:
    for qd in QDS:
        md.append(f"| {wl_name(rw, bs, qd)} | " + " | ".join(fmt_val(stat(t, rw, bs, qd), bs) for t in rt) + " |")
md.append("")
md.append("Ratios as above; the device reads run next to the image and snapshot reads, dm-linear and "
          "tracking reads in the group before.\n")
md.append("| Workload | " + " | ".join(n for n, _, _ in READ_RATIOS) + " |")
md.append("|---" * (len(READ_RATIOS) + 1) + "|")
for rw, bs in READS:
    for qd in QDS:
        cells = []
        for n, a, b in READ_RATIOS:
            r = R(a, b, rw, bs, qd)
            cells.append(xf(r) if n == "image / dm-snap" else pct(r, n in ("image / device", "tracking / dm-linear")))
        md.append(f"| {wl_name(rw, bs, qd)} | " + " | ".join(cells) + " |")
md.append("")

if any(t == "pcbt" for t, _, _, _ in samples):
    md.append("## Change tracking that survives reboots\n")
    md.append("blksnap-origin with CBT metadata on a RAM disk (persistent), dm-era with its metadata "
              "on another, both over the device of dm-linear with 4 KiB tracking blocks, and "
              "blksnap-origin without metadata (in memory) with the same block over a device like "
              "it. **Steady state**: every block of the region written once since the last take "
              "(dm-era: checkpoint), then the workloads over it, time-based. **First writes after a "
              "take**: a take (checkpoint), then each job writes untouched blocks of its own region "
              "(each write the first to its blocks since the take; bounded by the region or the "
              "runtime), next to dm-linear writing the same regions. 4K: IOPS, 1M: MiB/s.\n")
    for title, ops, tl, table in (("Steady state", WRITES + READS, ["linear3", "pcbt", "era", "morigin"],
                                   PCBT_RATIOS),
                                  ("First writes after a take", WRITES,
                                   ["linear-first", "pcbt-first", "era-first", "morigin-first"],
                                   PCBT_FIRST_RATIOS)):
        md.append(f"{title}:\n")
        md.append("| Workload | " + " | ".join(NAMES[t] for t in tl) + " | "
                  + " | ".join(n for n, _, _ in table) + " |")
        md.append("|---" * (len(tl) + len(table) + 1) + "|")
        for rw, bs in ops:
            for qd in QDS:
                cells = [fmt_val(stat(t, rw, bs, qd), bs) for t in tl]
                cells += [xf(R(a, b, rw, bs, qd), True) if n.endswith("dm-era") else
                          pct(R(a, b, rw, bs, qd), n.startswith("persistent"))
                          for n, a, b in table]
                md.append(f"| {wl_name(rw, bs, qd)} | " + " | ".join(cells) + " |")
        md.append("")

md.append("## Time to take a coherent snapshot\n")
md.append("Wall time of `blksnapctl create <devices> --store /dev/ram1` on brd devices attached with "
          "`blksnapctl attach` (suspend all with lockfs, create the store and the images, resume), "
          "including the process start; median (min-max).\n")
md.append("| Devices | ms |")
md.append("|---|---|")
for n, s in snap_stats.items():
    md.append(f"| {n} | {s['median_ms']:.0f} ({s['min_ms']}-{s['max_ms']}) |")
md.append("")

teardown = [l for l in lines if l["kind"] == "teardown"]
if teardown:
    md.append("## Removing an image from a shared store\n")
    md.append("Two images on dm-zero origins share one dm-zero store and copy every chunk at the same "
              "time, so that their chunks interleave in the store; then `dmsetup remove` of one (its "
              "chunks go back as that many holes), then of the other (they coalesce into the "
              "high-water mark).\n")
    md.append("| Image | Chunks | Chunk | Removal |")
    md.append("|---|---|---|---|")
    for t in teardown:
        md.append(f"| {'interleaved with the other' if t['interleaved'] else 'the last one'} | "
                  f"{t['chunks']} | {t['chunk_sectors'] * 512 // 1024} KiB | {t['ms'] / 1000:.2f} s |")
    md.append("")

md.append("## Kernel memory\n")
md.append("Growth of SUnreclaim + VmallocUsed (/proc/meminfo).\n")
md.append("| What | Slab KiB | Vmalloc KiB | Per | Bytes per unit | Note |")
md.append("|---|---|---|---|---|---|")
for m in [l for l in lines if l["kind"] == "mem"]:
    w = m["what"]
    if w == "tracking_per_tib":
        per, note = "TiB", (f"{m['device_tib']} TiB dm-zero origin, tracking block "
                           f"{m['tracking_block_sectors'] * 512 // 1024} KiB (two 1-byte maps)")
        val = f"{m['bytes_per_unit'] / 1024:.0f} KiB"
    elif w == "snapshot_per_tib":
        per = "TiB"
        note = (f"image, {m['chunk_sectors'] * 512 // 1024} KiB chunks on a {m['device_tib']} TiB origin; "
                f"1 bit/chunk = {m['bitmap_bytes_per_tib'] / 2**20:.0f} MiB")
        val = f"{m['bytes_per_unit'] / 2**20:.2f} MiB"
    elif w == "blksnap_per_copied_chunk":
        per = "copied chunk"
        note = (f"{m['units']} chunks copied; exception object {m['exception_objsize']} B"
                + ("" if m.get("slabinfo_has_cache") else " (cache merged, not in slabinfo)"))
        val = f"{m['bytes_per_unit']:.1f} B"
    else:
        per, note, val = "copied chunk", f"dm-snapshot, {m['units']} chunks", f"{m['bytes_per_unit']:.1f} B"
    md.append(f"| {w} | {m['slab_kib']} | {m['vmalloc_kib']} | {per} | {val} | {note} |")
md.append("")
md.append("![chart](chart.png)\n")
(outdir / "report.md").write_text("\n".join(md))

# ---- chart --------------------------------------------------------------------
def dat(path, series, ops):
    with open(path, "w") as f:
        f.write("# label " + " ".join(f"{a}/{b} min max" for a, b in series) + "\n")
        for rw, bs in ops:
            for qd in QDS:
                cols = []
                for a, b in series:
                    r = R(a, b, rw, bs, qd)
                    cols += [r["median"] * 100, r["min"] * 100, r["max"] * 100] if r else [0, 0, 0]
                label = wl_name(rw, bs, qd).replace(" ", "\\n", 2)
                f.write(f"\"{label}\" " + " ".join(f"{c:.1f}" for c in cols) + "\n")


wt_chart = [("origin", "linear"), ("bs-overwrite", "linear2"), ("dms-overwrite", "linear2"),
            ("bs-first", "linear"), ("dms-first", "linear")]
if has64:
    wt_chart += [("bs-first64", "linear"), ("dms-first64", "linear")]
rt_chart = [("linear", "raw"), ("origin", "raw"), ("image", "raw"), ("dms-snap", "raw"),
            ("image-copied", "raw"), ("dms-snap-copied", "raw")]
dat(outdir / "writes.dat", wt_chart, WRITES)
dat(outdir / "reads.dat", rt_chart, READS)


def plot_cmd(file, series, colors):
    parts = []
    for i, (t, _) in enumerate(series):
        c = 2 + 3 * i
        parts.append(f"'{file}' using {c}:{c + 1}:{c + 2}:xtic(1) title '{NAMES[t]}' lc rgb '{colors[i]}'")
    return ", \\\n     ".join(parts)


wcolors = ["#4e79a7", "#59a14f", "#bab0ac", "#e15759", "#f28e2b", "#b07aa1", "#ff9da7"]
rcolors = ["#9c9c9c", "#4e79a7", "#59a14f", "#f28e2b", "#8cd17d", "#ffbe7d"]
gp = f"""# generated by tests/bench/report.py
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {{
    set terminal pngcairo size 1400,1000 font ",11"
}} else {{
    set terminal png size 1400,1000
}}
set output 'chart.png'
set multiplot layout 2,1 title "dm-blksnap vs dm-linear and dm-snapshot ({env.get('kernel', '')}, QEMU TCG, brd, {env.get('chunk_sectors', 8) * 512 // 1024} KiB chunks{f' (first writes also {cs64} KiB)' if has64 else ''}, median of {reps}, bars: min-max of the runs)"
set style data histogram
set style histogram errorbars gap 1 lw 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key outside right top vertical
set yrange [0:200]
set bmargin 4
set ylabel "% of dm-linear (axis cut at 200%)"
set title "Writes through the origin, % of dm-linear (goals: tracking >= 97%, overwrite >= 90%, blksnap first write above dm-snap first write)"
set arrow 1 from graph 0, first 97 to graph 1, first 97 nohead dt 2 lc rgb '#4e79a7'
set arrow 2 from graph 0, first 90 to graph 1, first 90 nohead dt 2 lc rgb '#59a14f'
plot {plot_cmd('writes.dat', wt_chart, wcolors)}
unset arrow 1
unset arrow 2
set ylabel "% of the device (axis cut at 200%)"
set title "Reads, % of reading the device directly (goal: image 1M sequential reads >= 90%)"
set arrow 3 from graph 0, first 90 to graph 1, first 90 nohead dt 2 lc rgb '#59a14f'
plot {plot_cmd('reads.dat', rt_chart, rcolors)}
unset multiplot
"""
(outdir / "chart.gp").write_text(gp)
print(f"report: {outdir / 'report.md'}")
