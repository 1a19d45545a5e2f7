"""Markdown for ``benchmarks/results.md``: one block per kind of device, each replaced by its own next run.

Pure formatting (no torch): a results JSON written on a GPU machine can be rendered and merged here with
``python -m benchmarks.run --from-json results.json``.
"""

from __future__ import annotations

import re
from typing import Any

TITLE = "# Benchmark results"
INTRO = (
    "`make bench` (`python -m benchmarks.run`) writes one block per kind of device; a run replaces only its own "
    "block, so the CPU and the GPU results live side by side."
)
CUDA_TARGETS_MS = {"bf16": 50.0, "fp32": 95.0}  # issue 13, one H100, batch 16, 256 px
CUDA_TARGET_VS_AUTHORS = 2.4
CPU_TARGET_BF16_SPEEDUP = 1.4


# ---------------------------------------------------------------------------------------------- helpers
def _ok(section: dict | None) -> bool:
    return isinstance(section, dict) and "skipped" not in section and "error" not in section


def _why(section: dict | None) -> str:
    if section is None:
        return "not run"
    if "skipped" in section:
        return f"skipped: {section['skipped']}"
    if "error" in section:
        return f"failed: {str(section['error']).strip().splitlines()[-1][:200] if section['error'] else '?'}"
    return ""


def _ms(stats: dict[str, float]) -> str:
    return f"{stats['median'] * 1000:.0f} ms ({stats['min'] * 1000:.0f}-{stats['max'] * 1000:.0f})"


def _ms1(stats: dict[str, float]) -> str:
    return f"{stats['median'] * 1000:.1f} ms ({stats['min'] * 1000:.1f}-{stats['max'] * 1000:.1f})"


def _mib(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value / 1024:.1f} GiB" if value >= 1024 else f"{value:.0f} MiB"


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _syncs(section: dict) -> str:
    hs = section.get("host_syncs")
    if not hs:
        return "n/a"

    def one(group: str) -> str:
        g = hs.get(group)
        if not g:
            return "-"
        return "/".join(str(v) for v in g["syncs"])

    return f"{one('not_logged')} / {one('logged')}"


def _sync_sites(title: str, hs: dict[str, Any]) -> list[str]:
    lines = [f"{title} ({hs['recorder']}):", ""]
    lines += ["| iterations | syncs / iteration | in training_step | made at |", "|---|---|---|---|"]
    for group, label in (("not_logged", "not logged"), ("logged", "logged")):
        g = hs.get(group)
        if not g:
            lines.append(f"| {label} | none counted | | |")
            continue
        sites = "<br>".join(
            f"{n:g} x `{site}`" for site, n in sorted(g["sites"].items(), key=lambda kv: (-kv[1], kv[0]))
        )
        counts = "/".join(str(v) for v in g["syncs"])
        in_step = "/".join(str(v) for v in g["in_training_step"])
        lines.append(f"| {label} {g['iterations']} | {counts} | {in_step} | {sites or 'none'} |")
    return [*lines, ""]


def _header(env: dict | None, meta: dict[str, Any]) -> list[str]:
    lines = []
    if _ok(env):
        lines.append(
            f"- date: {env['date']}; torch {env['torch']}; pytorch-lightning {env['lightning']}; python {env['python']}"
        )
        if meta["device"] == "cuda":
            lines.append(
                f"- device: **{env.get('device_name')}** ({env.get('multiprocessors')} SMs, "
                f"{env.get('gpu_memory_gib')} GiB, compute capability {env.get('compute_capability')}); "
                f"driver {env.get('driver')}; CUDA runtime {env.get('cuda_runtime')}; cuDNN {env.get('cudnn')}"
            )
            lines.append(f"- host: {env['cpu']}, {env['cpu_count']} cores")
        else:
            lines.append(
                f"- machine: {env['cpu']}, {env['cpu_count']} cores, ISA {env['cpu_isa']}, "
                f"torch threads {env['torch_threads']}; no GPU (cuDNN: not used)"
            )
    else:
        lines.append(f"- environment: {_why(env)}")
    if meta.get("mode") == "tiny":
        lines.append("- **TINY smoke-test sizes: not representative**")
    lines.append(
        f"- suite: `{meta.get('command', 'python -m benchmarks.run')}`; {meta.get('elapsed_s', 0):.0f} s"
        + (f" (budget {meta['budget_s']:.0f} s)" if meta.get("budget_s") else "")
    )
    return lines


