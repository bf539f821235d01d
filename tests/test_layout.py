"""The package layout: public names where users import them, dependencies one way, small modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import infocam

SRC = Path(infocam.__file__).resolve().parent
# The core: the mathematics, importing no data, model, training, experiment, drawing or CLI code.
CORE = ("softmax", "mi", "mixtures", "cam", "localization", "_validation", "errors", "_imagenet")
UPPER = ("data", "models", "training", "experiments", "viz", "cli")


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        out.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return out


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every ``infocam.X`` module a file imports (at any depth: lazy imports count), top part."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "infocam" and len(parts) > 1:
                found.append((parts[1], node.lineno))
    return found


def test_public_api_is_unchanged():
    assert infocam.__all__ == [
        "CAMExtractor", "ClassifierMIEstimator", "GaussianMixture", "LocalizationEvaluator",
        "MIEstimate", "MaxBoxAccEvaluator", "PCSoftmaxCrossEntropy", "__version__", "box_iou",
        "boxes_from_maps", "class_activation_maps", "class_prior", "log_pc_softmax",
        "mutual_information", "normalize_maps", "pc_softmax", "pc_softmax_cross_entropy",
        "pointwise_mi", "predict", "upsample_maps",
    ]  # fmt: skip
    for name in infocam.__all__:
        assert getattr(infocam, name) is not None


def test_old_import_paths_still_work():
    import infocam.localization
    import infocam.mi
    from infocam.cli import _args
    from infocam.experiments import localize, localize_inputs
    from infocam.training import add_training_arguments, config_from_args, evaluate, fit
    from infocam.training.loop import EvalResult, TrainResult

    # the modules that became packages keep their public names at the package level
    for package in (infocam.mi, infocam.localization):
        for name in package.__all__:
            if name in infocam.__all__:
                assert getattr(package, name) is getattr(infocam, name), name
    assert {"ClassifierMIEstimator", "MIEstimate"} <= set(infocam.mi.__all__)
    assert {"MaxBoxAccEvaluator", "sum_over_processes"} <= set(infocam.localization.__all__)
    # names that moved out of a module are still found under the old one
    for module in (localize, localize_inputs):
        for name in module.__all__:
            assert getattr(infocam.viz, name) is getattr(module, name), name
    assert add_training_arguments is _args.add_training_arguments
    assert config_from_args is _args.config_from_args
    assert callable(fit) and callable(evaluate) and EvalResult and TrainResult
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = infocam.viz.nope


def test_evaluators_share_the_counting_base():
    from infocam.localization import CountingEvaluator, sum_over_processes

    assert issubclass(infocam.LocalizationEvaluator, CountingEvaluator)
    assert issubclass(infocam.MaxBoxAccEvaluator, CountingEvaluator)
    ev = infocam.MaxBoxAccEvaluator()
    sum_over_processes([ev, infocam.LocalizationEvaluator()])  # one process: nothing to do
    assert int(ev.n) == 0


# Where a lower layer names an upper one on purpose: the old import paths of moved names,
# resolved on first use (module __getattr__), not a dependency of the module's own code.
COMPAT = {("viz", "experiments"), ("training", "cli")}


def test_dependencies_point_one_way():
    bad = []
    for module, path in _modules():
        top = module.split(".")[0]
        top = "cli" if top == "__main__" else top  # `python -m infocam` is the command
        for target, line in _imports(path):
            where = f"{path.relative_to(SRC)}:{line} imports infocam.{target}"
            if top in CORE and target in UPPER:
                bad.append(where)
            elif target == "cli" and top != "cli" and (top, target) not in COMPAT:
                bad.append(where)
            elif target == "experiments" and top not in ("experiments", "cli"):
                if (top, target) not in COMPAT:
                    bad.append(where)
    assert not bad, "imports against the layering: " + "; ".join(bad)


def test_modules_are_small():
    # One job per module: about 500 lines at most (the compiled _maxbox.c is not Python).
    long = {
        str(path.relative_to(SRC)): n
        for _, path in _modules()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 520
    }
    assert not long, long
