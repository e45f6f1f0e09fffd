"""The app's Homogenization page: a ``spine compare`` report, drawn from its ``results.json``.

It shows the same blocks as ``report.md`` and ``report.html`` (``homogenization.report.blocks``), so the
page, the Markdown and the HTML never disagree. Report folders are found under a few roots: local runs
in ``reports/<run-id>/`` and the committed ``full`` study in ``docs/homogenization/<run-id>/``.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homogenization.report import Block, blocks


@dataclass(frozen=True)
class ReportFolder:
    path: Path
    label: str
    finished_at: str  # ISO time, '' when the run did not record it; sorts the newest first


def read_results(folder: Path) -> dict[str, Any]:
    """The folder's results.json; a ``ValueError`` that says what is wrong when it cannot be used."""
    path = folder / "results.json"
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} cannot be read: {exc}") from None
    if not isinstance(results, dict) or not isinstance(results.get("setup"), dict):
        raise ValueError(f"{path} is not a spine compare results file (no 'setup' section)")
    return results


def _describe(folder: Path) -> ReportFolder:
    try:
        setup = (results := read_results(folder))["setup"]
        finished = str(results.get("timing", {}).get("finished_at") or "")
        label = (
            f"{folder.parent.name}/{folder.name}: {', '.join(setup.get('deployments', []))} | {setup.get('profile', '?')} | "
            f"{len(setup.get('seeds', []))} seed(s)"
        )
    except (ValueError, AttributeError, TypeError):
        finished, label = "", f"{folder.parent.name}/{folder.name}: unreadable results.json"
    return ReportFolder(folder, label, finished)


def find_reports(roots: Sequence[Path]) -> list[ReportFolder]:
    """Every report folder in ``roots`` (a root itself, or its direct sub-folders), newest first.

    Hidden folders are skipped: ``spine compare`` writes into a ``.staging-*`` folder until the report is complete.
    """
    folders: dict[Path, None] = {}
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for results in [root / "results.json", *sorted(root.glob("*/results.json"))]:
            if results.is_file() and not results.parent.name.startswith("."):
                folders.setdefault(results.parent.resolve())
    found = [_describe(folder) for folder in folders]
    return sorted(found, key=lambda r: (r.finished_at, r.path.name), reverse=True)


def _unique(header: Sequence[Any]) -> list[str]:
    """Column names a data frame can carry: the setup table's header is two empty strings."""
    seen: dict[str, int] = {}
    out = []
    for name in map(str, header):
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}{' ' * (seen[name] - 1)}")
    return out


def _text(body: Any) -> str:
    """Markdown for Streamlit, whose ``$`` starts LaTeX: a ticker such as $TSLA must stay a dollar sign."""
    return str(body).replace("$", "\\$")


def show(doc: Sequence[Block], folder: Path) -> None:
    import pandas as pd
    import streamlit as st

    for kind, body in doc:
        if kind == "h1":
            st.header(_text(body))
        elif kind == "h2":
            st.subheader(_text(body))
        elif kind == "h3":
            st.markdown(f"#### {_text(body)}")
        elif kind == "p":
            st.markdown(_text(body))
        elif kind == "ul":
            st.markdown("\n".join(f"- {_text(item)}" for item in body) if body else "(none)")
        elif kind == "table":
            header, rows = body
            frame = pd.DataFrame([[str(c) for c in row] for row in rows], columns=_unique(header))
            st.dataframe(frame, hide_index=True, width="stretch")
        elif kind == "img":
            image = folder / body[0]
            if image.is_file():
                st.image(str(image), caption=body[1])
            else:
                st.caption(f"{body[1]}: {body[0]} is missing; `python -m homogenization.report {folder}/results.json` draws it again")


def zipped(folder: Path) -> bytes:
    """The whole report folder (report.html links its plots by relative path, so it travels with them)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            if path.is_file():
                archive.write(path, f"{folder.name}/{path.name}")
    return buffer.getvalue()


def page(roots: Sequence[str | Path]) -> None:
    import streamlit as st

    st.title("Homogenization")
    st.caption("What sharing one backbone costs and buys: quality, cost, correlated failure, blast radius (`spine compare`).")
    paths = [Path(r) for r in roots]
    reports = find_reports(paths)
    if not reports:
        st.info(
            "No report yet. Run `spine compare --profile smoke` (minutes) or `--profile full` (hours); "
            f"this page looks in {', '.join(str(p) for p in paths)}."
        )
        return
    # indexes as options: Streamlit matches a choice by its label, and two roots may hold a run of the same name
    index = st.selectbox("Report", range(len(reports)), format_func=lambda i: reports[i].label)
    choice = reports[index]
    try:
        doc = blocks(read_results(choice.path))
    except Exception as exc:  # a results.json from another version or edited by hand: say so, never a traceback
        st.error(f"{choice.path} cannot be shown: {type(exc).__name__}: {exc}")
        return
    st.download_button(
        "Download the report (HTML, Markdown, plots, results.json)",
        zipped(choice.path),
        file_name=f"{choice.path.name}.zip",
        mime="application/zip",
    )
    try:
        show(doc, choice.path)
    except Exception as exc:
        st.error(f"{choice.path} cannot be shown in full: {type(exc).__name__}: {exc}")
