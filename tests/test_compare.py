"""`spine compare`: the homogenization study end to end on the tiny encoder (smoke profile, two seeds, all four deployments).

One module-scoped study trains the artifacts and writes a report; the other tests read it, run the study again on the
same artifacts (determinism), or feed it bad input (a clear error, exit code 1, and no report folder left behind).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from apps.cli import app
from homogenization import compare as compare_module
from homogenization.compare import compare
from homogenization.probes import digit_groups, length_bins, perturb
from homogenization.report import PLOTS, render
from homogenization.study import StudyConfig, artifact_problem
from shared_backbone.data import DEFAULT_DATA_DIR
from shared_backbone.errors import ArtifactError, ConfigError, DataError
from shared_backbone.settings import BackboneSettings

runner = CliRunner()
ALL = ("shared", "per-domain", "frozen", "classic")
SECTIONS = (
    "setup",
    "quality",
    "cost",
    "homogenization",
    "error_consistency",
    "blast_radius",
    "representation_similarity",
    "limitations",
    "timing",
)
HEADINGS = (
    "## Summary",
    "## Setup",
    "## Quality",
    "### Paired tests on the same items",
    "## Cost",
    "## Outcome homogenization",
    "### How a failure is counted",
    "## Error consistency",
    "## Blast radius",
    "## Representation similarity",
    "## Not measured or approximated",
)


def without_timing(results: dict) -> dict:
    return {key: value for key, value in results.items() if key != "timing"}


@pytest.fixture(scope="module")
def study_settings(tmp_path_factory: pytest.TempPathFactory, tiny_encoder_path: Path) -> BackboneSettings:
    # one thread: the tiny encoder gains nothing from two, and two OpenMP threads crawl when other processes share the cores
    return BackboneSettings(base_model=tiny_encoder_path, artifacts_dir=tmp_path_factory.mktemp("compare-artifacts"), threads=1)


@pytest.fixture(scope="module")
def no_serving(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("no-serving-results")


@pytest.fixture(scope="module")
def first_run(study_settings: BackboneSettings, no_serving: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    started = time.perf_counter()
    folder = compare(StudyConfig(ALL, "smoke", 2, serving_dir=no_serving), study_settings, tmp_path_factory.mktemp("reports") / "out")
    return folder, time.perf_counter() - started


@pytest.fixture(scope="module")
def results(first_run: tuple[Path, float]) -> dict:
    return json.loads((first_run[0] / "results.json").read_text(encoding="utf-8"))


# --- the report folder ---------------------------------------------------------------------------


def test_the_report_folder_is_complete_and_alone(first_run: tuple[Path, float]) -> None:
    folder, seconds = first_run
    assert seconds < 180, f"the smoke study took {seconds:.0f} s"
    for name in ("results.json", "report.md", "report.html", *PLOTS):
        assert (folder / name).is_file() and (folder / name).stat().st_size > 0, name
    for name in PLOTS:
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no staging folder left beside it


def test_results_have_every_section(results: dict) -> None:
    assert set(SECTIONS) <= set(results)
    assert results["setup"]["seeds"] == [0, 1] and results["setup"]["deployments"] == list(ALL)
    quality = results["quality"]["by_deployment"]
    assert set(quality) == set(ALL)
    for deployment in ALL:
        for metric in ("intent_accuracy", "intent_macro_f1", "oos_auroc", "sentiment_accuracy", "topic_macro_f1", "recall@10", "ndcg@10"):
            row = quality[deployment][metric]
            assert len(row["per_seed"]) == 2 and row["mean"] is not None and row["interval"].startswith("t over seeds"), (
                deployment,
                metric,
            )
            assert 0.0 <= row["low"] <= row["mean"] <= row["high"] <= 1.0, (deployment, metric, row)  # clipped to the metric's range
    tests = results["quality"]["paired_tests"]["shared vs per-domain"]["tasks"]
    assert tests["intent"]["test"] == "mcnemar" and len(tests["intent"]["per_seed"]) == 2
    assert "mean_difference" in tests["recommendation"]["pooled"]
    cost = results["cost"]["by_deployment"]
    assert cost["shared"]["backbones"] == 1 and cost["per-domain"]["backbones"] == 3 and cost["classic"]["backbones"] == 0
    assert cost["per-domain"]["parameters"] == 3 * cost["shared"]["parameters"] > 0
    assert results["cost"]["serving"]["by_deployment"]["shared"] == {"measured": False}
    assert "not measured" in results["cost"]["serving"]["note"]
    for deployment in ALL:
        families = results["homogenization"]["by_deployment"][deployment]["families"]
        assert set(families) == {"length", "digits", "typo"}
        assert set(families["length"]["detail"]["groups"]) == {"short", "medium", "long"}
        assert set(families["typo"]["detail"]["groups"]) == {"clean", "typo"}
        assert {"avg", "unif", "worst"} <= set(families["typo"])
    assert len(results["error_consistency"]["pairs"]) == 6
    assert set(results["error_consistency"]["pairs"]["shared vs per-domain"]["tasks"]) == {"intent", "sentiment", "topic", "recommendation"}


def test_one_fault_reaches_every_service_in_shared_and_one_in_per_domain(results: dict) -> None:
    blast = results["blast_radius"]["by_deployment"]
    assert blast["shared"]["services_on_corrupted_backbone"] == ["recommender", "sentiment", "support"]
    assert blast["per-domain"]["services_on_corrupted_backbone"] == ["sentiment"]
    assert [level["scale"] for level in blast["shared"]["noise"]] == [0.01, 0.03, 0.1]
    assert [level["steps"] for level in blast["shared"]["bad_update"]] == [5, 20, 50]
    for level in blast["per-domain"]["noise"] + blast["per-domain"]["bad_update"]:  # isolation: the other backbones are untouched
        assert level["change"]["intent_accuracy"] == 0.0 and level["change"]["ndcg@10"] == 0.0
    changed = [level["change"] for level in blast["shared"]["noise"] + blast["shared"]["bad_update"]]
    assert any(change["intent_accuracy"] != 0.0 or change["ndcg@10"] != 0.0 for change in changed)


def test_representation_similarity_covers_every_encoder(results: dict) -> None:
    similarity = results["representation_similarity"]
    assert similarity["encoders"] == [
        "shared",
        "per-domain/support",
        "per-domain/sentiment",
        "per-domain/recommender",
        "frozen",
        "pretrained",
    ]
    assert set(similarity["pairs"]) == {"all", "support", "sentiment", "recommender"}
    assert similarity["pairs"]["all"]["frozen | pretrained"]["mean"] == pytest.approx(1.0, abs=1e-5)  # frozen = the pretrained weights
    assert all(0.0 <= p["mean"] <= 1.0 + 1e-6 for p in similarity["pairs"]["all"].values())


def test_report_has_every_section_and_plot(first_run: tuple[Path, float]) -> None:
    text = (first_run[0] / "report.md").read_text(encoding="utf-8")
    for heading in HEADINGS:
        assert heading in text, heading
    for name in PLOTS:
        assert f"]({name})" in text
    assert "HR@10 = 0" in text and "not measured" in text
    html = (first_run[0] / "report.html").read_text(encoding="utf-8")
    for heading in HEADINGS:
        assert f">{heading.lstrip('# ')}</h" in html, heading
    assert '<img src="blast_radius.png"' in html


def test_the_report_is_regenerated_from_results_json_alone(first_run: tuple[Path, float], tmp_path: Path) -> None:
    render(json.loads((first_run[0] / "results.json").read_text(encoding="utf-8")), tmp_path)
    assert (tmp_path / "report.md").read_text(encoding="utf-8") == (first_run[0] / "report.md").read_text(encoding="utf-8")
    assert all((tmp_path / name).is_file() for name in PLOTS)


def test_the_same_seeds_give_the_same_results(
    first_run: tuple[Path, float], results: dict, study_settings: BackboneSettings, no_serving: Path, tmp_path: Path
) -> None:
    again = compare(StudyConfig(ALL, "smoke", 2, serving_dir=no_serving), study_settings, tmp_path)
    second = json.loads((again / "results.json").read_text(encoding="utf-8"))
    assert second["timing"]["artifacts_trained"] == [] and results["timing"]["artifacts_trained"]
    assert without_timing(second) == without_timing(results)


def test_serving_figures_are_read_from_the_benchmark_file(
    first_run: tuple[Path, float], study_settings: BackboneSettings, tmp_path: Path
) -> None:
    serving = tmp_path / "bench"
    serving.mkdir()
    measured = {"deployment": "shared", "total_rss_mb": 812.5, "throughput_per_s": 41.2, "latency_ms": {"support": {"p50": 9, "p95": 30}}}
    (serving / "serving-smoke.json").write_text(json.dumps({"results": [measured]}), encoding="utf-8")
    folder = compare(
        StudyConfig(("shared", "classic"), "smoke", 1, train_missing=False, serving_dir=serving), study_settings, tmp_path / "out"
    )
    result = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    assert result["cost"]["serving"]["by_deployment"]["shared"]["total_rss_mb"] == 812.5
    assert result["cost"]["serving"]["by_deployment"]["classic"] == {"measured": False}
    assert result["quality"]["by_deployment"]["shared"]["intent_accuracy"]["interval"] == "bootstrap over items (one seed)"
    assert "812" in (folder / "report.md").read_text(encoding="utf-8")


def test_serving_figures_can_be_attached_to_a_finished_study(first_run: tuple[Path, float], tmp_path: Path) -> None:
    import shutil

    from homogenization.report import main as report_main

    folder = tmp_path / "run"
    shutil.copytree(first_run[0], folder)
    before = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    assert before["cost"]["serving"]["by_deployment"]["shared"] == {"measured": False}

    refused = {
        "no deployment of this study was measured": {"profile": "smoke", "results": [{"deployment": "elsewhere", "total_rss_mb": 1.0}]},
        "measured the 'quick' profile": {"profile": "quick", "results": [{"deployment": "shared", "total_rss_mb": 1.0}]},
    }
    for message, content in refused.items():
        wrong = tmp_path / "serving-wrong.json"
        wrong.write_text(json.dumps(content), encoding="utf-8")
        with pytest.raises(SystemExit, match=message):
            report_main([str(folder / "results.json"), "--serving", str(wrong)])
        assert json.loads((folder / "results.json").read_text(encoding="utf-8")) == before  # a refused attach changes nothing

    serving = tmp_path / "serving-smoke.json"
    measured = {
        "deployment": "per-domain",
        "total_rss_mb": 1733.0,
        "throughput_per_s": 19.9,
        "latency_ms": {"support": {"p50": 12, "p95": 41}},
    }
    serving.write_text(json.dumps({"profile": "smoke", "backend": "auto", "results": [measured]}), encoding="utf-8")
    report_main([str(folder / "results.json"), "--serving", str(serving)])
    after = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    assert after["cost"]["serving"]["by_deployment"]["per-domain"]["total_rss_mb"] == 1733.0
    assert after["cost"]["serving"]["by_deployment"]["shared"] == {"measured": False}
    assert {k: v for k, v in after.items() if k != "cost"} == {k: v for k, v in before.items() if k != "cost"}
    text = (folder / "report.md").read_text(encoding="utf-8")
    assert "1,733" in text or "1733" in text
    assert "attached after the study" in text
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []  # no staged file left


# --- the app's Homogenization page ---------------------------------------------------------------


def _homogenization_page(roots: list[str]) -> None:
    from homogenization.ui import page

    page(roots)


def test_the_homogenization_page_shows_the_report(first_run: tuple[Path, float], tmp_path: Path) -> None:
    from streamlit.testing.v1 import AppTest

    broken = tmp_path / "broken-run"
    broken.mkdir()
    (broken / "results.json").write_text("{not json", encoding="utf-8")
    app = AppTest.from_function(_homogenization_page, args=([str(first_run[0].parent), str(tmp_path)],), default_timeout=60)
    app.run()
    assert not app.exception and app.title[0].value == "Homogenization"
    labels = app.selectbox[0].options
    assert len(labels) == 2 and "shared, per-domain, frozen, classic | smoke | 2 seed(s)" in labels[0]
    assert "unreadable" in labels[1]
    subheaders = [h.value for h in app.subheader]
    for heading in HEADINGS:
        if heading.startswith("## "):
            assert heading[3:] in subheaders, heading
    assert len(app.dataframe) >= 8  # setup, sizes, quality, paired tests, cost, homogenization, kappa, blast, CKA
    assert not app.error

    app.selectbox[0].select_index(1).run()  # the unreadable one: a clear message, no traceback
    assert not app.exception and "cannot be shown" in app.error[0].value


def test_the_homogenization_page_says_how_to_make_a_report_when_there_is_none(tmp_path: Path) -> None:
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_function(_homogenization_page, args=([str(tmp_path / "nothing-here")],), default_timeout=60)
    app.run()
    assert not app.exception and "spine compare --profile smoke" in app.info[0].value


# --- bad input -----------------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_encoder_path: Path) -> Path:
    monkeypatch.setenv("SPINE_ARTIFACTS_DIR", str(tmp_path / "empty-artifacts"))
    monkeypatch.setenv("SPINE_BASE_MODEL", str(tiny_encoder_path))
    return tmp_path / "reports"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--deployments", "shared,both"], "error: unknown deployment 'both': choose from shared, per-domain, frozen, classic"),
        (["--deployments", "shared,shared"], "error: a deployment is named twice"),
        (["--profile", "huge"], "error: unknown profile 'huge'"),
        (["--seeds", "0"], "error: --seeds must be between 1 and 20, got 0"),
        (["--deployments", "shared,classic", "--no-train"], "error: --no-train, but backbone artifact(s) cannot be reused"),
    ],
)
def test_bad_input_is_one_error_line_and_no_folder(cli_env: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["compare", "--profile", "smoke", *args, "--out", str(cli_env)])
    assert result.exit_code == 1, result.output
    assert result.output.strip().startswith(message) and len(result.output.strip().splitlines()) == 1, result.output
    assert not cli_env.exists()


def test_a_missing_artifact_names_it(study_settings: BackboneSettings, tmp_path: Path, tiny_encoder_path: Path) -> None:
    empty = BackboneSettings(base_model=tiny_encoder_path, artifacts_dir=tmp_path / "artifacts", threads=1)
    with pytest.raises(ArtifactError, match=r"per-domain-support-smoke \(missing\)"):
        compare(StudyConfig(("per-domain",), "smoke", 1, train_missing=False), empty, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_empty_evaluation_set_is_a_data_error(tmp_path: Path, tiny_encoder_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for entry in DEFAULT_DATA_DIR.iterdir():
        if entry.name != "banking77":
            (data / entry.name).symlink_to(entry)
    (data / "banking77").mkdir()
    for name in ("categories.json", "train.csv"):
        (data / "banking77" / name).symlink_to(DEFAULT_DATA_DIR / "banking77" / name)
    (data / "banking77" / "test.csv").write_text("text,category\n", encoding="utf-8")
    settings = BackboneSettings(base_model=tiny_encoder_path, artifacts_dir=tmp_path / "artifacts", data_dir=data, threads=1)
    with pytest.raises(DataError, match="the intent evaluation set is empty"):
        compare(StudyConfig(("classic",), "smoke", 1), settings, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "artifacts" / "backbones").exists()


def test_a_failure_while_writing_leaves_no_folder(
    study_settings: BackboneSettings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, first_run: tuple[Path, float]
) -> None:
    def broken(results: dict, folder: Path) -> None:
        (folder / "report.md").write_text("half", encoding="utf-8")
        raise RuntimeError("disk full")

    monkeypatch.setattr(compare_module, "render", broken)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="disk full"):
        compare(StudyConfig(("classic",), "smoke", 1), study_settings, out)
    assert not out.exists()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "older-run").mkdir()
    with pytest.raises(RuntimeError):
        compare(StudyConfig(("classic",), "smoke", 1), study_settings, tmp_path / "kept")
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["older-run"]


def test_config_is_checked_before_any_work(study_settings: BackboneSettings, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="noise scales must be positive"):
        compare(StudyConfig(("classic",), "smoke", 1, noise_scales=(0.0,)), study_settings, tmp_path / "out")
    with pytest.raises(ConfigError, match="bad-update task"):
        compare(StudyConfig(("classic",), "smoke", 1, bad_update_task="recommendation"), study_settings, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- the groups ----------------------------------------------------------------------------------


def test_the_typo_perturbation_is_deterministic_and_small() -> None:
    text = "I still have not received my new card, I ordered it over a week ago"
    first, again = perturb(text, 0), perturb(text, 0)
    assert first == again != text
    assert sorted(first) == sorted(text) and len(first.split()) == len(text.split())
    changed = sum(a != b for a, b in zip(first.split(), text.split(), strict=True))
    assert 1 <= changed <= len(text.split()) // 2
    assert perturb("a 1 $", 3) == "a 1 $"  # nothing to swap


def test_groups_are_tertiles_and_digits_ignore_links_and_years() -> None:
    bins = length_bins(["a" * n for n in range(1, 10)])
    assert list(bins) == ["short"] * 3 + ["medium"] * 3 + ["long"] * 3
    groups = digit_groups(["$TSLA up", "card 4 lost", "news https://t.co/AbC123", "Heat (1995). Genres: Crime.", "Se7en (1995)"])
    assert list(groups) == ["digits/tickers", "digits/tickers", "none", "none", "digits/tickers"]
    assert np.asarray(length_bins([])).size == 0


@pytest.mark.real_backbone
def test_compare_on_the_real_backbone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The packaged all-MiniLM-L6-v2 through the installed CLI: smoke profile, two seeds, all four deployments."""
    if os.environ.get("SPINE_RUN_SLOW_COMPARE") != "1":
        pytest.skip("took 15 min 18 s on 2 cores (shared with other jobs), over the 8-minute budget; SPINE_RUN_SLOW_COMPARE=1 runs it")
    monkeypatch.setenv("SPINE_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    monkeypatch.delenv("SPINE_BASE_MODEL", raising=False)
    result = runner.invoke(app, ["compare", "--profile", "smoke", "--seeds", "2", "--out", str(tmp_path / "reports")])
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "reports").iterdir()
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    assert results["quality"]["by_deployment"]["frozen"]["intent_accuracy"]["mean"] > 0.2
    assert all((folder / name).is_file() for name in PLOTS)


