"""Table 3 experiment: statistics, metrics, losses, and an end-to-end run on the MNIST fixture."""

from __future__ import annotations

import json
from collections import namedtuple
from math import comb

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from data_fixtures import write_mnist_fixture
from infocam.data import imbalanced_subset, load_mnist, stratified_split
from infocam.experiments.pc_softmax import (
    accuracy_report,
    class_weights,
    make_loss,
    mann_whitney,
    summarize,
)
from infocam.experiments.pc_softmax import mnist as pc_softmax_mnist
from infocam.softmax import class_prior, pc_softmax_cross_entropy, predict
from infocam.training import TrainConfig, fit, load_checkpoint

# ----------------------------------------------------------------------------- statistics


def test_mann_whitney_matches_scipy_and_closed_form():
    a, b = [1.0, 2.0, 3.0, 4.0, 5.0], [6.0, 7.0, 8.0, 9.0, 10.0]
    res = mann_whitney(a, b)
    # Complete separation, 5 vs 5, no ties: exact two-sided p = 2 / C(10, 5).
    assert res["u"] == 0.0
    assert res["p"] == pytest.approx(2 / comb(10, 5), rel=1e-12)
    assert res["n"] == [5, 5]
    rng = np.random.default_rng(0)
    for _ in range(5):
        x, y = rng.normal(size=6), rng.normal(0.5, size=5)
        ref = stats.mannwhitneyu(x, y, alternative="two-sided")
        got = mann_whitney(x, y)
        assert got["u"] == pytest.approx(float(ref.statistic))
        assert got["p"] == pytest.approx(float(ref.pvalue))
    # ties (identical accuracies across seeds) give p = 1, no error
    assert mann_whitney([97.5, 97.5], [97.5, 97.5])["p"] == pytest.approx(1.0)
    assert mann_whitney([1.0], [2.0, 3.0])["p"] is None


def test_accuracy_report_against_a_loop():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (300,), generator=g)
    pred = torch.where(torch.rand(300, generator=g) < 0.7, target, torch.randint(0, 5, (300,)))
    rep = accuracy_report(pred, target, 6, rare=(0, 2))
    per_class = []
    for c in range(6):
        idx = [i for i in range(300) if target[i] == c]
        per_class.append(
            None if not idx else 100.0 * sum(int(pred[i] == c) for i in idx) / len(idx)
        )
    assert rep["per_class"][5] is None  # class 5 has no sample
    assert rep["per_class"][:5] == pytest.approx(per_class[:5], rel=1e-12)
    assert rep["per_class_mean"] == pytest.approx(np.mean(per_class[:5]))  # class 5 absent
    assert rep["micro"] == pytest.approx(100.0 * float((pred == target).double().mean()))
    assert rep["rare_mean"] == pytest.approx((per_class[0] + per_class[2]) / 2)
    assert rep["frequent_mean"] == pytest.approx(np.mean([per_class[1], *per_class[3:5]]))


def test_summarize_mean_std_and_tests():
    runs = []
    for seed, (a, b) in enumerate([(90.0, 91.0), (92.0, 94.0), (91.0, 93.0)]):
        for method, v in (("softmax", a), ("pc-softmax", b)):
            runs.append(
                {
                    "setting": "imbalanced",
                    "method": method,
                    "seed": seed,
                    "micro": v,
                    "per_class_mean": v - 1,
                    "per_class": [v, v - 2],
                }
            )
    summary, tests = summarize(runs)
    s = summary["imbalanced"]["pc-softmax"]
    assert s["micro"]["mean"] == pytest.approx(np.mean([91, 94, 93]))
    assert s["micro"]["std"] == pytest.approx(np.std([91, 94, 93], ddof=1))
    assert s["per_class"]["mean"] == pytest.approx([np.mean([91, 94, 93]), np.mean([89, 92, 91])])
    ref = stats.mannwhitneyu([91, 94, 93], [90, 92, 91], alternative="two-sided")
    assert tests["imbalanced"]["pc-softmax"]["micro"]["p"] == pytest.approx(ref.pvalue)
    assert "softmax" not in tests["imbalanced"]


