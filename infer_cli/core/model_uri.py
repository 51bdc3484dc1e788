"""MLflow model URIs, resolved without MLflow to a local model directory and the registry's
facts about it.

The grammar is MLflow's: `models:/NAME/VERSION`, `models:/NAME/latest`, `models:/NAME/STAGE`
(any case; the highest version in that stage), `models:/NAME@ALIAS`, `models:/MODEL_ID`
(an MLflow 3 logged model), `runs:/RUN_ID/PATH`, `file://` paths and `mlflow-artifacts:/`
locations. The store is `--tracking-uri`, else `$MLFLOW_TRACKING_URI`, else MLflow's default
(`./mlruns` when it holds runs, else `sqlite:///mlflow.db`): a SQLite store, a file store or
a tracking server, each read by its own `registry_*` module.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from contextlib import closing
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import ModelError, UsageError
from .registry import (
    REMOTE_SCHEMES,
    STAGES,
    Fetched,
    LoggedModel,
    Registry,
    canonical_stage,
    check_logged_model,
    check_ready,
    local_path,
    remote_location_error,
)

TRACKING_ENV_VAR = "MLFLOW_TRACKING_URI"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_FILE_STORE = "mlruns"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")
_DATABASES = ("postgresql", "postgres", "mysql", "mssql", "oracle")
_URI_SCHEMES = ("models", "runs", "file", "mlflow-artifacts", "http", "https", *REMOTE_SCHEMES)
# A registered version whose source is another models:/ URI (a copied version) is followed
# this many times at most.
_MAX_HOPS = 3


@dataclass(frozen=True)
class ModelUri:
    """A parsed model URI: exactly one of its ways of naming a model is set."""

    text: str
    scheme: str
    name: str | None = None
    version: int | None = None
    stage: str | None = None
    latest: bool = False
    alias: str | None = None
    model_id: str | None = None
    run_id: str | None = None
    path: str = ""

    @property
    def registered(self) -> bool:
        return self.name is not None


@dataclass(frozen=True)
class RegistryFacts:
    """What the store says about a resolved model, for `info`, summaries and the server."""

    uri: str
    tracking_uri: str
    store: str
    artifact_location: str
    name: str | None = None
    version: int | None = None
    stage: str | None = None
    aliases: tuple[str, ...] = ()
    status: str | None = None
    run_id: str | None = None
    model_id: str | None = None
    source: str | None = None
    cache: str | None = None

    @property
    def resolved(self) -> str:
        """The model, pinned: `models:/NAME/VERSION`, else the logged model, else the URI."""
        if self.name is not None and self.version is not None:
            return f"models:/{self.name}/{self.version}"
        if self.model_id is not None:
            return f"models:/{self.model_id}"
        return self.uri

    def to_dict(self) -> dict[str, Any]:
        facts = asdict(self)
        facts["aliases"] = list(self.aliases)
        facts["resolved"] = self.resolved
        return facts


@dataclass(frozen=True)
class ResolvedModel:
    """A model URI's local directory, and the registry's facts about it (none for a path)."""

    directory: Path
    facts: RegistryFacts | None


@dataclass(frozen=True)
class _Located:
    artifact_uri: str
    facts: RegistryFacts
    label: str
    cache_name: str


def is_model_uri(text: str) -> bool:
    """Whether `-m` names a model by URI rather than by a path."""
    return _scheme_of(text) in _URI_SCHEMES


def is_registry_uri(text: str) -> bool:
    """Whether `-m` names a model that a store resolves (not a `file:` path)."""
    return is_model_uri(text) and _scheme_of(text) != "file"


def parse_model_uri(text: str) -> ModelUri:
    """Parse a model URI as MLflow does; a malformed one is a usage error naming the forms."""
    scheme = _scheme_of(text)
    if scheme is None:
        raise UsageError(f"'{text}' is not a model URI")
    if scheme == "models":
        return _parse_models(text)
    if scheme == "runs":
        return _parse_runs(text)
    if scheme == "file":
        parsed = urllib.parse.urlsplit(text)
        if parsed.netloc not in ("", "localhost"):
            raise UsageError(f"'{text}': a file URI names a path on this machine (file:///PATH)")
        return ModelUri(text, scheme, path=urllib.parse.unquote(parsed.path))
    if scheme in ("http", "https"):
        raise UsageError(
            f"'{text}' is a server, not a model: pass it with --tracking-uri and name the "
            "model with -m models:/NAME/VERSION (or @ALIAS, /STAGE, /latest)"
        )
    return ModelUri(text, scheme)


def resolve_tracking_uri(given: str | None = None) -> str:
    """The store to resolve in: `given`, else $MLFLOW_TRACKING_URI, else MLflow's default."""
    if given:
        return given
    if os.environ.get(TRACKING_ENV_VAR):
        return os.environ[TRACKING_ENV_VAR]
    return DEFAULT_FILE_STORE if _holds_runs(Path(DEFAULT_FILE_STORE)) else DEFAULT_TRACKING_URI


