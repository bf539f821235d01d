"""Stratified splits and cross-fitting folds of encoded labels (private to ``infocam.mi``).

Every split is stratified, so a class's share of each depends on its own size only; a class
left with fewer than 2 samples in a split raises :class:`TooFewInSplit`, which the estimator
turns into a message naming the user's label (:func:`too_few_message`). Rows that are copies
of one another (:func:`copy_groups`) go to a split together.
:func:`rank_within_class` is also what :mod:`infocam.data.imbalance` ranks with.
"""

from __future__ import annotations

import torch


class TooFewInSplit(ValueError):
    """A class with fewer than 2 samples in a split; the estimator names the user's label."""

    def __init__(self, index: int, count: int, total: int, where: str) -> None:
        self.index, self.count, self.total, self.where = index, count, total, where
        super().__init__(f"y: class index {index} has {count} sample(s) in {where}")


def _split_counts_error(t: torch.Tensor, where: str, counts: torch.Tensor) -> None:
    bad = torch.nonzero(counts < 2).flatten()
    if bad.numel():
        c = int(bad[0])
        raise TooFewInSplit(c, int(counts[c]), int((t == c).sum()), where)


def min_class_size(
    folds: int | None, *, test_fraction: float | None, val_fraction: float, halves: bool
) -> int:
    """The fewest samples a class needs for every split to hold 2 of it (the splits below are
    stratified, so a class's share of each depends on its own size only)."""

    def ok(n: int) -> bool:
        if folds:  # round-robin: fold f gets the ranks f, f + K, ...
            tests = [len(range(f, n, folds)) for f in range(folds)]
        else:
            tests = [round(n * test_fraction) if test_fraction is not None else 0]
        for held in tests:
            if (folds or test_fraction is not None) and (held < 2 or n - held < 2):
                return False
            val = round((n - held) * val_fraction)
            train = n - held - val
            if (
                val < 2
                or train < 2
                or (halves and min(round(train * 0.5), train - round(train * 0.5)) < 2)
            ):
                return False
        return True

    n = 2
    while n < 10**7 and not all(ok(n + i) for i in range(2 * (folds or 1) + 4)):
        n += 1
    return n


def too_few_message(
    exc: TooFewInSplit,
    label: object,
    folds: int | None,
    *,
    test_fraction: float | None,
    val_fraction: float,
    halves: bool,
    copies: int = 0,
) -> str:
    """The message for a class ``label`` (the user's) with too few samples in a split: the class
    size these settings need and, when cross-fitting, the nearest number of folds that works
    (the same advice for API and CLI); ``copies`` rows that repeat others (kept whole)."""
    sizes = {"test_fraction": test_fraction, "val_fraction": val_fraction, "halves": halves}
    need = min_class_size(folds, **sizes)
    where = f"a cross-fitting fold (cv={folds})" if exc.where == "fold" else exc.where
    msg = (
        f"y: class {label} has {exc.count} sample(s) in {where}; every split needs at "
        "least 2 samples of every class"
    )
    if need > exc.total:
        msg += f", so with these settings a class needs {need}; class {label} has {exc.total}"
    msg += ": give more samples of it, or leave it out"
    if copies:  # copies are dealt out whole
        msg += f" ({copies} rows are copies of others and go to a split together with them)"
    if folds:  # more folds: more training data per member, but smaller folds
        works = [k for k in range(2, 21) if min_class_size(k, **sizes) <= exc.total]
        if works:
            k = min(works, key=lambda k: (abs(k - folds), k))
            msg += f", or use cv={k} (the nearest number of folds that works)"
    return msg


