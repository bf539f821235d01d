"""infocam.ClassifierMIEstimator: held-out MI from a trained classifier, scikit-learn style."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import infocam
from infocam import ClassifierMIEstimator, GaussianMixture
from infocam.mi._stacked import StackedMLP, fit_temperature
from infocam.models import mlp

FAST = {"hidden": (16,), "max_epochs": 8, "patience": 3, "batch_size": 128, "lr": 1e-2}


pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture(scope="module")
def two_gaussians():
    g = GaussianMixture(torch.tensor([[-1.0], [1.0]]), prior=[0.3, 0.7])
    x, y = g.sample(3000, seed=0)
    return g, x, y


def test_reexport():
    assert infocam.ClassifierMIEstimator is ClassifierMIEstimator
    from infocam.mi import ClassifierMIEstimator as old_path
    from infocam.mi.estimator import ClassifierMIEstimator as new_path

    assert old_path is new_path is ClassifierMIEstimator


def test_fit_does_not_import_torchvision():
    # The core MI estimator needs torch only: measuring information (the API or `infocam mi`)
    # must not pay for torchvision's import. A fresh interpreter sees what fit loads.
    code = (
        "import sys, torch\n"
        "from infocam import ClassifierMIEstimator\n"
        "x = torch.randn(40, 2); y = torch.arange(40) % 2\n"
        "est = ClassifierMIEstimator(hidden=(4,), max_epochs=1).fit(x, y)\n"
        "est.models_[0](x[:2].float())\n"
        "import infocam.experiments.mi_file  # infocam mi: reading a table, then the same fit\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torchvision'))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(infocam.__file__).parents[1])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.parametrize("softmax", ["pc", "softmax"])
def test_estimate_is_close_to_ground_truth(two_gaussians, softmax):
    g, x, y = two_gaussians
    truth = g.mutual_information().value  # 0.2035 nat by quadrature
    est = ClassifierMIEstimator(softmax, cv=3, random_state=0, **FAST)
    mi = est.fit_estimate(x, y)
    assert mi.n == 3000 and est.pointwise_.shape == (3000,)
    assert abs(mi.value - truth) < max(0.03, 3 * mi.stderr), (mi, truth)
    assert 0.75 < est.accuracy_ < 0.9


def test_one_cycle_schedule_runs_all_epochs_and_is_accurate(two_gaussians):
    g, x, y = two_gaussians
    truth = g.mutual_information().value
    params = {**FAST, "max_epochs": 10, "patience": 10, "lr_schedule": "onecycle"}
    est = ClassifierMIEstimator(cv=3, random_state=0, **params)
    mi = est.fit_estimate(x, y)
    assert est.n_epochs_ == 10 and all(1 <= e <= 10 for e in est.best_epochs_)
    assert abs(mi.value - truth) < max(0.03, 3 * mi.stderr), (mi, truth)
    again = ClassifierMIEstimator(cv=3, random_state=0, **params).fit_estimate(x, y)
    assert again.value == mi.value


def test_one_cycle_learning_rate_warms_up_then_decays():
    from infocam.mi._stacked import fit_stacked

    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 2, generator=g)
    y = (x[:, 0] > 0).long()
    idx = torch.arange(400)
    seen = []
    orig = torch.optim.AdamW.step

    def spy(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return orig(self, *args, **kwargs)

    torch.optim.AdamW.step = spy
    try:
        fit_stacked(
            x,
            y,
            [idx[:300]],
            [idx[300:]],
            torch.zeros(1, 2),
            num_classes=2,
            hidden=(4,),
            lr=0.1,
            weight_decay=0.0,
            batch_size=30,
            max_epochs=10,
            patience=10,
            seed=0,
            schedule="onecycle",
        )
    finally:
        torch.optim.AdamW.step = orig
    peak = seen.index(max(seen))
    assert len(seen) == 100 and max(seen) == pytest.approx(0.1)
    assert seen[0] == pytest.approx(0.01) and 5 <= peak <= 15
    assert (
        seen[-1] < 0.01 * 0.1 and seen == sorted(seen[: peak + 1]) + sorted(seen[peak + 1 :])[::-1]
    )


def test_same_seed_same_numbers_and_seed_matters(two_gaussians):
    _, x, y = two_gaussians
    a = ClassifierMIEstimator(random_state=3, **FAST).fit_estimate(x, y)
    b = ClassifierMIEstimator(random_state=3, **FAST).fit_estimate(x.numpy(), y.numpy())
    c = ClassifierMIEstimator(random_state=4, **FAST).fit_estimate(x, y)
    assert a == b
    assert a.value != c.value


@pytest.mark.parametrize("softmax", ["pc", "softmax"])
def test_pointwise_mi_matches_the_core_formula(two_gaussians, softmax):
    """The estimator's PMI is infocam.pointwise_mi on the exported model's logits / T."""
    _, x, y = two_gaussians
    est = ClassifierMIEstimator(softmax, temperature=True, **FAST).fit(x[:2000], y[:2000])
    assert len(est.models_) == 1 and isinstance(est.models_[0], torch.nn.Module)
    xt, yt = x[2000:], y[2000:]
    with torch.no_grad():
        logits = est.models_[0](((xt.double() - est.mean_) / est.scale_).float()).double()
    logits = logits / est.temperatures_[0]
    want = infocam.pointwise_mi(logits, yt, est.train_priors_[0], softmax=softmax)
    torch.testing.assert_close(est.pointwise_mi(xt, yt), want, rtol=1e-5, atol=1e-5)
    got = est.estimate(xt, yt)
    ref = infocam.mutual_information(logits, yt, est.train_priors_[0], softmax=softmax)
    assert got.value == pytest.approx(ref.value, abs=1e-5)
    assert est.estimate(xt, yt, unit="bit").value == pytest.approx(got.value / math.log(2))


def test_cross_fitting_scores_each_sample_out_of_fold(two_gaussians):
    _, x, y = two_gaussians
    est = ClassifierMIEstimator(cv=3, n_ensemble=2, **FAST)
    est.fit_estimate(x, y)
    assert len(est.models_) == 6
    assert est.member_folds_.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.equal(est.heldout_index_, torch.arange(3000))
    # Every sample's PMI is what its own fold's members give; those members never saw it
    # (their training + validation sets exclude the fold), and the folds are stratified.
    assert all(abs(c - 1000) <= 2 for c in torch.bincount(est.heldout_fold_).tolist())
    for f in range(3):
        members = torch.nonzero(est.member_folds_ == f).flatten()
        sel = est.heldout_fold_ == f
        lq = est._ensemble_log_q(x[sel].double(), members)
        log_p = est.train_priors_[members].mean(0).log()
        want = lq.gather(1, y[sel][:, None]).squeeze(1) - log_p[y[sel]]
        torch.testing.assert_close(est.pointwise_[sel], want)
        assert abs(float(est.train_priors_[members[0]][1]) - float(y.double().mean())) < 0.02


def test_labels_are_arbitrary_integers_and_predictions_use_them():
    g = GaussianMixture(torch.tensor([[-3.0, 0.0], [3.0, 0.0], [0.0, 3.0]]))
    x, y = g.sample(900, seed=1)
    labels = torch.tensor([10, 20, 30])[y]
    est = ClassifierMIEstimator(**FAST).fit(x, labels)
    assert est.classes_.tolist() == [10, 20, 30]
    proba = est.predict_proba(x[:50])
    assert proba.shape == (50, 3)
    torch.testing.assert_close(proba.sum(1), torch.ones(50, dtype=torch.float64))
    pred = est.predict(x)
    assert set(pred.unique().tolist()) <= {10, 20, 30}
    assert float((pred == labels).double().mean()) > 0.9
    with pytest.raises(ValueError, match="not seen in fit"):
        est.estimate(x[:5], torch.tensor([10, 20, 30, 40, 10]))


def test_get_set_params_and_repr():
    est = ClassifierMIEstimator(cv=5)
    assert est.get_params()["cv"] == 5
    assert est.set_params(cv=3) is est and est.cv == 3
    assert "cv=3" in repr(est)
    with pytest.raises(ValueError, match="unknown parameter"):
        est.set_params(epochs=3)


def bad(x, y, match, exc=ValueError, **kw):
    with pytest.raises(exc, match=match):
        ClassifierMIEstimator(**{**FAST, **kw}).fit_estimate(x, y)


def test_bad_input_errors():
    x = torch.randn(100, 2)
    y = torch.arange(100) % 2
    bad(x, y[:99], "same number of samples")
    bad(x, torch.zeros(100, dtype=torch.long), "at least 2 classes")
    xn = x.clone()
    xn[3, 1] = float("nan")
    bad(xn, y, "X must be finite")
    bad(x, y.double(), "integer class indices", TypeError)
    y_rare = y.clone()
    y_rare[:3] = 2  # class 2 has 3 samples: 1 in test, fewer than 2 in the validation split
    bad(x, y_rare, "class 2 has 1 sample", cv=None)
    bad(x, y, "softmax must be", softmax="logistic")
    bad(x, y, "cv must be", cv=1)
    bad(x, y, "val_fraction", val_fraction=1.5)
    bad(x, y, "lr_schedule must be", lr_schedule="step")
    with pytest.raises(ValueError, match="test_fraction"):
        ClassifierMIEstimator(cv=None, **FAST).fit_estimate(x, y, test_fraction=0.0)
    with pytest.raises(ValueError, match="X must be 2-D"):
        ClassifierMIEstimator(**FAST).fit(torch.zeros(10, 2, 2), y[:10])
    with pytest.raises(RuntimeError, match="not fitted"):
        ClassifierMIEstimator().estimate(x, y)


def test_wrong_feature_count_after_fit(two_gaussians):
    _, x, y = two_gaussians
    est = ClassifierMIEstimator(**FAST).fit(x[:500], y[:500])
    with pytest.raises(ValueError, match="1 features"):
        est.estimate(torch.zeros(4, 3), torch.tensor([0, 1, 0, 1]))


def test_fit_temperature_recovers_a_known_temperature():
    g = torch.Generator().manual_seed(0)
    true_logits = 2.0 * torch.randn(20_000, 4, generator=g, dtype=torch.float64)
    y = torch.multinomial(torch.softmax(true_logits, 1), 1, generator=g).squeeze(1)
    t = fit_temperature(2.5 * true_logits, y, torch.zeros(4, dtype=torch.float64))
    assert t == pytest.approx(2.5, rel=0.05)


def test_stacked_members_are_independent_mlps():
    net = StackedMLP(3, 4, 5, (8, 6), torch.Generator().manual_seed(0))
    x = torch.randn(3, 10, 4)
    out = net(x)
    for j in range(3):
        torch.testing.assert_close(net.member(j)(x[j]), out[j])
    # Member 0's gradient does not depend on member 1's inputs.
    out[0].sum().backward()
    assert net.weights[0].grad[1].abs().sum() == 0 and net.weights[0].grad[0].abs().sum() > 0


def test_mlp_factory():
    net = mlp(7, 3)
    assert net(torch.zeros(2, 7)).shape == (2, 3)
    assert sum(isinstance(m, torch.nn.Linear) for m in net) == 4
    linear = mlp(7, 3, hidden=())
    assert len(linear) == 1
    with pytest.raises(ValueError, match="num_classes"):
        mlp(7, 0)
    with pytest.raises(ValueError, match="hidden"):
        mlp(7, 3, hidden=(10, 0))


def test_numpy_one_dimensional_features_are_accepted():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    x = rng.normal(size=400) + 2.0 * y
    mi = ClassifierMIEstimator(**FAST).fit_estimate(x, y)
    assert 0.1 < mi.value < math.log(2)


def test_balanced_data_pc_and_softmax_are_the_same_fit():
    """Stratified splits of balanced data give an exactly uniform training prior, so the
    PC-softmax loss is the softmax loss plus a constant: same gradients, same estimate."""
    g = GaussianMixture(torch.tensor([[-1.0], [0.0], [1.0]]))
    x, y = g.sample([300, 300, 300], seed=2)
    pc = ClassifierMIEstimator("pc", cv=3, **FAST).fit_estimate(x, y)
    sm = ClassifierMIEstimator("softmax", cv=3, **FAST).fit_estimate(x, y)
    assert pc.value == pytest.approx(sm.value, abs=1e-4)


def test_select_features_keeps_the_informative_ones_chosen_on_validation():
    g = GaussianMixture(torch.tensor([[-1.5, 0.0], [1.5, 0.0], [0.0, 2.0]]))
    x, y = g.sample(3000, seed=0)
    x = torch.cat([x, torch.randn(3000, 8, generator=torch.Generator().manual_seed(1))], 1)
    params = {**FAST, "max_epochs": 30, "patience": 30, "lr_schedule": "onecycle"}
    est = ClassifierMIEstimator(cv=2, random_state=0, select_features=True, **params)
    mi = est.fit_estimate(x, y)
    losses = est.selection_val_loss_
    assert sorted(losses) == [1, 2, 3, 5, 10]
    assert est.n_features_selected_ == min(losses, key=losses.get) < 10
    mask = est.feature_mask_
    assert mask.shape == (2, 10) and bool((mask.sum(1) == est.n_features_selected_).all())
    assert bool((mask[:, :2] == 1).all())  # both informative features kept by every member
    truth = g.mutual_information(200_000, seed=0).value
    assert abs(mi.value - truth) < max(0.05, 3 * mi.stderr), (mi, truth)
    # The plain member modules reproduce the masked stacked members (dropped inputs: 0 weight).
    xs = est._standardise(x[:50].double())
    stacked = est._stack(xs.expand(2, -1, -1))
    for j, net in enumerate(est.models_):
        torch.testing.assert_close(net(xs), stacked[j], rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match="select_features"):
        ClassifierMIEstimator(select_features="yes").fit(x, y)


@pytest.fixture(scope="module")
def three_gaussians_5d():
    return GaussianMixture(0.5 * torch.tensor([[-1.0] * 5, [1.0] * 5, [0.0] * 5]))


def test_learning_curve_correction_removes_most_of_the_shortfall(three_gaussians_5d):
    """Against the true PMI of exactly the scored samples (no sampling noise), the plain
    held-out estimate falls short by the excess cross-entropy; the extrapolated one by less."""
    g = three_gaussians_5d
    plain_bias, corrected_bias = [], []
    for seed in range(4):
        x, y = g.sample(3000, seed=seed)
        true_pmi = g.posterior_log_prob(x).gather(1, y[:, None]).squeeze(1) - g.prior.log()[y]
        est = ClassifierMIEstimator(
            cv=3, random_state=seed, bias_correction="learning_curve", **FAST
        )
        mi = est.fit_estimate(x, y)
        plain = ClassifierMIEstimator(cv=3, random_state=seed, **FAST).fit_estimate(x, y)
        assert est.lower_bound_ == plain  # the main members are untouched by their twins
        assert mi.stderr >= est.lower_bound_.stderr * 0.9
        plain_bias.append(plain.value - float(true_pmi.mean()))
        corrected_bias.append(mi.value - float(true_pmi.mean()))
    mean_plain, mean_corrected = sum(plain_bias) / 4, sum(corrected_bias) / 4
    assert max(plain_bias) < -0.005  # the shortfall is real (-0.0084 on average) ...
    assert abs(mean_corrected) < 0.6 * abs(mean_plain), (plain_bias, corrected_bias)  # ... shrunk


def test_learning_curve_correction_is_the_richardson_extrapolation(three_gaussians_5d):
    x, y = three_gaussians_5d.sample(1500, seed=5)
    xt, yt = three_gaussians_5d.sample(500, seed=6)
    est = ClassifierMIEstimator(bias_correction="learning_curve", random_state=1, **FAST)
    est.fit(x, y)
    assert len(est.half_models_) == 1 and est.size_ratios_.tolist() == [
        pytest.approx(2.0, abs=0.01)
    ]
    xs = ((xt.double() - est.mean_) / est.scale_).float()
    with torch.no_grad():
        half_logits = est.half_models_[0](xs).double()
    half = infocam.pointwise_mi(half_logits, yt, est.half_train_priors_[0])
    plain = est.pointwise_mi(xt, yt, corrected=False)
    r = float(est.size_ratios_[0])
    want = plain + (plain - half) / (r - 1.0)
    torch.testing.assert_close(est.pointwise_mi(xt, yt), want, rtol=1e-5, atol=1e-5)
    assert est.estimate(xt, yt).value == pytest.approx(float(want.mean()), abs=1e-5)
    assert est.estimate(xt, yt, corrected=False).value == pytest.approx(float(plain.mean()))
    assert est.estimate(xt, yt).corrected and not est.estimate(xt, yt, corrected=False).corrected
    with pytest.raises(ValueError, match="bias-corrected"):
        est.estimate(xt, yt).lower_confidence_bound()
    again = ClassifierMIEstimator(bias_correction="learning_curve", random_state=1, **FAST)
    assert torch.equal(again.fit(x, y).pointwise_mi(xt, yt), est.pointwise_mi(xt, yt))


def test_learning_curve_correction_bad_input():
    x = torch.randn(100, 2)
    y = torch.arange(100) % 2
    bad(x, y, "bias_correction must be", bias_correction="jackknife")
    bad(x, y, "bias_correction must be", bias_correction=True)
    est = ClassifierMIEstimator(**FAST).fit(x, y)  # no twins fitted: corrected is a no-op
    assert torch.equal(est.pointwise_mi(x, y), est.pointwise_mi(x, y, corrected=False))


def test_hidden_widths_must_be_positive_integers():
    x = torch.randn(100, 2)
    y = torch.arange(100) % 2
    for hidden in [(0,), (-3,), (8, 0), (8.0,), (True,)]:
        bad(x, y, r"hidden must be a sequence of integer layer widths >= 1", hidden=hidden)
    for hidden in [8, "8", None]:
        bad(x, y, "hidden must be a sequence", TypeError, hidden=hidden)
    est = ClassifierMIEstimator(**{**FAST, "hidden": ()}).fit(x, y)  # logistic regression
    assert len(est.models_[0]) == 1


def test_device_is_checked_before_training(monkeypatch):
    from infocam._validation import check_device

    x = torch.randn(100, 2)
    y = torch.arange(100) % 2
    bad(x, y, r"device must be a torch device such as .*; got 'tpu'", device="tpu")
    bad(x, y, "device must be", TypeError, device=["cpu"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    bad(x, y, r"device is 'cuda' but CUDA is not available", device="cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        ClassifierMIEstimator(device="cuda:0").fit(x, y)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"'cuda:3' but only 1 CUDA device\(s\) are visible"):
        check_device("cuda:3")
    assert check_device("cuda") == torch.device("cuda")
    assert ClassifierMIEstimator()._device() == torch.device("cpu")  # None: the CPU


def test_features_need_a_sample_and_a_column():
    y = torch.arange(100) % 2
    bad(torch.zeros(100, 0), y, r"X must hold at least 1 sample and 1 feature .* \(100, 0\)")
    bad(torch.zeros(0, 2), y[:0], r"X must hold at least 1 sample and 1 feature .* \(0, 2\)")
    bad(np.zeros(0), np.zeros(0, dtype=int), r"at least 1 sample")


def test_non_numeric_inputs_name_their_dtype():
    x = np.random.default_rng(0).normal(size=(100, 2))
    y = np.array(["a", "b"])[np.arange(100) % 2]
    bad(x, y, r"y must be numeric array-like; got ndarray of dtype <U1 \(strings", TypeError)
    bad(x.astype(str), np.arange(100) % 2, r"X .* dtype <U\d+ \(strings", TypeError)
    bad([[1.0, None]] * 100, np.arange(100) % 2, r"dtype object \(Python objects", TypeError)


def test_random_state_none_draws_a_fresh_seed_kept_in_seed_(two_gaussians):
    _, x, y = two_gaussians
    x, y = x[:600], y[:600]
    a = ClassifierMIEstimator(random_state=None, **FAST)
    b = ClassifierMIEstimator(random_state=None, **FAST)
    mi_a, mi_b = a.fit_estimate(x, y), b.fit_estimate(x, y)
    assert isinstance(a.seed_, int) and a.seed_ != b.seed_ and mi_a != mi_b
    again = ClassifierMIEstimator(random_state=a.seed_, **FAST).fit_estimate(x, y)
    assert again == mi_a
    assert ClassifierMIEstimator(random_state=7, **FAST).fit(x, y).seed_ == 7
    bad(x, y, "random_state must be an integer seed or None", TypeError, random_state="0")
    bad(x, y, "random_state must be an integer seed or None", TypeError, random_state=1.0)
    bad(x, y, r"random_state must be in \[-2\*\*63", random_state=2**64)


def _rare_class_data(n_rare: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Classes 5 and 15 with 40 samples each, class 99 with ``n_rare``."""
    y = torch.tensor([5] * 40 + [15] * 40 + [99] * n_rare)
    x = torch.randn(y.numel(), 2, generator=torch.Generator().manual_seed(0))
    return x, y