def open_registry(tracking_uri: str) -> Registry:
    """The store at `tracking_uri`, opened read-only."""
    scheme = (_scheme_of(tracking_uri) or "").lower()
    if scheme in ("http", "https"):
        from .model_cache import ModelCache
        from .registry_http import HttpRegistry

        return HttpRegistry(tracking_uri, ModelCache.default())
    if scheme == "sqlite":
        from .registry_sqlite import SqliteRegistry

        return SqliteRegistry(_sqlite_path(tracking_uri), tracking_uri)
    if scheme in ("", "file"):
        from .registry_files import FileRegistry

        return FileRegistry(local_path(tracking_uri), tracking_uri)
    shown = _without_password(tracking_uri)
    if scheme.split("+")[0] in _DATABASES:
        raise ModelError(
            f"infer-cli reads SQLite stores, file stores and tracking servers, not the "
            f"{scheme.split('+')[0]} database {shown}: pass the URL of an `mlflow server` "
            "in front of it with --tracking-uri"
        )
    raise ModelError(
        f"cannot read the MLflow store {shown} (infer-cli reads sqlite:///PATH, a file store "
        "directory, and http(s):// tracking servers)"
    )


def resolve_model_uri(text: str, tracking_uri: str | None = None) -> ResolvedModel:
    """Resolve a model URI to a local directory (downloading it if it is on a server) and
    the registry's facts about it."""
    uri = parse_model_uri(text)
    if uri.scheme == "file":
        return ResolvedModel(Path(uri.path), None)
    if uri.scheme in REMOTE_SCHEMES:
        raise remote_location_error(text, "the model")
    store = resolve_tracking_uri(tracking_uri)
    with closing(open_registry(store)) as registry:
        located = _locate(uri, registry)
        fetched: Fetched = registry.fetch(located.artifact_uri, located.label, located.cache_name)
    cache = str(fetched.cache) if fetched.cache else None
    return ResolvedModel(fetched.directory, replace(located.facts, cache=cache))


def lookup_model_uri(text: str, tracking_uri: str | None = None) -> RegistryFacts:
    """What a model URI points to now, asking the registry only: nothing is downloaded."""
    uri = parse_model_uri(text)
    if uri.scheme == "file" or uri.scheme in REMOTE_SCHEMES:
        return RegistryFacts(text, "", "local path", uri.path or text)
    with closing(open_registry(resolve_tracking_uri(tracking_uri))) as registry:
        return _locate(uri, registry).facts


