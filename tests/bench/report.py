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
    "image": "blksnap image",
    "image-copied": "blksnap image, copied",
    "dms-snap": "dm-snap snapshot",
    "dms-snap-copied": "dm-snap snapshot, copied",
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
                ("blksnap overwrite / dm-snap overwrite", "bs-overwrite", "dms-overwrite")]
READ_RATIOS = [("tracking / dm-linear", "origin", "linear"),
               ("dm-linear / device", "linear", "raw"),
               ("image / device", "image", "raw"),
               ("dm-snap / device", "dms-snap", "raw"),
               ("image / dm-snap", "image", "dms-snap"),
               ("image copied / device", "image-copied", "raw"),
               ("dm-snap copied / device", "dms-snap-copied", "raw")]
ratios = []
for ops, table in ((WRITES, WRITE_RATIOS), (READS, READ_RATIOS)):
    for rw, bs in ops:
        for qd in QDS:
            for name, a, b in table:
                r = paired(a, b, rw, bs, qd)
                if r:
                    ratios.append({"workload": wl_name(rw, bs, qd), "rw": rw, "bs": bs, "qd": qd,
                                   "ratio": name, "num": a, "den": b, **r})


def R(a, b, rw, bs, qd):
    return paired(a, b, rw, bs, qd)


mem = {l["what"]: l for l in lines if l["kind"] == "mem"}
snaptime = {}
for l in lines:
    if l["kind"] == "snaptime":
        snaptime.setdefault(l["devices"], []).append(l["ms"])
snap_stats = {n: {"median_ms": statistics.median(v), "min_ms": min(v), "max_ms": max(v),
                  "samples_ms": v} for n, v in sorted(snaptime.items())}

goals = []


def goal_ratio(name, target_text, limit, num, den, ops, strict=False, detail=""):
    vals = [(R(num, den, rw, bs, qd), wl_name(rw, bs, qd)) for rw, bs in ops for qd in QDS]
    vals = [(r, w) for r, w in vals if r]
    if not vals:
        return
    r, w = min(vals, key=lambda v: v[0]["median"])
    v = r["median"]
    met = v > limit if strict else v >= limit
    per = "; ".join(f"{ww}: {rr['median'] * 100:.0f}%" for rr, ww in vals)
    if limit == 1.0:
        text = f"{v:.2f}x (worst: {w}, runs {r['min']:.2f}-{r['max']:.2f})"
        short = None if met else f"{(1 - v) * 100:.0f}% slower than dm-snapshot in {w}"
    else:
        text = f"{v * 100:.0f}% (worst: {w}, runs {r['min'] * 100:.0f}-{r['max'] * 100:.0f}%)"
        short = None if met else f"{(limit - v) * 100:.0f} points"
    goals.append({"goal": name, "target": target_text, "measured": v, "measured_text": text,
                  "met": met, "short_by": short, "per_workload": per, "detail": detail})


goal_ratio("Tracking only vs dm-linear", ">= 97%", 0.97, "origin", "linear", WRITES + READS,
           detail="all eight workloads")
goal_ratio("Overwrites of copied chunks vs dm-linear", ">= 90%", 0.90, "bs-overwrite", "linear2", WRITES)
goal_ratio("First writes (copy-on-write) vs dm-snapshot", "faster at every QD", 1.0, "bs-first", "dms-first",
           WRITES, strict=True)
goal_ratio("Image sequential reads vs the device", ">= 90%", 0.90, "image", "raw", [("read", "1m")],
           detail="chunks not copied: read from the device")
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
}
(outdir / "results.json").write_text(json.dumps(results, indent=1) + "\n")

# ---- report.md --------------------------------------------------------------
reps = env.get("reps", "?")
md = []
md.append("# dm-blksnap benchmark\n")
md.append(f"Kernel {env.get('kernel', '?')} under QEMU software emulation (TCG), "
          f"{env.get('cpus', '?')} vCPUs, {env.get('fio', 'fio')}; brd RAM disks; "
          f"chunk {env.get('chunk_sectors', 8) * 512 // 1024} KiB for blksnap and dm-snapshot; "
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
wt = ["linear", "origin", "linear2", "bs-overwrite", "dms-overwrite", "bs-first", "dms-first"]
md.append("| Workload | " + " | ".join(NAMES[t] for t in wt) + " |")
md.append("|---" * (len(wt) + 1) + "|")
for rw, bs in WRITES:
    for qd in QDS:
        md.append(f"| {wl_name(rw, bs, qd)} | " + " | ".join(fmt_val(stat(t, rw, bs, qd), bs) for t in wt) + " |")
md.append("")
md.append("Ratios: median (min-max) over the runs of the ratio within each run. Tracking is paired with "
          "the dm-linear jobs of its group, overwrites with the dm-linear jobs run between them, "
          "first writes of blksnap and dm-snapshot with each other.\n")
md.append("| Workload | " + " | ".join(n for n, _, _ in WRITE_RATIOS) + " |")
md.append("|---" * (len(WRITE_RATIOS) + 1) + "|")
for rw, bs in WRITES:
    for qd in QDS:
        cells = []
        for n, a, b in WRITE_RATIOS:
            r = R(a, b, rw, bs, qd)
            cells.append(xf(r, True) if "first / dm-snap" in n or "/ dm-snap overwrite" in n
                         else pct(r, n in ("tracking / dm-linear", "overwrite / dm-linear")))
        md.append(f"| {wl_name(rw, bs, qd)} | " + " | ".join(cells) + " |")
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


wcolors = ["#4e79a7", "#59a14f", "#bab0ac", "#e15759", "#f28e2b"]
rcolors = ["#9c9c9c", "#4e79a7", "#59a14f", "#f28e2b", "#8cd17d", "#ffbe7d"]
gp = f"""# generated by tests/bench/report.py
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {{
    set terminal pngcairo size 1400,1000 font ",11"
}} else {{
    set terminal png size 1400,1000
}}
set output 'chart.png'
set multiplot layout 2,1 title "dm-blksnap vs dm-linear and dm-snapshot ({env.get('kernel', '')}, QEMU TCG, brd, {env.get('chunk_sectors', 8) * 512 // 1024} KiB chunks, median of {reps}, bars: min-max of the runs)"
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
