"""Rewrite the benchmark tables in ``docs/`` from the result files in ``benchmarks/results/``.

A generated block in a docs page sits between two marker comments that name its source,
relative to the repository root:

    <!-- begin generated: benchmarks/results/loss_overhead.json -->
    ...  (replaced on every run; do not edit by hand)
    <!-- end generated: benchmarks/results/loss_overhead.json -->

Sources: ``loss_overhead.json``, ``training_epoch.json``, ``cam_pipeline.json`` and
``cam_zoo.json`` are rendered as tables with a "how measured" line taken from the file
itself; a ``.md`` file (the tables ``mi_peers.py``, ``mi_ablation.py``, ``mi_small_n.py`` and
``mi_coverage.py`` write) is copied in as it is; the folder ``benchmarks/results`` itself
renders the summary table of every result file present. A block whose source file is missing
is left as it is and named on stderr.

Run: ``python benchmarks/render_docs.py [--check] [--root DIR] [PAGE ...]`` (default: every
``docs/*.md``); ``--check`` writes nothing and exits 1 when a page is out of date.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from infocam.training.checkpoint import atomic_write

ROOT = Path(__file__).resolve().parents[1]
RESULTS = "benchmarks/results"
_MARKER = re.compile(r"^<!-- (begin|end) generated: (\S+) -->$")


def _table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    """A Markdown table; ``align`` has one ``l`` or ``r`` per column."""
    rule = ["---" if a == "l" else "---:" for a in align]
    return ["| " + " | ".join(r) + " |" for r in (header, rule, *rows)]


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _where(meta: dict) -> str:
    """The machine's share of a "how measured" line: CPUs and load, when the file records them."""
    if "cpus" not in meta or "load_1min" not in meta:
        return ""
    return (
        f"; {meta['cpus']} CPUs, 1-minute load average {meta['load_1min']:.1f} at the end "
        "(this run included)"
    )


def render_loss_overhead(path: Path) -> list[str]:
    """``loss_overhead.py``: forward + backward time of each loss against F.cross_entropy."""
    data = _load(path)
    meta = data["meta"]
    rows = [
        [r["device"], f"`{r['loss']}`", f"{r['median_ms']:.2f}", f"{r['ratio']:.2f}x"]
        for r in data["rows"]
    ]
    cuda = f", CUDA {meta['cuda']}" if meta.get("cuda") else ""
    return [
        f"How measured: `python benchmarks/loss_overhead.py`, forward + backward, "
        f"N={meta['n']}, M={meta['m']}, float32, median of {meta['repeats']} interleaved "
        f"repeats, torch {meta['torch']}, {meta['threads']} CPU thread(s), "
        f"{meta['machine']}{cuda}{_where(meta)}.",
        "",
        *_table(["device", "loss", "median ms", "vs F.cross_entropy"], rows, "llrr"),
    ]


def render_training_epoch(path: Path) -> list[str]:
    """``training_epoch.py``: one epoch of ``fit`` against hand-written loops."""
    data = _load(path)
    args, meta = data["args"], data["meta"]
    rows = [
        [
            r["device"],
            r["method"],
            f"{r['seconds']:.3f}",
            f"{r['samples_per_s']:.0f}",
            f"{r['speedup_vs_dataloader']:.2f}x",
        ]
        for r in data["rows"]
    ]
    return [
        f"How measured: `python benchmarks/training_epoch.py`, {args['n']:,} x 784 inputs, MLP "
        f"784-256-10, Adam, batch {args['batch']}, median of {args['repeats']} interleaved "
        f"repeats, torch {meta['torch']}, {meta['threads']} CPU thread(s){_where(meta)}.",
        "",
        *_table(["device", "method", "seconds", "samples/s", "vs DataLoader"], rows, "llrrr"),
    ]


