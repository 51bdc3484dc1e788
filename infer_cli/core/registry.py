"""What an MLflow store records about models, read the same way from each kind of store.

`Registry` is the face the three stores (SQLite, the file store, a tracking server) show
to `model_uri`: model versions by number, alias, stage or `latest`, MLflow 3 logged models,
runs, and turning an artifact location into a local directory. The rules MLflow applies
to pick a version, and the error messages that list what does exist, are here once.
"""

from __future__ import annotations

import difflib
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from ..errors import ModelError

STAGES = ("None", "Staging", "Production", "Archived")
DELETED_STAGE = "Deleted_Internal"
READY = "READY"
# A moved store's artifacts are found by the tail of their recorded path: at least
# EXPERIMENT/models/MODEL_ID or EXPERIMENT/RUN_ID/artifacts, never a bare 'artifacts'.
_SHORTEST_TAIL = 3
LATEST = "latest"
# Schemes of artifact stores that only MLflow's own clients (boto3, gcsfs...) can read.
REMOTE_SCHEMES = ("s3", "s3a", "gs", "wasbs", "wasb", "abfss", "dbfs", "hdfs", "viewfs", "oci")


@dataclass(frozen=True)
class ModelVersion:
    """One version of a registered model, as its store records it."""

    name: str
    version: int
    stage: str
    status: str
    source: str
    storage_location: str | None = None
    run_id: str | None = None
    model_id: str | None = None
    status_message: str | None = None
    aliases: tuple[str, ...] = ()

    @property
    def location(self) -> str:
        """Where its files are: MLflow's download URI (the storage location, else the source)."""
        return self.storage_location or self.source


@dataclass(frozen=True)
class LoggedModel:
    """An MLflow 3 logged model (`models:/m-...`): its files and the run that logged it."""

    model_id: str
    name: str
    artifact_location: str
    run_id: str | None
    experiment_id: str
    status: str  # READY, PENDING, FAILED or UNSPECIFIED
    deleted: bool = False


@dataclass(frozen=True)
class Run:
    """A run's artifact root, which `runs:/RUN_ID/PATH` is relative to."""

    run_id: str
    artifact_uri: str
    experiment_id: str
    deleted: bool = False


@dataclass(frozen=True)
class Fetched:
    """A model's files on this machine, and the download cache entry they are in, if any."""

    directory: Path
    cache: Path | None = None


class Registry(ABC):
    """An MLflow store, read-only. Lookups raise `ModelError` naming what exists instead."""

    kind: str
    uri: str  # as shown to a user: never with a password

    @abstractmethod
    def model_version(self, name: str, version: int) -> ModelVersion:
        """The version numbered `version`; a deleted one is not found."""

    @abstractmethod
    def version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """The version `alias` points to."""

    @abstractmethod
    def latest_version(self, name: str, stage: str | None) -> ModelVersion:
        """The highest version in `stage` (canonical), or of all when `stage` is None."""

    @abstractmethod
    def logged_model(self, model_id: str) -> LoggedModel:
        """An MLflow 3 logged model by id."""

    @abstractmethod
    def run(self, run_id: str) -> Run:
        """A run by id."""

    @abstractmethod
    def logged_model_of_run(self, run: Run, name: str) -> LoggedModel | None:
        """The model `run` logged under `name` (MLflow 3 keeps it outside the run's artifacts)."""

    @abstractmethod
    def has_model(self, artifact_uri: str) -> bool:
        """Whether an `MLmodel` file is at `artifact_uri`."""

    @abstractmethod
    def fetch(self, artifact_uri: str, label: str, cache_name: str) -> Fetched:
        """The directory holding the files at `artifact_uri` on this machine. `label` names
        the model in messages, `cache_name` a download in the cache, if one is needed."""

    def close(self) -> None:  # noqa: B027 (most stores hold nothing open)
        """Let go of what the store holds open."""

    def download_uri(self, version: ModelVersion) -> str:
        """Where a model version's files are, as MLflow's download URI gives it."""
        return version.location