def test_the_bootstrap_statistics_match_sklearn() -> None:
    from sklearn.metrics import f1_score, roc_auc_score

    from homogenization.analysis import _auroc, _f1

    rng = np.random.default_rng(0)
    gold, predicted = rng.integers(0, 7, 200), rng.integers(0, 9, 200)
    assert _f1(np.c_[gold, predicted]) == pytest.approx(f1_score(gold, predicted, average="macro", zero_division=0))
    labels, scores = rng.integers(0, 2, 300), np.round(rng.random(300), 2)  # ties included
    assert _auroc(np.c_[labels, scores]) == pytest.approx(roc_auc_score(labels, scores))
    assert np.isnan(_auroc(np.c_[np.zeros(5), rng.random(5)]))


def test_only_artifacts_made_as_today_are_reused(trained_shared: BackboneSettings, tmp_path: Path) -> None:
    import shutil

    from shared_backbone.artifacts import ArtifactStore

    base = Path(trained_shared.base_model)
    shutil.copytree(trained_shared.backbones_dir, tmp_path, dirs_exist_ok=True)
    store = ArtifactStore(tmp_path)
    assert artifact_problem(store, "shared-smoke", "shared", "smoke", 0, base) is None
    manifest_path = tmp_path / "shared-smoke" / "manifest.json"
    original = json.loads(manifest_path.read_text())
    for change, expected in (
        ({"hyperparameters": {**original["hyperparameters"], "learning_rate": 5e-5}}, "trained with other smoke settings"),
        ({"strip_links": False}, "texts with web links"),
        ({"seed": 3}, "seed 3"),
    ):
        manifest_path.write_text(json.dumps({**original, **change}))
        problem = artifact_problem(store, "shared-smoke", "shared", "smoke", 0, base)
        assert problem is not None and expected in problem
