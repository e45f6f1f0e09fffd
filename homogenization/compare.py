"""``spine compare``: run the study and write ``<out>/<run-id>/`` with results.json, report.md, report.html and the plots.

The folder is assembled under a hidden staging name beside it and renamed into place only when every file is written,
so a failed or interrupted run never leaves a half-written report that looks complete. The report is rendered from the
JSON text just written, the same content a later ``python -m homogenization.report`` reads.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

from homogenization.plots import require_matplotlib
from homogenization.report import render
from homogenization.study import Study, StudyConfig, json_safe
from shared_backbone.settings import BackboneSettings

log = logging.getLogger(__name__)


def _run_id(profile: str, out: Path) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_id, n = f"compare-{profile}-{stamp}", 1
    while (out / run_id).exists():
        n += 1
        run_id = f"compare-{profile}-{stamp}-{n}"
    return run_id


def compare(config: StudyConfig, settings: BackboneSettings | None = None, out: Path = Path("reports")) -> Path:
    """Run the study and write its report folder; returns the folder. Bad input raises a ``SpineError`` before any write."""
    study = Study(config, settings or BackboneSettings())  # checks the configuration
    require_matplotlib()
    results = json_safe(study.run())
    out = Path(out)
    created = not out.exists()
    run_id = _run_id(study.config.profile, out)
    results["timing"]["run_id"] = run_id
    staging = out / f".staging-{run_id}-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir(parents=True)
        text = json.dumps(results, indent=2, allow_nan=False) + "\n"
        (staging / "results.json").write_text(text, encoding="utf-8")
        render(json.loads(text), staging)
        final = out / run_id
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise
    log.info("report written to %s", final)
    return final
