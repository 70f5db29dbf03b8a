"""clipshift.analysis: effective robustness, reference sets, group and long-tail statistics, plots, CLI."""

import json
import math
import xml.etree.ElementTree as ET
from importlib import resources

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from clipshift.analysis.effective_robustness import (
    DEFAULT_EPS,
    bootstrap_band,
    effective_robustness,
    fit_line,
    inverse_transform,
    transform,
)
from clipshift.analysis.longtail import nc1, prototype_coherence, spearman_frequency, tercile_means
from clipshift.analysis.reference import ReferenceSet, load_reference, reference_from_rows
from clipshift.analysis.spurious import counter_common_fit, group_drop, per_class_drop
from clipshift.analysis.stats import bootstrap_ci, diff_ci, mean_ci, summarise_by
from clipshift.cli.main import main
from clipshift.errors import UserError

DATA = resources.files("clipshift.analysis").joinpath("reference_data")


@pytest.fixture(scope="module")
def testbed():
    with DATA.joinpath("imagenet_testbed_top1.csv").open() as f:
        top1 = pd.read_csv(f, index_col="model")
    with DATA.joinpath("imagenet_testbed_model_types.csv").open() as f:
        types = pd.read_csv(f, index_col="model")["model_type"]
    return top1, types


# (y, x the testbed plots it against, x threshold, names excluded exactly)
TESTBED_CASES = [
    ("imagenetv2-matched-frequency-format-val", "val", 55, ()),
    ("imagenet-sketch", "val", 55, ()),
    ("objectnet-1.0-beta", "val-on-objectnet-classes", 55, ()),
    ("imagenet-r", "val-on-imagenet-r-classes", 75, ()),
    ("imagenet-a", "val-on-imagenet-a-classes", 75, ("resnet50",)),
]


@pytest.mark.parametrize("y, x_col, min_x, excluded", TESTBED_CASES)
def test_testbed_fit_matches_an_independent_least_squares(testbed, y, x_col, min_x, excluded):
    top1, types = testbed
    df = top1[[x_col, y]].dropna()
    names = df.index.str.lower()
    keep = (
        (types.reindex(df.index) == "STANDARD")
        & ~names.str.contains("aws|batch64|subsample")
        & ~names.isin(excluded)
        & (df[x_col] >= min_x)
    )
    logit = lambda acc: np.log(acc / 100 / (1 - acc / 100))  # noqa: E731
    ref_rows = df[keep]
    design = np.stack([logit(ref_rows[x_col].to_numpy()), np.ones(len(ref_rows))], axis=1)
    (slope, intercept), *_ = np.linalg.lstsq(design, logit(ref_rows[y].to_numpy()), rcond=None)

    ref = load_reference("imagenet-testbed", x="val", y=y)  # x='val' becomes the class-subset column
    assert ref.x_name == x_col and ref.n_reference == len(ref_rows) > 40
    assert set(ref.reference_models()) == set(ref_rows.index)
    fit = ref.fit()
    assert fit.slope == pytest.approx(slope, abs=1e-9) and fit.intercept == pytest.approx(intercept, abs=1e-9)
    assert fit.n == len(ref_rows) and fit.kind == "logit"

    er = dict(zip(ref.models, ref.effective_robustness(fit)))
    for model in ["vit_b_32_clip_zeroshot", "efficientnet-l2-noisystudent", "resnet18", "densenet121"]:
        xa, ya = df.loc[model, x_col], df.loc[model, y]
        expected = ya - 100 / (1 + np.exp(-(slope * logit(xa) + intercept)))
        assert er[model] == pytest.approx(expected, abs=1e-9)
    # the zero-shot CLIP models sit well above the line on the natural shifts
    assert er["vit_b_32_clip_zeroshot"] > 3