class LocalRegistry(Registry):
    """A store read directly from disk: every version of a model is at hand, so the version
    for an alias, a stage or `latest` is picked here, as MLflow's own stores pick it."""

    root: Path  # the store's directory: where its artifacts are looked for once it has moved

    @abstractmethod
    def model_names(self) -> list[str]:
        """Every registered model's name."""

    @abstractmethod
    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of `name`, deleted ones included; `unknown_model` if there is none."""

    @abstractmethod
    def aliases(self, name: str) -> dict[str, int]:
        """The aliases of `name` and the version each points to."""

    def model_version(self, name: str, version: int) -> ModelVersion:
        versions = self.versions(name)
        for candidate in versions:
            if candidate.version == version:
                if candidate.stage == DELETED_STAGE:
                    raise ModelError(
                        f"model '{name}' version {version} was deleted from {self.uri} "
                        f"({describe_versions(versions)})"
                    )
                return self._with_aliases(candidate)
        raise ModelError(
            f"model '{name}' has no version {version} in {self.uri} ({describe_versions(versions)})"
        )

    def version_by_alias(self, name: str, alias: str) -> ModelVersion:
        if alias.lower() == LATEST:
            return self.latest_version(name, None)
        aliases = self.aliases(name)
        if alias not in aliases:
            raise ModelError(missing_alias(name, alias, aliases, self.uri))
        return self.model_version(name, aliases[alias])

    def latest_version(self, name: str, stage: str | None) -> ModelVersion:
        versions = [v for v in self.versions(name) if v.stage != DELETED_STAGE]
        matching = [v for v in versions if stage is None or v.stage == stage]
        if not matching:
            raise ModelError(missing_stage(name, stage, versions, self.uri))
        return self._with_aliases(max(matching, key=lambda v: v.version))

    def has_model(self, artifact_uri: str) -> bool:
        directory = self._local_directory(artifact_uri)
        return directory is not None and (directory / "MLmodel").is_file()

    def fetch(self, artifact_uri: str, label: str, cache_name: str) -> Fetched:
        scheme = urllib.parse.urlparse(artifact_uri).scheme
        if scheme == "mlflow-artifacts":
            raise ModelError(
                f"{label} is stored through a tracking server's artifact proxy ({artifact_uri}): "
                "pass that server's URL with --tracking-uri"
            )
        if scheme not in ("", "file") and len(scheme) > 1:
            raise remote_location_error(artifact_uri, label)
        directory = self._local_directory(artifact_uri)
        if directory is None:
            raise ModelError(
                f"{label}: its files are not at {local_path(artifact_uri)}, nor at the same "
                f"path inside the store ({self.root})"
            )
        return Fetched(directory)

    def _local_directory(self, artifact_uri: str) -> Path | None:
        """The artifact directory, or where it is now when the store was copied or moved:
        the longest tail of the recorded path found under the store's directory."""
        recorded = local_path(artifact_uri)
        if recorded.is_dir():
            return recorded
        parts = recorded.parts[1:] if recorded.is_absolute() else recorded.parts
        for start in range(len(parts) - _SHORTEST_TAIL + 1):
            candidate = self.root.joinpath(*parts[start:])
            if candidate.is_dir():
                return candidate
        return None

    def _with_aliases(self, version: ModelVersion) -> ModelVersion:
        aliases = self.aliases(version.name)
        names = tuple(sorted(a for a, number in aliases.items() if number == version.version))
        return replace(version, aliases=names)


def local_path(artifact_uri: str) -> Path:
    """The path a `file:` URI or a plain path names."""
    parsed = urllib.parse.urlparse(artifact_uri)
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path))
    return Path(artifact_uri)


def canonical_stage(stage: str) -> str | None:
    """MLflow's spelling of a stage given in any case, or None if it is not a stage."""
    return {known.lower(): known for known in STAGES}.get(stage.lower())


def unknown_model(name: str, names: Iterable[str], where: str) -> ModelError:
    """No registered model `name`: the close names, else some of those there are."""
    names = sorted(names)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if close:
        hint = f"did you mean {', '.join(repr(n) for n in close)}?"
    elif names:
        shown = ", ".join(repr(n) for n in names[:10])
        hint = f"registered models: {shown}{', ...' if len(names) > 10 else ''}"
    else:
        hint = "it has no registered models"
    return ModelError(f"no registered model '{name}' in {where} ({hint})")


def describe_versions(versions: Iterable[ModelVersion]) -> str:
    """'versions: 1 (Production), 3' for an error message, deleted versions left out."""
    live = sorted((v for v in versions if v.stage != DELETED_STAGE), key=lambda v: v.version)
    if not live:
        return "it has no versions"
    shown = [f"{v.version} ({v.stage})" if v.stage != "None" else str(v.version) for v in live]
    return "versions: " + ", ".join(shown)


def missing_alias(name: str, alias: str, aliases: dict[str, int], where: str) -> str:
    if aliases:
        listed = ", ".join(f"@{a} -> {v}" for a, v in sorted(aliases.items()))
        return f"model '{name}' has no alias '{alias}' in {where} (aliases: {listed})"
    return f"model '{name}' has no alias '{alias}' in {where} (it has no aliases)"


def missing_stage(
    name: str, stage: str | None, versions: Iterable[ModelVersion], where: str
) -> str:
    if stage is None:
        return f"model '{name}' has no versions in {where}"
    return (
        f"model '{name}' has no version in stage {stage} in {where} ({describe_versions(versions)})"
    )


def check_ready(version: ModelVersion) -> None:
    """A version still being registered, or whose registration failed, has no files to load."""
    if version.status == READY or not version.status:
        return
    label = f"model '{version.name}' version {version.version}"
    if version.status == "PENDING_REGISTRATION":
        raise ModelError(
            f"{label} is still PENDING_REGISTRATION: its files may not all be there yet; "
            "try again once its status is READY"
        )
    reason = f": {version.status_message}" if version.status_message else ""
    raise ModelError(f"{label} is {version.status}{reason}; it cannot be loaded")


def check_logged_model(model: LoggedModel, where: str) -> None:
    if model.deleted:
        raise ModelError(f"logged model '{model.model_id}' was deleted from {where}")
    if model.status == "PENDING":
        raise ModelError(
            f"logged model '{model.model_id}' is still PENDING: its files are still being "
            "uploaded; try again once it is READY"
        )
    if model.status == "FAILED":
        raise ModelError(f"logged model '{model.model_id}' FAILED to upload; it cannot be loaded")


def relative_artifact_path(path: str, where: str) -> PurePosixPath:
    """A path inside an artifact directory, refused if it could point outside it."""
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise ModelError(f"{where}: refusing the artifact path '{path}' (outside the model)")
    return relative


def remote_location_error(location: str, label: str) -> ModelError:
    """An artifact location only MLflow's own cloud clients can read: say how to get it."""
    return ModelError(
        f"{label} is stored at {location}, which infer-cli does not read (it reads local "
        "paths and a tracking server's artifact proxy): download it with `mlflow artifacts "
        f"download --artifact-uri {location} --dst-path DIR` and pass -m DIR, or pass the "
        "path where that storage is mounted"
    )