def render_cam_pipeline(path: Path) -> list[str]:
    """``cam_pipeline.py``: the CAM pipeline against peers, and MaxBoxAccV2 backends."""
    data = _load(path)
    args = data["args"]
    base = data["pipeline"][0]["images_per_s"]
    pipe = [
        [r["name"], "-", "-", "-"]  # the name says which peer is not installed
        if r["seconds"] is None
        else [
            r["name"],
            f"{r['seconds'] * 1e3:.1f}",
            f"{r['images_per_s']:.0f}",
            f"{base / r['images_per_s']:.1f}x",
        ]
        for r in data["pipeline"]
    ]
    fwd, maps = data["resnet50_forward_ms"], data["maps_ms_per_image"]
    boxes = data["maxboxacc"]
    backends = [
        k[:-2] for k in (boxes[0] if boxes else {}) if k.endswith("_s") and k != "wsol_loop_s"
    ]
    names = [b.replace("_x", " x") for b in backends]
    mrows = [
        [r["maps"], f"{r['interval']:g}", f"{r['wsol_loop_s'] * 1e3:.2f}"]
        + [f"{r[b + '_s'] * 1e3:.3f}" for b in backends]
        + [f"{r['wsol_loop_s'] / r[b + '_s']:.1f}x" for b in backends]
        + [f"{'yes' if r['equal'] else 'NO'} ({r['maxboxaccv2']:.4f})"]
        for r in boxes
    ]
    header = ["maps", "interval", "wsol loop ms"] + [f"{n} ms" for n in names]
    header += [f"wsol / {n}" for n in names] + ["same MaxBoxAccV2"]
    return [
        f"How measured: `python benchmarks/cam_pipeline.py`, N={args['n']} features "
        f"2048x14x14 -> 224x224, M=1000, {args['threads']} torch thread(s) for the pipeline, "
        f"best of {args['repeat']}; MaxBoxAccV2 on {args['n_maxbox']} float32 maps per family, "
        f"ms per image{_where(data.get('meta', {}))}.",
        "",
        *_table(
            [
                "pipeline (maps + boxes + metric update)",
                "ms/batch",
                "images/s",
                "time / infocam CAM",
            ],
            pipe,
            "lrrr",
        ),
        "",
        f"ResNet50 forward per image: {fwd:.1f} ms; infoCAM+ maps per image: {maps:.3f} ms = "
        f"{100 * maps / fwd:.2f}% of the forward pass.",
        "",
        *_table(header, mrows, "lrr" + "r" * 2 * len(backends) + "l"),
    ]


def render_cam_zoo(path: Path) -> list[str]:
    """``cam_zoo.py``: which models of the zoo get exact CAMs, by head kind, and why not."""
    data = _load(path)
    meta, rows = data["meta"], data["rows"]
    lines = [
        f"How measured: `python benchmarks/cam_zoo.py`, torch {meta['torch']}, torchvision "
        f"{meta['torchvision']}, the smallest of {meta['sizes']} px each model runs at, "
        f"tolerance {meta['tolerance']:g} of the largest logit.",
        "",
    ]
    for lib, counts in data["summary"].items():
        total = sum(counts.values())
        lines.append(
            f"- {lib}: **{counts['supported']}/{total} supported**, {counts['refused']} "
            f"refused, {counts['wrong']} wrong maps"
            + (f", {counts['error']} did not run" if counts.get("error") else "")
        )
    missing = meta.get("not_measured") or []
    if missing:
        lines.append(f"- not measured yet (the run was stopped): {', '.join(missing)}")
    lines.append("")
    kinds: dict[str, list[str]] = {}
    for r in rows:
        key = r["head"] if r["status"] == "supported" else f"{r['status']}: {r['reason']}"
        kinds.setdefault(key, []).append(r["model"])
    ordered = sorted(kinds.items(), key=lambda kv: (kv[0].startswith(("refused", "error")), kv[0]))
    table = [
        [f"`{k}`" if not k.startswith(("refused", "error")) else k, str(len(v)), ", ".join(v)]
        for k, v in ordered
    ]
    return lines + _table(["head (or why refused)", "models", "names"], table, "lrl")