def rank_within_class(labels: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank of each sample among the samples of its class, in the given order (vectorised),
    and the class counts (``m`` classes). Shared with :mod:`infocam.data.imbalance`."""
    sort = torch.sort(labels, stable=True)
    counts = torch.bincount(labels, minlength=m)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(labels)
    rank[sort.indices] = torch.arange(labels.numel()) - starts[sort.values]
    return rank, counts


def copy_groups(x: torch.Tensor) -> torch.Tensor | None:
    """Rows that are copies of one another: (N,) group ids on the CPU, or None if there are none.

    Rows with exactly the same features, one or more of them not an integer, are not separate
    draws of continuous data but copies (oversampling, a repeated join, a pasted block),
    whatever their labels. Split between training and held-out rows, copies let the
    classifier recall instead of predict (held-out accuracy 1.0, MI inflated), so every split
    keeps a group whole. Rows whose features are all integers (counts, categories, flags)
    repeat naturally in i.i.d. data and are split freely; so are rows seen once.
    """
    xc = x.cpu().contiguous()
    n = xc.shape[0]
    # A hash of each row's bits first (a 1-D unique is ~10x faster than torch.unique(dim=0));
    # only rows whose hash repeats are compared exactly.
    mult = torch.randint(1, 2**62, (xc.shape[1],), generator=torch.Generator().manual_seed(0))
    h = (xc.view(torch.int64) * (2 * mult + 1)).sum(1)  # wraps around: fine for a hash
    _, inverse, counts = torch.unique(h, return_inverse=True, return_counts=True)
    maybe = torch.nonzero((counts[inverse] > 1) & (xc != xc.round()).any(1)).flatten()
    if not maybe.numel():
        return None
    _, inverse, counts = torch.unique(xc[maybe], dim=0, return_inverse=True, return_counts=True)
    copied = counts[inverse] > 1
    if not bool(copied.any()):
        return None
    groups = torch.arange(n)
    groups[maybe[copied]] = n + inverse[copied]
    return groups


def _groups_in_random_order(
    t: torch.Tensor, idx: torch.Tensor, groups: torch.Tensor, gen: torch.Generator, m: int
) -> tuple[torch.Tensor, ...]:
    """The groups among ``idx``, shuffled: ``rows`` (idx reordered group by group), each row's
    group position ``pos``, and per position the group's ``size``, ``label`` (its first row's:
    the stratum) and ``before``: the rows of that label in the positions before it; and the
    rows per label, ``totals`` (M,)."""
    _, inv = torch.unique(groups[idx], return_inverse=True)
    g = int(inv.max()) + 1
    where = torch.empty(g, dtype=torch.long)
    where[torch.randperm(g, generator=gen)] = torch.arange(g)
    order = torch.argsort(where[inv], stable=True)
    rows, pos = idx[order], where[inv][order]
    size = torch.bincount(pos, minlength=g)
    label = t[rows[torch.cumsum(size, 0) - size]]
    by_label = torch.sort(label, stable=True)
    totals = torch.bincount(label, weights=size.double(), minlength=m).long()
    running = torch.cumsum(size[by_label.indices], 0) - size[by_label.indices]
    before = torch.empty_like(size)
    before[by_label.indices] = running - (torch.cumsum(totals, 0) - totals)[by_label.values]
    return rows, pos, size, label, before, totals


def stratified_split(
    t: torch.Tensor,
    idx: torch.Tensor,
    fraction: float,
    gen: torch.Generator,
    name: str,
    groups: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``idx`` into (rest, held) with ``round(fraction * n_c)`` of each class held.

    With ``groups`` (``copy_groups``) whole groups are held, shuffled, while the rows of
    their class held so far fall short of that number (a group counts in its first row's
    class)."""
    m = int(t.max()) + 1
    if groups is None:
        order = idx[torch.randperm(idx.numel(), generator=gen)]
        labels = t[order]
        rank, counts = rank_within_class(labels, m)
        n_held = torch.round(counts.double() * fraction).long()
        held_mask = rank < n_held[labels]
    else:
        order, pos, _, label, before, totals = _groups_in_random_order(t, idx, groups, gen, m)
        held_mask = (before < torch.round(totals.double() * fraction).long()[label])[pos]
    held, rest = order[held_mask], order[~held_mask]
    _split_counts_error(t, f"the {name} split", torch.bincount(t[held], minlength=m))
    _split_counts_error(t, "the training split", torch.bincount(t[rest], minlength=m))
    return rest, held


def stratified_folds(
    t: torch.Tensor, k: int, gen: torch.Generator, groups: torch.Tensor | None = None
) -> list[torch.Tensor]:
    """K stratified folds: within each class, shuffled samples are dealt round-robin.

    With ``groups`` (``copy_groups``) whole groups are dealt: within a class, shuffled
    groups fill the folds in turn, a group going to the fold its middle row falls in."""
    m = int(t.max()) + 1
    if groups is None:
        order = torch.randperm(t.numel(), generator=gen)
        rank, _ = rank_within_class(t[order], m)
        fold = rank % k
    else:
        order, pos, size, label, before, totals = _groups_in_random_order(
            t, torch.arange(t.numel()), groups, gen, m
        )
        middle = (before.double() + size.double() / 2) / totals[label].double()
        fold = (middle * k).long().clamp(max=k - 1)[pos]
    folds = [order[fold == f] for f in range(k)]
    for f in folds:
        _split_counts_error(t, "fold", torch.bincount(t[f], minlength=m))
    return folds