def test_testbed_bad_names_and_exact_x():
    with pytest.raises(UserError, match=r"no column 'imagenet-rr' for y; did you mean 'imagenet-r'"):
        load_reference("imagenet-testbed", "val", "imagenet-rr")
    ref = load_reference("imagenet-testbed", "val", "imagenet-r", auto_subset=False)
    assert ref.x_name == "val" and ref.n_reference > 40  # the testbed's no-subsample variant: x ≥ 55
    assert load_reference("imagenet-testbed", None, "objectnet").y_name == "objectnet-1.0-beta"
    with pytest.raises(UserError, match="neither a known reference"):
        load_reference("no-such-reference", "val", "imagenet-r")


def test_transform_clips_or_refuses_the_edges():
    z = transform([0.0, 50.0, 100.0])
    assert np.all(np.isfinite(z)) and z[1] == 0.0
    assert z[0] == pytest.approx(math.log(DEFAULT_EPS / (100 - DEFAULT_EPS)))
    assert transform([0.0], eps=1.0)[0] == pytest.approx(math.log(1 / 99))
    with pytest.raises(UserError, match=r"model 'perfect': accuracy 100 % has an infinite logit"):
        transform([50.0, 100.0], clip=False, names=["ok", "perfect"])
    with pytest.raises(UserError, match=r"not a percentage"):
        transform([101.0])
    for kind in ("logit", "probit"):
        acc = np.array([0.5, 12.0, 50.0, 87.5, 99.0])
        assert np.allclose(inverse_transform(transform(acc, kind), kind), acc, atol=1e-12)
    # clip=False refuses only what needs a transform: a non-reference model's y of 0 % is fine
    fit = fit_line([60, 70, 80], [50, 60, 70], clip=False)
    assert np.isfinite(effective_robustness(fit, [75.0], [0.0])).all()
    with pytest.raises(UserError, match="model 'm0'"):
        effective_robustness(fit, [100.0], [50.0], names=["m0"])


def test_probit_and_logit_fits_differ_and_each_recovers_its_own_line():
    x = np.linspace(40, 95, 12)
    y_probit = inverse_transform(0.8 * transform(x, "probit") - 0.3, "probit")
    y_logit = inverse_transform(0.8 * transform(x, "logit") - 0.3, "logit")
    fp = fit_line(x, y_probit, kind="probit")
    assert (fp.slope, fp.intercept, fp.r2) == pytest.approx((0.8, -0.3, 1.0), abs=1e-9)
    assert fit_line(x, y_probit, kind="logit").r2 < 1 - 1e-6
    fl = fit_line(x, y_logit, kind="logit")
    assert (fl.slope, fl.intercept) == pytest.approx((0.8, -0.3), abs=1e-9)
    assert np.allclose(effective_robustness(fl, x, y_logit), 0, atol=1e-9)
    assert np.allclose(fl.predict(x), y_logit)


