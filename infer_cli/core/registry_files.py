"""MLflow's file store (`./mlruns`, `file:///...`), read from its YAML files.

Registered models are under `models/NAME/` (`meta.yaml`, `version-N/meta.yaml`, one file
per alias in `aliases/`), runs under `EXPERIMENT/RUN_ID/meta.yaml`, and MLflow 3 logged
models under `EXPERIMENT/models/MODEL_ID/meta.yaml`.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

from ..errors import ModelError, first_line
from .registry import LocalRegistry, LoggedModel, ModelVersion, Run, unknown_model

META_FILE = "meta.yaml"
MODELS_DIR = "models"
ALIASES_DIR = "aliases"
# LoggedModelStatus as the file store writes it (the protocol buffer's numbers).
_LOGGED_MODEL_STATUS = {0: "UNSPECIFIED", 1: "PENDING", 2: "READY", 3: "FAILED"}


class FileRegistry(LocalRegistry):
    """A file store directory, read-only."""

    kind = "file store"

    def __init__(self, root: Path, uri: str) -> None:
        if not root.is_dir():
            raise ModelError(
                f"no MLflow store at {uri}: {root} is not a directory (pass --tracking-uri, "
                "or set MLFLOW_TRACKING_URI)"
            )
        self.root = root
        self.uri = uri

    def model_names(self) -> list[str]:
        models = self.root / MODELS_DIR
        if not models.is_dir():
            return []
        return [entry.name for entry in models.iterdir() if (entry / META_FILE).is_file()]

    def versions(self, name: str) -> list[ModelVersion]:
        directory = self._model_directory(name)
        versions = []
        for entry in directory.glob("version-*"):
            meta = _read_meta(entry / META_FILE)
            if meta is not None:
                versions.append(_model_version(meta, name))
        return versions

    def aliases(self, name: str) -> dict[str, int]:
        directory = self._model_directory(name)
        aliases: dict[str, int] = {}
        folder = directory / ALIASES_DIR
        if folder.is_dir():
            for entry in folder.iterdir():
                text = entry.read_text(encoding="utf-8").strip()
                if text.isdigit():
                    aliases[entry.name] = int(text)
            return aliases
        # Some MLflow versions keep them in the model's meta.yaml instead.
        recorded = (_read_meta(directory / META_FILE) or {}).get("aliases") or {}
        return {str(alias): int(v) for alias, v in recorded.items() if str(v).isdigit()}

    def logged_model(self, model_id: str) -> LoggedModel:
        for meta_file in self.root.glob(f"*/{MODELS_DIR}/{glob.escape(model_id)}/{META_FILE}"):
            meta = _read_meta(meta_file)
            if meta is not None:
                return _logged_model(meta)
        raise ModelError(f"no logged model '{model_id}' in {self.uri}")

    def run(self, run_id: str) -> Run:
        for meta_file in self.root.glob(f"*/{glob.escape(run_id)}/{META_FILE}"):
            meta = _read_meta(meta_file)
            if meta is not None:
                return Run(
                    run_id=run_id,
                    artifact_uri=str(meta.get("artifact_uri") or ""),
                    experiment_id=str(meta.get("experiment_id") or meta_file.parent.parent.name),
                    deleted=meta.get("lifecycle_stage") == "deleted",
                )
        raise ModelError(f"no run '{run_id}' in {self.uri}")

    def logged_model_of_run(self, run: Run, name: str) -> LoggedModel | None:
        found = []
        for meta_file in self.root.glob(
            f"{glob.escape(run.experiment_id)}/{MODELS_DIR}/*/{META_FILE}"
        ):
            meta = _read_meta(meta_file)
            if meta and meta.get("name") == name and meta.get("source_run_id") == run.run_id:
                found.append(meta)
        if not found:
            return None
        return _logged_model(max(found, key=lambda meta: meta.get("creation_timestamp") or 0))

    def _model_directory(self, name: str) -> Path:
        directory = self.root / MODELS_DIR / name
        if "/" in name or name in ("", ".", "..") or not (directory / META_FILE).is_file():
            raise unknown_model(name, self.model_names(), self.uri)
        return directory


def _read_meta(path: Path) -> dict[str, Any] | None:
    import yaml

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: cannot read the store's record ({first_line(exc)})") from exc
    return document if isinstance(document, dict) else None


def _model_version(meta: dict[str, Any], name: str) -> ModelVersion:
    return ModelVersion(
        name=name,
        version=int(meta.get("version") or 0),
        stage=str(meta.get("current_stage") or "None"),
        status=str(meta.get("status") or ""),
        source=str(meta.get("source") or ""),
        storage_location=meta.get("storage_location") or None,
        run_id=meta.get("run_id") or None,
        model_id=meta.get("model_id") or None,
        status_message=meta.get("status_message") or None,
    )


def _logged_model(meta: dict[str, Any]) -> LoggedModel:
    status = meta.get("status")
    return LoggedModel(
        model_id=str(meta.get("model_id")),
        name=str(meta.get("name") or ""),
        artifact_location=str(meta.get("artifact_location") or ""),
        run_id=meta.get("source_run_id") or None,
        experiment_id=str(meta.get("experiment_id") or ""),
        status=_LOGGED_MODEL_STATUS.get(status, "")
        if isinstance(status, int)
        else str(status or ""),
        deleted=meta.get("lifecycle_stage") == "deleted",
    )