# ----------------------------------------------------------------------------- losses


def test_losses_use_the_training_prior():
    prior = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    w = class_weights(prior)
    assert w.mean().item() == pytest.approx(1.0)
    assert (w * prior.float()).tolist() == pytest.approx([w[0].item() * 0.1] * 4)
    logits, y = torch.randn(16, 4), torch.arange(16) % 4
    assert make_loss("pc-softmax", prior)(logits, y).item() == pytest.approx(
        pc_softmax_cross_entropy(logits, y, prior).item(), rel=1e-6
    )
    ref = F.cross_entropy(logits, y, weight=w)
    assert make_loss("weighted-ce", prior)(logits, y).item() == pytest.approx(ref.item())
    assert make_loss("softmax", prior) is F.cross_entropy
    with pytest.raises(ValueError, match="method"):
        make_loss("focal", prior)
    with pytest.raises(ValueError, match="prior"):
        class_weights([0.5, 0.0, 0.5])


def test_fit_trains_a_model_with_auxiliary_outputs():
    """fit's metrics use ``outputs.logits`` when a model returns (logits, aux_logits)."""
    from torchvision.models.inception import InceptionOutputs

    from infocam.models import inception_loss

    class TwoHeads(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.main, self.aux = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)

        def forward(self, x):
            return InceptionOutputs(self.main(x), self.aux(x)) if self.training else self.main(x)

    g = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 2
    x = torch.randn(200, 2, generator=g) + 3.0 * y[:, None].float()
    seen = []

    def loss(outputs, target):
        seen.append(type(outputs).__name__)
        return inception_loss(outputs, target, F.cross_entropy)

    torch.manual_seed(0)
    config = TrainConfig(epochs=10, batch_size=32, lr=0.05, quiet=True)
    res = fit(TwoHeads(), loss, (x, y), (x, y), config)
    assert "InceptionOutputs" in seen and "Tensor" in seen  # training and validation
    assert res.history[-1]["train_accuracy"] > 0.9
    assert res.best_metric > 0.9
    Bad = namedtuple("Bad", "scores")

    class NoLogits(TwoHeads):
        def forward(self, x):
            return Bad(self.main(x))

    with pytest.raises(TypeError, match="logits"):
        fit(
            NoLogits(),
            lambda o, t: F.cross_entropy(o.scores, t),
            (x, y),
            None,
            TrainConfig(epochs=1, quiet=True),
        )


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory, one_thread_module):
    root = tmp_path_factory.mktemp("mnist")
    write_mnist_fixture(root, n_train=400, n_test=100)
    out = root / "out"
    config = TrainConfig(**{**pc_softmax_mnist.DEFAULTS, "epochs": 1, "batch_size": 32})
    results = pc_softmax_mnist.run([0, 1], out, config, data_root=root, verify=False, quiet=True)
    return root, out, results


