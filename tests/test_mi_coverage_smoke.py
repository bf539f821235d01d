"""benchmarks/mi_coverage.py (issue 18's coverage suite): its truths, and a run in seconds."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "mi_coverage.py"
_spec = importlib.util.spec_from_file_location("mi_coverage", _PATH)
mi_coverage = importlib.util.module_from_spec(_spec)
sys.modules["mi_coverage"] = mi_coverage  # its dataclass looks its module up there
_spec.loader.exec_module(mi_coverage)


def test_monte_carlo_truth_matches_the_closed_forms_and_the_mixture():
    fams = mi_coverage.problems()
    for name in ("threshold-linear", "threshold-disc", "xor"):
        exact = fams[name].exact
        mc = mi_coverage.truth(dataclasses.replace(fams[name], exact=None), 300_000, seed=1)
        assert 0 < mc["stderr"] < 2e-3
        assert mc["value"] == pytest.approx(exact, abs=4 * mc["stderr"] + 1e-6), name
    mixture = mi_coverage.truth(fams["mixture"], 300_000, seed=1)
    assert mixture["value"] == pytest.approx(1.2391, abs=4 * mixture["stderr"] + 1e-3)


def test_sampled_labels_follow_the_posterior():
    import numpy as np

    problem = mi_coverage.problems()["heavy-tails"]
    x, y = problem.sample(20_000, np.random.default_rng(0))
    p1 = problem.posterior(x)[:, 1]
    assert abs(y.mean() - p1.mean()) < 0.02 and set(np.unique(y)) == {0, 1}


def test_quick_smoke_run_writes_json_and_table(tmp_path, one_thread):
    out = tmp_path / "cov.json"
    argv = ["--smoke", "--sizes", "300", "--reps", "2", "--families", "xor", "discrete",
            "--estimators", "infocam", "Gaussian copula", "--truth-draws", "20000",
            "--out", str(out)]  # fmt: skip
    assert mi_coverage.main(argv) == 0
    result = json.loads(out.read_text())
    assert set(result["truths"]) == {"xor", "discrete"}
    names = {c["estimator"] for c in result["cells"]}
    assert names == {"infocam default", "infocam learning_curve", "Gaussian copula"}
    for c in result["cells"]:
        assert c["reps"] == 2 and c["n"] == 300
        if c["estimator"] == "infocam default":
            assert 0.0 <= c["cover_lower_bound"] <= 1.0 and 0.0 <= c["cover_interval"] <= 1.0
    rows = [r for r in result["rows"] if r["estimator"] == "infocam default"]
    assert all(r["lower_bound95"] < r["value"] < r["interval95"][1] for r in rows)
    table = out.with_suffix(".md").read_text()
    assert "95% lower bound covers" in table and "--smoke" in table
