"""Small samples of the paper's mixtures: ours (plain and bias-corrected) vs k-NN, over seeds.

On one sample the error of any estimator is dominated by that sample's own noise (the mean
true PMI of n = 10k samples is itself off the truth by up to 0.012 nat), so the estimators
are compared by root-mean-square error over several seeds, on the same samples. Columns:

* ``oracle``: the mean *true* point-wise MI of the sample (the best any mean-of-PMI estimator
  can do; its RMSE is the sampling noise);
* ``plain``: ``ClassifierMIEstimator(cv=5)`` defaults, the held-out estimate (a lower bound);
* ``corrected``: the same fit with ``bias_correction="learning_curve"`` (``plain`` is its
  ``lower_bound_``: one fit gives both);
* ``k-NN``: the Ross (KSG) estimator of ``mi_peers.py``; ``npeet``: npeet-plus ``micd``.

Run: ``python benchmarks/mi_small_n.py --n 1000 --seeds 1 2 3 4 5``; writes
``benchmarks/results/mi_small_n_<n>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import mi_peers
from infocam import ClassifierMIEstimator, GaussianMixture

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ("oracle", "plain", "corrected", "k-NN", "npeet")


def errors(g: GaussianMixture, truth: float, n: int, seed: int) -> list[float]:
    x, y = mi_peers._sampler(g)(n, seed)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    pmi = g.posterior_log_prob(xt).gather(1, yt[:, None]).squeeze(1) - g.prior.log()[yt]
    est = ClassifierMIEstimator(cv=5, random_state=seed, bias_correction="learning_curve")
    corrected = est.fit_estimate(x, y).value
    values = [float(pmi.mean()), est.lower_bound_.value, corrected, mi_peers.knn_ross(x, y)]
    values.append(mi_peers.npeet_micd(x, y) if "npeet-plus micd" in mi_peers.ESTIMATORS else np.nan)
    return [v - truth for v in values]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    lines = [
        f"| problem (n = {args.n}, {len(args.seeds)} seeds) | "
        + " | ".join(f"{c} RMSE" for c in COLUMNS)
        + " | plain mean error | corrected mean error | k-NN mean error | s |",
        "|---|" + "---:|" * (len(COLUMNS) + 4),
    ]
    for balanced in (True, False):
        for d in (1, 2, 5, 10):
            g = GaussianMixture.paper(d, balanced)
            truth = g.mutual_information().value
            start = time.perf_counter()
            err = np.array([errors(g, truth, args.n, s) for s in args.seeds])
            rmse, mean = np.sqrt((err**2).mean(0)), err.mean(0)
            name = f"(a) paper {'bal' if balanced else 'imb'} D={d}"
            secs = time.perf_counter() - start
            errs = dict(zip(COLUMNS, err.T.tolist(), strict=True))
            rows.append({"problem": name, "n": args.n, "seeds": args.seeds, "truth": truth,
                         "errors": errs, "s": secs})  # fmt: skip
            lines.append(
                f"| {name} | " + " | ".join(f"{v:.4f}" for v in rmse)
                + f" | {mean[1]:+.4f} | {mean[2]:+.4f} | {mean[3]:+.4f} | {secs:.0f} |"
            )  # fmt: skip
            print(lines[-1], flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"mi_small_n_{args.n}"
    out.with_suffix(".json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out}.json, {out}.md")


if __name__ == "__main__":
    main()
