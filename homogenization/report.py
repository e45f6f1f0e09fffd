"""The report: ``report.md``, ``report.html`` and PNG plots, drawn from the content of ``results.json`` only.

``render(results, folder)`` reads nothing else (no artifacts, no data), so every table and figure can be regenerated
from a saved ``results.json``: ``python -m homogenization.report reports/<run-id>/results.json``. Both documents come
from one list of blocks, so the Markdown and the HTML always say the same thing.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Block = tuple[str, Any]
SERVICE_OF = {"intent": "support", "sentiment": "sentiment", "topic": "sentiment", "recommendation": "recommender"}
METRIC_NAMES = {
    "intent_accuracy": "intent accuracy",
    "intent_macro_f1": "intent macro-F1",
    "oos_auroc": "out-of-scope AUROC",
    "sentiment_accuracy": "sentiment accuracy",
    "sentiment_macro_f1": "sentiment macro-F1",
    "topic_accuracy": "topic accuracy",
    "topic_macro_f1": "topic macro-F1",
    "recall@10": "Recall@10",
    "ndcg@10": "NDCG@10",
    "hr@10": "HR@10",
    "cold_recall@10": "cold-item Recall@10",
}
PLOTS = ("quality.png", "homogenization.png", "blast_radius.png", "similarity.png", "cost.png")


# --- formatting ----------------------------------------------------------------------------------


def num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def interval(summary: dict[str, Any] | None, digits: int = 3) -> str:
    if not summary or summary.get("mean") is None:
        return "n/a"
    text = num(summary["mean"], digits)
    if summary.get("low") is not None and summary.get("high") is not None:
        text += f" [{num(summary['low'], digits)}, {num(summary['high'], digits)}]"
    return text


def megabytes(value: Any) -> str:
    return "n/a" if value is None else f"{value / 2**20:,.1f} MB"


def p_value(value: Any) -> str:
    return "n/a" if value is None else (f"{value:.2g}" if value < 0.001 else f"{value:.3f}")


# --- sections ------------------------------------------------------------------------------------


def _summary(r: dict[str, Any]) -> list[str]:
    """A few plain sentences on the trade-off, each computed from the tables below."""
    lines = []
    cost = r["cost"]["by_deployment"]
    if "shared" in cost and "per-domain" in cost and cost["shared"]["parameters"]:
        ratio = cost["per-domain"]["parameters"] / cost["shared"]["parameters"]
        lines.append(
            f"Cost: per-domain serves {cost['per-domain']['backbones']} backbones with {ratio:.1f}x the parameters of shared "
            f"({num(cost['per-domain']['parameters'])} vs {num(cost['shared']['parameters'])})."
        )
    quality = r["quality"]["by_deployment"]
    for metric in ("intent_accuracy", "sentiment_accuracy", "topic_accuracy", "ndcg@10"):
        means = {d: row[metric]["mean"] for d, row in quality.items() if row[metric]["mean"] is not None}
        if means:
            best = max(means, key=lambda d: means[d])
            ranked = ", ".join(f"{d} {means[d]:.3f}" for d in sorted(means, key=lambda d: -means[d]))
            lines.append(f"{METRIC_NAMES[metric]}: best {best} ({ranked}).")
    test = r["quality"]["paired_tests"].get("shared vs per-domain")
    if test:
        parts = []
        for task in ("intent", "sentiment", "topic"):
            pooled = test["tasks"][task]["pooled"]
            parts.append(f"{task} p = {p_value(pooled['p_value'])} ({pooled['b']} vs {pooled['c']} discordant)")
        rec = test["tasks"]["recommendation"]["pooled"]
        parts.append(f"NDCG@10 difference {num(rec['mean_difference'])} [{num(rec['ci95_low'])}, {num(rec['ci95_high'])}]")
        lines.append("Shared vs per-domain on the same items (McNemar, pooled over seeds): " + "; ".join(parts) + ".")
    homogenization = r["homogenization"]["by_deployment"]
    if homogenization:
        cells = ", ".join(f"{d} {interval(h['families']['typo']['avg'], 2)}" for d, h in homogenization.items())
        lines.append(
            "Outcome homogenization (typo family, avg; 1 = the services' failures concentrate in the same groups no more "
            f"than their overall failure rates predict): {cells}."
        )
    blast = r["blast_radius"]["by_deployment"]
    for deployment, row in blast.items():
        parts = []
        if row.get("noise"):
            worst = row["noise"][-1]
            parts.append(f"noise at {worst['scale']:g} x std degrades {', '.join(worst['degraded_services']) or 'no service'}")
        if row.get("bad_update"):
            worst = row["bad_update"][-1]
            parts.append(f"{worst['steps']} shuffled-label steps degrade {', '.join(worst['degraded_services']) or 'no service'}")
        if parts:
            lines.append(
                f"Blast radius ({deployment}): a fault in {row['corrupted_backbone']} reaches "
                f"{len(row['services_on_corrupted_backbone'])} service(s) ({', '.join(row['services_on_corrupted_backbone'])}); "
                + "; ".join(parts)
                + " (more than 1 point lost)."
            )
    if r["setup"]["profile"] == "smoke":
        lines.append(
            "This is a smoke run: tiny samples, so the intervals are wide and the numbers show that the pipeline works, not a result."
        )
    return lines


def _setup(r: dict[str, Any]) -> list[Block]:
    s = r["setup"]
    rows = [
        ["command", f"`{s['command']}`"],
        ["deployments", ", ".join(s["deployments"])],
        ["profile", f"{s['profile']} ({', '.join(f'{k} {v}' for k, v in s['profile_settings'].items())})"],
        ["seeds", ", ".join(map(str, s["seeds"]))],
        ["base model", s["base_model"]],
        ["evaluation backend", s["evaluation_backend"]],
        ["support out-of-scope score", s["support_oos_score"]],
        ["recommender settings", ", ".join(f"{k} {v}" for k, v in s["recommender_settings"].items())],
        ["classic", f"{s['classic']['text']}; recommender: {s['classic']['recommender']}"],
        ["intervals", s["intervals"]],
        ["versions", ", ".join(f"{k} {v}" for k, v in s["versions"].items())],
        ["machine", ", ".join(f"{k} {v}" for k, v in s["machine"].items())],
    ]
    sizes = s["evaluation_sizes"]
    size_keys = list(next(iter(sizes.values())))
    return [
        ("table", (["", ""], rows)),
        ("p", s["splits"]),
        ("table", (["seed", *size_keys], [[seed, *(num(v.get(k)) for k in size_keys)] for seed, v in sizes.items()])),
        ("p", "Data files (sha256 prefix): " + ", ".join(f"{k} {v}" for k, v in s["data_hashes"].items())),
    ]


def _quality(r: dict[str, Any]) -> list[Block]:
    q = r["quality"]
    deployments = list(q["by_deployment"])
    rows = [[METRIC_NAMES.get(m, m), *(interval(q["by_deployment"][d][m]) for d in deployments)] for m in q["metrics"]]
    blocks: list[Block] = [
        (
            "p",
            "Mean with its 95% interval, per deployment (see Setup for the interval). Neural deployments: the service's "
            "own path on its backbone; classic: TF-IDF + logistic regression, plain EASE for the recommender.",
        ),
        ("table", (["metric", *deployments], rows)),
        ("img", ("quality.png", "quality per deployment with 95% intervals")),
    ]
    tests = q["paired_tests"]
    if tests:
        rows = []
        for name, test in tests.items():
            for task in ("intent", "sentiment", "topic"):
                t = test["tasks"][task]
                pooled = t["pooled"]
                seeds = "; ".join(f"b {x['b']} c {x['c']} p {p_value(x['p_value'])}" for x in t["per_seed"])
                rows.append(
                    [name, task, "McNemar", f"b {pooled['b']}, c {pooled['c']}, p {p_value(pooled['p_value'])} ({pooled['test']})", seeds]
                )
            t = test["tasks"]["recommendation"]
            pooled = t["pooled"]
            seeds = "; ".join(f"{num(x['mean_difference'])} [{num(x['ci95_low'])}, {num(x['ci95_high'])}]" for x in t["per_seed"])
            rows.append(
                [
                    name,
                    "recommendation",
                    "paired bootstrap, per-user NDCG@10 (a - b)",
                    f"{num(pooled['mean_difference'])} [{num(pooled['ci95_low'])}, {num(pooled['ci95_high'])}]",
                    seeds,
                ]
            )
        blocks += [
            ("h3", "Paired tests on the same items"),
            (
                "p",
                "b = items the first deployment gets right and the second wrong, c = the reverse; pooled = the seeds' "
                "items together (each seed's items stay paired).",
            ),
            ("table", (["pair", "task", "test", "pooled", "per seed"], rows)),
        ]
    return blocks


def _cost(r: dict[str, Any]) -> list[Block]:
    c = r["cost"]
    train = r.get("timing", {}).get("training_s", {})
    classic_fit = r.get("timing", {}).get("classic_fit_s", [])
    rows = []
    for d, row in c["by_deployment"].items():
        seconds = train.get(d) if d != "classic" else classic_fit
        mean_s = f"{sum(seconds) / len(seconds):,.1f} s" if seconds else "n/a"
        serving = c["serving"]["by_deployment"].get(d, {"measured": False})
        measured = serving.get("measured")
        rows.append(
            [
                d,
                num(row["backbones"]),
                num(row["parameters"]),
                megabytes(row["encoder_bytes"]),
                megabytes(row["onnx_int8_bytes"]) if row["onnx_int8_bytes"] is not None else "not exported",
                mean_s,
                num(serving.get("total_rss_mb"), 0) if measured else "not measured",
                num(serving.get("throughput_per_s"), 1) if measured else "not measured",
                _latency(serving.get("latency_ms")) if measured else "not measured",
            ]
        )
    blocks: list[Block] = [
        (
            "p",
            f"Backbones of seed {c['seed']} (parameters and encoder bytes from the manifests and the artifact files). "
            "Training time: the manifests' training_seconds summed over a deployment's backbones, mean over seeds "
            "(classic: the TF-IDF fits, measured here).",
        ),
        (
            "table",
            (
                [
                    "deployment",
                    "backbones",
                    "parameters",
                    "encoder safetensors",
                    "ONNX int8",
                    "training time",
                    "total RSS MB",
                    "throughput req/s",
                    "latency p50 / p95 ms",
                ],
                rows,
            ),
        ),
        ("p", c["serving"].get("note") or _serving_source(c["serving"])),
        ("img", ("cost.png", "backbone parameters per deployment")),
    ]
    if "classic" in c["by_deployment"]:
        models = c["by_deployment"]["classic"]["models"]
        blocks.append(
            (
                "table",
                (
                    ["classic model", "parameters", "bytes", "vocabulary"],
                    [[k, num(v["parameters"]), megabytes(v["bytes"]), num(v.get("vocabulary"))] for k, v in models.items()],
                ),
            )
        )
    return blocks


def _serving_source(serving: dict[str, Any]) -> str:
    attached = serving.get("attached_at")
    when = f", attached after the study on {attached} (`python -m homogenization.report ... --serving`)" if attached else ""
    return f"Serving figures from {serving['source']}{when}."


def _latency(latency: Any) -> str:
    if not isinstance(latency, dict):
        return "n/a"
    return "; ".join(f"{s} {v.get('p50')} / {v.get('p95')}" for s, v in latency.items() if isinstance(v, dict))


def _homogenization(r: dict[str, Any]) -> list[Block]:
    h = r["homogenization"]
    blocks: list[Block] = [
        (
            "p",
            "Bommasani et al. (NeurIPS 2022), group level, as in the authors' code: with r_gj the failure rate of "
            "service j in group g and r_j its overall rate, avg = sum_g prod_j q_gj r_gj / (prod_j r_j sum_g prod_j q_gj), "
            "unif = mean_g prod_j r_gj / prod_j r_j, worst = max_g prod_j r_gj / prod_j r_j. 1 = no more concentration of "
            "failures in shared groups than independence predicts; above 1 = the services fail in the same groups. The "
            "services answer different items, so this is not a count of texts every service failed.",
        ),
        ("h3", "How a failure is counted"),
        ("ul", [f"{system} ({task}): {h['failure_definitions'][system]}" for system, task in h["systems"].items()]),
        ("h3", "Groups"),
        ("ul", [f"{family}: {h['group_definitions'][family]}" for family in h["families"]]),
    ]
    rows = []
    for d, row in h["by_deployment"].items():
        for family in h["families"]:
            f = row["families"][family]
            rows.append([d, family, interval(f["avg"], 2), interval(f["unif"], 2), interval(f["worst"], 2)])
    blocks += [("table", (["deployment", "family", "avg", "unif", "worst"], rows)), ("img", ("homogenization.png", "homogenization"))]
    rows = [[d, *(interval(row["failure_rates"][s]) for s in h["systems"])] for d, row in h["by_deployment"].items()]
    blocks += [("h3", "Overall failure rates"), ("table", (["deployment", *h["systems"]], rows))]
    rows = []
    for d, row in h["by_deployment"].items():
        for family in h["families"]:
            detail = row["families"][family]["detail"]
            for g, group in enumerate(detail["groups"]):
                cells = [f"{num(detail['rates'][s][g])} (n {detail['counts'][s][g]})" for s in h["systems"]]
                rows.append([d, family, group, *cells])
    seed = next(iter(h["by_deployment"].values()))["families"][h["families"][0]]["detail"]["seed"] if h["by_deployment"] else 0
    blocks += [("h3", f"Failure rate per group (seed {seed})"), ("table", (["deployment", "family", "group", *h["systems"]], rows))]
    return blocks


def _consistency(r: dict[str, Any]) -> list[Block]:
    e = r["error_consistency"]
    if not e["pairs"]:
        return [("p", "Needs two deployments.")]
    rows = [[name, *(interval(p["tasks"][t], 2) for t in e["tasks"])] for name, p in e["pairs"].items()]
    return [
        (
            "p",
            "Geirhos et al. (NeurIPS 2020): Cohen's kappa between two deployments' error vectors on the same items, "
            "1 = the same errors, 0 = the overlap independent errors at these accuracies would give. Recommendation: a "
            "user's error is HR@10 = 0. n/a: one side never or always errs.",
        ),
        ("table", (["pair", *e["tasks"]], rows)),
    ]


def _blast(r: dict[str, Any]) -> list[Block]:
    b = r["blast_radius"]
    if not b["by_deployment"]:
        return [("p", "Not run: needs the shared or the per-domain deployment.")]
    s = b["setup"]
    blocks: list[Block] = [
        (
            "ul",
            [
                f"corrupted: {s['corrupted']}; seed {s['seed']}",
                f"weight noise: {s['noise']}; scales {', '.join(f'{x:g}' for x in s['noise_scales'])}",
                f"bad update: {s['bad_update']}; steps {', '.join(map(str, s['bad_update_steps']))}",
                f"evaluated on the first {s['items_per_task']} test items of each task's sample and "
                f"{s['recommender']['users'] if s['recommender'] else 'n/a'} users over "
                f"{s['recommender']['catalogue'] if s['recommender'] else 'n/a'} films; "
                f"a service is degraded when one of its metrics falls by more than {-s['degraded_when_change_below']:.2f}",
            ],
        ),
        ("img", ("blast_radius.png", "metric change vs fault size per service")),
    ]
    metrics = [m for names in s["service_metrics"].values() for m in names]
    for d, row in b["by_deployment"].items():
        rows = [["none (baseline)", *(num(row["baseline"][m]) for m in metrics), ""]]
        for kind, key, label in (("noise", "scale", "noise x std"), ("bad_update", "steps", "shuffled-label steps")):
            for level in row[kind]:
                rows.append(
                    [
                        f"{label} {level[key]:g}",
                        *(f"{level['change'][m]:+.3f}" for m in metrics),
                        ", ".join(level["degraded_services"]) or "none",
                    ]
                )
        blocks += [
            ("h3", f"{d}: {row['corrupted_backbone']} corrupted (serves {', '.join(row['services_on_corrupted_backbone'])})"),
            ("table", (["fault", *(METRIC_NAMES.get(m, m) for m in metrics), "degraded services"], rows)),
        ]
    return blocks


def _similarity(r: dict[str, Any]) -> list[Block]:
    s = r["representation_similarity"]
    if not s["encoders"]:
        return [("p", s.get("note", "Not run."))]
    subsets = list(s["pairs"])
    rows = [[pair, *(interval(s["pairs"][sub].get(pair), 3) for sub in subsets)] for pair in s["pairs"]["all"]]
    return [
        (
            "p",
            "Linear CKA (Kornblith et al. 2019) on one probe set drawn from all three domains ("
            + ", ".join(f"{k} {v}" for k, v in s.get("probe_texts", {}).items())
            + " texts), and on each domain's part; mean over seeds with its interval. 1 = the same representation up to "
            "rotation and scale.",
        ),
        ("table", (["pair", *subsets], rows)),
        ("img", ("similarity.png", "linear CKA between encoders")),
    ]


def blocks(r: dict[str, Any]) -> list[Block]:
    out: list[Block] = [
        (
            "h1",
            f"Spine homogenization study: {', '.join(r['setup']['deployments'])} ({r['setup']['profile']}, "
            f"{len(r['setup']['seeds'])} seed(s))",
        ),
        ("h2", "Summary"),
        ("ul", _summary(r)),
        ("h2", "Setup"),
        *_setup(r),
        ("h2", "Quality"),
        *_quality(r),
        ("h2", "Cost"),
        *_cost(r),
        ("h2", "Outcome homogenization"),
        *_homogenization(r),
        ("h2", "Error consistency"),
        *_consistency(r),
        ("h2", "Blast radius"),
        *_blast(r),
        ("h2", "Representation similarity"),
        *_similarity(r),
        ("h2", "Not measured or approximated"),
        ("ul", r.get("limitations", [])),
    ]
    timing = r.get("timing", {})
    if timing:
        phases = ", ".join(f"{k} {v:,.1f} s" for k, v in timing.get("phases_s", {}).items())
        out += [
            ("h2", "Timing"),
            (
                "p",
                f"Run {timing.get('run_id', '')} started {timing.get('started_at')}, finished "
                f"{timing.get('finished_at')}; {phases}. Trained now: "
                f"{', '.join(timing.get('artifacts_trained', [])) or 'nothing (every artifact reused)'}.",
            ),
        ]
    return out


# --- writers -------------------------------------------------------------------------------------


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(doc: Sequence[Block]) -> str:
    lines: list[str] = []
    for kind, body in doc:
        if kind in ("h1", "h2", "h3"):
            lines += ["#" * int(kind[1]) + " " + body, ""]
        elif kind == "p":
            lines += [body, ""]
        elif kind == "ul":
            lines += [*(f"- {item}" for item in body), ""] if body else ["(none)", ""]
        elif kind == "table":
            header, rows = body
            lines.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
            lines.append("|" + "---|" * len(header))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            lines.append("")
        elif kind == "img":
            lines += [f"![{body[1]}]({body[0]})", ""]
    return "\n".join(lines)


def _inline(text: str) -> str:
    """Escape, then turn `code` spans into <code>."""
    parts = html.escape(str(text)).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def to_html(doc: Sequence[Block], title: str) -> str:
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;line-height:1.45}"
        "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #ccc;padding:0.25em 0.5em;text-align:left}"
        "th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}code{background:#f6f6f6;padding:0 0.2em}</style>",
        "</head><body>",
    ]
    for kind, body in doc:
        if kind in ("h1", "h2", "h3"):
            out.append(f"<{kind}>{_inline(body)}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{_inline(body)}</p>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in body) + "</ul>" if body else "<p>(none)</p>")
        elif kind == "table":
            header, rows = body
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in header) + "</tr></thead><tbody>")
            out += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in rows]
            out.append("</tbody></table>")
        elif kind == "img":
            out.append(
                f'<figure><img src="{html.escape(body[0])}" alt="{html.escape(body[1])}"><figcaption>{html.escape(body[1])}</figcaption></figure>'
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def render(results: dict[str, Any], folder: Path) -> list[Path]:
    """Write report.md, report.html and the PNG plots into ``folder`` from ``results`` alone; returns the files written."""
    from homogenization import plots

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = plots.draw_all(results, folder)
    doc = blocks(results)
    title = str(doc[0][1])
    (folder / "report.md").write_text(markdown(doc), encoding="utf-8")
    (folder / "report.html").write_text(to_html(doc, title), encoding="utf-8")
    return [*written, folder / "report.md", folder / "report.html"]


def attach_serving(results: dict[str, Any], serving_path: Path) -> dict[str, Any]:
    """A copy of ``results`` with a serving benchmark's figures in its cost section (the benchmark ran after the study).

    The serving figures are the only part of a study measured outside it; everything else stays as the study
    wrote it. The benchmark must be of the study's profile and measure at least one of its deployments.
    """
    from datetime import UTC, datetime

    from homogenization.study import serving_figures

    setup = results["setup"]
    try:
        measured = json.loads(serving_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{serving_path} cannot be read: {exc}") from None
    profile = measured.get("profile") if isinstance(measured, dict) else None
    if profile != setup["profile"]:
        raise ValueError(f"{serving_path} measured the {profile!r} profile, the study is {setup['profile']!r}")
    serving = serving_figures(serving_path, setup["deployments"], setup["profile"])
    if not any(row.get("measured") for row in serving["by_deployment"].values()):
        raise ValueError(f"{serving_path}: {serving.get('note', 'no deployment of this study was measured')}")
    serving["attached_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    serving["backend"] = measured.get("backend")
    return {**results, "cost": {**results["cost"], "serving": serving}}


def _replace_json(path: Path, content: dict[str, Any]) -> None:
    """Write beside the file, then rename over it: a reader sees the old file or the new one, never half of one."""
    import os
    import tempfile

    handle, staged = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(json.dumps(content, indent=2, allow_nan=False) + "\n")
        os.chmod(staged, path.stat().st_mode & 0o777)  # mkstemp makes it owner-only; keep the file's own permissions
        os.replace(staged, path)
    except BaseException:
        Path(staged).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> None:
    """Regenerate a report folder's documents and plots from its results.json (optionally attaching serving figures first)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m homogenization.report", description=main.__doc__)
    parser.add_argument("results", type=Path, help="REPORT_FOLDER/results.json")
    parser.add_argument("--serving", type=Path, help="bench/serving.py's JSON to attach to the cost section before rendering")
    args = parser.parse_args(argv)
    try:
        results = json.loads(args.results.read_text(encoding="utf-8"))
        if not isinstance(results, dict) or not isinstance(results.get("setup"), dict):
            raise ValueError("not a spine compare results file (no 'setup' section)")
        if args.serving is not None:
            results = attach_serving(results, args.serving)
        render(results, args.results.parent)  # render first: a failure leaves results.json as it was
        if args.serving is not None:
            _replace_json(args.results, results)
            print(f"attached {args.serving} to {args.results}")
    except (OSError, ValueError, TypeError) as exc:  # json errors are ValueErrors
        raise SystemExit(f"error: {args.results}: {exc}") from None
    except KeyError as exc:
        raise SystemExit(f"error: {args.results}: a section or field is missing: {exc}") from None
    print(f"rendered {args.results.parent}")


if __name__ == "__main__":
    main()
