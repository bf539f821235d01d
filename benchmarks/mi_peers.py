"""I(X; Y) for continuous X and a discrete label Y: infocam vs the estimators a user would pick.

Peers (compact faithful implementations, plus the npeet-plus package when installed):

* **k-NN (Ross 2014)**, the mixed continuous/discrete KSG estimator behind scikit-learn's
  ``mutual_info_classif`` and npeet's ``micd``, but multivariate (all of X jointly):
  ``I = psi(N) - <psi(N_y)> + psi(k) - <psi(m_i)>`` with scipy's cKDTree, k = 3. In 1-D it
  agrees with ``sklearn.feature_selection.mutual_info_classif(n_neighbors=3)`` to 1e-14.
* **Gaussian copula** (Ince et al. 2017, ``gcmi_model_cd``): rank-normalise each feature, then
  the Gaussian-model MI ``H(X) - sum_y p_y H(X|y)`` with the analytic bias correction.
* **MINE** (Belghazi et al. 2018): Donsker-Varadhan bound ``E_P f - log E_{P_X P_Y} e^f``
  with the moving-average gradient correction; critic ``f(x, y) = g(x)_y``, g the same MLP.
* **InfoNCE** (van den Oord et al. 2018): ``E[f(x_i, y_i) - log mean_j e^{f(x_i, y_j)}]`` over
  batches of 256 (bounded by log 256), same critic.
* **npeet-plus ``micd``** (optional extra ``infocam[bench]``): the packaged k-NN estimator,
  entropy-based (Kozachenko-Leonenko ``H(X) - sum_y p_y H(X|y)``).
* **ours**: ``ClassifierMIEstimator(cv=5)`` (PC-softmax, MLP 3 x 100, cross-fitted); and
  with ``select_features=True`` (per-member top features, the count chosen on validation).

MINE and InfoNCE train on 80% and are evaluated on the held-out 20%; k-NN and copula use all
samples (they have no training step). Problems, all with exact ground truth:

(a) the paper's mixtures (balanced / imbalanced, D = 1, 2, 5, 10);
(b) the paper's 2-D balanced mixture plus pure-noise dimensions up to D = 10, 20, 50, 100;
(c) M = 50 classes in D = 10, means ~ N(0, 1.5^2 I), a geometric prior with ratio 20 between
    the most and least frequent class (at n = 1k the rarest class has about 3 samples: the
    classifier refuses to split it, k-NN drops classes seen once).

Default: a few minutes (n = 1k and 10k, a subset of problems). ``--full``: the issue's grid
(n = 1k, 10k, 60k; every problem), over an hour on one thread (the k-NN estimators take
5 to 15 minutes each at n = 50k in 100-D). Every cell is saved as soon as it is done;
``--resume`` skips the cells already in the file and ``--problems`` / ``--sizes`` /
``--estimators`` select a part, so a long run can be split or continued. Writes
``benchmarks/results/mi_peers.{json,md,png}``.
Run: ``python benchmarks/mi_peers.py [--full] [--resume] [--seed 0]``; e.g. the nuisance
target: ``--sizes 50000 --problems D=100``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy import special, stats
from scipy.spatial import cKDTree

from infocam import ClassifierMIEstimator, GaussianMixture
from infocam.models import mlp

RESULTS = Path(__file__).resolve().parent / "results"


# ------------------------------------------------------------------------------ peers
def knn_ross(x: np.ndarray, y: np.ndarray, k: int = 3) -> float:
    """Ross (2014) k-NN estimator of I(X; Y), X continuous (N, D), Y discrete (N,).

    ``I = psi(N) - <psi(N_y)> + psi(k) - <psi(m_i)>``, max-norm distances, k-th same-class
    neighbour radius, m_i = samples of any class within it (self excluded). A k-d tree for
    D <= 20; above, exact brute force in row chunks (a k-d tree in 100-D visits nearly every
    point and is slower than the chunked distance matrix); same neighbours, same value.
    """
    # Like scikit-learn's mutual_info_classif: samples of a class seen once are dropped.
    labels, counts = np.unique(y, return_counts=True)
    keep = np.isin(y, labels[counts > 1])
    x, y = x[keep], y[keep]
    n = x.shape[0]
    x = x + 1e-10 * np.random.default_rng(0).standard_normal(x.shape)  # break ties
    psi_ny = np.empty(n)
    for c in np.unique(y):
        psi_ny[y == c] = special.digamma(np.count_nonzero(y == c))
    m = _ross_counts_brute(x, y, k) if x.shape[1] > 20 else _ross_counts_tree(x, y, k)
    psi_m = special.digamma(np.maximum(m, 1))
    return float(special.digamma(n) - psi_ny.mean() + special.digamma(k) - psi_m.mean())


def _ross_counts_tree(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    full = cKDTree(x)
    m = np.empty(x.shape[0], dtype=np.int64)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        kk = min(k, idx.size - 1)
        dist, _ = cKDTree(x[idx]).query(x[idx], k=kk + 1, p=np.inf)
        m[idx] = full.query_ball_point(x[idx], dist[:, -1], p=np.inf, return_length=True) - 1
    return m


def _ross_counts_brute(x: np.ndarray, y: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """m_i by exact max-norm distances, ``chunk`` rows at a time (float64, one pass)."""
    xt, yt = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y)
    sizes = torch.bincount(yt)
    m = torch.empty(x.shape[0], dtype=torch.long)
    for start in range(0, x.shape[0], chunk):
        d = torch.cdist(xt[start : start + chunk], xt, p=float("inf"))  # (chunk, N)
        yc = yt[start : start + chunk]
        same = torch.where(yc[:, None] == yt[None, :], d, torch.inf)
        kk = torch.clamp(sizes[yc] - 1, max=k)  # the k-th same-class neighbour; self is 0
        radius = same.sort(dim=1).values.gather(1, kk[:, None])
        m[start : start + chunk] = (d <= radius).sum(1) - 1
    return m.numpy()


def _gauss_entropy(x: np.ndarray) -> float:
    """Bias-corrected entropy of a Gaussian fitted to x (N, D), in nats (Ince et al. 2017)."""
    n, d = x.shape
    cov = np.atleast_2d(np.cov(x, rowvar=False))
    _, logdet = np.linalg.slogdet(cov)
    h = 0.5 * logdet + 0.5 * d * (math.log(2 * math.pi) + 1.0)
    dterm = (math.log(2.0) - math.log(n - 1.0)) / 2.0
    psiterms = special.digamma((n - np.arange(1, d + 1)) / 2.0) / 2.0
    return float(h - d * dterm - psiterms.sum())


def gaussian_copula(x: np.ndarray, y: np.ndarray) -> float:
    """Gaussian-copula MI between continuous X and discrete Y (gcmi_model_cd)."""
    ranks = stats.rankdata(x, axis=0) / (x.shape[0] + 1.0)
    cx = stats.norm.ppf(ranks)
    h_cond = 0.0
    for c in np.unique(y):
        sel = y == c
        h_cond += sel.mean() * _gauss_entropy(cx[sel])
    return _gauss_entropy(cx) - h_cond


def _split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    cut = int(0.8 * n)
    return perm[:cut], perm[cut:]


def _critic_training(
    x: np.ndarray,
    y: np.ndarray,
    loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    seed: int,
    epochs: int,
) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    tr, te = _split(x.shape[0], seed)
    mean, std = x[tr].mean(0), x[tr].std(0) + 1e-12
    xt = torch.as_tensor((x - mean) / std, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    m = int(y.max()) + 1
    net = mlp(x.shape[1], m)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    tr_t = torch.as_tensor(tr)
    state = torch.ones(())  # MINE's moving average of E e^f
    for _ in range(epochs):
        perm = tr_t[torch.randperm(tr_t.numel(), generator=gen)]
        for s in range(0, perm.numel() - 255, 256):
            b = perm[s : s + 256]
            shuffled = b[torch.randperm(b.numel(), generator=gen)]
            loss = loss_fn(net(xt[b]), yt[b], yt[shuffled], state)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net, xt[torch.as_tensor(te)], yt[torch.as_tensor(te)]


def mine(x: np.ndarray, y: np.ndarray, seed: int = 0, epochs: int = 30) -> float:
    """MINE (DV bound) with the bias-corrected moving-average gradient, held-out value."""

    def loss(g: torch.Tensor, yb: torch.Tensor, y_marg: torch.Tensor, ema: torch.Tensor):
        joint = g.gather(1, yb[:, None]).mean()
        marg = g.gather(1, y_marg[:, None]).squeeze(1)
        e = marg.exp().mean()
        ema.mul_(0.99).add_(0.01 * e.detach())
        # grad of log E e^f replaced by grad E e^f / EMA (Belghazi et al., Sec. 3.2)
        return -(joint - e / ema)

    net, xte, yte = _critic_training(x, y, loss, seed, epochs)
    with torch.no_grad():
        g = net(xte).double()
        prior = torch.bincount(yte, minlength=g.shape[1]).double() / yte.numel()
        # Held-out DV bound; E over P_X P_Y taken exactly over the empirical label marginal.
        log_marg = torch.logsumexp(g + prior.clamp_min(1e-300).log(), 1)
        dv = g.gather(1, yte[:, None]).mean() - (
            torch.logsumexp(log_marg, 0) - math.log(g.shape[0])
        )
    return float(dv)


def infonce(x: np.ndarray, y: np.ndarray, seed: int = 0, epochs: int = 30) -> float:
    """InfoNCE with in-batch negatives (K = 256), held-out value."""

    def nce(g: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        scores = g[:, yb]  # scores[i, j] = f(x_i, y_j)
        return (scores.diagonal() - torch.logsumexp(scores, 1) + math.log(yb.numel())).mean()

    net, xte, yte = _critic_training(x, y, lambda g, yb, _ym, _s: -nce(g, yb), seed, epochs)
    with torch.no_grad():
        g = net(xte)
        k = min(256, g.shape[0])
        vals = [nce(g[s : s + k], yte[s : s + k]) for s in range(0, g.shape[0] - k + 1, k)]
    return float(torch.stack(vals).mean())


def npeet_micd(x: np.ndarray, y: np.ndarray) -> float:
    """npeet-plus ``micd`` (Kozachenko-Leonenko entropies H(X) - sum_y p_y H(X|y)), in nats."""
    import npeet_plus

    return float(npeet_plus.micd(x, y[:, None], k=3, base=math.e, warning=False))


def ours(x: np.ndarray, y: np.ndarray, seed: int = 0) -> float:
    return ClassifierMIEstimator(cv=5, random_state=seed).fit_estimate(x, y).value


def ours_selected(x: np.ndarray, y: np.ndarray, seed: int = 0) -> float:
    """Ours with input-feature selection (the count chosen on validation), else defaults."""
    est = ClassifierMIEstimator(cv=5, random_state=seed, select_features=True)
    return est.fit_estimate(x, y).value


ESTIMATORS: dict[str, Callable[..., float]] = {
    "infocam (ours)": ours,
    "infocam, select_features": ours_selected,
    "k-NN (Ross/KSG)": knn_ross,
    "Gaussian copula": gaussian_copula,
    "MINE": mine,
    "InfoNCE": infonce,
}
try:  # the packaged k-NN estimator, if installed: pip install "infocam[bench]"
    import npeet_plus  # noqa: F401

    ESTIMATORS["npeet-plus micd"] = npeet_micd
except ImportError:  # pragma: no cover
    pass


# ---------------------------------------------------------------------------- problems
def problems(full: bool) -> list[tuple[str, Callable[[int, int], tuple[np.ndarray, ...]], float]]:
    out = []
    for balanced in (True, False):
        for d in (1, 2, 5, 10) if full else (2, 10):
            g = GaussianMixture.paper(d, balanced)
            name = f"(a) paper {'bal' if balanced else 'imb'} D={d}"
            out.append((name, _sampler(g), g.mutual_information().value))
    base = GaussianMixture.paper(2)
    truth_b = base.mutual_information().value
    for total in (10, 20, 50, 100) if full else (20, 100):
        out.append((f"(b) 2 informative + noise, D={total}", _noise_sampler(base, total), truth_b))
    gen = torch.Generator().manual_seed(123)
    means = 1.5 * torch.randn(50, 10, generator=gen, dtype=torch.float64)
    prior = torch.logspace(0, -math.log10(20.0), 50, dtype=torch.float64)
    g_c = GaussianMixture(means, prior / prior.sum())
    out.append(("(c) M=50, D=10, imbalance 20:1", _sampler(g_c), g_c.mutual_information().value))
    return out


def _sampler(g: GaussianMixture):
    def sample(n: int, seed: int):
        x, y = g.sample(n, seed=seed, dtype=torch.float64)
        return x.numpy(), y.numpy()

    return sample


def _noise_sampler(g: GaussianMixture, total: int):
    def sample(n: int, seed: int):
        x, y = g.sample(n, seed=seed, dtype=torch.float64)
        noise = np.random.default_rng(seed + 7).standard_normal((n, total - g.dim))
        return np.concatenate([x.numpy(), noise], 1), y.numpy()

    return sample


# ------------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="the issue's full grid (slow)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sizes", type=int, nargs="+", help="sample sizes (default 1k 10k [60k])")
    ap.add_argument("--problems", nargs="+", help="run only problems whose name holds one of these")
    ap.add_argument("--estimators", nargs="+", help="run only estimators named exactly so")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="keep the cells already in the results file (same seed) and run only the missing "
        "ones; results are saved after every cell, so a long --full run can be split or resumed",
    )
    ap.add_argument("--out", type=Path, default=RESULTS / "mi_peers.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sizes = args.sizes or ((1_000, 10_000, 60_000) if args.full else (1_000, 10_000))
    names = args.estimators or list(ESTIMATORS)
    unknown = sorted(set(names) - set(ESTIMATORS))
    if unknown:
        ap.error(f"--estimators: unknown {unknown}; expected names among {list(ESTIMATORS)}")
    todo = [
        p
        for p in problems(args.full or bool(args.problems))
        if not args.problems or any(f in p[0] for f in args.problems)
    ]
    cache: dict[str, dict] = {}
    if args.resume and args.out.exists():
        cache = {_key(r): r for r in json.loads(args.out.read_text())["rows"]}
    rows = []
    for pname, sample, truth in todo:
        for n in sizes:
            row = cache.get(_key({"problem": pname, "n": n, "seed": args.seed}))
            row = row or {"problem": pname, "n": n, "seed": args.seed, "truth": truth}
            row.setdefault("estimates", {})
            if row not in rows:
                rows.append(row)
            missing = [e for e in names if e not in row["estimates"]]
            if not missing:
                continue
            x, y = sample(n, args.seed)
            for ename in missing:
                row["estimates"][ename] = _run_one(ename, x, y, args.seed)
                _save(args.out, cache, rows)
            _print_row(row)
    print("cells: estimate - truth in nats (* = smallest |error| in the row), wall seconds")
    _save(args.out, cache, rows)
    print(f"wrote {args.out}, {args.out.with_suffix('.md')}, {args.out.with_suffix('.png')}")


def _natural(row: dict) -> tuple:
    """Problems in natural order (D=2 before D=10), then n, then seed."""
    parts = re.split(r"(\d+)", row["problem"])
    return (*[int(t) if t.isdigit() else t for t in parts], row["n"], row.get("seed", 0))


def _key(row: dict) -> str:
    return f"{row['problem']}|{row['n']}|{row.get('seed', 0)}"


def _run_one(ename: str, x: np.ndarray, y: np.ndarray, seed: int) -> dict:
    seeded = ename.startswith("infocam") or ename in ("MINE", "InfoNCE")
    kw = {"seed": seed} if seeded else {}
    start = time.perf_counter()
    try:
        value = ESTIMATORS[ename](x, y, **kw)
    except ValueError as exc:  # e.g. a class too rare to split: refused, not guessed
        value = float("nan")
        print(f"  {ename}: refused: {str(exc).splitlines()[0]}", flush=True)
    return {"value": value, "seconds": time.perf_counter() - start}


def _print_row(row: dict) -> None:
    truth, cells = row["truth"], row["estimates"]
    best = np.nanmin([abs(c["value"] - truth) for c in cells.values()])
    line = f"{row['problem']:<38}{row['n']:>7}{truth:>8.3f}  "
    for name, c in cells.items():
        err = c["value"] - truth
        star = "*" if abs(err) == best else " "
        line += f"{name}: {err:+.3f}{star} ({c['seconds']:.1f}s)  "
    print(line, flush=True)


def _save(path: Path, cache: dict[str, dict], rows: list[dict]) -> None:
    """Every row run or cached (rows of this run first), as JSON, Markdown and a plot.

    Cells already in the file are merged in (this run's win), so runs of other problems or
    estimators that write the same file do not drop each other's cells.
    """
    if path.exists():
        for r in json.loads(path.read_text())["rows"]:
            mine = next((q for q in rows if _key(q) == _key(r)), None) or cache.get(_key(r))
            if mine is None:
                cache[_key(r)] = r
            else:
                mine["estimates"] = {**r["estimates"], **mine["estimates"]}
    merged = {**cache, **{_key(r): r for r in rows}}
    ordered = sorted(merged.values(), key=_natural)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rows": ordered}, indent=2) + "\n")
    _write_markdown(ordered, path.with_suffix(".md"))
    _plot(ordered, path.with_suffix(".png"))


def _write_markdown(rows: list[dict], path: Path) -> None:
    names = [e for e in ESTIMATORS if any(e in r["estimates"] for r in rows)]
    lines = [
        "| problem | n | truth | " + " | ".join(f"{n} error (s)" for n in names) + " |",
        "|---|---:|---:|" + "---:|" * len(names),
    ]
    for r in rows:
        est = r["estimates"]
        errs = {k: est[k]["value"] - r["truth"] for k in names if k in est}
        best = np.nanmin([abs(v) for v in errs.values()])
        cells = [
            "-"
            if k not in errs
            else f"{'**' if abs(errs[k]) == best else ''}{errs[k]:+.3f}"
            f"{'**' if abs(errs[k]) == best else ''} ({est[k]['seconds']:.1f})"
            for k in names
        ]
        head = f"| {r['problem']} | {r['n']} | {r['truth']:.3f} | "
        lines.append(head + " | ".join(cells) + " |")
    path.write_text("\n".join(lines) + "\n")


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [e for e in ESTIMATORS if any(e in r["estimates"] for r in rows)]
    labels = [f"{r['problem']}\nn={r['n']}" for r in rows]
    fig, ax = plt.subplots(figsize=(max(8, 0.6 * len(rows)), 4.5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        errs = [
            abs(r["estimates"][name]["value"] - r["truth"]) if name in r["estimates"] else np.nan
            for r in rows
        ]
        ax.bar(np.arange(len(rows)) + i * width, errs, width, label=name)
    ax.set_yscale("log")
    ax.set_ylabel("|estimate - truth| (nats)")
    ax.set_xticks(np.arange(len(rows)) + 0.4, labels, rotation=70, fontsize=6, ha="right")
    ax.legend(fontsize=7)
    ax.set_title("I(X; Y) estimators vs ground truth")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