@pytest.mark.parametrize(
    ("kw", "test_fraction", "need", "where"),
    [
        ({"cv": 5}, None, 10, r"a cross-fitting fold \(cv=5\)"),
        ({"cv": 2}, None, 16, "the validation split"),  # folds of 7 or 8: too few to validate
        ({"cv": 3, "val_fraction": 0.5}, None, 6, r"a cross-fitting fold \(cv=3\)"),
        (
            {"cv": 4, "val_fraction": 0.1, "bias_correction": "learning_curve"},
            None,
            20,
            "the validation split",
        ),
        ({"cv": 5, "bias_correction": "learning_curve"}, None, 10, "a cross-fitting fold"),
        ({"cv": None}, 0.2, 10, "the (test|validation) split"),
        ({}, False, 8, "the validation split"),  # fit(): no test split
    ],
)
def test_rare_class_message_names_the_label_and_the_size_needed(kw, test_fraction, need, where):
    """The size the message names is the true threshold: ``need`` fits, ``need - 1`` does not."""
    params = {"hidden": (), "max_epochs": 1, "batch_size": 64, **kw}

    def run(n_rare: int) -> None:
        est = ClassifierMIEstimator(**params)
        if test_fraction is False:
            est.fit(*_rare_class_data(n_rare))
        else:
            est.fit_estimate(*_rare_class_data(n_rare), test_fraction=test_fraction or 0.2)

    run(need)
    with pytest.raises(ValueError, match=rf"^y: class 99 has \d sample\(s\) in {where}") as info:
        run(need - 1)
    message = str(info.value)
    assert f"a class needs {need}; class 99 has {need - 1}: give more samples" in message
    assert "index" not in message and "val_fraction" not in message


