"""The `spine` command line: data checks, training, and the backbone artifact store.

Every failure a user can cause ends with one ``error: ...`` line on stderr and exit code 1; only
bugs print a traceback.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from shared_backbone.errors import ConfigError, SpineError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    help="Spine: one fine-tuned backbone behind three services.", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False
)
data_app = typer.Typer(help="The vendored public data sets.", no_args_is_help=True)
backbones_app = typer.Typer(help="Trained backbone artifacts.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(backbones_app, name="backbones")
eval_app = typer.Typer(help="Evaluate a service on held-out data (JSON out).", no_args_is_help=True)
kb_app = typer.Typer(help="The support bot's knowledge base.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
app.add_typer(kb_app, name="kb")


def console() -> Console:
    """A console made per command, so it sizes itself to the terminal (or $COLUMNS) of that run."""
    return Console()


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a ``SpineError`` into one line on stderr and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except SpineError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None

    return wrapper


@app.callback()
def configure(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")] = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("shared_backbone", "services", "homogenization", "apps"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)


@data_app.command("check")
@reports_errors
def data_check() -> None:
    """Load every data set, validate its schema, and show the splits."""
    from shared_backbone import data as datasets
    from shared_backbone.settings import BackboneSettings

    root = BackboneSettings().data_dir
    table = Table("data set", "train", "validation", "test", "labels / items", "notes")
    for loader in (datasets.load_banking77, datasets.load_financial_sentiment, datasets.load_financial_topic):
        part = loader(root)
        table.add_row(part.name, str(len(part.train)), str(len(part.validation)), str(len(part.test)), str(len(part.labels)), "")
    oos = datasets.load_clinc_out_of_scope(root)
    table.add_row("clinc150 out-of-scope", str(len(oos.train)), str(len(oos.validation)), str(len(oos.test)), "-", "fallback negatives")
    movielens = datasets.load_movielens(root)
    note = f"{len(movielens.orphan_lines)} rating(s) of unknown films skipped" if movielens.orphan_lines else ""
    table.add_row(
        "movielens ratings",
        str(len(movielens.train)),
        str(len(movielens.validation)),
        str(len(movielens.test)),
        str(len(movielens.movies)),
        note,
    )
    console().print(table)
    console().print(f"[green]all data sets in {root} are readable[/green]")


@app.command()
@reports_errors
def train(
    deployment: Annotated[str, typer.Option(help="shared | per-domain | frozen")] = "shared",
    profile: Annotated[str, typer.Option(help="smoke (seconds) | quick (minutes) | full (the benchmark)")] = "quick",
    seed: Annotated[int | None, typer.Option(help="Seed for sampling, splits and training (default: SPINE_SEED or 0).")] = None,
    sampling: Annotated[str, typer.Option(help="Multi-task batch order: proportional | round-robin")] = "proportional",
    epochs: Annotated[float | None, typer.Option(help="Override the profile's epochs (0 < epochs <= 20).")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    export: Annotated[bool, typer.Option(help="Export and verify ONNX fp32 + int8 for serving when training ends.")] = True,
) -> None:
    """Fine-tune the backbone(s) of a deployment, fit their heads, and store the artifacts."""
    from shared_backbone.tasks import parse_deployment, parse_profile, parse_sampling
    from shared_backbone.training import train_deployment

    parse_deployment(deployment), parse_profile(profile), parse_sampling(sampling)  # fail before the slow imports
    manifests = train_deployment(deployment, profile, seed=seed, sampling=sampling, epochs=epochs, progress=progress)
    table = Table("backbone", "tasks", "train s", "parameters", "test metrics")
    for m in manifests:
        table.add_row(m.id, ", ".join(m.tasks), f"{m.training_seconds:.1f}", f"{m.parameter_count:,}", _metrics_summary(m.metrics))
    console().print(table)
    if export:
        for m in manifests:
            try:
                _export_and_report(m.id)
            except Exception as exc:  # the training is done and stored: a failed export only means serving on torch
                typer.echo(
                    f"warning: {m.id} trained, but its ONNX export failed ({type(exc).__name__}: {exc}); it serves on torch", err=True
                )


def _export_and_report(backbone_id: str) -> None:
    from shared_backbone.artifacts import ArtifactStore
    from shared_backbone.onnx_export import export_artifact
    from shared_backbone.settings import BackboneSettings

    settings = BackboneSettings()
    with console().status(f"exporting {backbone_id} to ONNX and verifying it"):
        exports = export_artifact(ArtifactStore(settings.backbones_dir), backbone_id, threads=settings.threads)
    table = Table("backbone", "backend", "MB", "cosine mean / min", "head accuracy change (points)", "servable")
    for backend, e in exports.items():
        deltas = ", ".join(f"{task} {delta * 100:+.2f}" for task, delta in e["head_accuracy_delta"].items())
        verdict = "yes" if e["servable"] else f"no: {e['reason']}"
        table.add_row(backbone_id, backend, f"{e['bytes'] / 2**20:.0f}", f"{e['cosine_mean']:.4f} / {e['cosine_min']:.4f}", deltas, verdict)
    console().print(table)


def _metrics_summary(metrics: dict[str, dict[str, dict[str, float]]]) -> str:
    parts = []
    for task, splits in metrics.items():
        test = splits.get("test", {})
        if "accuracy" in test:
            parts.append(f"{task} acc {test['accuracy']:.3f} F1 {test['macro_f1']:.3f}")
        elif "ndcg@10" in test:
            parts.append(f"{task} HR@10 {test['hr@10']:.3f} NDCG@10 {test['ndcg@10']:.3f}")
    return "\n".join(parts)


def _short_metrics(metrics: dict[str, dict[str, dict[str, float]]]) -> str:
    test = {task: splits.get("test", {}) for task, splits in metrics.items()}
    return " ".join(f"{task[:3]} {values.get('accuracy', values.get('ndcg@10', 0.0)):.3f}" for task, values in test.items())


@backbones_app.command("list")
@reports_errors
def backbones_list() -> None:
    """Every artifact in the store, with what it was trained on."""
    from shared_backbone.artifacts import ArtifactStore
    from shared_backbone.settings import BackboneSettings

    store = ArtifactStore(BackboneSettings().backbones_dir)
    entries = store.entries()
    if not entries:
        console().print(f"no backbones in {store.root} yet: run `spine train --deployment shared --profile quick`")
        return
    table = Table("id", "deployment", "profile", "seed", "services", "train s", "created", "test metrics")
    for entry in entries:
        m = entry.manifest
        if m is None:
            table.add_row(entry.id, "[red]unreadable[/red]", "", "", "", "", "", entry.problem or "")
            continue
        table.add_row(
            m.id,
            m.deployment,
            m.profile,
            str(m.seed),
            ", ".join(m.services),
            f"{m.training_seconds:.0f}",
            m.created_at[:16],
            _short_metrics(m.metrics),
        )
    console().print(table)


@backbones_app.command("show")
@reports_errors
def backbones_show(backbone_id: Annotated[str, typer.Argument(help="An id from `spine backbones list`.")]) -> None:
    """The full manifest of one artifact, as JSON."""
    from shared_backbone.artifacts import ArtifactStore
    from shared_backbone.settings import BackboneSettings

    manifest = ArtifactStore(BackboneSettings().backbones_dir).manifest(backbone_id)
    typer.echo(json.dumps(manifest.model_dump(), indent=2))


@backbones_app.command("export")
@reports_errors
def backbones_export(
    backbone_id: Annotated[str, typer.Argument(help="An id from `spine backbones list`.")],
    format: Annotated[str, typer.Option("--format", help="Only onnx for now.")] = "onnx",
    quantize: Annotated[str, typer.Option(help="int8 (also write model.int8.onnx) or none.")] = "int8",
) -> None:
    """Export the encoder to ONNX (fp32, and int8 unless --quantize none), verify both, record them in the manifest."""
    if format != "onnx":
        raise ConfigError(f"unknown export format '{format}': only onnx")
    if quantize not in ("int8", "none"):
        raise ConfigError(f"unknown quantization '{quantize}': int8 or none")
    if quantize == "none":
        from shared_backbone.artifacts import ArtifactStore
        from shared_backbone.onnx_export import export_artifact
        from shared_backbone.settings import BackboneSettings

        settings = BackboneSettings()
        export_artifact(ArtifactStore(settings.backbones_dir), backbone_id, quantize=False, threads=settings.threads)
        console().print(f"{backbone_id}: onnx written and verified")
        return
    _export_and_report(backbone_id)


@backbones_app.command("serve")
@reports_errors
def backbones_serve(
    backbone_id: Annotated[str, typer.Argument(help="The artifact to serve, e.g. shared-quick.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8200,
    backend: Annotated[str, typer.Option(help="auto (onnx-int8 where verified, else torch) | torch | onnx | onnx-int8")] = "auto",
) -> None:
    """Serve one backbone over HTTP (OpenAI-style /v1/embeddings, /v1/analyse, heads, /health, /metrics)."""
    import uvicorn

    from shared_backbone.artifacts import ArtifactStore
    from shared_backbone.server import BackboneServerSettings, create_backbone_app

    settings = BackboneServerSettings(artifact=backbone_id, backend=backend)
    store = ArtifactStore(settings.backbone.backbones_dir)
    store.manifest(backbone_id)  # an unknown id is one line, not a server that 503s
    chosen, reason = store.choose_backend(backbone_id, backend)
    typer.echo(f"serving {backbone_id} on {chosen} ({reason}) at http://{host}:{port}", err=True)
    uvicorn.run(create_backbone_app(settings), host=host, port=port, log_level="warning")


def _support_settings(deployment: str, profile: str | None, kb_dir: Path | None):  # type: ignore[no-untyped-def]
    from services.support.settings import SupportSettings
    from shared_backbone.tasks import parse_deployment, parse_profile

    parse_deployment(deployment)
    if profile is not None:
        parse_profile(profile)
    settings = SupportSettings(deployment=deployment, profile=profile)
    if kb_dir is not None:
        settings.kb_dir = kb_dir
    return settings


@kb_app.command("index")
@reports_errors
def kb_index(
    deployment: Annotated[str, typer.Option(help="Whose support backbone encodes the articles.")] = "shared",
    profile: Annotated[str | None, typer.Option(help="Profile of the backbone (default: the deployment file's).")] = None,
    kb_dir: Annotated[Path | None, typer.Option(help="A folder of Markdown articles (default: data/support_kb).")] = None,
) -> None:
    """Rebuild the FAISS index of the knowledge-base articles."""
    from services.support.bot import SupportBot

    bot = SupportBot(_support_settings(deployment, profile, kb_dir))
    bot.client.warm_up()
    result = bot.kb.reindex(bot.client)
    console().print(
        f"indexed {result['articles']} articles ({result['passages']} passages) with {result['backbone_id']} in {result['seconds']} s"
    )


@eval_app.command("support")
@reports_errors
def eval_support(
    backbone: Annotated[str, typer.Option(help="Artifact id, e.g. shared-full (see `spine backbones list`).")],
    limit: Annotated[int | None, typer.Option(min=1, help="Use only the first N test queries of each set.")] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the JSON here.")] = None,
    kb_dir: Annotated[Path | None, typer.Option(help="A folder of Markdown articles (default: data/support_kb).")] = None,
) -> None:
    """Intent accuracy, out-of-scope AUROC and recall, answer accuracy@1, clarify and hand-off rates."""
    from services.support.bot import SupportBot
    from services.support.evaluation import evaluate_support
    from shared_backbone.client import InProcessBackboneClient

    settings = _support_settings("shared", None, kb_dir)
    backbones = settings.backbone
    client = InProcessBackboneClient(
        backbones.backbones_dir, backbone, threads=backbones.threads, cache_path=backbones.cache_dir / "embeddings.sqlite"
    )
    result = evaluate_support(SupportBot(settings, client), limit=limit)
    text = json.dumps(result, indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    typer.echo(text)


@eval_app.command("recommender")
@reports_errors
def eval_recommender(
    backbone: Annotated[str | None, typer.Option(help="Artifact id for the text and hybrid models; omit for the baselines only.")] = None,
    split: Annotated[str, typer.Option(help="test, or validation for tuning (learns from the training period only).")] = "test",
    k: Annotated[int, typer.Option(min=1, max=100, help="Cut-off of the ranking metrics.")] = 10,
    text_weight: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="Weight of the text profile in the blend.")] = None,
    text_neighbours: Annotated[int | None, typer.Option(min=0, max=100, help="Text neighbours joined into EASE; 0: plain EASE.")] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the JSON here.")] = None,
) -> None:
    """Full-catalogue ranking on each user's latest 20%: popularity, ItemKNN, EASE, text, hybrid; a cold-item pool.

    The hybrid uses the recommender service's settings (SPINE_RECOMMENDER_*), so it measures what the API serves.
    """
    from services.recommender.evaluation import evaluate, likes_before
    from services.recommender.settings import RecommenderSettings
    from shared_backbone.client import InProcessBackboneClient
    from shared_backbone.data import load_movielens
    from shared_backbone.settings import BackboneSettings
    from shared_backbone.tasks import PROFILES
    from shared_backbone.training import prepare_recommendation

    if split not in ("test", "validation"):
        raise ConfigError(f"--split must be test or validation, not '{split}'")
    overrides = {"text_weight": text_weight, "text_neighbours": text_neighbours}
    service = RecommenderSettings(**{name: value for name, value in overrides.items() if value is not None})
    settings = BackboneSettings()
    data = prepare_recommendation(settings.data_dir, PROFILES["full"], settings.seed)
    vectors = None
    if backbone is not None:
        client = InProcessBackboneClient(
            settings.backbones_dir, backbone, threads=settings.threads, cache_path=settings.cache_dir / "embeddings.sqlite"
        )
        vectors = client.encode([data.movies[m].text() for m in data.catalogue])
    result = evaluate(data, likes_before(load_movielens(settings.data_dir), split), vectors, settings=service, split=split, k=k)
    result["backbone"] = backbone
    text = json.dumps(result, indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    typer.echo(text)


@eval_app.command("sentiment")
@reports_errors
def eval_sentiment(
    backbone: Annotated[str, typer.Option(help="Artifact id whose sentiment and topic heads to evaluate.")],
    replays: Annotated[int, typer.Option(min=0, max=200, help="Replays with one injected surge each.")] = 10,
    burst: Annotated[int, typer.Option(min=5, max=500, help="Bearish stories in each injected surge.")] = 40,
    limit: Annotated[int | None, typer.Option(min=10, help="Use only the first N test stories (a quick look).")] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the JSON here.")] = None,
) -> None:
    """Sentiment and topic accuracy / macro-F1 on held-out data; surge precision, recall and delay on replays."""
    from services.sentiment.evaluation import evaluate
    from services.sentiment.settings import SentimentSettings
    from shared_backbone.client import InProcessBackboneClient
    from shared_backbone.settings import BackboneSettings

    settings = BackboneSettings()
    client = InProcessBackboneClient(
        settings.backbones_dir, backbone, threads=settings.threads, cache_path=settings.cache_dir / "embeddings.sqlite"
    )
    result = {"backbone": backbone, **evaluate(client, SentimentSettings(), replays=replays, burst=burst, limit=limit)}
    text = json.dumps(result, indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    typer.echo(text)


@app.command()
@reports_errors
def serve(
    engine: Annotated[str, typer.Option(help="ray: Ray Serve on this machine (or the cluster RAY_ADDRESS names)")] = "ray",
    deployment: Annotated[str, typer.Option(help="shared | per-domain | frozen, or a path to a deployment TOML")] = "shared",
    profile: Annotated[str | None, typer.Option(help="Backbone profile (default: the deployment file's).")] = None,
    port: Annotated[int, typer.Option(help="Port of Ray Serve's HTTP proxy (services at /support, /recommender, /sentiment).")] = 8000,
    replicas: Annotated[int, typer.Option(help="Replicas of every backbone and service deployment.", min=1, max=64)] = 1,
) -> None:
    """Scale out: the backbone(s) and the services as Ray Serve deployments, until Ctrl-C."""
    if engine != "ray":
        raise ConfigError(f"unknown engine '{engine}': ray (for local processes use `spine up`)")
    try:
        import ray
    except ImportError:
        raise ConfigError("Ray Serve is not installed: pip install -e '.[ray]'") from None
    import time

    from apps import launch, ray_serve
    from shared_backbone.client import load_deployment
    from shared_backbone.settings import BackboneSettings

    settings = BackboneSettings()
    config = load_deployment(deployment, settings.deploy_dir)
    if missing := launch.missing_artifacts(deployment, profile or config.profile, settings):
        raise ConfigError(f"missing backbone artifact(s) {', '.join(missing)}: run `spine train --deployment {config.shape}`")
    ray.init(runtime_env={"env_vars": ray_serve.forwarded_environment()}, include_dashboard=False)
    try:
        for service, url in ray_serve.run(config, profile or config.profile, settings, port=port, replicas=replicas).items():
            console().print(f"{service:<12} {url}")
        console().print("running on Ray Serve; Ctrl-C stops everything")
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        console().print("stopping")
    finally:
        from ray import serve as ray_serve_api

        ray_serve_api.shutdown()
        ray.shutdown()


@app.command()
@reports_errors
def up(
    deployment: Annotated[str, typer.Option(help="shared | per-domain | frozen, or a path to a deployment TOML")] = "shared",
    profile: Annotated[str | None, typer.Option(help="Backbone profile (default: the deployment file's, quick).")] = None,
    host: Annotated[str, typer.Option(help="Address every process listens on.")] = "127.0.0.1",
    support_port: Annotated[int, typer.Option(help="Port of the support API.")] = 8101,
    recommender_port: Annotated[int, typer.Option(help="Port of the recommender API.")] = 8102,
    sentiment_port: Annotated[int, typer.Option(help="Port of the sentiment monitor API.")] = 8103,
    backbone_port: Annotated[int, typer.Option(help="Port of the first backbone server (the next ones count up).")] = 8200,
    ui_port: Annotated[int, typer.Option(help="Port of the Streamlit UI.")] = 8501,
    ui: Annotated[bool, typer.Option(help="Start the Streamlit UI too.")] = True,
    in_process: Annotated[bool, typer.Option(help="No backbone servers: each service loads its model itself.")] = False,
    train_missing: Annotated[bool, typer.Option(help="Train backbones the deployment needs and lacks.")] = True,
) -> None:
    """Run the platform: train what is missing, start backbone servers, services and the UI; stop all on Ctrl-C."""
    from apps import launch
    from shared_backbone.client import load_deployment
    from shared_backbone.settings import BackboneSettings
    from shared_backbone.training import train_deployment

    settings = BackboneSettings()
    config = load_deployment(deployment, settings.deploy_dir)
    chosen_profile = profile or config.profile
    ports = {"support": support_port, "recommender": recommender_port, "sentiment": sentiment_port}
    children = launch.plan(config, chosen_profile, host, ports, ui_port if ui else None, backbone_port=backbone_port, in_process=in_process)
    missing = launch.missing_artifacts(deployment, chosen_profile, settings)
    if missing and not train_missing:
        raise ConfigError(
            f"missing backbone artifact(s) {', '.join(missing)}: run `spine train --deployment {config.shape} --profile {chosen_profile}`"
        )
    if missing:
        console().print(f"training {', '.join(missing)} (profile {chosen_profile}; first run only)")
        train_deployment(config.shape, chosen_profile, settings, seed=0)  # deployment files name seed-0 artifacts
        if still := launch.missing_artifacts(deployment, chosen_profile, settings):
            raise ConfigError(f"{deployment} names artifact(s) that `spine train` does not produce: {', '.join(still)}")
    procfile = launch.write_procfile(children, settings.artifacts_dir / "run" / f"Procfile.{config.name}")
    console().print(f"{config.name}: {len([c for c in children if c.name.startswith('backbone')])} backbone server(s); plan in {procfile}")
    env = launch.child_environment(deployment, chosen_profile, children, dict(os.environ))
    if not os.environ.get("SPINE_ADMIN_API_KEY"):
        console().print("admin routes use a key generated for this run; export SPINE_ADMIN_API_KEY first to call them yourself")
    raise typer.Exit(launch.run(children, env, console().print))


@app.command()
@reports_errors
def compare(
    deployments: Annotated[str, typer.Option(help="Comma-separated subset of the four.")] = "shared,per-domain,frozen,classic",
    profile: Annotated[str, typer.Option(help="smoke (tests) | quick (minutes) | full (the benchmark)")] = "quick",
    seeds: Annotated[int, typer.Option(help="Training seeds 0..N-1 per deployment (1-20).")] = 1,
    out: Annotated[Path, typer.Option(help="Reports folder; the run is written to OUT/<run-id>/.")] = Path("reports"),
    train: Annotated[bool, typer.Option("--train/--no-train", help="Train missing backbones, or fail when one is missing.")] = True,
    progress: Annotated[bool, typer.Option(help="Show training progress bars.")] = False,
) -> None:
    """The homogenization study: quality, cost, homogenization, error consistency, blast radius, CKA; a report folder out."""
    from homogenization.compare import compare as run_compare
    from homogenization.study import StudyConfig, parse_deployments
    from shared_backbone.settings import BackboneSettings
    from shared_backbone.tasks import parse_profile

    chosen = parse_deployments(deployments)
    config = StudyConfig(deployments=chosen, profile=parse_profile(profile).name, seeds=seeds, train_missing=train, progress=progress)
    config = config.checked()  # bad input stops here, before any data or model is loaded
    folder = run_compare(config, BackboneSettings(), out)
    console().print(f"report written to {folder} (report.md, report.html, results.json, plots)")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