# -------------------------------------------------------------------------------------------------- CPU
CPU_TRAIN_ROWS = ("train_authors", "train_plain", "train_lightning", "train_bf16", "train_channels_last")


def render_cpu(results: dict[str, Any]) -> str:
    meta, s = results["meta"], results["sections"]
    sizes = meta["sizes"]
    plan = meta.get("plan", {})
    lines = [f"## CPU: {s['env'].get('device_name', 'CPU') if _ok(s.get('env')) else 'CPU'}", ""]
    lines += _header(s.get("env"), meta)
    lines.append(
        f"- batch {sizes['batch']}, {sizes['image_size']}x{sizes['image_size']}, full paper losses; median of "
        f"{plan.get('reps', '?')} after {plan.get('warmup', '?')} warm-up"
    )
    lines += ["", "### Training step (one iteration = G step + D step)", ""]
    matmul = s.get("matmul")
    peak32 = matmul.get("fp32") if _ok(matmul) else None
    flops = s["train_plain"].get("flops") if _ok(s.get("train_plain")) else None
    lines += [
        "| variant | precision | step time median (min-max) | images/s | GFLOP/s | % of fp32 matmul peak | peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in CPU_TRAIN_ROWS:
        r = s.get(name)
        label = name.removeprefix("train_")
        if not _ok(r):
            if r is not None:
                lines.append(f"| {label} | | {_why(r)} | | | | |")
            continue
        med = r["step_s"]["median"]
        gflops = flops / med / 1e9 if flops else None
        lines.append(
            f"| {label} | {r.get('precision_label', r.get('precision', ''))} | {_ms(r['step_s'])} | "
            f"{r['images'] / med:.2f} | {f'{gflops:.1f}' if gflops else 'n/a'} | "
            f"{f'{100 * gflops / peak32:.0f}%' if gflops and peak32 else 'n/a'} | {r['peak_rss_mib']:.0f} MiB |"
        )
    lines.append("")
    med = {n: s[n]["step_s"]["median"] for n in CPU_TRAIN_ROWS if _ok(s.get(n))}
    notes = []
    if "train_lightning" in med and "train_plain" in med:
        overhead = med["train_lightning"] / med["train_plain"]
        notes.append(f"Lightning overhead (Trainer / plain loop, fp32): **{overhead:.3f}**.")
    if "train_lightning" in med and "train_bf16" in med:
        notes.append(f"bf16-mixed speed-up: **{med['train_lightning'] / med['train_bf16']:.2f}x**.")
    if flops:
        notes.append(f"FLOPs per iteration: {flops / 1e9:.1f} GFLOP.")
    if notes:
        lines += [" ".join(notes), ""]
    if "train_lightning" in med and "train_authors" in med and "train_bf16" in med:
        ratio = med["train_lightning"] / med["train_authors"]
        speedup = med["train_lightning"] / med["train_bf16"]
        lines += [
            f"Issue 13 CPU check (one run): fp32 Trainer / authors' loop **{ratio:.3f}** (target <= 1.00: "
            f"{_met(ratio <= 1.0)}); bf16-mixed vs fp32 **{speedup:.2f}x** (target >= {CPU_TARGET_BF16_SPEEDUP}x: "
            f"{_met(speedup >= CPU_TARGET_BF16_SPEEDUP)}).",
            "",
        ]
    if _ok(matmul):
        lines += [f"Dense matmul: fp32 {matmul['fp32']:.1f} GFLOP/s, bf16 {matmul['bf16']:.1f} GFLOP/s.", ""]
    lines += _inference(s.get("infer"), "cpu")
    lines += ["### Dataloader", ""]
    data = s.get("data")
    if _ok(data):
        lines += ["| workers | images/s | images/s per worker |", "|---|---|---|"]
        for workers, r in data.get("demo", {}).items():
            per = r["images_per_s"] / max(int(workers), 1)
            lines.append(f"| {workers} | {r['images_per_s']:.1f} | {per:.1f} |")
        lines.append("")
        lines += _formats(data.get("formats"))
        lines += _stages(data.get("stages"))
    else:
        lines += [_why(data), ""]
    hs = s.get("host_syncs")
    lines += ["### Host syncs per training iteration", ""]
    if _ok(hs):
        lines += _sync_sites(
            f"Tiny run (`+experiment=demo +debug=fast`, log_every_n_steps={hs.get('log_every_n_steps')}); calls that "
            "would wait for a GPU",
            hs,
        )
    else:
        lines += [_why(hs), ""]
    return "\n".join(lines).rstrip() + "\n"


def _inference(infer: dict | None, device: str) -> list[str]:
    lines = ["### Generator inference", ""]
    if not _ok(infer):
        return [*lines, _why(infer), ""]
    unit, scale = ("TFLOP/s", 1e12) if device == "cuda" else ("GFLOP/s", 1e9)
    mem = device == "cuda"
    lines += [
        f"| size | batch | precision | latency median (min-max) | images/s | {unit} |"
        + (" peak GPU memory |" if mem else ""),
        "|---|---|---|---|---|---|" + ("---|" if mem else ""),
    ]
    for row in infer["rows"]:
        if "skipped" in row:
            lines.append(
                f"| {row['size']} | {row['batch']} | - | skipped: {row['skipped']} | | |" + (" |" if mem else "")
            )
            continue
        med = row["s"]["median"]
        fmt = _ms1 if device == "cuda" else _ms
        lines.append(
            f"| {row['size']} | {row['batch']} | {row['precision']} | {fmt(row['s'])} | {row['batch'] / med:.2f} | "
            f"{row['flops'] / med / scale:.1f} |" + (f" {_mib(row.get('peak_gpu_mib'))} |" if mem else "")
        )
    lines.append("")
    if device == "cpu" and infer.get("peak_rss_mib"):
        lines += [f"Peak RSS of the inference section: {infer['peak_rss_mib']:.0f} MiB.", ""]
    if device == "cuda" and infer.get("tf32"):
        lines += ["fp32 rows with TF32 (matmul and cuDNN); bf16 rows under `torch.autocast(bfloat16)`.", ""]
    return lines


def _formats(formats: dict | None) -> list[str]:
    """The folder row and the shards row of the training loader (same images, workers and settings; one run)."""
    if not _ok(formats):
        return []
    folder, shards = formats["folder"], formats["shards"]
    lines = [
        f"Training loader over {folder['files']} JPEGs, {folder['num_workers']} workers, {folder['image_size']} px, "
        f"batch {folder['batch_size']} (median of {len(folder.get('runs_images_per_s', [0]))} timings each, taken in "
        f"turns; shards/folder {shards.get('ratio_to_folder', float('nan')):.3f}): as an image folder and as shards "
        "written from it "
        f"(`python -m dmfn_lightning.data.shards write`, {shards['shard_count']} shard(s), written in "
        f"{shards['write_s']:.2f} s). Files opened per epoch are counted in one process; with workers the shard "
        "count holds per worker, the folder's is shared among them.",
        "",
        "| data.format | images/s | files opened per epoch |",
        "|---|---|---|",
    ]
    for name, r in (("folder", folder), ("shards", shards)):
        lines.append(f"| {name} | {r['images_per_s']:.1f} | {r['files_opened_per_epoch']} |")
    return [*lines, ""]


def _stages(stages: dict | None) -> list[str]:
    if not _ok(stages):
        return []
    ms = stages["ms_per_image"]
    names = list(ms)
    return [
        f"Input pipeline stages, one process, {stages['image_size']} px, ms per image (collate: per image of a batch):",
        "",
        "| " + " | ".join(names) + " | total | images/s per core |",
        "|" + "---|" * (len(names) + 2),
        "| "
        + " | ".join(f"{ms[n]:.2f}" for n in names)
        + f" | {stages['total_ms_per_image']:.2f} | {stages['images_per_s_per_core']:.0f} |",
        "",
    ]


# ------------------------------------------------------------------------------------------------- CUDA
CUDA_TRAIN_ROWS = (
    ("train_authors", "authors' loop"),
    ("train_plain", "ours, plain loop (no Lightning)"),
    ("train_lightning", "ours, fp32"),
    ("train_released", "ours, `model/block=released`, fp32"),
    ("train_bf16", "ours, `trainer.precision=bf16-mixed`"),
    ("train_bf16_channels_last", "ours, bf16-mixed + `model.channels_last=true`"),
    ("train_bf16_compile", "ours, bf16-mixed + `model.compile=true`"),
)


def render_cuda(results: dict[str, Any]) -> str:
    meta, s = results["meta"], results["sections"]
    sizes, plan = meta["sizes"], meta.get("plan", {})
    env = s.get("env")
    title = env.get("device_name") if _ok(env) else meta["device"]
    lines = [f"## {'CUDA' if meta['device'] == 'cuda' else meta['device'].upper() + ' (CUDA layout)'}: {title}", ""]
    lines += _header(env, meta)
    lines.append(
        f"- batch {sizes['batch']}, {sizes['image_size']} px, full paper losses, random-initialised VGG19, one fixed "
        f"batch on the device (no data loading); median of {plan.get('reps')} iterations after {plan.get('warmup')} "
        f"warm-up, each synchronised at both ends; 'unsynced' = mean of {plan.get('throughput_reps')} further "
        "iterations timed together"
    )
    lines.append(
        "- precision: our fp32 rows run with TF32 enabled deliberately (`torch.backends.cuda.matmul.allow_tf32` and "
        "`torch.backends.cudnn.allow_tf32`); the authors' loop keeps PyTorch's defaults (TF32 in cuDNN convolutions "
        "only), as the release ran"
    )
    lines += ["", "### Training iteration", ""]
    authors = s.get("train_authors")
    ref = authors["step_s"]["median"] if _ok(authors) else None
    lines += [
        "| variant | precision | ms / iteration, median (min-max) | images/s | vs authors | unsynced ms / it | "
        "peak GPU memory | GPU busy | kernels / it | D2H copies / it | host syncs / it (not logged / logged) | "
        "warm-up s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, label in CUDA_TRAIN_ROWS:
        r = s.get(name)
        if r is None:
            continue
        if not _ok(r):
            lines.append(f"| {label} | | {_why(r)} | | | | | | | | | |")
            continue
        med = r["step_s"]["median"]
        prof = r.get("profile") or {}
        busy = r.get("gpu_busy_fraction")
        vs = f"{ref / med:.2f}x" if ref else "n/a"
        unsynced = f"{1000 * r['throughput_step_s']:.1f}" if r.get("throughput_step_s") else "n/a"
        busy_text = f"{100 * busy:.0f}%" if busy is not None else "n/a"
        kernels = f"{prof['kernels_per_iteration']:.0f}" if prof else "n/a"
        dtoh = f"{prof['dtoh_copies_per_iteration']:.0f}" if prof else "n/a"
        warm = f"{r['warmup_s']:.0f}" if r.get("warmup_s") is not None else "n/a"
        lines.append(
            f"| {label} | {r.get('precision_label', r.get('precision'))} | {_ms1(r['step_s'])} | "
            f"{r['images'] / med:.0f} | {vs} | {unsynced} | {_mib(r.get('peak_gpu_mib'))} | {busy_text} | "
            f"{kernels} | {dtoh} | {_syncs(r)} | {warm} |"
        )
    lines += [
        "",
        "GPU busy = time with a kernel or copy running on the GPU (union of their intervals, torch.profiler over "
        f"{plan.get('profile_iters')} iterations) / the unprofiled median iteration. Host syncs: "
        "`torch.cuda.set_sync_debug_mode('warn')` warnings per iteration over "
        f"{plan.get('sync_iters')} iterations, one of which writes logs (Lightning's `log_every_n_steps`).",
        "",
    ]
    lines += _cuda_targets(s)
    for name, label in CUDA_TRAIN_ROWS:
        r = s.get(name)
        if _ok(r) and r.get("host_syncs") and name in ("train_bf16", "train_authors"):
            lines += _sync_sites(f"Host syncs, {label}", r["host_syncs"])
    prof = (s.get("train_bf16") or {}).get("profile") if _ok(s.get("train_bf16")) else None
    if prof:
        lines += [
            f"bf16-mixed under the profiler: {prof['cpu_ops_per_iteration']:.0f} ATen ops, "
            f"{prof['kernels_per_iteration']:.0f} kernels, {prof['kernel_ms_per_iteration']:.1f} ms of kernels, "
            f"{prof['layout_conversion_ms_per_iteration']:.1f} ms of NCHW<->NHWC conversions, "
            f"{prof['synchronize_calls_per_iteration']:.0f} synchronize calls per iteration; "
            f"{prof['wall_ms_per_iteration_profiled']:.1f} ms per iteration profiled. Largest kernels (ms / it): "
            + "; ".join(f"`{k}` {v:.2f}" for k, v in list(prof["top_kernels_ms_per_iteration"].items())[:5])
            + ".",
            "",
        ]
    lines += ["### End to end (real data module on JPEG files)", ""]
    e2e = s.get("e2e")
    if _ok(e2e):
        bf16 = s.get("train_bf16")
        fixed = 1 / bf16["step_s"]["median"] if _ok(bf16) else None
        versus = (
            f"; the fixed batch gives {fixed:.2f} it/s (ratio {e2e['iterations_per_s'] / fixed:.2f})" if fixed else ""
        )
        lines += [
            f"`data=folder` over {e2e['images_in_folder']} JPEGs cut from the demo photos, {e2e['workers']} workers, "
            f"pin_memory={e2e['pin_memory']}, {e2e['precision']}: **{e2e['iterations_per_s']:.2f} iterations/s** "
            f"({e2e['images_per_s']:.0f} images/s) over {e2e['iterations']} iterations after {e2e['warmup']}"
            + versus
            + (f"; median gap between iterations {e2e['gap_ms_median']:.1f} ms" if e2e.get("gap_ms_median") else "")
            + ".",
            "",
        ]
    else:
        lines += [_why(e2e), ""]
    lines += ["### Input pipeline", ""]
    data = s.get("data")
    if _ok(data):
        step_images = None
        if _ok(s.get("train_bf16")):
            step_images = s["train_bf16"]["images"] / s["train_bf16"]["step_s"]["median"]
        lines += ["| workers | pinned | images/s | vs bf16 step consumption |", "|---|---|---|---|"]
        for r in data.get("folder", []):
            ratio = f"{r['images_per_s'] / step_images:.2f}x" if step_images else "n/a"
            lines.append(f"| {r['num_workers']} | {r['pin_memory']} | {r['images_per_s']:.0f} | {ratio} |")
        lines.append("")
        lines += _formats(data.get("formats"))
        lines += _stages(data.get("stages"))
    else:
        lines += [_why(data), ""]
    lines += _inference(s.get("infer"), "cuda" if meta["device"] == "cuda" else "cpu")
    matmul = s.get("matmul")
    if _ok(matmul):
        parts = [f"{k} {matmul[k] / 1000:.1f} TFLOP/s" for k in ("fp32", "tf32", "bf16") if k in matmul]
        lines += [f"Dense {matmul['n']}x{matmul['n']} matmul: " + ", ".join(parts) + ".", ""]
    return "\n".join(lines).rstrip() + "\n"


def _cuda_targets(s: dict[str, Any]) -> list[str]:
    med = {n: s[n]["step_s"]["median"] * 1000 for n, _ in CUDA_TRAIN_ROWS if _ok(s.get(n))}
    rows = []
    if "train_bf16" in med:
        rows.append(
            (
                "bf16-mixed ms / iteration",
                f"{med['train_bf16']:.1f}",
                "<= 50",
                med["train_bf16"] <= CUDA_TARGETS_MS["bf16"],
            )
        )
        if "train_authors" in med:
            ratio = med["train_authors"] / med["train_bf16"]
            rows.append(("bf16-mixed vs authors' loop", f"{ratio:.2f}x", ">= 2.4x", ratio >= CUDA_TARGET_VS_AUTHORS))
    if "train_lightning" in med:
        fp32 = med["train_lightning"]
        rows.append(("fp32 (TF32) ms / iteration", f"{fp32:.1f}", "<= 95", fp32 <= CUDA_TARGETS_MS["fp32"]))
    if "train_bf16" in med and "train_bf16_channels_last" in med:
        cl = med["train_bf16_channels_last"]
        rows.append(
            (
                "channels_last vs default layout (bf16)",
                f"{cl:.1f} vs {med['train_bf16']:.1f}",
                "not slower",
                cl <= med["train_bf16"] * 1.02,
            )
        )
    if "train_bf16" in med and "train_bf16_compile" in med:
        c = med["train_bf16_compile"]
        rows.append(
            (
                "compile vs eager (bf16)",
                f"{c:.1f} vs {med['train_bf16']:.1f}",
                "at least as fast",
                c <= med["train_bf16"] * 1.02,
            )
        )
    bf16 = s.get("train_bf16")
    if _ok(bf16) and (bf16.get("host_syncs") or {}).get("not_logged"):
        n = max(bf16["host_syncs"]["not_logged"]["syncs"])
        rows.append(("host syncs, bf16 iteration without logging", str(n), "0", n == 0))
    if not rows:
        return []
    lines = ["Issue 13 targets (2% timing tolerance on the layout/compile comparisons):", ""]
    lines += ["| target | measured | wanted | |", "|---|---|---|---|"]
    lines += [f"| {name} | {value} | {wanted} | {_met(ok)} |" for name, value, wanted, ok in rows]
    return [*lines, ""]


# ------------------------------------------------------------------------------------------------ merge
def render_block(results: dict[str, Any]) -> str:
    return render_cuda(results) if results["meta"]["layout"] == "cuda" else render_cpu(results)


def block_key(meta: dict[str, Any]) -> str:
    key = meta["device"] if meta["layout"] == meta["device"] else f"{meta['layout']}-layout-on-{meta['device']}"
    return f"{key}-tiny" if meta.get("mode") == "tiny" else key


def merge(existing: str, key: str, block: str) -> str:
    """``existing`` with the block ``key`` replaced (or added). A file from before the blocks (no markers) is kept
    as the ``cpu`` block, so earlier CPU numbers survive the first GPU run."""
    start, end = f"<!-- bench:{key} -->", f"<!-- /bench:{key} -->"
    wrapped = f"{start}\n{block.rstrip()}\n{end}"
    text = existing.strip()
    if text and "<!-- bench:" not in text:
        legacy = re.sub(r"^# Benchmark results\s*", "", text).strip()
        text = f"{TITLE}\n\n{INTRO}\n\n<!-- bench:cpu -->\n{legacy}\n<!-- /bench:cpu -->" if legacy else ""
    if not text:
        text = f"{TITLE}\n\n{INTRO}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    # a function as the replacement: the block's backslashes are not regex escapes
    text = pattern.sub(lambda _: wrapped, text) if pattern.search(text) else f"{text}\n\n{wrapped}"
    return text.rstrip() + "\n"