def test_rare_class_message_suggests_a_number_of_folds_that_works():
    x, y = _rare_class_data(12)  # cv=10 needs 20 per class, cv=6 12
    with pytest.raises(ValueError, match=r"or use cv=6 \(the nearest number of folds that works"):
        ClassifierMIEstimator(hidden=(), max_epochs=1, cv=10).fit_estimate(x, y)
    x, y = _rare_class_data(1)
    with pytest.raises(ValueError, match=r"leave it out$"):
        ClassifierMIEstimator(hidden=(), max_epochs=1, cv=5).fit_estimate(x, y)


def test_stacked_member_export_folds_the_input_standardisation():
    k, d = 3, 4
    shift, scale = torch.randn(k, d), torch.rand(k, d) + 0.5
    mask = (torch.rand(k, d) > 0.3).float()
    net = StackedMLP(k, d, 5, (8,), torch.Generator().manual_seed(0), mask, (shift, scale))
    plain = StackedMLP(k, d, 5, (8,), torch.Generator().manual_seed(0), mask)
    x = torch.randn(k, 10, d)
    out = net(x)
    torch.testing.assert_close(out, plain((x - shift[:, None]) / scale[:, None]))
    for j in range(k):
        torch.testing.assert_close(net.member(j)(x[j]), out[j], rtol=1e-5, atol=1e-5)


