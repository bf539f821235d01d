"""WSOL train / evaluate: selection on validation only, a tiny end-to-end run, the table."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from infocam.experiments.wsol import (
    PAPER_EVAL,
    PAPER_TABLE4,
    build_wsol_model,
    evaluate_run,
    format_table,
    load_trained,
    load_wsol_data,
    paper_settings,
    reproduce_wsol,
)
from infocam.experiments.wsol.datasets import WSOLData
from infocam.experiments.wsol.protocol import eval_protocols
from infocam.experiments.wsol_eval import (
    BoxSetting,
    WSOLEvalOptions,
    evaluate_localization,
    evaluate_wsol,
    localization_grid,
    select_settings,
    wsol_collate,
)
from infocam.models import GAPClassifier

# --------------------------------------------------------------------------- a known model
# features = the image itself (1 channel), fc weight [[1], [-1]]: every method's map of
# class 0 is a positive multiple of the image, so boxes are those of the image's levels.

CORE = (12, 12, 19, 19)  # value 1.0
HALO = (8, 8, 23, 23)  # value 0.5 around it (16 x 16)


def _known_model() -> GAPClassifier:
    model = GAPClassifier(nn.Identity(), 1, 2)
    with torch.no_grad():
        model.fc.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        model.fc.bias.zero_()
    return model.eval()


class _Images(Dataset):
    """n images 32 x 32: halo 0.5, core 1.0; label 0; the ground-truth box is ``gt``."""

    def __init__(self, n: int, gt: tuple[int, int, int, int]) -> None:
        img = torch.zeros(1, 32, 32)
        x1, y1, x2, y2 = HALO
        img[:, y1 : y2 + 1, x1 : x2 + 1] = 0.5
        x1, y1, x2, y2 = CORE
        img[:, y1 : y2 + 1, x1 : x2 + 1] = 1.0
        self.img, self.n, self.gt = img, n, torch.tensor([gt], dtype=torch.float32)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return self.img, 0, self.gt


def test_selection_uses_validation_only():
    model = _known_model()
    thresholds = (0.3, 0.6)  # 0.3 keeps the halo box, 0.6 the core box
    val_core, test_halo = _Images(6, CORE), _Images(5, HALO)
    grid = localization_grid(model, val_core, regions=(1,), thresholds=thresholds)
    for g in grid.values():
        assert g.tolist() == [[0.0, 100.0]]
    out = evaluate_wsol(model, val_core, test_halo, regions=(1,), thresholds=thresholds)
    for m, s in out["settings"].items():
        assert (s["region"], s["threshold"]) == (1, 0.6), m
        # the test split would have preferred 0.3 (its GT is the halo): scored at 0.6 it misses
        assert out["test"][m]["gt_known_loc"] == 0.0
        assert out["test"][m]["top1_cls"] == 100.0
        assert out["test"][m]["n"] == 5
    # swap the roles: the choice follows the validation split, whatever the test split holds
    swapped = evaluate_wsol(model, test_halo, val_core, regions=(1,), thresholds=thresholds)
    assert {s["threshold"] for s in swapped["settings"].values()} == {0.3}
    same_val = evaluate_wsol(model, val_core, val_core, regions=(1,), thresholds=thresholds)
    assert same_val["settings"] == out["settings"]
    assert all(t["gt_known_loc"] == 100.0 for t in same_val["test"].values())


def test_region_padding_reaches_the_boxes():
    """Core only (rows/cols 12..19), r = 4: torch's 'same' window grows the box 2 cells up-left
    and 1 down-right; 'centered' grows it 2 each way, symmetric about the core."""
    model, data = _known_model(), _Images(2, CORE)
    data.img = (data.img == 1.0).float()
    setting = {"cam": BoxSetting(4, 0.05, 0.0)}
    boxes = {}
    for padding in ("same", "centered"):
        _, ex = evaluate_localization(model, data, setting, region_padding=padding, keep=1)
        boxes[padding] = ex["boxes"]["cam"][0]
    assert boxes == {"same": [10, 10, 20, 20], "centered": [10, 10, 21, 21]}
    out = evaluate_wsol(model, data, data, regions=(2, 4), region_padding="centered")
    assert out["val_grid"]["region_padding"] == "centered"
    with pytest.raises(ValueError, match="region_padding"):
        evaluate_wsol(model, data, data, region_padding="middle")


def test_select_settings_ties_and_shapes():
    grid = {"cam": torch.tensor([[10.0, 50.0], [50.0, 20.0]])}
    s = select_settings(grid, (1, 3), (0.2, 0.4))["cam"]
    assert (s.region, s.threshold, s.val_gt_known_loc) == (1, 0.4, 50.0)  # first maximum
    with pytest.raises(ValueError, match="shape"):
        select_settings(grid, (1,), (0.2, 0.4))


def test_bad_grid_and_methods():
    model, data = _known_model(), _Images(2, CORE)
    with pytest.raises(ValueError, match="regions"):
        localization_grid(model, data, regions=(0,))
    with pytest.raises(ValueError, match="thresholds"):
        localization_grid(model, data, thresholds=(1.2,))
    with pytest.raises(ValueError, match="methods"):
        localization_grid(model, data, methods=("gradcam",))
    with pytest.raises(ValueError, match="empty"):
        localization_grid(model, _Images(0, CORE))


def test_one_options_object_carries_the_settings():
    model, data = _known_model(), _Images(3, CORE)
    options = WSOLEvalOptions(methods=("cam",), regions=(1, 2), thresholds=(0.3, 0.6), batch_size=2)
    assert options.regions == (1, 2) and options.thresholds == (0.3, 0.6)
    # the options object and the same settings as keywords give the same result; keywords
    # override the object's fields
    by_object = evaluate_wsol(model, data, data, options)
    by_keywords = evaluate_wsol(
        model, data, data, methods=("cam",), regions=(1, 2), thresholds=(0.3, 0.6), batch_size=2
    )
    assert by_object["settings"] == by_keywords["settings"]
    assert by_object["test"] == by_keywords["test"]
    assert by_object["val_grid"] == by_keywords["val_grid"]
    assert list(localization_grid(model, data, options, methods=("infocam",))) == ["infocam"]
    with pytest.raises(TypeError, match="region_size"):
        localization_grid(model, data, options, region_size=3)
    with pytest.raises(TypeError, match="options must be a WSOLEvalOptions"):
        evaluate_wsol(model, data, data, {"regions": (1,)})
    with pytest.raises(ValueError, match="batch_size"):
        WSOLEvalOptions(batch_size=0)


class _MaskedImages(_Images):
    """``_Images`` with a mask in wsolevaluation's encoding: foreground = the left half of the
    halo, ignored = the top two rows of the rest (255), background elsewhere."""

    def __init__(self, n: int, bad_value: int | None = None) -> None:
        super().__init__(n, HALO)
        mask = torch.zeros(32, 32, dtype=torch.uint8)
        mask[8:24, 8:16] = 1
        mask[:2, 16:] = 255
        if bad_value is not None:
            mask[0, 0] = bad_value
        self.mask = mask

    def __getitem__(self, i: int):
        return self.img, 0, self.gt, self.mask


def test_pxap_from_the_same_maps_when_items_carry_masks():
    from infocam.localization import PxAPEvaluator, normalize_maps

    model, data = _known_model(), _MaskedImages(5)
    settings = {m: BoxSetting(1, 0.5, 0.0) for m in ("cam", "infocam", "infocam+")}
    scores, _ = evaluate_localization(model, data, settings, batch_size=2)
    direct = PxAPEvaluator()
    for _ in range(5):  # every method's map is a positive multiple of the image
        direct.update(normalize_maps(data.img), data.mask[None] == 1, data.mask[None] == 255)
    expected = direct.compute()["PxAP"]
    assert 0 < expected < 100
    for m in settings:
        assert scores[m]["PxAP"] == expected
    without, _ = evaluate_localization(model, _Images(3, HALO), settings)
    assert all("PxAP" not in s for s in without.values())  # no masks, no PxAP
    with pytest.raises(ValueError, match=r"mask values must be 1 \(foreground\), 0"):
        evaluate_localization(model, _MaskedImages(2, bad_value=7), settings)


def test_collate_keeps_box_lists():
    items = [
        (torch.zeros(1, 4, 4), 1, torch.zeros(1, 4)),
        (torch.ones(1, 4, 4), 0, torch.ones(2, 4)),
    ]
    x, y, boxes = wsol_collate(items)
    assert x.shape == (2, 1, 4, 4) and y.tolist() == [1, 0]
    assert [tuple(b.shape) for b in boxes] == [(1, 4), (2, 4)]
    masked = [(*it, torch.full((4, 4), k, dtype=torch.uint8)) for k, it in enumerate(items)]
    *_, masks = wsol_collate(masked)
    assert masks.shape == (2, 4, 4) and masks[:, 0, 0].tolist() == [0, 1]
    with pytest.raises(ValueError, match="all be \\(image, label, boxes\\) or all"):
        wsol_collate([items[0], masked[1]])


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, one_thread_module):
    out = tmp_path_factory.mktemp("wsol")
    summary = reproduce_wsol(
        "cluttered-digits",
        out,
        n_train=96,
        n_val=48,
        n_test=48,
        image_size=64,
        train_overrides={"epochs": 1, "batch_size": 32},
        regions=(1, 3),
        thresholds=(0.2, 0.5),
        protocol="both",
        quiet=True,
        log=lambda *a: None,
    )
    return out, summary


def test_one_epoch_train_and_evaluate_on_cluttered_digits(tiny_run):
    out, _ = tiny_run
    for name in ("results.json", "table.md", "figure.png"):
        assert (out / name).is_file()
    saved = json.loads((out / "results.json").read_text())
    assert saved["dataset"] == "cluttered-digits"
    assert [(r["model"], r["adl"]) for r in saved["runs"]] == [
        ("small_gap_cnn", False),
        ("small_gap_cnn", True),
    ]
    for run in saved["runs"]:
        assert set(run["test"]) == {"cam", "infocam", "infocam+"}
        for m, scores in run["test"].items():
            assert scores["n"] == 48
            keys = ("gt_known_loc", "top1_loc", "top1_cls", "top5_cls", "MaxBoxAccV2", "PxAP")
            for key in keys:  # cluttered digits carry masks: PxAP is there
                assert 0.0 <= scores[key] <= 100.0
            assert scores["top1_loc"] <= min(scores["gt_known_loc"], scores["top1_cls"])
            assert run["settings"][m]["region"] in (1, 3)
            assert run["settings"][m]["threshold"] in (0.2, 0.5)
            grid = run["val_grid"]["gt_known_loc"][m]
            assert run["settings"][m]["val_gt_known_loc"] == max(max(row) for row in grid)
    text = (out / "table.md").read_text()
    assert "| MaxBoxAccV2 | PxAP |" in text
    selected, paper = text.split("Protocol 'paper'")
    for part in (selected, paper):
        rows = [line for line in part.splitlines() if line.startswith("| small_gap_cnn")]
        assert len(rows) == 6 and "infoCAM+ (ADL)" in rows[-1]
    for sub in ("small_gap_cnn", "small_gap_cnn_adl"):
        assert (out / sub / "best.pt").is_file()
        assert (out / sub / "eval" / "results.json").is_file()
        assert (out / sub / "eval-paper" / "results.json").is_file()


def test_paper_protocol_in_a_whole_run_fixed_settings_and_every_value_sourced(tiny_run):
    out, _ = tiny_run
    saved = json.loads((out / "results.json").read_text())
    assert saved["protocol"]["eval_protocols"] == ["selected", "paper"]
    paper_runs = saved["paper_protocol"]["runs"]
    assert [(r["model"], r["adl"]) for r in paper_runs] == [
        ("small_gap_cnn", False),
        ("small_gap_cnn", True),
    ]
    for run, sel in zip(paper_runs, saved["runs"], strict=True):
        assert run["protocol"] == "paper" and "val_grid" not in run
        assert {m: (s["region"], s["threshold"]) for m, s in run["settings"].items()} == {
            "cam": (1, 0.2),
            "infocam": (3, 0.2),
            "infocam+": (3, 0.2),
        }
        assert all(s["val_gt_known_loc"] is None for s in run["settings"].values())
        for m, src in run["settings_sources"].items():
            assert src["threshold"]["value"] == 0.2 and "Sec. 6.1" in src["threshold"]["source"]
            assert src["region"]["value"] == run["settings"][m]["region"]
        # the same trained model: classification agrees between the two protocols
        assert run["test"]["cam"]["top1_cls"] == sel["test"]["cam"]["top1_cls"]
    # every protocol value has a source
    assert set(saved["sources"]) == set(saved["protocol"])
    assert set(saved["sources"]["train"]) == set(saved["protocol"]["train"])
    assert saved["sources"]["train"]["epochs"] == "command line (--epochs)"
    assert saved["sources"]["least_likely"].startswith("'global'")
    assert all(
        isinstance(v, str) and v for v in saved["sources"].values() if not isinstance(v, dict)
    )


def test_evaluate_a_saved_run_gives_the_same_scores(tiny_run):
    out, summary = tiny_run
    run, model = load_trained(out / "small_gap_cnn")
    assert (run.arch, run.adl, run.image_size, run.n_test) == ("small_gap_cnn", False, 64, 48)
    res = evaluate_run(
        model, run.data(), None, regions=(1, 3), thresholds=(0.2, 0.5), figure_rows=0
    )
    assert res["test"] == summary["runs"][0]["test"]
    fixed = paper_settings("cluttered-digits", "small_gap_cnn", ("cam", "infocam", "infocam+"))
    res = evaluate_run(model, run.data(), None, figure_rows=0, settings=fixed[0])
    assert res["test"] == summary["paper_protocol"]["runs"][0]["test"]


def test_cluttered_data_and_model_shapes():
    data = load_wsol_data("cluttered-digits", image_size=64, n_train=4, n_val=4, n_test=4)
    x, _, boxes = data.train[0]
    assert x.shape == (1, 64, 64) and boxes.shape == (1, 4) and data.num_classes == 10
    rgb = load_wsol_data(
        "cluttered-digits", image_size=64, n_train=2, n_val=2, n_test=2, in_channels=3
    )
    assert rgb.test[0][0].shape == (3, 64, 64)
    with pytest.raises(ValueError, match="3-channel"):
        build_wsol_model("resnet18_gap", 10, in_channels=1)
    with pytest.raises(ValueError, match="imagenet"):
        build_wsol_model("small_gap_cnn", 10, weights="imagenet")
    with pytest.raises(ValueError, match="dataset"):
        load_wsol_data("imagenet")
    with pytest.raises(ValueError, match="needs data_root"):
        load_wsol_data("cub")


def test_table_prints_the_papers_numbers_beside_ours():
    scores = {
        "gt_known_loc": 1.0,
        "top1_loc": 0.5,
        "top1_cls": 2.0,
        "top5_cls": 3.0,
        "MaxBoxAccV2": 4.0,
    }
    row = {
        "model": "vgg16_gap",
        "adl": True,
        "test": {"cam": scores, "infocam+": scores},
        "settings": {m: {"region": 5, "threshold": 0.2} for m in ("cam", "infocam+")},
    }
    lines = format_table([row], "cub").splitlines()
    assert "paper GT-known" in lines[0]
    assert lines[2].endswith("| 71.59 | 53.01 | 71.05 | 90.20 |")
    assert lines[3].endswith("| 75.89 | 54.35 | - | - |")
    assert PAPER_TABLE4["tiny-imagenet"]["resnet50_gap"][("infocam", False)] == (57.79, 43.34)
    assert "paper" not in format_table([row], "cluttered-digits")


def test_same_seed_same_numbers(tiny_run, tmp_path):
    out, summary = tiny_run
    torch.rand(100)  # the global generator is elsewhere now: the seed alone must decide
    again = reproduce_wsol(
        "cluttered-digits",
        tmp_path,
        n_train=96,
        n_val=48,
        n_test=48,
        image_size=64,
        adl=(False,),
        train_overrides={"epochs": 1, "batch_size": 32},
        regions=(1, 3),
        thresholds=(0.2, 0.5),
        quiet=True,
        log=lambda *a: None,
    )
    assert again["runs"][0]["test"] == summary["runs"][0]["test"]
    a = torch.load(out / "small_gap_cnn" / "best.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "small_gap_cnn" / "best.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_region_and_threshold_grid_takes_numpy_numbers_and_names_the_bad_entry():
    import numpy as np

    from infocam.experiments.wsol_eval import _check_grid

    assert _check_grid(np.array([1, 3]), [np.float32(0.5), 0.25]) == ((1, 3), (0.5, 0.25))
    with pytest.raises(TypeError, match=r"regions\[1\] must be an integer >= 1; got float 2\.0"):
        _check_grid([1, 2.0], [0.2])
    with pytest.raises(TypeError, match=r"thresholds\[0\] must be a real number in \[0, 1\)"):
        _check_grid([1], ["0.2"])  # was float("0.2")
    with pytest.raises(ValueError, match=r"thresholds\[1\] must be .*; got 1\.0"):
        _check_grid([1], [0.2, 1])
    for regions, thresholds in [([], [0.2]), ([1], ()), ("1", [0.2])]:
        with pytest.raises(ValueError, match="must be a non-empty list"):
            _check_grid(regions, thresholds)


# --------------------------------------------------------------------- the paper protocol


class _Untouchable(_Images):
    def __getitem__(self, i: int):
        raise AssertionError("the paper protocol must not read the validation split")


def test_paper_settings_are_the_papers_table_with_sources():
    methods = ("cam", "infocam", "infocam+")
    expect = {("cub", "vgg16_gap"): 5, ("cub", "resnet50_gap"): 4,
              ("tiny-imagenet", "vgg16_gap"): 3, ("tiny-imagenet", "resnet50_gap"): 3}  # fmt: skip
    for (dataset, arch), r in expect.items():
        settings, sources = paper_settings(dataset, arch, methods)
        assert {m: (s.region, s.threshold) for m, s in settings.items()} == {
            "cam": (1, 0.2),
            "infocam": (r, 0.2),
            "infocam+": (r, 0.2),
        }
        assert "Sec. 6.1" in sources["infocam"]["region"]["source"]
    assert PAPER_EVAL["threshold"][0] == 0.2
    with pytest.raises(ValueError, match="no region R for 'resnet18_gap' on cub"):
        paper_settings("cub", "resnet18_gap", methods)
    with pytest.raises(ValueError, match="protocol must be one of"):
        eval_protocols("test")
    assert eval_protocols("both") == ("selected", "paper")


def test_paper_protocol_fixes_the_settings_and_never_reads_validation():
    model = _known_model()
    data = WSOLData(
        dataset="cub", train=_Images(1, CORE), val=_Untouchable(3, CORE), test=_Images(4, HALO),
        num_classes=2, classes=["a", "b"], image_size=32, in_channels=1,
    )  # fmt: skip
    fixed = {m: BoxSetting(1, 0.2) for m in ("cam", "infocam", "infocam+")}
    res = evaluate_run(model, data, None, settings=fixed, figure_rows=0)
    assert res["protocol"] == "paper" and "val_grid" not in res
    # threshold 0.2 keeps the halo (0.5 of the max): every method hits the halo box
    assert all(t["gt_known_loc"] == 100.0 for t in res["test"].values())
    assert res["settings"]["cam"] == {"region": 1, "threshold": 0.2, "val_gt_known_loc": None}
    with pytest.raises(AssertionError, match="must not read"):
        evaluate_run(model, data, None, figure_rows=0)  # the selected protocol does


def test_least_likely_and_normalize_reach_the_evaluation():
    """A signed map (halo 0.5, core 1, the rest 0 except one -1 pixel): min-max keeps the
    background at threshold 0.2, "max" keeps the halo box only."""
    model, data = _known_model(), _Images(2, HALO)
    data.img = data.img.clone()
    data.img[0, 31, 31] = -1.0
    setting = {"cam": BoxSetting(1, 0.2)}
    scores = {}
    for norm in ("minmax", "max"):
        res, ex = evaluate_localization(model, data, setting, normalize=norm, keep=1)
        scores[norm] = (res["cam"]["gt_known_loc"], ex["boxes"]["cam"][0])
    assert scores == {"minmax": (0.0, [0, 0, 31, 31]), "max": (100.0, [8, 8, 23, 23])}
    assert WSOLEvalOptions().normalize == "minmax" and WSOLEvalOptions().least_likely == "global"
    with pytest.raises(ValueError, match="normalize must be one of"):
        WSOLEvalOptions(normalize="range")
    with pytest.raises(ValueError, match="least_likely must be one of"):
        WSOLEvalOptions(least_likely="pixel")
    # infoCAM+ of class 0 with classes (x, -x): global 2x (the -1 pixel stays, min-max keeps
    # the background); per region x - min(x, -x) = max(2x, 0) (minimum 0: the halo only)
    plus = {"infocam+": BoxSetting(1, 0.2)}
    hits = {
        rule: evaluate_localization(model, data, plus, least_likely=rule)[0]["infocam+"][
            "gt_known_loc"
        ]
        for rule in ("global", "region")
    }
    assert hits == {"global": 0.0, "region": 100.0}
    out = evaluate_wsol(model, data, data, regions=(1,), least_likely="region", normalize="max")
    assert out["val_grid"]["least_likely"] == "region" and out["val_grid"]["normalize"] == "max"


def test_protocol_sources_name_the_paper_ours_or_the_command_line():
    from infocam.experiments.wsol.protocol import protocol_sources

    values = {"selection": "none", "eval_protocols": ["paper"], "train": {"epochs": 1, "lr": 0.1},
              "archs": ["vgg16_gap"], "n": {}, "image_size": 224}  # fmt: skip
    src = protocol_sources("cub", values, {"image_size": True}, {"lr": 0.2})
    assert src["selection"].startswith("paper Sec. 6.1")
    assert src["train"] == {"epochs": src["train"]["epochs"], "lr": "command line (--lr)"}
    assert "ADL" in src["train"]["epochs"] and src["image_size"] == "command line"
    assert src["archs"].startswith("paper Sec. 6.1") and src["n"].startswith("paper Sec. 6.1")
    selected = protocol_sources("cluttered-digits", {**values, "eval_protocols": ["selected"]})
    assert selected["selection"].startswith("ours") and selected["archs"].startswith("ours")