def _locate(uri: ModelUri, registry: Registry) -> _Located:
    if uri.registered:
        return _locate_version(uri, registry)
    if uri.model_id is not None:
        model = _logged_model(uri.model_id, registry)
        return _from_logged_model(uri.text, model, registry)
    if uri.run_id is not None:
        return _locate_run(uri, registry)
    if uri.scheme == "mlflow-artifacts":
        facts = RegistryFacts(uri.text, registry.uri, registry.kind, uri.text)
        name = uri.text.rstrip("/").rsplit("/", 3)[-3:]
        return _Located(uri.text, facts, f"the model at {uri.text}", "-".join(name))
    raise remote_location_error(uri.text, "the model")


def _locate_version(uri: ModelUri, registry: Registry, hops: int = 0) -> _Located:
    assert uri.name is not None
    if uri.version is not None:
        version = registry.model_version(uri.name, uri.version)
    elif uri.alias is not None:
        version = registry.version_by_alias(uri.name, uri.alias)
    else:
        version = registry.latest_version(uri.name, uri.stage)
    check_ready(version)
    location = registry.download_uri(version)
    model_id = version.model_id
    if model_id is None and _scheme_of(version.source) == "models":
        model_id = _parse_models(version.source).model_id
    facts = RegistryFacts(
        uri=uri.text,
        tracking_uri=registry.uri,
        store=registry.kind,
        artifact_location=location,
        name=version.name,
        version=version.version,
        stage=version.stage,
        aliases=version.aliases,
        status=version.status or None,
        run_id=version.run_id,
        model_id=model_id,
        source=version.source,
    )
    label = f"model '{version.name}' version {version.version}"
    if _scheme_of(location) == "models":
        source = _parse_models(location)
        if source.model_id is not None:
            model = _logged_model(source.model_id, registry)
            check_logged_model(model, registry.uri)
            location = model.artifact_location
            facts = replace(
                facts, artifact_location=location, model_id=model.model_id,
                run_id=facts.run_id or model.run_id,
            )  # fmt: skip
        elif source.registered and hops < _MAX_HOPS:
            copied = _locate_version(source, registry, hops + 1)
            location = copied.artifact_uri
            facts = replace(facts, artifact_location=location)
    elif _scheme_of(location) == "runs":
        found = _locate_run(_parse_runs(location), registry)
        location = found.artifact_uri
        facts = replace(facts, artifact_location=location, model_id=found.facts.model_id)
    return _Located(location, facts, label, f"{version.name}-v{version.version}")


def _locate_run(uri: ModelUri, registry: Registry) -> _Located:
    assert uri.run_id is not None
    run = registry.run(uri.run_id)
    if run.deleted:
        raise ModelError(f"run '{run.run_id}' was deleted from {registry.uri}")
    facts = RegistryFacts(uri.text, registry.uri, registry.kind, "", run_id=run.run_id)
    cache_name = f"run-{run.run_id}-{uri.path}".rstrip("-")
    in_run = f"{run.artifact_uri.rstrip('/')}/{uri.path}" if uri.path else run.artifact_uri
    if registry.has_model(in_run):
        facts = replace(facts, artifact_location=in_run)
        return _Located(in_run, facts, f"run {run.run_id}'s '{uri.path}'", cache_name)
    first, _, rest = uri.path.partition("/")
    model = registry.logged_model_of_run(run, first) if first else None
    if model is None:
        raise ModelError(
            f"run '{run.run_id}' has no model at '{uri.path or '/'}' in {registry.uri} (not "
            "in its artifacts, and it logged no model of that name)"
        )
    check_logged_model(model, registry.uri)
    location = f"{model.artifact_location.rstrip('/')}/{rest}" if rest else model.artifact_location
    facts = replace(facts, artifact_location=location, model_id=model.model_id)
    return _Located(location, facts, f"logged model '{model.model_id}'", cache_name)


def _logged_model(model_id: str, registry: Registry) -> LoggedModel:
    try:
        return registry.logged_model(model_id)
    except ModelError as exc:
        if model_id.startswith("m-"):
            raise
        raise ModelError(
            f"{exc}; models:/{model_id} names an MLflow 3 logged model by id (m-...): for a "
            f"registered model add a version, stage, 'latest' or alias (models:/{model_id}/1, "
            f"models:/{model_id}@champion)"
        ) from None