def test_cross_fitted_members_standardise_with_their_own_rows(three_gaussians_5d):
    """No held-out row shapes a member: its mean/scale are its own rows', and moving the X of
    one fold (labels unchanged) leaves the member that holds that fold out as it was."""
    x, y = three_gaussians_5d.sample(900, seed=3)
    kw = {**FAST, "cv": 3, "random_state": 0, "bias_correction": "learning_curve"}
    est = ClassifierMIEstimator(**kw)
    est.fit_estimate(x, y)
    fold = torch.empty(900, dtype=torch.long)
    fold[est.heldout_index_] = est.heldout_fold_
    for j, f in enumerate(est.member_folds_.tolist()):
        own = x[fold != f].double()
        torch.testing.assert_close(est.member_mean_[j], own.mean(0))
        torch.testing.assert_close(est.member_scale_[j], own.std(0))
    # The exported models take (x - mean_) / scale_ and equal the stacked members.
    xs = ((x.double() - est.mean_) / est.scale_).float()
    with torch.no_grad():
        stacked = est._stack(xs.expand(3, -1, -1))
        for j in range(3):
            torch.testing.assert_close(est.models_[j](xs), stacked[j], rtol=1e-4, atol=1e-4)
    moved = x.clone()
    moved[fold == 0] = moved[fold == 0] * 10.0 + 50.0  # fold 0's features only
    other = ClassifierMIEstimator(**kw)
    other.fit_estimate(moved, y)
    assert torch.equal(other.heldout_fold_, est.heldout_fold_)
    j = int(torch.nonzero(est.member_folds_ == 0)[0])  # the member that never saw fold 0
    torch.testing.assert_close(other.member_mean_[j], est.member_mean_[j])
    with torch.no_grad():
        mine = est.models_[j](((x.double() - est.mean_) / est.scale_).float())
        theirs = other.models_[j](((x.double() - other.mean_) / other.scale_).float())
    torch.testing.assert_close(theirs, mine, rtol=1e-3, atol=1e-3)
    assert other.best_epochs_[j] == est.best_epochs_[j]


