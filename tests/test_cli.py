from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from apps.cli import app
from shared_backbone.settings import BackboneSettings

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_encoder_path: Path) -> Path:
    monkeypatch.setenv("SPINE_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    monkeypatch.setenv("SPINE_BASE_MODEL", str(tiny_encoder_path))
    return tmp_path / "artifacts"


def test_data_check_reports_every_set() -> None:
    result = runner.invoke(app, ["data", "check"])
    assert result.exit_code == 0, result.output
    for name in ("intent", "sentiment", "topic", "clinc150 out-of-scope", "movielens ratings"):
        assert name in result.output
    assert "1 rating(s) of unknown films skipped" in result.output


def test_data_check_on_a_broken_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPINE_DATA_DIR", str(tmp_path))
    result = runner.invoke(app, ["data", "check"])
    assert result.exit_code == 1
    assert result.output.strip() == f"error: {tmp_path}/banking77/categories.json: data file not found"


def test_train_list_and_show(env: Path) -> None:
    empty = runner.invoke(app, ["backbones", "list"])
    assert empty.exit_code == 0 and "no backbones" in empty.output
    trained = runner.invoke(app, ["train", "--deployment", "frozen", "--profile", "smoke", "--no-progress"])
    assert trained.exit_code == 0, trained.output
    listed = runner.invoke(app, ["backbones", "list"])
    assert "frozen-smoke" in listed.output and "recommender, sentiment, support" in listed.output
    shown = runner.invoke(app, ["backbones", "show", "frozen-smoke"])
    assert json.loads(shown.output)["deployment"] == "frozen"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--profile", "huge"], "error: unknown profile 'huge': choose one of smoke, quick, full"),
        (["train", "--deployment", "both"], "error: unknown deployment 'both': choose one of shared, per-domain, frozen"),
        (["backbones", "show", "nope"], "error: no backbone 'nope'"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(env: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.output.strip().startswith(message) and len(result.output.strip().splitlines()) == 1


def test_corrupt_artifact_is_flagged_by_list_and_refused_by_show(env: Path, trained_shared: BackboneSettings) -> None:
    shutil.copytree(trained_shared.backbones_dir / "shared-smoke", env / "backbones" / "shared-smoke")
    (env / "backbones" / "shared-smoke" / "manifest.json").write_text('{"format_version": 2}')
    listed = runner.invoke(app, ["backbones", "list"])
    assert listed.exit_code == 0 and "unreadable" in listed.output
    shown = runner.invoke(app, ["backbones", "show", "shared-smoke"])
    assert shown.exit_code == 1 and "manifest format 2 is not understood" in shown.output


def test_the_installed_command_prints_no_traceback(tmp_path: Path) -> None:
    spine = Path(sys.executable).with_name("spine")
    environment = {**os.environ, "SPINE_ARTIFACTS_DIR": str(tmp_path)}
    result = subprocess.run([str(spine), "train", "--profile", "nope"], capture_output=True, text=True, env=environment, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: unknown profile 'nope': choose one of smoke, quick, full"
    assert "Traceback" not in result.stdout + result.stderr
