"""Do infocam's MI error bars cover the truth? Bias, RMSE and coverage on problems with exact truth.

Issue 18's coverage suite. Every problem family has an exact ``I(X; Y)``: a closed form, or
Monte Carlo over ``--truth-draws`` draws of x with the exact posterior ``p(y|x)`` (its own
standard error shown; <= 1e-3 nat at the default 2,000,000 draws):
``I = mean_i v_i``, ``v_i = -sum_y p(y|x_i) log p_hat(y) + sum_y p(y|x_i) log p(y|x_i)``
(``p_hat`` the Monte Carlo marginal; ``v`` is the influence function, so ``std(v)/sqrt(N)`` is
the standard error).

Families: the paper's imbalanced mixture (D = 2); sharp boundaries (a deterministic threshold
of a linear function of two inputs, and of a non-linear one, a disc); issue 18's 10-D problem
(one label bit a deterministic threshold, the other a noisy linear boundary, seven useless
inputs); XOR (parity of two signs); many classes (M = 10, M = 100); heavy imbalance (1:100);
useless inputs (the paper's 2-D mixture plus 30 noise dimensions); heavy tails on wild scales
(Student-t with 3 degrees of freedom, columns scaled by 1e-6 ... 1e6); discrete, tied inputs
(Poisson and binomial counts).

Estimators per replicate, side by side:

* ``infocam default``: ``ClassifierMIEstimator()`` (5-fold cross-fitting, the plain held-out
  estimate, a lower bound in expectation); its intervals: the one-sided 95% lower confidence
  bound (``lower_confidence_bound()``) and the two-sided 95% interval (``interval()``, an
  interval for the held-out estimate's expectation, not for I(X;Y)). Coverage of both is
  counted against the truth.
* ``infocam learning_curve``: ``bias_correction="learning_curve"`` and its 95% interval.
  Both come from one fit with the correction: its main members are exactly the defaults'
  (same seed, same recipe; the twins are extra), so the default's numbers are its
  ``lower_bound_``; the wall time shown is that of the combined fit.
* ``infocam cv=None`` (``--options``): one 20% test split, the quick look.
* peers (no intervals): k-NN (Ross 2014, k = 3), Gaussian copula (both from mi_peers.py), and
  npeet-plus ``micd`` when installed.

Per cell (family x n x estimator): bias (mean error), RMSE, coverage of each interval, mean
wall seconds. Writes ``benchmarks/results/mi_coverage.{json,md}`` (atomically).

Run: ``python benchmarks/mi_coverage.py --quick`` (n = 2,000, 4 replicates, minutes) or the
full grid ``python benchmarks/mi_coverage.py`` (n = 2k, 10k, 50k; 20 / 20 / 5 replicates;
hours). ``--families``, ``--sizes``, ``--reps``, ``--jobs`` select a part.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import special, stats

from infocam import ClassifierMIEstimator, GaussianMixture
from infocam.training.checkpoint import atomic_write, write_json

RESULTS = Path(__file__).resolve().parent / "results"
_spec = importlib.util.spec_from_file_location("mi_peers", Path(__file__).with_name("mi_peers.py"))
mi_peers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mi_peers)

Array = np.ndarray


# ------------------------------------------------------------------------------ problems
@dataclass(frozen=True)
class Problem:
    """A family: ``draw(n, rng) -> (x, y)`` and, for the truth, ``draw_x(n, rng) -> x`` with the
    exact posterior ``posterior(x) -> (n, M)``; ``exact``: a closed-form truth, if any."""

    name: str
    what: str
    draw_x: Callable[[int, np.random.Generator], Array]
    posterior: Callable[[Array], Array]
    exact: float | None = None
    draw: Callable[[int, np.random.Generator], tuple[Array, Array]] | None = None

    def sample(self, n: int, rng: np.random.Generator) -> tuple[Array, Array]:
        if self.draw is not None:
            return self.draw(n, rng)
        x = self.draw_x(n, rng)
        p = self.posterior(x)
        u = rng.random((n, 1))
        y = (p.cumsum(1) < u).sum(1).clip(max=p.shape[1] - 1)
        return x, y


def _entropy2(p: float) -> float:
    return float(-(p * math.log(p) + (1 - p) * math.log(1 - p)))


def _onehot(y: Array, m: int) -> Array:
    out = np.zeros((y.shape[0], m))
    out[np.arange(y.shape[0]), y] = 1.0
    return out


def _mixture(name: str, what: str, g: GaussianMixture, noise: int = 0) -> Problem:
    """A Gaussian mixture (+ ``noise`` pure-noise columns); data drawn with fixed class counts
    (``round(n * prior)``, at least 10 each) so that every class can be cross-fitted."""

    def draw(n: int, rng: np.random.Generator) -> tuple[Array, Array]:
        counts = [max(10, round(n * float(p))) for p in g.prior]
        x, y = g.sample(counts, seed=int(rng.integers(2**31)), dtype=torch.float64)
        x = x.numpy()
        if noise:
            x = np.concatenate([x, rng.standard_normal((x.shape[0], noise))], 1)
        return x, y.numpy()

    def draw_x(n: int, rng: np.random.Generator) -> Array:
        return g.sample(n, seed=int(rng.integers(2**31)), dtype=torch.float64)[0].numpy()

    def posterior(x: Array) -> Array:
        return g.posterior_log_prob(torch.from_numpy(x[:, : g.dim])).exp().numpy()

    return Problem(name, what, draw_x, posterior, draw=draw)


def _normal(d: int) -> Callable[[int, np.random.Generator], Array]:
    return lambda n, rng: rng.standard_normal((n, d))


def _issue18_posterior(x: Array) -> Array:
    bit1 = (x[:, 0] > 0).astype(float)
    q = special.expit(4.0 * (x[:, 1] + x[:, 2]))  # the noisy bit
    return np.stack([(1 - bit1) * (1 - q), (1 - bit1) * q, bit1 * (1 - q), bit1 * q], 1)


def _heavy_tails(n: int, rng: np.random.Generator) -> Array:
    t = rng.standard_t(3, size=(n, 4))
    return t * np.array([1e-6, 1.0, 1e3, 1e6])


def _heavy_posterior(x: Array) -> Array:
    t = x / np.array([1e-6, 1.0, 1e3, 1e6])
    q = special.expit(2.0 * t[:, 0] - 1.0 * t[:, 2])
    return np.stack([1 - q, q], 1)


def _counts(n: int, rng: np.random.Generator) -> Array:
    return np.stack([rng.poisson(3.0, n), rng.binomial(5, 0.5, n), rng.poisson(1.0, n)], 1).astype(
        float
    )


def _counts_posterior(x: Array) -> Array:
    q = special.expit(1.0 * (x[:, 0] - 3.0) + 0.8 * (x[:, 1] - 2.5))
    return np.stack([1 - q, q], 1)


def problems() -> dict[str, Problem]:
    """Every family, by name."""
    p_lin = float(stats.norm.sf(0.5 / math.sqrt(2.0)))  # P(x1 + x2 > 0.5), x ~ N(0, I)
    p_disc = 1.0 - math.exp(-0.75)  # P(x1^2 + x2^2 < 1.5) = chi2_2 cdf
    gen = torch.Generator().manual_seed(10)
    means10 = 1.5 * torch.randn(10, 5, generator=gen, dtype=torch.float64)
    means100 = 2.0 * torch.randn(100, 10, generator=gen, dtype=torch.float64)
    fams = [
        _mixture("mixture", "paper's imbalanced mixture, D=2", GaussianMixture.paper(2, False)),
        Problem(
            "threshold-linear",
            "y = [x1 + x2 > 0.5], x ~ N(0, I_5)",
            _normal(5),
            lambda x: _onehot((x[:, 0] + x[:, 1] > 0.5).astype(int), 2),
            exact=_entropy2(p_lin),
        ),
        Problem(
            "threshold-disc",
            "y = [x1^2 + x2^2 < 1.5], x ~ N(0, I_5)",
            _normal(5),
            lambda x: _onehot((x[:, 0] ** 2 + x[:, 1] ** 2 < 1.5).astype(int), 2),
            exact=_entropy2(p_disc),
        ),
        Problem(
            "issue-10d",
            "2 bits: [x1 > 0], Bernoulli(sigmoid(4(x2 + x3))); 7 useless inputs",
            _normal(10),
            _issue18_posterior,
        ),
        Problem(
            "xor",
            "y = [x1 > 0] xor [x2 > 0], x ~ N(0, I_4)",
            _normal(4),
            lambda x: _onehot(((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(int), 2),
            exact=math.log(2.0),
        ),
        _mixture("classes-10", "M=10, means ~ N(0, 1.5^2 I_5)", GaussianMixture(means10)),
        _mixture("classes-100", "M=100, means ~ N(0, 2^2 I_10)", GaussianMixture(means100)),
        _mixture(
            "imbalance-1:100",
            "2 classes 1:100, means 0 and 2.5 e1, D=2",
            GaussianMixture(torch.tensor([[0.0, 0.0], [2.5, 0.0]]), prior=[100 / 101, 1 / 101]),
        ),
        _mixture(
            "noise-30",
            "paper's balanced 2-D mixture + 30 noise inputs",
            GaussianMixture.paper(2),
            noise=30,
        ),
        Problem(
            "heavy-tails",
            "Student-t(3) x 4, scaled 1e-6, 1, 1e3, 1e6; sigmoid(2 t1 - t3)",
            _heavy_tails,
            _heavy_posterior,
        ),
        Problem(
            "discrete",
            "Poisson(3), Binomial(5, .5), Poisson(1) counts (tied); sigmoid(x1-3 + .8(x2-2.5))",
            _counts,
            _counts_posterior,
        ),
    ]
    return {f.name: f for f in fams}


def truth(problem: Problem, draws: int, seed: int = 12345) -> dict:
    """Exact truth: the closed form, else Monte Carlo with its standard error (see above)."""
    if problem.exact is not None:
        return {"value": problem.exact, "stderr": 0.0, "method": "closed form"}
    chunk = 100_000

    def posteriors():  # the same draws twice (seeded): the marginal first, then v
        rng = np.random.default_rng(seed)
        for start in range(0, draws, chunk):
            yield problem.posterior(problem.draw_x(min(chunk, draws - start), rng))

    p_hat = sum(p.sum(0) for p in posteriors()) / draws
    log_p_hat = np.log(np.where(p_hat > 0, p_hat, 1.0))
    total = total_sq = 0.0
    for p in posteriors():
        plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(1)
        v = -(p * log_p_hat).sum(1) + plogp
        total += float(v.sum())
        total_sq += float((v**2).sum())
    mean = total / draws
    var = max(total_sq / draws - mean**2, 0.0) * draws / (draws - 1)
    return {
        "value": mean,
        "stderr": math.sqrt(var / draws),
        "method": f"Monte Carlo, {draws} draws",
    }


# ---------------------------------------------------------------------------- estimators
def _infocam(x: Array, y: Array, seed: int, params: dict) -> dict[str, dict]:
    """The defaults and the learning-curve option from one fit (same main members)."""
    est = ClassifierMIEstimator(random_state=seed, bias_correction="learning_curve", **params)
    corrected = est.fit_estimate(x, y)
    plain = est.lower_bound_
    return {
        "infocam default": {
            "value": plain.value,
            "lower_bound95": plain.lower_confidence_bound(0.95),
            "interval95": list(plain.interval(0.95)),
        },
        "infocam learning_curve": {
            "value": corrected.value,
            "interval95": list(corrected.interval(0.95)),
        },
    }


def _single_split(x: Array, y: Array, seed: int, params: dict) -> dict[str, dict]:
    mi = ClassifierMIEstimator(cv=None, random_state=seed, **params).fit_estimate(x, y)
    return {
        "infocam cv=None": {
            "value": mi.value,
            "lower_bound95": mi.lower_confidence_bound(0.95),
            "interval95": list(mi.interval(0.95)),
        }
    }


def _peer(name: str, fn: Callable[[Array, Array], float]) -> Callable[..., dict[str, dict]]:
    return lambda x, y, seed, params: {name: {"value": float(fn(x, y))}}


def estimators(options: bool) -> dict[str, Callable[..., dict[str, dict]]]:
    """Name -> ``f(x, y, seed, params) -> {row name: {"value", intervals...}}``."""
    out = {"infocam": _infocam}
    if options:
        out["infocam cv=None"] = _single_split
    out["k-NN (Ross)"] = _peer("k-NN (Ross)", mi_peers.knn_ross)
    out["Gaussian copula"] = _peer("Gaussian copula", mi_peers.gaussian_copula)
    if importlib.util.find_spec("npeet_plus") is not None:
        out["npeet-plus micd"] = _peer("npeet-plus micd", mi_peers.npeet_micd)
    return out


# ---------------------------------------------------------------------------------- runs
def _replicate(args: tuple) -> list[dict]:
    """One data set of one cell, every estimator on it (one worker's job)."""
    family, n, rep, seed, names, options, params = args
    torch.set_num_threads(1)
    problem = problems()[family]
    rng = np.random.default_rng([seed, n, rep, sum(map(ord, family))])
    x, y = problem.sample(n, rng)
    rows = []
    for name, fn in estimators(options).items():
        if name not in names:
            continue
        start = time.perf_counter()
        out = fn(x, y, seed + rep, params)
        seconds = time.perf_counter() - start
        for row_name, r in out.items():
            rows.append({"family": family, "n": n, "rep": rep, "estimator": row_name,
                         "seconds": seconds, **r})  # fmt: skip
    return rows


def summarise(rows: list[dict], truths: dict[str, dict]) -> list[dict]:
    """Per (family, n, estimator): bias, RMSE, coverage of each interval, mean seconds."""
    cells: dict[tuple, list[dict]] = {}
    for r in rows:
        cells.setdefault((r["family"], r["n"], r["estimator"]), []).append(r)
    out = []
    for (family, n, name), rs in cells.items():
        t = truths[family]["value"]
        err = np.array([r["value"] - t for r in rs])
        cell = {"family": family, "n": n, "estimator": name, "reps": len(rs),
                "truth": t, "bias": float(err.mean()), "rmse": float(np.sqrt((err**2).mean())),
                "sd": float(err.std(ddof=1)) if len(rs) > 1 else None,
                "seconds": float(np.mean([r["seconds"] for r in rs]))}  # fmt: skip
        if "lower_bound95" in rs[0]:
            cell["cover_lower_bound"] = float(np.mean([r["lower_bound95"] <= t for r in rs]))
        if "interval95" in rs[0]:
            cell["cover_interval"] = float(
                np.mean([r["interval95"][0] <= t <= r["interval95"][1] for r in rs])
            )
            cell["mean_half_width"] = float(
                np.mean([(r["interval95"][1] - r["interval95"][0]) / 2 for r in rs])
            )
        out.append(cell)
    return out


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"


def markdown(result: dict) -> str:
    """The table docs/mi-coverage.md shows (rendered by render_docs.py from the JSON)."""
    lines = [
        "| family | truth (nat) | n | estimator | reps | bias | RMSE | 95% lower bound covers | "
        "95% interval covers | interval half-width | s / fit |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    truths = result["truths"]
    for c in result["cells"]:
        t = truths[c["family"]]
        se = "exact" if t["stderr"] == 0 else f"± {t['stderr']:.4f}"
        width = c.get("mean_half_width")
        lines.append(
            f"| {c['family']} | {t['value']:.4f} {se} | {c['n']} | {c['estimator']} | "
            f"{c['reps']} | {c['bias']:+.4f} | {c['rmse']:.4f} | "
            f"{_pct(c.get('cover_lower_bound'))} | {_pct(c.get('cover_interval'))} | "
            f"{'-' if width is None else f'{width:.4f}'} | {c['seconds']:.1f} |"
        )
    meta = result["meta"]
    lines += [
        "",
        f"Command: `{meta['command']}`; {meta['cpus']} CPUs, 1-minute load average "
        f"{meta['load_1min']:.1f} at the end; {meta['wall_s']:.0f} s wall. The learning_curve "
        "row and the default row come from one fit (the time shown is that fit's).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    fams = problems()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="n = 2000, 4 replicates: minutes")
    p.add_argument("--families", nargs="+", choices=list(fams), default=list(fams))
    p.add_argument("--sizes", type=int, nargs="+", default=None)
    p.add_argument("--reps", type=int, nargs="+", default=None,
                   help="replicates per size (one number, or one per size)")  # fmt: skip
    p.add_argument("--estimators", nargs="+", default=None, help="names (default: all)")
    p.add_argument("--options", action="store_true", help="also cv=None (one 20%% split)")
    p.add_argument("--truth-draws", type=int, default=2_000_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="worker processes (replicates)")
    p.add_argument("--smoke", action="store_true", help="tiny networks (tests only)")
    p.add_argument("--out", type=Path, default=RESULTS / "mi_coverage.json")
    a = p.parse_args(argv)
    sizes = a.sizes or ([2000] if a.quick else [2000, 10_000, 50_000])
    reps = a.reps or ([4] if a.quick else [20, 20, 5][: len(sizes)] + [5] * (len(sizes) - 3))
    if len(reps) == 1:
        reps = reps * len(sizes)
    if len(reps) != len(sizes):
        p.error(f"--reps: give one number or one per size ({len(sizes)}); got {len(reps)}")
    names = a.estimators or list(estimators(a.options))
    params = {"hidden": (16,), "max_epochs": 5, "patience": 5} if a.smoke else {}
    start = time.perf_counter()
    truths = {}
    for f in a.families:
        truths[f] = {**truth(fams[f], a.truth_draws), "what": fams[f].what}
        t = truths[f]
        print(f"truth {f}: {t['value']:.4f} ± {t['stderr']:.4f} nat ({t['method']})", flush=True)
    cells = [(n, k, f) for n, k in zip(sizes, reps, strict=True) for f in a.families]
    jobs = [(f, n, r, a.seed, names, a.options, params) for n, k, f in cells for r in range(k)]
    rows: list[dict] = []
    if a.jobs > 1:
        with ProcessPoolExecutor(a.jobs) as pool:
            for out in pool.map(_replicate, jobs):
                rows += out
                print(f"{out[0]['family']} n={out[0]['n']} rep {out[0]['rep']} done", flush=True)
    else:
        for job in jobs:
            rows += _replicate(job)
            print(f"{job[0]} n={job[1]} rep {job[2]} done", flush=True)
    command = "python benchmarks/mi_coverage.py " + " ".join(sys.argv[1:] if argv is None else argv)
    result = {
        "meta": {
            "command": command.strip(),
            "cpus": os.cpu_count(),
            "load_1min": os.getloadavg()[0],
            "wall_s": time.perf_counter() - start,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "sizes": sizes,
            "reps": reps,
        },
        "truths": truths,
        "cells": summarise(rows, truths),
        "rows": rows,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(result, a.out)
    table = markdown(result)
    atomic_write(a.out.with_suffix(".md"), lambda fh: fh.write(table.encode()))
    print(table)
    print(f"wrote {a.out} and {a.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