# ---------------------------------------------------------------- hostile values (issue 13)
def _two_classes(n: int = 600, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = (2.0 * y - 1.0 + torch.randn(n, generator=gen, dtype=torch.float64))[:, None]
    return torch.cat([x, torch.randn(n, 1, generator=gen, dtype=torch.float64)], 1), y


HOSTILE = {**FAST, "cv": 2, "max_epochs": 20, "patience": 20}


def test_one_wild_entry_does_not_flatten_its_column():
    """One 1e308 in the informative column: the std overflowed and zeroed the column (I ~ 0)."""
    x, y = _two_classes()
    clean = ClassifierMIEstimator(**HOSTILE).fit_estimate(x, y)
    x[7, 0] = 1e308
    est = ClassifierMIEstimator(**HOSTILE)
    wild = est.fit_estimate(x, y)
    assert clean.value > 0.2
    assert abs(wild.value - clean.value) < 3 * math.hypot(wild.stderr, clean.stderr), (wild, clean)
    assert est.scale_[0] < 10 and math.isfinite(est.member_scale_.max())


@pytest.mark.parametrize("size", [1e160, 1.2e308])
def test_a_separating_feature_of_huge_magnitude_is_as_informative_as_unscaled(size):
    """x * size: the std overflowed (1e160**2), or q75 - q25 would (1.2e308), and I came out
    0 for a perfectly separating feature. Scaling a feature changes nothing now."""
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(400) % 2
    x = ((2.0 * y - 1.0) + 0.02 * torch.randn(400, generator=gen, dtype=torch.float64))[:, None]
    plain = ClassifierMIEstimator(**HOSTILE).fit_estimate(x, y)
    est = ClassifierMIEstimator(**HOSTILE)
    huge = est.fit_estimate(x * size, y)
    assert est.accuracy_ == 1.0 and plain.value > 0.5
    assert huge.value == pytest.approx(plain.value, abs=1e-3)


def test_robust_scale_ignores_one_row_and_handles_tied_columns():
    from infocam.mi._scale import compress_tails as _compress_tails
    from infocam.mi._scale import robust_centre_scale as _robust_centre_scale

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1001, 1, generator=gen, dtype=torch.float64)
    wild = x.clone()
    wild[0] = 1e308
    c, s = _robust_centre_scale(x)
    cw, sw = _robust_centre_scale(wild)
    assert float(s) == pytest.approx(1.0, abs=0.1)  # IQR / 1.349 of a standard normal
    assert float(cw) == pytest.approx(float(c), abs=0.01)
    assert float(sw) == pytest.approx(float(s), rel=0.01)
    # IQR 0: a rare binary flag is scaled by its one other value's distance; constant -> 1.
    flag = torch.zeros(100, 2, dtype=torch.float64)
    flag[:5, 0] = 3.0
    c, s = _robust_centre_scale(flag)
    assert c.tolist() == [0.0, 0.0] and s.tolist() == [3.0, 1.0]
    z = torch.tensor([-math.inf, -1e300, -11.0, -10.0, 0.5, 10.0, 12.0, 1e4, 1e5, math.inf])
    out = _compress_tails(z.double())
    assert out[3:7].tolist() == [-10.0, 0.5, 10.0, pytest.approx(10 + math.log(3))]
    assert out[0] == out[1] == -20.0 and out[-1] == out[-2] == 20.0 and out[-3] < 20.0
    assert bool((out.diff() >= 0).all()) and bool((out[1:-2].diff() > 0).all())