def _headline(results: Path) -> list[list[str]]:
    rows = []
    p = results / "loss_overhead.json"
    if p.exists():
        r = next(r for r in _load(p)["rows"] if r["loss"] == "PCSoftmaxCrossEntropy")
        rows.append(
            [
                "`loss_overhead.py`",
                f"PCSoftmaxCrossEntropy {r['ratio']:.2f}x the time of `F.cross_entropy`",
            ]
        )
    p = results / "training_epoch.json"
    if p.exists():
        r = next(r for r in _load(p)["rows"] if r["method"] == "fit (tensors)")
        rows.append(
            [
                "`training_epoch.py`",
                f"`fit` on tensors {r['speedup_vs_dataloader']:.2f}x as fast as a DataLoader loop",
            ]
        )
    p = results / "cam_pipeline.json"
    if p.exists():
        data = _load(p)
        base = data["pipeline"][0]["images_per_s"]
        peers = [
            f"{base / r['images_per_s']:.1f}x as fast as {r['name'].split(' + ')[0]}"
            for r in data["pipeline"][2:]
            if r["seconds"] is not None
        ]
        speed: dict[float, list[float]] = {}
        for r in data["maxboxacc"]:
            if "compiled_s" in r:
                speed.setdefault(r["interval"], []).append(r["wsol_loop_s"] / r["compiled_s"])
        text = "pipeline " + (", ".join(peers) or "(peers not run)")
        if speed:
            spans = {
                k: sorted({f"{min(v):.0f}", f"{max(v):.0f}"}, key=float) for k, v in speed.items()
            }
            text += "; MaxBoxAccV2 (compiled, 1 thread) " + ", ".join(
                f"{'-'.join(v)}x as fast as wsolevaluation's loop at interval {k:g}"
                for k, v in spans.items()
            )
        rows.append(["`cam_pipeline.py`", text])
    p = results / "cam_zoo.json"
    if p.exists():
        text = "; ".join(
            f"{lib} {c['supported']}/{sum(c.values())} models with exact CAMs, {c['wrong']} wrong"
            for lib, c in _load(p)["summary"].items()
        )
        rows.append(["`cam_zoo.py`", text])
    for name in ("mi_peers", "mi_ablation", "mi_small_n_1000", "mi_coverage"):
        if (results / f"{name}.md").exists():
            rows.append([f"`{name.split('_1000')[0]}.py`", f"table in `{RESULTS}/{name}.md`"])
    return rows


def render_summary(results: Path) -> list[str]:
    """The folder itself: one headline line per benchmark whose result file is present."""
    return _table(["script", "headline of the committed results"], _headline(results), "ll")


RENDERERS: dict[str, Callable[[Path], list[str]]] = {
    "loss_overhead.json": render_loss_overhead,
    "training_epoch.json": render_training_epoch,
    "cam_pipeline.json": render_cam_pipeline,
    "cam_zoo.json": render_cam_zoo,
}


def render_source(source: str, root: Path) -> list[str] | None:
    """The lines of one generated block, or None when its source file is missing."""
    path = root / source
    if source.rstrip("/") == RESULTS:
        return render_summary(path) if path.is_dir() else None
    if not path.exists():
        return None
    if path.suffix == ".md":
        return path.read_text().strip("\n").split("\n")
    if path.name not in RENDERERS:
        known = ", ".join(sorted(RENDERERS))
        raise ValueError(f"no renderer for {source}; known: {known}, any .md file, or {RESULTS}")
    return RENDERERS[path.name](path)


def render_page(text: str, root: Path, name: str = "page") -> tuple[str, list[str]]:
    """``text`` with every generated block rewritten; also the sources that were missing."""
    out: list[str] = []
    missing: list[str] = []
    open_at: tuple[int, str] | None = None
    kept: list[str] = []
    for number, line in enumerate(text.split("\n"), 1):
        m = _MARKER.match(line.strip())
        if m is None:
            (kept if open_at else out).append(line)
            continue
        kind, source = m.groups()
        if kind == "begin":
            if open_at:
                raise ValueError(
                    f"{name}:{number}: begin marker inside the block of line {open_at[0]}"
                )
            open_at, kept = (number, source), []
            out.append(line)
            continue
        if open_at is None or open_at[1] != source:
            raise ValueError(f"{name}:{number}: end marker for {source} without its begin marker")
        block = render_source(source, root)
        if block is None:
            missing.append(source)
            block = kept
        out.extend(block)
        out.append(line)
        open_at = None
    if open_at:
        raise ValueError(f"{name}:{open_at[0]}: begin marker for {open_at[1]} is never closed")
    return "\n".join(out), missing


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pages", nargs="*", type=Path, help="docs pages (default: docs/*.md)")
    ap.add_argument("--root", type=Path, default=ROOT, help="repository root")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if out of date")
    args = ap.parse_args(argv)
    pages = args.pages or sorted((args.root / "docs").glob("*.md"))
    stale = []
    for page in pages:
        text = page.read_text()
        try:
            new, missing = render_page(text, args.root, str(page))
        except (ValueError, KeyError) as exc:  # a bad marker or results file: one line, exit 2
            print(f"render_docs: error: {exc}", file=sys.stderr)
            return 2
        for source in missing:
            print(f"{page}: kept the block of {source} (file missing)", file=sys.stderr)
        if new == text:
            continue
        stale.append(page)
        if not args.check:
            atomic_write(page, lambda f, new=new: f.write(new.encode()))
            print(f"rewrote {page}")
    if args.check and stale:
        print("out of date: " + ", ".join(map(str, stale)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
