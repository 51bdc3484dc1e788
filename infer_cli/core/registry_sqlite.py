"""MLflow's SQLite store (`sqlite:///mlflow.db`, MLflow's default), opened read-only.

The registry is in `registered_models`, `model_versions` and `registered_model_aliases`,
MLflow 3's logged models in `logged_models`, runs in `runs`. MLflow 3.10 added a
`workspace` column to the registry's keys (`'default'` unless `$MLFLOW_WORKSPACE` names
another); stores from before it have none, and both are read.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from pathlib import Path
from typing import Any

from ..errors import ModelError
from .registry import LocalRegistry, LoggedModel, ModelVersion, Run, unknown_model

WORKSPACE_ENV_VAR = "MLFLOW_WORKSPACE"
DEFAULT_WORKSPACE = "default"
_REGISTRY_TABLES = ("registered_models", "model_versions", "registered_model_aliases")
_LOGGED_MODEL_STATUS = {0: "UNSPECIFIED", 1: "PENDING", 2: "READY", 3: "FAILED"}
# A store being written by MLflow is locked only briefly; wait for it rather than fail.
_BUSY_SECONDS = 10.0


class SqliteRegistry(LocalRegistry):
    """An MLflow SQLite database, opened read-only: nothing here can change or create it."""

    kind = "SQLite store"

    def __init__(self, path: Path, uri: str) -> None:
        self.uri = uri
        self.root = path.parent
        if not path.is_file():
            raise ModelError(
                f"no MLflow store at {uri}: {path} does not exist (pass --tracking-uri, or set "
                "MLFLOW_TRACKING_URI)"
            )
        address = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
        try:
            self._db = sqlite3.connect(address, uri=True, timeout=_BUSY_SECONDS)
            tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master")}
        except sqlite3.DatabaseError as exc:
            raise ModelError(f"{path}: not an SQLite database ({exc})") from exc
        missing = [table for table in _REGISTRY_TABLES if table not in tables]
        if missing:
            self._db.close()
            raise ModelError(
                f"{path}: not an MLflow store (no {', '.join(missing)} table); is "
                "--tracking-uri the right database?"
            )
        self._tables = tables
        self._workspace = os.environ.get(WORKSPACE_ENV_VAR, "").strip() or DEFAULT_WORKSPACE

    def close(self) -> None:
        self._db.close()

    def model_names(self) -> list[str]:
        where, args = self._in_workspace("registered_models")
        return [row[0] for row in self._query(f"SELECT name FROM registered_models{where}", args)]

    def versions(self, name: str) -> list[ModelVersion]:
        where, args = self._in_workspace("registered_models", "name = ?", name)
        if not self._query(f"SELECT 1 FROM registered_models{where}", args):
            raise unknown_model(name, self.model_names(), self.uri)
        columns = self._columns("model_versions")
        storage = "storage_location" if "storage_location" in columns else "NULL"
        where, args = self._in_workspace("model_versions", "name = ?", name)
        rows = self._query(
            f"SELECT version, current_stage, status, source, {storage}, run_id, status_message "
            f"FROM model_versions{where}",
            args,
        )
        return [
            ModelVersion(
                name=name,
                version=int(version),
                stage=str(stage or "None"),
                status=str(status or ""),
                source=str(source or ""),
                storage_location=storage_location or None,
                run_id=run_id or None,
                status_message=message or None,
            )
            for version, stage, status, source, storage_location, run_id, message in rows
        ]

    def aliases(self, name: str) -> dict[str, int]:
        where, args = self._in_workspace("registered_model_aliases", "name = ?", name)
        rows = self._query(f"SELECT alias, version FROM registered_model_aliases{where}", args)
        return {str(alias): int(version) for alias, version in rows}

    def logged_model(self, model_id: str) -> LoggedModel:
        rows = self._logged_models("model_id = ?", model_id)
        if not rows:
            raise ModelError(f"no logged model '{model_id}' in {self.uri}")
        return rows[0]

    def run(self, run_id: str) -> Run:
        if "runs" not in self._tables:
            raise ModelError(f"no run '{run_id}' in {self.uri} (it has no runs table)")
        rows = self._query(
            "SELECT artifact_uri, experiment_id, lifecycle_stage FROM runs WHERE run_uuid = ?",
            (run_id,),
        )
        if not rows:
            raise ModelError(f"no run '{run_id}' in {self.uri}")
        artifact_uri, experiment_id, lifecycle = rows[0]
        return Run(run_id, str(artifact_uri or ""), str(experiment_id), lifecycle == "deleted")

    def logged_model_of_run(self, run: Run, name: str) -> LoggedModel | None:
        rows = self._logged_models(
            "source_run_id = ? AND name = ? AND experiment_id = ?",
            run.run_id,
            name,
            run.experiment_id,
        )
        return rows[0] if rows else None

    def _logged_models(self, condition: str, *args: Any) -> list[LoggedModel]:
        if "logged_models" not in self._tables:  # a store from before MLflow 3
            return []
        rows = self._query(
            "SELECT model_id, name, artifact_location, source_run_id, experiment_id, status, "
            f"lifecycle_stage FROM logged_models WHERE {condition} "
            "ORDER BY creation_timestamp_ms DESC",
            args,
        )
        return [
            LoggedModel(
                model_id=str(model_id),
                name=str(name),
                artifact_location=str(location),
                run_id=run_id or None,
                experiment_id=str(experiment_id),
                status=_LOGGED_MODEL_STATUS.get(status, "") if isinstance(status, int) else "",
                deleted=lifecycle == "deleted",
            )
            for model_id, name, location, run_id, experiment_id, status, lifecycle in rows
        ]

    def _columns(self, table: str) -> set[str]:
        return {row[1] for row in self._query(f"PRAGMA table_info({table})", ())}

    def _in_workspace(self, table: str, condition: str = "", *args: Any) -> tuple[str, tuple]:
        """A WHERE clause for `condition` within the workspace, where the table has one."""
        conditions, values = ([condition], list(args)) if condition else ([], [])
        if "workspace" in self._columns(table):
            conditions.append("workspace = ?")
            values.append(self._workspace)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return where, tuple(values)

    def _query(self, sql: str, args: tuple) -> list[tuple]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise ModelError(f"cannot read the MLflow store {self.uri}: {exc}") from exc