def _noisy_line(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(55, 90, n)
    y = inverse_transform(0.9 * transform(x) - 0.5 + rng.normal(0, 0.08, n))
    return x, y


def test_bootstrap_band_contains_the_fit_and_narrows_with_more_models():
    grid = np.linspace(58, 88, 25)
    widths = []
    for n in (8, 200):
        x, y = _noisy_line(n, seed=n)
        lo, hi = bootstrap_band(x, y, grid, n_boot=500, seed=1)
        pred = fit_line(x, y).predict(grid)
        assert np.all(lo <= pred) and np.all(pred <= hi)
        widths.append(float(np.mean(hi - lo)))
        again = bootstrap_band(x, y, grid, n_boot=500, seed=1)
        assert np.array_equal(again[0], lo)  # seeded
    assert widths[1] < widths[0] / 2


def test_user_csv_round_trip_and_errors(tmp_path):
    path = tmp_path / "ref.csv"
    frame = pd.DataFrame(
        {
            "model": ["a", "b", "c", "mine"],
            "x": [60.0, 70.0, 80.0, 75.0],
            "y": [45.0, 55.0, 66.0, 70.0],
            "is_reference": ["true", "1", "yes", "false"],
        }
    )
    frame.to_csv(path, index=False)
    ref = load_reference(path)
    assert ref.models == ["a", "b", "c", "mine"] and ref.source == str(path)
    assert ref.is_reference.tolist() == [True, True, True, False]
    assert np.array_equal(ref.x, frame.x) and np.array_equal(ref.y, frame.y)
    fit = ref.fit()
    assert fit.n == 3 and ref.effective_robustness(fit)[3] > 5

    renamed = tmp_path / "named.csv"
    frame.rename(columns={"x": "iid", "y": "sketch"}).drop(columns="is_reference").to_csv(
        renamed, index=False
    )
    ref2 = load_reference(renamed, "iid", "sketch")
    assert ref2.is_reference.all() and ref2.x_name == "iid"
    with pytest.raises(UserError, match=rf"{renamed}: missing column 'y' \(columns: model, iid, sketch\)"):
        load_reference(renamed, "iid")
    fractions = tmp_path / "fractions.csv"
    (frame[["model", "x", "y"]].assign(x=frame.x / 100, y=frame.y / 100)).to_csv(fractions, index=False)
    with pytest.raises(UserError, match="not fractions"):
        load_reference(fractions)


def _rows():
    runs = {  # run_id: (objective, iid acc, sketch acc)
        "r1": ("supervised", 0.60, 0.30),
        "r2": ("supervised", 0.70, 0.38),
        "r3": ("supervised", 0.80, 0.50),
        "r4": ("clip", 0.65, 0.45),
    }
    rows = []
    for seed, (run, (obj, iid, sketch)) in enumerate(runs.items()):
        base = {"run_id": run, "factors": {"objective.name": obj, "data.rho": 0.9}, "seed": seed}
        rows += [
            {**base, "eval_set": "iid", "metric": "acc1", "class_id": -1, "value": iid},
            {**base, "eval_set": "sketch", "metric": "acc1", "class_id": -1, "value": sketch},
            {
                **base,
                "eval_set": "sketch",
                "metric": "acc1",
                "class_id": 3,
                "value": 1.0,
            },  # per class: ignored
            {**base, "eval_set": "sketch", "metric": "acc5", "class_id": -1, "value": 0.99},  # other metric
        ]
    return rows


def test_reference_from_rows_with_a_baseline_filter():
    ref = reference_from_rows(_rows(), "iid", "sketch", baseline={"objective.name": "supervised"})
    assert ref.models == ["r1", "r2", "r3", "r4"]
    assert ref.x == pytest.approx([60, 70, 80, 65]) and ref.y == pytest.approx([30, 38, 50, 45])
    assert ref.is_reference.tolist() == [True, True, True, False]
    assert ref.meta is not None and ref.meta[3]["objective.name"] == "clip" and ref.meta[3]["seed"] == 3
    er = ref.effective_robustness(ref.fit())
    assert er[3] > 5  # the contrastive run sits above the supervised line
    assert reference_from_rows(_rows(), "iid", "sketch").is_reference.all()
    nested = [{**r, "factors": {"objective": {"name": r["factors"]["objective.name"]}}} for r in _rows()]
    assert reference_from_rows(nested, "iid", "sketch", baseline={"objective.name": "clip"}).n_reference == 1
    with pytest.raises(UserError, match=r"'objective\.nam' is not a factor of any run"):
        reference_from_rows(_rows(), "iid", "sketch", baseline={"objective.nam": "supervised"})
    with pytest.raises(UserError, match="matches none of the 4 runs"):
        reference_from_rows(_rows(), "iid", "sketch", baseline={"objective.name": "siglip"})
    with pytest.raises(UserError, match=r"no run has acc1 on both 'iid' and 'pose'"):
        reference_from_rows(_rows(), "iid", "pose")


def test_spurious_drops_and_per_class_intervals():
    assert group_drop(90.0, 60.0) == pytest.approx({"absolute": 30.0, "relative": 1 / 3})
    arr = group_drop(np.array([0.9, 0.0]), np.array([0.6, 0.0]))
    assert arr["absolute"] == pytest.approx([0.3, 0.0]) and math.isnan(arr["relative"][1])

    rng = np.random.default_rng(0)
    common = rng.uniform(0.7, 1.0, 40)
    drops = rng.normal(0.15, 0.05, 40)
    counter = common - drops
    counter[5] = np.nan  # a class without counter images
    res = per_class_drop(common, counter, n_boot=1000, seed=0)
    valid = np.delete(drops, 5)
    assert res["n_classes"] == 39 and res["mean"] == pytest.approx(valid.mean())
    assert res["lo"] < res["mean"] < res["hi"] and res["lo"] > 0.1 and res["hi"] < 0.2
    assert res["n_positive"] == int((valid > 0).sum()) and res["worst"] == int(np.nanargmax(common - counter))

    fit = counter_common_fit([60, 70, 80, 90], [43, 51, 59, 67], kind="linear")
    assert (fit.slope, fit.intercept) == pytest.approx((0.8, -5.0))
    assert counter_common_fit([60, 70, 80, 90], [43, 51, 59, 67], kind="logit").kind == "logit"


def test_seed_statistics():
    m, lo, hi = mean_ci([5.0])
    assert m == 5.0 and math.isnan(lo) and math.isnan(hi)
    vals = [70.1, 71.3, 69.8, 70.9]
    m, lo, hi = mean_ci(vals)
    expected = stats.t.interval(0.95, 3, loc=np.mean(vals), scale=stats.sem(vals))
    assert (lo, hi) == pytest.approx(expected)

    a, b = [71.0, 72.5, 70.2, 73.1], [68.0, 69.9, 67.5]
    d, lo, hi = diff_ci(a, b)
    welch = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert d == pytest.approx(np.mean(a) - np.mean(b)) and (lo, hi) == pytest.approx(tuple(welch))
    assert all(math.isnan(v) for v in diff_ci([1.0], [2.0, 3.0])[1:])

    x = np.arange(30.0)
    y = x - 2 + np.random.default_rng(0).normal(0, 0.1, 30)
    est, lo, hi = bootstrap_ci(lambda p, q: np.mean(p - q), x, y, n_boot=500)
    assert lo < est < hi and hi - lo < 0.2  # paired: the large spread of x cancels

    by = summarise_by([1.0, 3.0, 10.0, np.nan], ["clip", "clip", "sup", "sup"])
    assert list(by) == ["clip", "sup"] and by["clip"]["mean"] == 2.0 and by["clip"]["n"] == 2
    assert by["sup"]["n"] == 1 and math.isnan(by["sup"]["lo"])


def test_long_tail_statistics():
    freq = np.array([500, 200, 120, 80, 40, 20, 10, 5, 1])
    acc = np.linspace(0.9, 0.1, 9)
    rho, p = spearman_frequency(freq, acc)
    assert rho == pytest.approx(1.0) and p < 0.01
    assert spearman_frequency(freq, acc[::-1])[0] == pytest.approx(-1.0)
    assert tercile_means(freq, acc) == pytest.approx({"head": 0.8, "medium": 0.5, "tail": 0.2})

    rng = np.random.default_rng(0)
    means = rng.normal(0, 5, (4, 8))
    labels = np.repeat(np.arange(4), 25)
    collapsed = means[labels]
    assert nc1(collapsed, labels) == pytest.approx(0.0, abs=1e-12)
    noisy = collapsed + rng.normal(0, 1.0, collapsed.shape)
    noisier = collapsed + rng.normal(0, 3.0, collapsed.shape)
    assert 0 < nc1(noisy, labels) < nc1(noisier, labels)
    assert nc1(10 * noisy, labels) == pytest.approx(nc1(noisy, labels))  # scale-free

    assert prototype_coherence(np.eye(5)) == pytest.approx(0.0)
    assert prototype_coherence(np.tile([1.0, 2.0, 3.0], (4, 1))) == pytest.approx(1.0)
    assert prototype_coherence(np.array([[1.0, 0], [1, 1], [0, 1]]), reduce="max") == pytest.approx(0.5**0.5)


def _assert_png_svg(paths):
    png, svg = paths
    assert png.suffix == ".png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert svg.suffix == ".svg" and ET.parse(svg).getroot().tag.endswith("svg")


def test_plots_are_written_as_png_and_svg(tmp_path):
    from clipshift.analysis.plots import (
        plot_accuracy_vs_frequency,
        plot_counter_common,
        plot_effective_robustness,
        save_figure,
        view_grid,
    )

    x, y = _noisy_line(30, seed=3)
    ref = ReferenceSet([f"m{i}" for i in range(30)], x, y, np.arange(30) < 25, "iid", "sketch", "test")
    fit = ref.fit()
    highlight = {"clip": ([72.0, 80.0], [70.0, 75.0])}
    grid = view_grid(ref, fit, highlight)
    band = (grid, *bootstrap_band(x[:25], y[:25], grid, n_boot=200))
    fig = plot_effective_robustness(ref, fit, band=band, highlight=highlight)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert "70" in labels and "80" in labels
    _assert_png_svg(save_figure(fig, tmp_path / "er.png"))  # the suffix is replaced by both formats

    fig = plot_counter_common(
        [90, 80, 70], [60, 62, 50], ["a", "b", "c"], fit=counter_common_fit([90, 80, 70], [60, 62, 50])
    )
    _assert_png_svg(save_figure(fig, tmp_path / "sub" / "cc"))
    fig = plot_accuracy_vs_frequency([0, 1, 10, 100, 1000], [0.1, 0.2, 0.5, 0.7, 0.9])
    _assert_png_svg(save_figure(fig, tmp_path / "freq"))


def test_cli_fit_json(capsys, tmp_path):
    y = "imagenetv2-matched-frequency-format-val"
    assert (
        main(["robustness", "fit", "--reference", "imagenet-testbed", "--x", "val", "--y", y, "--json"]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    fit = load_reference("imagenet-testbed", "val", y).fit()
    assert out["transform"] == "logit" and out["n"] == fit.n
    assert (out["slope"], out["intercept"]) == pytest.approx((fit.slope, fit.intercept))
    rows = {r["model"]: r for r in out["models"]}
    assert rows["resnet50"]["is_reference"] and not rows["vit_b_32_clip_zeroshot"]["is_reference"]
    assert rows["vit_b_32_clip_zeroshot"]["effective_robustness"] > 3

    path = tmp_path / "ref.csv"
    pd.DataFrame({"model": ["a", "b", "c"], "iid": [60, 70, 80], "sk": [45, 55, 66]}).to_csv(
        path, index=False
    )
    argv = ["robustness", "fit", "--reference", str(path), "--x", "iid", "--y", "sk", "--transform", "probit"]
    assert main([*argv, "--point", "mine=75,70", "--plot", str(tmp_path / "er.png")]) == 0
    captured = capsys.readouterr()
    assert "probit fit on 3 reference models" in captured.out and "mine" in captured.out
    assert (tmp_path / "er.png").is_file() and (tmp_path / "er.svg").is_file()


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--reference", "nowhere.csv", "--y", "y"], "reference 'nowhere.csv': neither a known reference"),
        (["--y", "imagenet-q"], "imagenet-testbed: no column 'imagenet-q' for y"),
        (["--x", "vall", "--y", "imagenet-sketch"], "no column 'vall' for x; did you mean 'val'"),
        (["--reference", "{csv}", "--y", "sketch"], "missing column 'sketch'"),
        (["--reference", "{csv}", "--no-clip"], "model 'perfect': accuracy 100 % has an infinite logit"),
        (["--y", "imagenet-r", "--point", "oops"], "--point 'oops': expected LABEL=X,Y"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(argv, needle, capsys, tmp_path):
    path = tmp_path / "edge.csv"
    pd.DataFrame({"model": ["a", "b", "perfect"], "x": [60, 70, 100], "y": [45, 55, 90]}).to_csv(
        path, index=False
    )
    argv = [a.replace("{csv}", str(path)) for a in argv]
    assert main(["robustness", "fit", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("clipshift: error: ") and err.count("\n") == 0 and needle in err, err