def _from_logged_model(text: str, model: LoggedModel, registry: Registry) -> _Located:
    check_logged_model(model, registry.uri)
    facts = RegistryFacts(
        uri=text,
        tracking_uri=registry.uri,
        store=registry.kind,
        artifact_location=model.artifact_location,
        name=model.name or None,
        status=model.status or None,
        run_id=model.run_id,
        model_id=model.model_id,
    )
    return _Located(
        model.artifact_location, facts, f"logged model '{model.model_id}'", model.model_id
    )


def _parse_models(text: str) -> ModelUri:
    forms = (
        "models:/NAME/VERSION, models:/NAME/latest, models:/NAME/STAGE, models:/NAME@ALIAS "
        "or models:/MODEL_ID"
    )
    parsed = urllib.parse.urlsplit(text)
    path = parsed.path
    parts = path.lstrip("/").split("/")
    if parsed.netloc or not path.startswith("/") or len(parts) > 2 or not parts[0].strip():
        raise UsageError(f"'{text}' is not a model URI (the forms are {forms})")
    name = urllib.parse.unquote(parts[0])
    if len(parts) == 2:
        suffix = urllib.parse.unquote(parts[1])
        if suffix.isdigit():
            return ModelUri(text, "models", name=name, version=int(suffix))
        if suffix.lower() == "latest":
            return ModelUri(text, "models", name=name, latest=True)
        stage = canonical_stage(suffix)
        if stage is None:
            raise UsageError(
                f"'{text}': '{suffix}' is not a version number, 'latest' or a stage "
                f"({', '.join(STAGES)})"
            )
        return ModelUri(text, "models", name=name, stage=stage)
    if "@" in name:
        name, _, alias = name.rpartition("@")
        if not name or not alias.strip():
            raise UsageError(f"'{text}' is not a model URI (the forms are {forms})")
        return ModelUri(text, "models", name=name, alias=alias)
    return ModelUri(text, "models", model_id=name)


def _parse_runs(text: str) -> ModelUri:
    parsed = urllib.parse.urlsplit(text)
    parts = parsed.path.lstrip("/").split("/", 1)
    if parsed.netloc or not parsed.path.startswith("/") or not parts[0]:
        raise UsageError(f"'{text}' is not a runs URI (the form is runs:/RUN_ID/PATH)")
    path = urllib.parse.unquote(parts[1]).strip("/") if len(parts) > 1 else ""
    return ModelUri(text, "runs", run_id=parts[0], path=path)


def _scheme_of(text: str) -> str | None:
    match = _SCHEME.match(text)
    return match.group(1).lower() if match else None


def _sqlite_path(uri: str) -> Path:
    """The file of `sqlite:///relative.db` or `sqlite:////absolute.db`, as SQLAlchemy reads it."""
    rest = uri.split("?", 1)[0]
    prefix = "sqlite:///"
    if not rest.lower().startswith(prefix) or rest[len(prefix) :] in ("", ":memory:"):
        raise ModelError(
            f"'{uri}' is not an SQLite store on disk (the form is sqlite:///PATH/mlflow.db)"
        )
    return Path(urllib.parse.unquote(rest[len(prefix) :]))


def _holds_runs(directory: Path) -> bool:
    """Whether `directory` is a file store with an experiment in it, as MLflow decides
    between `./mlruns` and `sqlite:///mlflow.db` when no tracking URI is set."""
    try:
        return any(
            entry.is_dir() and entry.name.isdigit() and (entry / "meta.yaml").exists()
            for entry in directory.iterdir()
        )
    except OSError:
        return False


def _without_password(uri: str) -> str:
    parsed = urllib.parse.urlsplit(uri)
    if parsed.password is None:
        return uri
    netloc = parsed.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parsed._replace(netloc=f"{parsed.username}:***@{netloc}"))
