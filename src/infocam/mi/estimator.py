"""``ClassifierMIEstimator``: estimate I(X; Y) by training MLP classifiers, scikit-learn style.

The members are trained together by :mod:`infocam.mi._stacked` on the stratified splits of
:mod:`infocam.mi._splits`; their held-out point-wise MI is averaged by
:func:`infocam.mi.estimate.estimate_from_pmi`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import secrets
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import torch

from infocam._validation import ArrayLike, as_tensor, check_device, check_integer_labels, check_unit
from infocam.mi._params import BIAS_CORRECTIONS, DEFAULT_CV, EstimatorParams, as_features
from infocam.mi._posteriors import FittedPosteriors
from infocam.mi._scale import robust_centre_scale
from infocam.mi._splits import (
    TooFewInSplit,
    copy_groups,
    stratified_folds,
    stratified_split,
    too_few_message,
)
from infocam.mi._stacked import fit_stacked, member_temperatures, select_features
from infocam.mi.estimate import MIEstimate, SoftmaxKind, Unit, estimate_from_pmi

__all__ = ["BIAS_CORRECTIONS", "DEFAULT_CV", "ClassifierMIEstimator"]

_HELD_OUT = "the held-out data"
_DIVERGED = (
    "the classifier's log-probabilities overflowed (training diverged); try a smaller lr, "
    "fewer epochs or a smaller network"
)


class ClassifierMIEstimator(EstimatorParams, FittedPosteriors):
    r"""Estimate ``I(X; Y)`` by training an MLP classifier, scikit-learn style.

    A classifier's held-out log-likelihood ratio ``log q(y|x) / p(y)`` is the point-wise MI
    of the paper; its mean over held-out samples estimates ``I(X; Y)`` and, in expectation, is
    a lower bound (Barber-Agakov): it falls short of the truth by the classifier's excess
    cross-entropy ``E_x KL(p(y|x) || q(y|x))``.

    * ``softmax="pc"`` trains with PC-softmax cross-entropy under the training prior ``p``;
      PMI ``= log_pc_softmax(n/T, p)_y``. ``softmax="softmax"`` trains plain softmax; PMI
      ``= log_softmax(n/T)_y - log p_y`` (prior-corrected). Both equal the paper's Eq. 9
      on balanced data.
    * Each member of the ensemble holds out a stratified ``val_fraction`` of its training
      data for early stopping on validation cross-entropy (model selection never sees the
      estimation samples). ``temperature=True`` also fits a post-hoc temperature ``T`` on
      that split; off by default: on the paper's mixtures it changed the estimate by less
      than 1e-4 nat, and on small data (a few dozen validation samples) it over-sharpens
      (T -> 1/4) and a single confident mistake costs tens of nats.
    * ``lr_schedule="onecycle"`` warms the learning rate up (cosine) over the first 10% of
      the steps (from ``lr / 10`` to ``lr``) and decays it by a cosine to ``lr / 1000`` at
      ``max_epochs``; validation still picks each member's best epoch. On the paper's mixtures
      5 such epochs at ``lr=1e-2``, batch 1024, match 18-38 constant-rate epochs with early
      stopping (``infocam reproduce mi`` uses it). Default ``"constant"``.
    * ``select_features=True`` (for many features of which few inform): each member ranks
      its inputs with a screening fit on its own training split and keeps its top ``c``;
      ``c`` is chosen on validation cross-entropy (see ``_stacked.select_features``). Sets
      ``n_features_selected_``, ``feature_mask_`` (K, D) and ``selection_val_loss_``.
    * ``n_ensemble > 1`` averages the members' posteriors ``q = mean_k q_k(y|x)``.
    * ``bias_correction="learning_curve"`` removes most of the shortfall: every member gets a
      twin trained the same way (same initial weights) on a stratified half of its training
      split, and each held-out sample's PMI becomes the Richardson extrapolation to infinite
      training data, ``pmi = pmi_n + (pmi_n - pmi_{n/r}) / (r - 1)`` (``r`` = full / half
      training size, about 2: ``2 pmi_n - pmi_{n/2}``). It assumes the recipe's shortfall
      decays as ``1/n``, the rate of a regular parametric fit (Akaike: ``E KL = p / 2n``; with
      a fixed number of epochs the optimiser's steps grow with ``n`` too); where it decays
      slower it under-corrects, faster it over-corrects (measured: a fixed short one-cycle
      schedule of ~100 steps over-corrects by ~0.015 nat). The corrected value is **not** a
      lower bound any more. Its ``stderr`` is that of the corrected point-wise
      values or, with ``cv``, the between-fold standard error if larger (random-effects: it
      also sees the twins' training noise).
      The plain held-out estimate stays in ``lower_bound_`` (``fit_estimate``) and
      ``estimate(..., bias_correction=False)``. Costs about half a fit more. Default None.
    * ``fit_estimate`` with ``cv=K`` cross-fits: K stratified folds, every sample's PMI comes
      from members that never saw it, so all N samples are used to estimate (``stderr``
      shrinks by ``sqrt(1/test_fraction)``) and each member still trains on (K-1)/K of them.
      ``cv=5`` is the default, the same as ``infocam mi``'s ``--cv 5``, because it is the
      better estimate for the same data: the standard error is about ``sqrt(5)`` times
      smaller and each member trains on 80% of the rows (not 64%), so the shortfall is
      smaller too; it costs about 5 times the compute of ``cv=None`` (one stratified
      ``test_fraction`` held out, the quick look; ``--cv 0`` on the command line). Measured
      on two classes N((+-1, 0), I) in 2-D (one informative input), n = 20,000, truth
      0.3368 nat: see ``docs/measuring-information.md``. ``fit()`` ignores ``cv``.

    ``random_state`` seeds every split and initialisation: same seed, same numbers (on CPU).
    ``None`` draws a fresh seed for each fit, as in scikit-learn; it is kept in ``seed_``.
    ``device``: where the networks train (``None``: the CPU; ``"cuda"``, ``"cuda:1"``, ...).

    Features are first put on a robust common scale, ``z = (x - mean_) / scale_`` with
    ``mean_`` the median and ``scale_`` the IQR / 1.349 of each column of all rows given (the
    labels unused), computed without overflow; values beyond ``|z| = 10`` are compressed
    logarithmically and capped at ``|z| = 20`` (order kept up to about 22,000), so one wild
    entry (1e308) neither overflows nor flattens its column. Data within 10 robust standard
    deviations of the median are untouched (the paper's mixtures are). Then each member
    standardises with the mean and standard deviation of the rows it is fitted on (its
    training and validation splits; never its held-out test rows): ``member_mean_``,
    ``member_scale_`` (K, D, in the units of X where nothing was compressed). Each exported
    ``models_[j]`` takes ``z`` (compressed), its own standardisation folded into its first
    layer.

    Rows that are copies of one another (exactly the same features, one or more not an
    integer: not separate draws of continuous data) are kept in one split by every split,
    fold and learning-curve half, and count as one draw in the standard error (cluster-robust);
    ``n_duplicate_rows_`` counts the rows that repeat another's. Rows with all-integer
    features repeat naturally and are split freely.
    Learned attributes: ``classes_``, ``n_classes_``, ``prior_``, ``seed_``, ``mean_``,
    ``scale_``, ``models_`` (list of ``nn.Module``), ``temperatures_``, ``best_epochs_``,
    ``val_loss_``; after ``fit_estimate`` also ``estimate_``, ``accuracy_``, and per held-out
    sample (in index order, ``heldout_index_``; its fold ``heldout_fold_``) ``pointwise_``,
    ``heldout_log_proba_``
    (``log q(y|x)``, N x M) and ``heldout_log_prior_`` (the scoring members' ``log p``);
    ``lower_bound_`` (the plain held-out estimate, = ``estimate_`` without a bias correction).
    With ``bias_correction``: the twins ``half_models_`` and the training-size ratios
    ``size_ratios_`` (full / half, per member).

    Example:
        >>> est = ClassifierMIEstimator(cv=5, random_state=0)
        >>> mi = est.fit_estimate(X, y)          # MIEstimate: value ± stderr in nats
    """

    def __init__(
        self,
        softmax: SoftmaxKind = "pc",
        hidden: Sequence[int] = (100, 100, 100),
        *,
        cv: int | None = DEFAULT_CV,
        n_ensemble: int = 1,
        temperature: bool = False,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        batch_size: int = 256,
        max_epochs: int = 200,
        patience: int = 10,
        lr_schedule: Literal["constant", "onecycle"] = "constant",
        select_features: bool = False,
        bias_correction: Literal["learning_curve"] | None = None,
        val_fraction: float = 0.2,
        device: str | torch.device | None = None,
        random_state: int | None = 0,
        progress: bool = False,
    ) -> None:
        self.softmax = softmax
        self.hidden = hidden
        self.cv = cv
        self.n_ensemble = n_ensemble
        self.temperature = temperature
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.lr_schedule = lr_schedule
        self.select_features = select_features
        self.bias_correction = bias_correction
        self.val_fraction = val_fraction
        self.device = device
        self.random_state = random_state
        self.progress = progress

    # ------------------------------------------------------------------------- inputs
    def _device(self) -> torch.device:
        return torch.device("cpu") if self.device is None else check_device(self.device)

    def _check_xy(self, X: ArrayLike, y: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
        x = as_features(X, device=self._device())
        labels = check_integer_labels(as_tensor(y, "y"), "y")
        if labels.dim() != 1:
            raise ValueError(f"y must be 1-D (N,); got shape {tuple(labels.shape)}")
        if labels.shape[0] != x.shape[0]:
            raise ValueError(
                f"X and y must have the same number of samples; got {x.shape[0]} and "
                f"{labels.shape[0]}"
            )
        return x, labels.to("cpu").long()

    def _encode(self, labels: torch.Tensor) -> torch.Tensor:
        idx = torch.searchsorted(self.classes_, labels).clamp_max(self.n_classes_ - 1)
        unknown = self.classes_[idx] != labels
        if bool(unknown.any()):
            seen = sorted(set(labels[unknown].tolist()))[:5]
            raise ValueError(
                f"y holds labels not seen in fit: {seen}; expected labels in "
                f"{self.classes_.tolist()}"
            )
        return idx

    # ------------------------------------------------------------------------- fitting
    def fit(self, X: ArrayLike, y: ArrayLike) -> ClassifierMIEstimator:
        """Train ``n_ensemble`` classifiers on ``(X, y)`` (each with its own validation split)."""
        with self._naming_rare_classes(cross_fit=False, test_fraction=None):
            return self._fit(X, y)

    def _fit(self, X: ArrayLike, y: ArrayLike) -> ClassifierMIEstimator:
        self._check_params()
        x, labels = self._check_xy(X, y)
        t = self._setup(x, labels)
        gen = torch.Generator().manual_seed(self.seed_)
        all_idx = torch.arange(t.shape[0])
        splits = [
            stratified_split(t, all_idx, self.val_fraction, gen, "validation", self._groups)
            for _ in range(self.n_ensemble)
        ]
        self._train(x, t, splits)
        self.member_folds_ = torch.zeros(self.n_ensemble, dtype=torch.long)
        return self

    @contextlib.contextmanager
    def _naming_rare_classes(self, cross_fit: bool, test_fraction: float | None) -> Iterator[None]:
        """Turn a split's "class index c has too few samples" into a message naming the user's
        label and the class size these settings need (the same advice for API and CLI)."""
        try:
            yield
        except TooFewInSplit as exc:
            label = self.classes_[exc.index].item()
            msg = too_few_message(
                exc,
                label,
                self.cv if cross_fit else None,
                test_fraction=test_fraction,
                val_fraction=self.val_fraction,
                halves=self.bias_correction is not None,
                copies=self.n_duplicate_rows_ if getattr(self, "_groups", None) is not None else 0,
            )
            raise ValueError(msg) from None

    def _setup(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        classes = torch.unique(labels)
        if classes.numel() < 2:
            raise ValueError(
                f"y must hold at least 2 classes to measure information; got only "
                f"{classes.tolist()}"
            )
        self.classes_ = classes
        self.n_classes_ = int(classes.numel())
        # random_state=None (as in scikit-learn): a fresh seed each fit, kept in seed_.
        self.seed_ = secrets.randbits(62) if self.random_state is None else int(self.random_state)
        t = self._encode(labels)
        self.n_features_in_ = x.shape[1]
        # Robust and overflow-free (a 1e308 entry or a column scaled by 1e160 must neither
        # overflow nor flatten the column): see mi._scale and _standardise.
        self.mean_, self.scale_ = robust_centre_scale(x)
        # Copies of a row (same non-integer features) stay in one split: see copy_groups.
        self._groups = copy_groups(x)
        self.n_duplicate_rows_ = (
            0
            if self._groups is None
            else int(self._groups.numel() - torch.unique(self._groups).numel())
        )
        self.prior_ = torch.bincount(t, minlength=self.n_classes_).double() / t.numel()
        return t

    def _train(
        self, x: torch.Tensor, t: torch.Tensor, splits: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> None:
        xs = self._standardise(x)
        td = t.to(xs.device)
        self._input_affine = self._member_standardisation(xs, splits)

        def fit(mask: torch.Tensor | None = None, **over: Any) -> Any:
            return self._fit_members(xs, td, splits, mask, **over)

        if self.select_features:
            n_train = min(int(tr.numel()) for tr, _ in splits)
            (result, priors), chosen = select_features(fit, xs.shape[1], len(splits), n_train)
            self.n_features_selected_, self.feature_mask_, self.selection_val_loss_ = chosen
        else:
            result, priors = fit()
            self.feature_mask_ = None
        self._stack = result.model
        self.train_priors_ = priors
        self.temperatures_ = self._temperatures(result.model, xs, td, splits, priors)
        self.best_epochs_ = result.best_epoch
        self.val_loss_ = result.best_val_loss
        self.n_epochs_ = result.epochs_run
        self.models_ = [result.model.member(j) for j in range(len(splits))]
        if self.bias_correction == "learning_curve":
            # Each member's twin: the same recipe (settings, epochs, initial weights: paired, so
            # the difference is less noisy) on a stratified half of its training split, with
            # the same validation split (small classes still split). With a fixed number of
            # epochs the twin also takes half the optimiser steps: the curve extrapolated is
            # that of the whole recipe. (Twice the epochs, i.e. equal steps, was measured too:
            # on Table 2 it removed almost nothing, the shortfall there shrinks with steps.)
            gen = torch.Generator().manual_seed(self.seed_ + 1)
            halves = [
                (stratified_split(t, tr, 0.5, gen, "learning-curve half", self._groups)[1], va)
                for tr, va in splits
            ]
            half, half_priors = self._fit_members(xs, td, halves, self.feature_mask_)
            self._half_stack = half.model
            self.half_train_priors_ = half_priors
            self.half_temperatures_ = self._temperatures(half.model, xs, td, halves, half_priors)
            self.half_models_ = [half.model.member(j) for j in range(len(halves))]
            self.size_ratios_ = torch.tensor(
                [tr.numel() / h.numel() for (tr, _), (h, _) in zip(splits, halves, strict=True)],
                dtype=torch.float64,
            )

    def _member_standardisation(
        self, xs: torch.Tensor, splits: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each member's (shift, scale) (K, D) of ``xs``: the mean and standard deviation of
        the rows it is fitted on (training + validation), so that no held-out row shapes its
        inputs. ``xs`` is bounded (``_standardise``), so one wild row cannot inflate a
        standard deviation. The learning-curve twins reuse their member's (a fixed change of
        coordinates)."""
        rows = [torch.cat([tr, va]).to(xs.device) for tr, va in splits]
        # Also when every member sees every row (fit): xs are robust z-scores, and the network
        # is fed mean / standard-deviation standardised inputs either way.
        mean = torch.stack([xs[r].double().mean(0) for r in rows])
        std = torch.stack([xs[r].double().std(0) for r in rows])  # every member has >= 4 rows
        std = torch.where(std > 0, std, torch.ones_like(std))
        # In the units of X: member j sees (x - member_mean_[j]) / member_scale_[j].
        self.member_mean_ = self.mean_ + mean * self.scale_
        self.member_scale_ = std * self.scale_
        return mean, std

    def _offsets(self, priors: torch.Tensor) -> torch.Tensor:
        return priors.log() if self.softmax == "pc" else torch.zeros_like(priors)

    def _fit_members(
        self,
        xs: torch.Tensor,
        td: torch.Tensor,
        splits: list[tuple[torch.Tensor, torch.Tensor]],
        mask: torch.Tensor | None = None,
        **over: Any,
    ) -> tuple[Any, torch.Tensor]:
        """One stacked fit, a member per (train, validation) split; also the members' priors."""
        m = self.n_classes_
        priors = torch.stack(
            [torch.bincount(td[tr.to(td.device)].cpu(), minlength=m).double() / tr.numel()
             for tr, _ in splits]
        )  # fmt: skip
        config = {
            "hidden": tuple(self.hidden),
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "batch_size": self.batch_size,
            "max_epochs": self.max_epochs,
            "patience": self.patience,
            "schedule": self.lr_schedule,
            **over,
        }
        result = fit_stacked(
            xs, td, [tr for tr, _ in splits], [va for _, va in splits],
            self._offsets(priors).float(), num_classes=m, seed=self.seed_,
            input_mask=mask, input_affine=self._input_affine, progress=self.progress, **config,
        )  # fmt: skip
        return result, priors

    def _temperatures(
        self,
        model: Any,
        xs: torch.Tensor,
        td: torch.Tensor,
        splits: list[tuple[torch.Tensor, torch.Tensor]],
        priors: torch.Tensor,
    ) -> torch.Tensor:
        """Per-member post-hoc temperature on its validation split (ones unless asked for)."""
        if not self.temperature:
            return torch.ones(len(splits), dtype=torch.float64)
        return member_temperatures(model, xs, td, [va for _, va in splits], self._offsets(priors))

    # ------------------------------------------------------------------------ inference
    def predict_log_proba(self, X: ArrayLike) -> torch.Tensor:
        """``log q(y|x)`` (N, M) under the training prior: the ensemble's mean posterior."""
        self._check_fitted()
        x = as_features(X, device=self._device(), n_features=self.n_features_in_)
        return self._ensemble_log_q(x, torch.arange(len(self.models_)))

    def predict_proba(self, X: ArrayLike) -> torch.Tensor:
        """``q(y|x)`` (N, M), columns in the order of ``classes_``."""
        return self.predict_log_proba(X).exp()

    def predict(self, X: ArrayLike) -> torch.Tensor:
        """The most probable class label under the training prior."""
        lq = self.predict_log_proba(X)
        return self.classes_.to(lq.device)[lq.argmax(1)]

    def pointwise_mi(self, X: ArrayLike, y: ArrayLike, *, corrected: bool = True) -> torch.Tensor:
        """``log q(y|x) - log p(y)`` per sample (N,), nats; pass held-out samples.

        With a fitted ``bias_correction`` (and ``corrected=True``) the learning-curve
        extrapolated values (no longer a lower bound); ``corrected=False`` gives the plain ones.
        """
        self._check_fitted()
        x, labels = self._check_xy(X, y)
        if x.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X must have {self.n_features_in_} features as in fit; got {x.shape[1]}"
            )
        t = self._encode(labels).to(x.device)
        return self._pmi(x, t, torch.arange(len(self.models_)), corrected)[0]

    def estimate(
        self, X: ArrayLike, y: ArrayLike, unit: Unit = "nat", *, corrected: bool = True
    ) -> MIEstimate:
        """``I(X; Y)`` estimate on held-out ``(X, y)``: mean point-wise MI ± standard error
        (bias-corrected if the estimator was fitted with a ``bias_correction`` and
        ``corrected``; the plain held-out value, a lower bound in expectation, otherwise)."""
        check_unit(unit)
        pmi = self.pointwise_mi(X, y, corrected=corrected)
        groups = copy_groups(as_features(X, device=torch.device("cpu")))  # copies: one draw
        est = estimate_from_pmi(pmi, unit, _HELD_OUT, groups, cause=_DIVERGED)
        return dataclasses.replace(est, corrected=corrected and self.bias_correction is not None)

    def fit_estimate(
        self, X: ArrayLike, y: ArrayLike, test_fraction: float = 0.2, unit: Unit = "nat"
    ) -> MIEstimate:
        """Fit and estimate on data the models did not see.

        ``cv=None``: a stratified ``test_fraction`` is held out, the rest is fitted, the
        estimate is on the held-out part. ``cv=K``: K-fold cross-fitting (``test_fraction`` is
        unused); every sample is scored by members that did not train on it.
        Sets ``estimate_``, ``accuracy_`` (held-out, argmax of ``q``), ``pointwise_`` and
        ``heldout_log_proba_``.
        """
        with self._naming_rare_classes(self.cv is not None, None if self.cv else test_fraction):
            return self._fit_estimate(X, y, test_fraction, unit)

    def _fit_estimate(
        self, X: ArrayLike, y: ArrayLike, test_fraction: float, unit: Unit
    ) -> MIEstimate:
        self._check_params()
        check_unit(unit)
        x, labels = self._check_xy(X, y)
        t = self._setup(x, labels)
        gen = torch.Generator().manual_seed(self.seed_)
        all_idx = torch.arange(t.shape[0])
        if self.cv is None:
            if not 0.0 < test_fraction < 1.0:
                raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction!r}")
            rest, test = stratified_split(t, all_idx, test_fraction, gen, "test", self._groups)
            folds = [test]
        else:
            folds = stratified_folds(t, self.cv, gen, self._groups)
        splits, member_folds = [], []
        for f, test in enumerate(folds):
            keep = torch.ones(t.shape[0], dtype=torch.bool)
            keep[test] = False
            rest = all_idx[keep]
            for _ in range(self.n_ensemble):
                splits.append(
                    stratified_split(t, rest, self.val_fraction, gen, "validation", self._groups)
                )
                member_folds.append(f)
        self._train(x, t, splits)
        self.member_folds_ = torch.tensor(member_folds)
        n, m = t.shape[0], self.n_classes_
        pmi = torch.empty(n, dtype=torch.float64, device=x.device)
        plain = torch.empty(n, dtype=torch.float64, device=x.device)
        log_q = torch.empty(n, m, dtype=torch.float64, device=x.device)
        log_prior = torch.empty(n, m, dtype=torch.float64, device=x.device)
        for f, test in enumerate(folds):
            members = torch.nonzero(self.member_folds_ == f).flatten()
            td, xd = t[test].to(x.device), test.to(x.device)
            pmi[xd], plain[xd], log_q[xd], log_prior[xd] = self._pmi(x[xd], td, members, True)
        fold_of = torch.full((n,), -1, dtype=torch.long)
        for f, test in enumerate(folds):
            fold_of[test] = f
        scored = torch.cat(folds).sort().values.to(x.device)  # all of them when cross-fitting
        self.heldout_index_ = scored
        self.heldout_fold_ = fold_of[scored.cpu()]
        self.heldout_log_proba_ = log_q[scored]
        self.heldout_log_prior_ = log_prior[scored]
        self.pointwise_ = pmi[scored]
        td = t.to(x.device)[scored]
        self.accuracy_ = float((self.heldout_log_proba_.argmax(1) == td).double().mean())
        groups = None if self._groups is None else self._groups[scored.cpu()]
        self.lower_bound_ = estimate_from_pmi(
            plain[scored], unit, _HELD_OUT, groups, cause=_DIVERGED
        )
        estimate = estimate_from_pmi(self.pointwise_, unit, _HELD_OUT, groups, cause=_DIVERGED)
        estimate = dataclasses.replace(estimate, corrected=self.bias_correction is not None)
        if self.bias_correction is not None and len(folds) > 1:
            # The correction adds the twins' training noise, which the per-sample spread does
            # not see: take the random-effects (DerSimonian-Laird) standard error over folds,
            # max(per-sample, between-fold), equal fold sizes assumed.
            fold_of = self.heldout_fold_.to(self.pointwise_.device)
            fold_means = torch.stack([self.pointwise_[fold_of == f].mean()
                                      for f in range(len(folds))])  # fmt: skip
            between = float(fold_means.std(unbiased=True)) / math.sqrt(len(folds))
            between = MIEstimate(0.0, between, n, "nat").to(unit).stderr
            estimate = dataclasses.replace(estimate, stderr=max(estimate.stderr, between))
        self.estimate_ = estimate
        return self.estimate_
