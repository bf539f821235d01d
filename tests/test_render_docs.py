"""benchmarks/render_docs.py: docs tables rewritten from benchmarks/results/ between markers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "render_docs", _REPO / "benchmarks" / "render_docs.py"
)
render_docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render_docs)

LOSS = "benchmarks/results/loss_overhead.json"


def _fixture(root: Path) -> Path:
    """A tiny loss_overhead.json and a page with one stale block between text to keep."""
    results = root / "benchmarks" / "results"
    results.mkdir(parents=True)
    meta = {
        "n": 8,
        "m": 3,
        "repeats": 2,
        "torch": "2.x",
        "threads": 1,
        "machine": "x86_64",
        "cuda": None,
        "cpus": 2,
        "load_1min": 3.14,
    }
    rows = [
        {"device": "cpu", "loss": "F.cross_entropy (baseline)", "median_ms": 2.0, "ratio": 1.0},
        {"device": "cpu", "loss": "PCSoftmaxCrossEntropy", "median_ms": 2.5, "ratio": 1.25},
    ]
    (results / "loss_overhead.json").write_text(json.dumps({"meta": meta, "rows": rows}))
    page = root / "docs" / "bench.md"
    page.parent.mkdir()
    page.write_text(
        f"# Title\n\nkept above\n\n<!-- begin generated: {LOSS} -->\nold table\n"
        f"<!-- end generated: {LOSS} -->\n\nkept below\n"
    )
    return page


def test_the_block_is_rewritten_from_the_results_file_and_the_rest_is_kept(tmp_path):
    page = _fixture(tmp_path)
    assert render_docs.main(["--root", str(tmp_path), str(page)]) == 0
    text = page.read_text()
    assert "old table" not in text
    assert "| cpu | `PCSoftmaxCrossEntropy` | 2.50 | 1.25x |" in text
    assert "N=8, M=3, float32, median of 2 interleaved repeats, torch 2.x, 1 CPU thread(s)" in text
    assert "x86_64; 2 CPUs, 1-minute load average 3.1 at the end (this run included)." in text
    assert text.startswith("# Title\n\nkept above\n\n<!-- begin generated: ")
    assert text.endswith(f"<!-- end generated: {LOSS} -->\n\nkept below\n")
    # a second run changes nothing, and --check agrees
    assert render_docs.main(["--root", str(tmp_path), str(page)]) == 0
    assert page.read_text() == text
    assert render_docs.main(["--root", str(tmp_path), "--check", str(page)]) == 0


def test_check_reports_a_stale_page_and_writes_nothing(tmp_path, capsys):
    page = _fixture(tmp_path)
    before = page.read_text()
    assert render_docs.main(["--root", str(tmp_path), "--check", str(page)]) == 1
    assert page.read_text() == before
    assert "out of date" in capsys.readouterr().err


def test_a_block_whose_file_is_missing_is_kept_and_named(tmp_path, capsys):
    page = _fixture(tmp_path)
    (tmp_path / LOSS).unlink()
    before = page.read_text()
    assert render_docs.main(["--root", str(tmp_path), str(page)]) == 0
    assert page.read_text() == before
    assert f"kept the block of {LOSS} (file missing)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"<!-- begin generated: {LOSS} -->\nx\n", "is never closed"),
        (f"<!-- end generated: {LOSS} -->\n", "without its begin marker"),
        ("<!-- begin generated: a.json -->\n<!-- end generated: a.json -->\n", "no renderer"),
    ],
)
def test_a_bad_page_is_one_line_and_exit_2(tmp_path, capsys, text, message):
    page = _fixture(tmp_path)
    (tmp_path / "a.json").write_text("{}")
    page.write_text(text)
    assert render_docs.main(["--root", str(tmp_path), str(page)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cam_pipeline_training_epoch_markdown_and_summary_render(tmp_path):
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    cam = {
        "args": {"n": 4, "n_maxbox": 2, "threads": 1, "repeat": 1},
        "pipeline": [
            {"name": "infocam CAM", "seconds": 0.01, "images_per_s": 400.0},
            {"name": "infocam infoCAM+ (region 3)", "seconds": 0.02, "images_per_s": 200.0},
            {"name": "torch-cam: not installed", "seconds": None, "images_per_s": None},
        ],
        "resnet50_forward_ms": 100.0,
        "maps_ms_per_image": 0.5,
        "maxboxacc": [
            {
                "maps": "one blob",
                "interval": 0.01,
                "wsol_loop_s": 0.003,
                "opencv_s": 0.003,
                "compiled_s": 0.0002,
                "maxboxaccv2": 71.875,
                "equal": True,
            },
        ],
    }
    (results / "cam_pipeline.json").write_text(json.dumps(cam))
    epoch = {
        "args": {"n": 100, "batch": 10, "repeats": 1},
        "meta": {"torch": "2.x", "threads": 1},
        "rows": [
            {
                "device": "cpu",
                "method": "fit (tensors)",
                "seconds": 0.5,
                "samples_per_s": 200.0,
                "speedup_vs_dataloader": 1.5,
            }
        ],
    }
    (results / "training_epoch.json").write_text(json.dumps(epoch))
    (results / "mi_peers.md").write_text("| problem | n |\n|---|---:|\n| (a) | 1000 |\n")
    sources = ["cam_pipeline.json", "training_epoch.json", "mi_peers.md", ""]
    page = tmp_path / "p.md"
    page.write_text(
        "".join(
            f"<!-- begin generated: benchmarks/results/{s} -->\n"
            f"<!-- end generated: benchmarks/results/{s} -->\n"
            for s in sources
        ).replace("results/ -->", "results -->")
    )
    assert render_docs.main(["--root", str(tmp_path), str(page)]) == 0
    text = page.read_text()
    assert "| torch-cam: not installed | - | - | - |" in text
    assert "| infocam infoCAM+ (region 3) | 20.0 | 200 | 2.0x |" in text
    assert "0.500 ms = 0.50% of the forward pass" in text
    assert "| one blob | 0.01 | 3.00 | 3.000 | 0.200 | 1.0x | 15.0x | yes (71.8750) |" in text
    assert "| cpu | fit (tensors) | 0.500 | 200 | 1.50x |" in text
    assert "| (a) | 1000 |" in text
    assert "| `training_epoch.py` | `fit` on tensors 1.50x as fast as a DataLoader loop |" in text
    assert "15x as fast as wsolevaluation's loop at interval 0.01" in text
    assert "table in `benchmarks/results/mi_peers.md`" in text


def test_the_committed_docs_match_the_committed_results():
    assert render_docs.main(["--root", str(_REPO), "--check"]) == 0


def test_cam_zoo_table_groups_models_by_head_kind_and_refusal(tmp_path):
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    meta = {"torch": "2.x", "torchvision": "0.y", "sizes": [64, 128], "tolerance": 1e-5}
    meta["not_measured"] = ["vit_h_14"]
    rows = [
        {"model": "resnet18", "status": "supported", "head": "gap+linear"},
        {"model": "resnet34", "status": "supported", "head": "gap+linear"},
        {"model": "convnext_tiny", "status": "supported", "head": "layernorm+linear"},
        {"model": "vgg11", "status": "refused", "reason": "'classifier.0' (Linear) reads x"},
    ]
    summary = {"torchvision": {"supported": 3, "refused": 1, "wrong": 0, "error": 0}}
    data = {"meta": meta, "summary": summary, "rows": rows}
    (results / "cam_zoo.json").write_text(json.dumps(data))
    lines = render_docs.render_cam_zoo(results / "cam_zoo.json")
    assert "- torchvision: **3/4 supported**, 1 refused, 0 wrong maps" in lines
    assert "| `gap+linear` | 2 | resnet18, resnet34 |" in lines
    assert "- not measured yet (the run was stopped): vit_h_14" in lines
    assert "| `layernorm+linear` | 1 | convnext_tiny |" in lines
    assert lines[-1] == "| refused: 'classifier.0' (Linear) reads x | 1 | vgg11 |"
    head = render_docs.render_summary(results)
    assert "| `cam_zoo.py` | torchvision 3/4 models with exact CAMs, 0 wrong |" in head