def test_mnist_run_writes_consistent_results(mnist_run):
    root, out, _results = mnist_run
    assert {p.name for p in out.iterdir()} >= {"results.json", "table.md", "per_class_accuracy.png"}
    assert (out / "per_class_accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["seeds"] == [0, 1]
    assert "class_prior(train_labels)" in on_disk["prior_rule"]
    assert "train_prior=p" in on_disk["prediction_rules"]["logit-adjusted"]
    # 2 seeds x (balanced: softmax, pc, logit-adjusted; imbalanced: + weighted-ce)
    assert len(on_disk["runs"]) == 14
    table = (out / "table.md").read_text()
    assert "96.30*" in table and "p vs softmax" in table and "Mann-Whitney" in table

    data = load_mnist(root, verify=False)
    for seed in (0, 1):
        # the prior PC-softmax trained with: empirical, of the imbalanced training part
        idx = imbalanced_subset(data.train_labels, (0, 2, 4, 6, 8), 0.5, seed=seed)
        _, train = stratified_split(data.train_labels[idx], 0.1, seed=seed)
        expected = class_prior(data.train_labels[idx[train]], 10, dtype=torch.float64)
        saved = load_checkpoint(
            out / "runs" / f"imbalanced-pc-softmax-seed{seed}" / "test_outputs.pt"
        )
        torch.testing.assert_close(saved["train_prior"], expected)
        assert on_disk["data"]["settings"]["imbalanced"][str(seed)]["prior"] == pytest.approx(
            expected.tolist(), abs=1e-6
        )
        # post-hoc logit adjustment == predict(softmax logits, train_prior=p)
        soft = load_checkpoint(out / "runs" / f"imbalanced-softmax-seed{seed}" / "test_outputs.pt")
        torch.testing.assert_close(soft["targets"], data.test_labels)
        adjusted = predict(soft["logits"], train_prior=expected)
        row = next(
            r
            for r in on_disk["runs"]
            if r["method"] == "logit-adjusted"
            and r["seed"] == seed
            and r["setting"] == "imbalanced"
        )
        ref = accuracy_report(adjusted, data.test_labels, 10, (0, 2, 4, 6, 8))
        assert row["micro"] == pytest.approx(ref["micro"])
        assert row["per_class"] == pytest.approx(ref["per_class"])
        plain = next(
            r
            for r in on_disk["runs"]
            if r["method"] == "softmax" and r["seed"] == seed and r["setting"] == "imbalanced"
        )
        assert plain["micro"] == pytest.approx(
            100.0 * float((soft["logits"].argmax(1) == data.test_labels).double().mean())
        )
        # finished trainings keep no checkpoints
        assert not (out / "runs" / f"imbalanced-softmax-seed{seed}" / "last.pt").exists()
    # summary agrees with the rows
    vals = [
        r["per_class_mean"]
        for r in on_disk["runs"]
        if r["method"] == "pc-softmax" and r["setting"] == "imbalanced"
    ]
    s = on_disk["summary"]["imbalanced"]["pc-softmax"]["per_class_mean"]
    assert s["mean"] == pytest.approx(np.mean(vals)) and s["std"] == pytest.approx(
        np.std(vals, ddof=1)
    )
    p = on_disk["tests"]["imbalanced"]["pc-softmax"]["per_class_mean"]["p"]
    base = [
        r["per_class_mean"]
        for r in on_disk["runs"]
        if r["method"] == "softmax" and r["setting"] == "imbalanced"
    ]
    assert p == pytest.approx(stats.mannwhitneyu(vals, base, alternative="two-sided").pvalue)


def test_mnist_run_is_repeatable_and_resumable(mnist_run, tmp_path):
    root, _out, results = mnist_run
    config = TrainConfig(**{**pc_softmax_mnist.DEFAULTS, "epochs": 1, "batch_size": 32})
    again = pc_softmax_mnist.run(
        [1], tmp_path / "b", config, data_root=root, verify=False, quiet=True
    )
    first = {(r["setting"], r["method"]): r["per_class"] for r in results["runs"] if r["seed"] == 1}
    for r in again["runs"]:
        assert r["per_class"] == first[(r["setting"], r["method"])]
    # resume: finished trainings are read back, not retrained
    resumed = pc_softmax_mnist.run(
        [1],
        tmp_path / "b",
        TrainConfig(**{**config.to_dict(), "resume": True, "out": tmp_path / "b"}),
        data_root=root,
        verify=False,
        quiet=True,
    )
    assert [r["seconds"] for r in resumed["runs"]] == [r["seconds"] for r in again["runs"]]
    assert [r["micro"] for r in resumed["runs"]] == [r["micro"] for r in again["runs"]]
