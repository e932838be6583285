"""The harness's table rows: for each benchmark, a few numbers read back from its JSON, each
with what it is compared with ("vs peer": the naive script, raw Zarr writes, one actor, a
target). Every function takes the script's JSON as a dict and returns rows."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Row:
    benchmark: str
    what: str
    value: str
    unit: str
    vs_peer: str = ""


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def scaling(r: dict) -> list[Row]:
    rows = []
    for s in r.get("summary", []):
        size, ours, naive = s["size"], s.get("ours"), s.get("naive")
        at = f"{size}^2"
        n = next((x["objects_placed"] for x in r["runs"] if x["size"] == size), "?")
        if ours:
            rows.append(Row("scaling", f"ours {at} wall, {n} objects", _num(ours["wall_seconds"]), "s",
                            f"{s['wall_ratio_ours_over_naive']:.2f}x naive" if "wall_ratio_ours_over_naive" in s else ""))
            rows.append(Row("scaling", f"ours {at} peak memory (process tree)", _num(ours["peak_memory_mib"], 0), "MiB",
                            f"{s['memory_ratio_ours_over_naive']:.2f}x naive" if "memory_ratio_ours_over_naive" in s else ""))
            rows.append(Row("scaling", f"ours {at} bytes written (final + stores)", _num(ours["bytes_written"] / 1e9, 2),
                            "GB", f"naive {naive['bytes_written'] / 1e9:.2f} GB" if naive else ""))
            rows.append(Row("scaling", f"ours {at} objects per second of wall", _num(ours["objects_per_s"]), "obj/s",
                            f"naive {naive['objects_per_s']:.0f}" if naive else ""))
            if "wall_over_disk_time" in s:
                rows.append(Row("scaling", f"ours {at} wall / disk time of final outputs", _num(s["wall_over_disk_time"], 2),
                                "x", f"disk time {s['disk_seconds_final_outputs']:.1f} s"))
        if naive:
            rows.append(Row("scaling", f"naive {at} wall", _num(naive["wall_seconds"]), "s", "peer"))
            rows.append(Row("scaling", f"naive {at} peak memory", _num(naive["peak_memory_mib"], 0), "MiB", "peer"))
    if r.get("disk_mb_per_s"):
        rows.append(Row("scaling", "disk write (dd bs=64M conv=fdatasync)", _num(r["disk_mb_per_s"], 0), "MB/s",
                        ", ".join(f"{d['mb_per_s']:.0f}" for d in r["disk_write"] if "mb_per_s" in d)))
    for skip in r.get("skipped", []):
        rows.append(Row("scaling", f"{skip['peer']} {skip['size']}^2", "skipped", "", skip["reason"]))
    return rows


def make_map_scale(r: dict) -> list[Row]:
    m, c = r["memory_mib"], r["chunks"]
    at = f"{r['size']}^2, {r['objects_placed']} objects"
    return [
        Row("make_map_scale", f"wall ({at})", _num(r["wall_seconds"]), "s"),
        Row("make_map_scale", "process tree peak PSS", _num(m["tree_peak_pss"], 0), "MiB",
            f"driver peak RSS {m['driver_peak_rss']:.0f} MiB"),
        Row("make_map_scale", "compositor chunks/s (chunk stage)", _num(c["compositor_chunks_per_s"], 2), "chunks/s",
            f"{c['fraction_of_raw']} of raw Zarr ({c['raw_zarr_chunks_per_s']:.1f}/s; target 0.6)"),
    ]


def resume_8192(r: dict) -> list[Row]:
    s = r["seconds"]
    return [
        Row("resume_8192", f"kill + resume byte-identical ({r['size']}^2, {r['chunks_total']} chunks)",
            "yes" if r.get("passed") else "NO", "", f"{r['chunks_written_on_resume']} chunks redone of "
            f"{r['chunks_total'] - r['chunks_done_before_kill']} missing"),
        Row("resume_8192", "resume wall", _num(s["resume_wall"]), "s",
            f"{s['resume_wall'] / s['reference_wall']:.2f}x an uninterrupted run ({s['reference_wall']:.1f} s)"),
    ]


def zarr_chunk_write(r: dict) -> list[Row]:
    return [Row("zarr_chunk_write", f"{x['case']} ({x['chunk']}^2 chunk)", _num(1000 * x["s_per_chunk"], 0), "ms/chunk",
                f"{x['fraction_of_raw_3_arrays']:.2f} of raw 3-array write") for x in r["rows"]]


def simulate_speed(r: dict) -> list[Row]:
    return [Row("simulate_speed", f"{x['what']} (N={x['n']}, {_n(x['workers'], 'worker')})", _num(x["ms_per_cutout"], 1),
                "ms/cutout", f"target {r['target_ms_per_cutout']:.0f} ms" if x["what"] == "simulate_dataset" else "")
            for x in r["rows"]]


def sampling(r: dict) -> list[Row]:
    one = {(x["sampler"], x["steps"]): x["tiles_per_s"] for x in r["rows"] if x["actors"] == 1}
    rows = []
    for x in r["rows"]:
        base = one.get((x["sampler"], x["steps"]))
        peer = f"{x['tiles_per_s'] / base:.2f}x 1 actor" if base and x["actors"] != 1 else ""
        if x.get("iou_vs_reference") is not None and f"{x['sampler']}:{x['steps']}" != r["reference"]:
            peer = (peer + "; " if peer else "") + f"IoU {x['iou_vs_reference']:.2f}x {r['reference']}"
        rows.append(Row("sampling", f"{x['sampler']}:{x['steps']}, {_n(x['actors'], 'actor')}, {x['tiles']} tiles",
                        _num(x["tiles_per_s"], 3), "tiles/s", peer))
    return rows


def mask_prior_stats(r: dict) -> list[Row]:
    real, prior = r["statistics"]["real (bank)"], r["statistics"]["mask prior"]
    return [
        Row("mask_prior_stats", f"{r['n']} masks sampled ({r['sampler']}, {r['steps']} steps)",
            _num(r["n"] / r["seconds"], 2), "masks/s"),
        Row("mask_prior_stats", "share of masks holding an extended source", _num(prior["presence"]["extended"], 2), "",
            f"real masks {real['presence']['extended']:.2f}"),
    ]


def train_throughput(r: dict) -> list[Row]:
    one = {x["stage"]: x["steady_samples_per_s"] for x in r["rows"] if x["workers"] == 1}
    rows = []
    for x in r["rows"]:
        base = one.get(x["stage"])
        rate = x["steady_samples_per_s"] or x["loop_samples_per_s"]
        peer = f"{rate / base:.2f}x 1 worker" if base and x["workers"] != 1 and rate else ""
        rows.append(Row("train_throughput", f"{x['stage']}, {_n(x['workers'], 'worker')}, {x['steps']} steps of {x['batch_size']}",
                        _num(rate, 1), "samples/s", peer))
    return rows


def realism(r: dict) -> list[Row]:
    rows = []
    for name, b in r.get("bundles", {}).items():
        gen = b.get("generation", {})
        acc = (gen.get("two_sample") or {}).get("accuracy_mean")
        rows.append(Row("realism", f"{name}: real-vs-generated classifier accuracy", _num(acc, 3), "", "0.5 = indistinguishable"))
    return rows


def gpu_check(r: dict) -> list[Row]:
    a = r.get("agreement", {})
    rows = [Row("gpu_check", "CUDA vs CPU tiles, max |difference|", f"{a.get('cuda_vs_cpu_max_abs', float('nan')):.2e}", "")]
    for x in r.get("rows", [])[:4]:
        rows.append(Row("gpu_check", f"{x.get('what')} {x.get('model')} batch {x.get('batch')} {x.get('precision')}",
                        _num(x.get("per_s"), 1), "/s"))
    return rows


SUMMARIES = {f.__name__: f for f in (scaling, make_map_scale, resume_8192, zarr_chunk_write, simulate_speed, sampling,
                                      mask_prior_stats, train_throughput, realism, gpu_check)}