def test_a_non_finite_estimate_is_refused_naming_the_cause(monkeypatch):
    x, y = _two_classes(200)
    real = ClassifierMIEstimator._log_posteriors

    def overflowed(self, x, half=False):
        return real(self, x, half) * torch.nan

    monkeypatch.setattr(ClassifierMIEstimator, "_log_posteriors", overflowed)
    with pytest.raises(ValueError, match=r"no finite MI estimate.*training diverged"):
        ClassifierMIEstimator(**HOSTILE).fit_estimate(x, y)
    # The core function: finite float64 logits 2e308 apart give -inf, not an estimate.
    logits = torch.tensor([[1e308, -1e308], [1e308, -1e308]], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"no finite MI estimate.*too far apart"):
        infocam.mutual_information(logits, torch.tensor([1, 0]))


def test_meta_device_is_refused():
    with pytest.raises(ValueError, match="device is 'meta', a device that holds no data"):
        ClassifierMIEstimator(device="meta").fit_estimate(*_two_classes(40))


# --------------------------------------------------------------------- copies of rows
COPIES = {"hidden": (64, 64), "max_epochs": 40, "patience": 40, "batch_size": 32, "lr": 1e-2}


def test_every_row_repeated_gives_the_unrepeated_estimate_not_an_inflated_one():
    """Random labels (I = 0): with each row 4 times, copies split between training and
    held-out rows let the network recall them (0.051 +- 0.014 nat, accuracy 0.63 before)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 2, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 2, (200,), generator=gen)
    once = ClassifierMIEstimator(cv=5, **COPIES).fit_estimate(x, y)
    est = ClassifierMIEstimator(cv=5, **COPIES)
    four = est.fit_estimate(x.repeat(4, 1), y.repeat(4))
    assert abs(four.value - once.value) < 3 * math.hypot(four.stderr, once.stderr), (four, once)
    assert four.value < 3 * four.stderr and est.accuracy_ < 0.58
    assert est.n_duplicate_rows_ == 600
    # One draw, not four: the standard error is the unrepeated one's, not half of it.
    assert four.stderr == pytest.approx(once.stderr, rel=0.35)
    # Every copy of a row was scored by the same fold's members.
    fold = torch.empty(800, dtype=torch.long)
    fold[est.heldout_index_] = est.heldout_fold_
    assert torch.equal(fold.view(4, 200), fold[:200].expand(4, -1))


def test_copies_stay_together_in_every_split_even_with_different_labels():
    from infocam.mi._splits import copy_groups as _copy_groups
    from infocam.mi._splits import stratified_folds as _stratified_folds
    from infocam.mi._splits import stratified_split as _stratified_split

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, 3, generator=gen, dtype=torch.float64)
    x = torch.cat([x, x[:100], x[:50]])  # rows 0-49 three times, 50-99 twice
    t = torch.randint(0, 3, (450,), generator=gen)  # copies may disagree on the label
    groups = _copy_groups(x)
    assert groups is not None and torch.unique(groups).numel() == 300
    same = (x[:, None] == x[None]).all(2)
    for f in _stratified_folds(t, 5, gen, groups):
        inside = torch.zeros(450, dtype=torch.bool)
        inside[f] = True
        assert bool((same[inside][:, ~inside] == 0).all())  # no copy outside its fold
    rest, held = _stratified_split(t, torch.arange(450), 0.2, gen, "test", groups)
    assert not bool(same[held][:, rest].any())
    assert abs(held.numel() - 90) <= 3  # 20% of the rows, give or take a group
    # Integer features repeat in i.i.d. data (categories, counts): split freely.
    assert _copy_groups(torch.randint(0, 3, (300, 2)).double()) is None
    assert _copy_groups(torch.randn(300, 2, dtype=torch.float64)) is None


def test_too_few_distinct_rows_of_a_class_says_copies_go_together():
    gen = torch.Generator().manual_seed(0)
    x = torch.cat(
        [torch.randn(40, 2, generator=gen, dtype=torch.float64)]
        + [torch.randn(1, 2, generator=gen, dtype=torch.float64)] * 6
    )
    y = torch.cat([torch.arange(40) % 2, torch.full((6,), 2)])
    with pytest.raises(ValueError, match=r"class 2 has 0 sample.*5 rows are copies of others"):
        ClassifierMIEstimator(cv=5, **FAST).fit_estimate(x, y)
