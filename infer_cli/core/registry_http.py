"""An MLflow tracking server, over its REST API (`/api/2.0/mlflow/...`) and its artifact
proxy (`/api/2.0/mlflow-artifacts/artifacts/...`), with the standard library's urllib.

Credentials come from MLflow's own variables: `$MLFLOW_TRACKING_TOKEN` (a bearer token), or
`$MLFLOW_TRACKING_USERNAME` and `$MLFLOW_TRACKING_PASSWORD` (basic auth), or a
`user:password@` in the URI; TLS from `$MLFLOW_TRACKING_INSECURE_TLS` and
`$MLFLOW_TRACKING_SERVER_CERT_PATH`. A password is never shown in a message. Downloaded
models go into `model_cache`, keyed by what was downloaded.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import ModelError, first_line
from .model_cache import CacheEntry, ModelCache
from .registry import (
    Fetched,
    LoggedModel,
    ModelVersion,
    Registry,
    Run,
    describe_versions,
    local_path,
    missing_alias,
    missing_stage,
    relative_artifact_path,
    remote_location_error,
    unknown_model,
)

API = "/api/2.0/mlflow/"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
TIMEOUT_ENV_VAR = "MLFLOW_HTTP_REQUEST_TIMEOUT"
DEFAULT_TIMEOUT = 30.0
# Answers worth asking again for: the server or a proxy in front of it is busy or restarting.
_RETRY_STATUSES = (429, 502, 503, 504)
_ATTEMPTS = 3
_CHUNK = 1024 * 1024
_PAGE = 1000


class _NotFound(Exception):
    """The server answered that what was asked for does not exist."""


class HttpRegistry(Registry):
    """A tracking server, read-only."""

    kind = "tracking server"

    def __init__(self, uri: str, cache: ModelCache) -> None:
        parsed = urllib.parse.urlsplit(uri)
        netloc = parsed.hostname or ""
        if ":" in netloc:  # an IPv6 address
            netloc = f"[{netloc}]"
        if parsed.port is not None:
            netloc += f":{parsed.port}"
        self.base = urllib.parse.urlunsplit(
            (parsed.scheme, netloc, parsed.path.rstrip("/"), "", "")
        )
        self.uri = self.base
        self._cache = cache
        self._headers = _auth_headers(parsed)
        self._ssl = _ssl_context() if parsed.scheme == "https" else None
        self._timeout = float(os.environ.get(TIMEOUT_ENV_VAR) or DEFAULT_TIMEOUT)

    def model_version(self, name: str, version: int) -> ModelVersion:
        try:
            found = self._get("model-versions/get", name=name, version=str(version))
        except _NotFound:
            versions = self._versions(name)
            raise ModelError(
                f"model '{name}' has no version {version} in {self.uri} "
                f"({describe_versions(versions)})"
            ) from None
        return _model_version(found["model_version"])

    def version_by_alias(self, name: str, alias: str) -> ModelVersion:
        try:
            found = self._get("registered-models/alias", name=name, alias=alias)
        except _NotFound:
            model = self._registered_model(name)
            aliases = {
                str(entry.get("alias")): int(entry.get("version", 0))
                for entry in model.get("aliases", [])
            }
            raise ModelError(missing_alias(name, alias, aliases, self.uri)) from None
        return _model_version(found["model_version"])

    def latest_version(self, name: str, stage: str | None) -> ModelVersion:
        try:
            found = self._get(
                "registered-models/get-latest-versions", name=name, stages=stage or None
            )
        except _NotFound:
            raise unknown_model(name, self._names(), self.uri) from None
        versions = [_model_version(entry) for entry in found.get("model_versions", [])]
        if not versions:
            raise ModelError(missing_stage(name, stage, self._versions(name), self.uri))
        return max(versions, key=lambda v: v.version)

    def download_uri(self, version: ModelVersion) -> str:
        found = self._get(
            "model-versions/get-download-uri", name=version.name, version=str(version.version)
        )
        return str(found.get("artifact_uri") or version.location)

    def logged_model(self, model_id: str) -> LoggedModel:
        try:
            found = self._get(f"logged-models/{urllib.parse.quote(model_id, safe='')}")
        except _NotFound:
            raise ModelError(f"no logged model '{model_id}' in {self.uri}") from None
        return _logged_model(found["model"]["info"])

    def run(self, run_id: str) -> Run:
        try:
            info = self._get("runs/get", run_id=run_id)["run"]["info"]
        except _NotFound:
            raise ModelError(f"no run '{run_id}' in {self.uri}") from None
        return Run(
            run_id=run_id,
            artifact_uri=str(info.get("artifact_uri") or ""),
            experiment_id=str(info.get("experiment_id") or ""),
            deleted=info.get("lifecycle_stage") == "deleted",
        )

    def logged_model_of_run(self, run: Run, name: str) -> LoggedModel | None:
        query: dict[str, Any] = {"experiment_ids": [run.experiment_id], "max_results": 100}
        if "'" not in name:
            query["filter"] = f"name = '{name}'"
        while True:
            page = self._post("logged-models/search", query)
            for entry in page.get("models", []):
                model = _logged_model(entry["info"])
                if model.name == name and model.run_id == run.run_id:
                    return model
            if not page.get("next_page_token"):
                return None
            query["page_token"] = page["next_page_token"]

    def has_model(self, artifact_uri: str) -> bool:
        if urllib.parse.urlsplit(artifact_uri).scheme == "mlflow-artifacts":
            base, root = self._artifact_root(artifact_uri)
            return any(
                entry.get("path") == "MLmodel" and not entry.get("is_dir")
                for entry in self._list(base, root)
            )
        scheme = urllib.parse.urlsplit(artifact_uri).scheme
        return scheme in ("", "file") and (local_path(artifact_uri) / "MLmodel").is_file()

    def fetch(self, artifact_uri: str, label: str, cache_name: str) -> Fetched:
        scheme = urllib.parse.urlsplit(artifact_uri).scheme
        if scheme == "mlflow-artifacts":
            entry = self._download(artifact_uri, label, cache_name)
            return Fetched(entry.directory, entry.directory)
        if scheme in ("", "file"):
            directory = local_path(artifact_uri)
            if directory.is_dir():  # a server on this machine, writing to a local directory
                return Fetched(directory)
            raise ModelError(
                f"{label} is stored at {artifact_uri} on the tracking server's machine, and "
                f"the server at {self.uri} does not serve it: start it with --serve-artifacts "
                "(its artifact proxy), or mount that path here"
            )
        raise remote_location_error(artifact_uri, label)

    def _download(self, artifact_uri: str, label: str, cache_name: str) -> CacheEntry:
        base, root = self._artifact_root(artifact_uri)
        files = sorted(self._walk(base, root, PurePosixPath()))
        if not files:
            raise ModelError(f"{label}: the tracking server has no files at {artifact_uri}")
        content = json.dumps([base, artifact_uri, [(str(p), size) for p, size in files]])
        entry = self._cache.entry(cache_name, content, files)
        if entry.complete():
            return entry

        def download(relative: PurePosixPath, target: Path) -> None:
            url = f"{base}{ARTIFACTS}/{urllib.parse.quote(f'{root}/{relative}')}"
            with self._open("GET", url, None) as reply, open(target, "wb") as out:
                while chunk := reply.read(_CHUNK):
                    out.write(chunk)

        return entry.fill(download)

    def _artifact_root(self, artifact_uri: str) -> tuple[str, str]:
        """The server that proxies an `mlflow-artifacts:` URI, and the path it serves it at."""
        parsed = urllib.parse.urlsplit(artifact_uri)
        base = self.base
        if parsed.netloc:
            base = f"{urllib.parse.urlsplit(self.base).scheme}://{parsed.netloc}"
        root = parsed.path.strip("/")
        return base, str(relative_artifact_path(root, artifact_uri)) if root else ""

    def _walk(
        self, base: str, root: str, under: PurePosixPath
    ) -> Iterator[tuple[PurePosixPath, int | None]]:
        path = f"{root}/{under}" if under.parts else root
        for entry in self._list(base, path):
            relative = under / relative_artifact_path(str(entry.get("path", "")), path)
            if entry.get("is_dir"):
                yield from self._walk(base, root, relative)
            else:
                size = entry.get("file_size")
                yield relative, int(size) if size is not None else None

    def _list(self, base: str, path: str) -> list[dict[str, Any]]:
        url = f"{base}{ARTIFACTS}?{urllib.parse.urlencode({'path': path})}"
        return list(self._json("GET", url, None).get("files", []))

    def _registered_model(self, name: str) -> dict[str, Any]:
        try:
            return dict(self._get("registered-models/get", name=name)["registered_model"])
        except _NotFound:
            raise unknown_model(name, self._names(), self.uri) from None

    def _versions(self, name: str) -> list[ModelVersion]:
        self._registered_model(name)
        escaped = name.replace("'", "\\'")
        versions, token = [], None
        while True:
            page = self._get("model-versions/search", filter=f"name='{escaped}'", page_token=token)
            versions += [_model_version(entry) for entry in page.get("model_versions", [])]
            token = page.get("next_page_token")
            if not token:
                return versions

    def _names(self) -> list[str]:
        found = self._get("registered-models/search", max_results=str(_PAGE))
        return [str(entry.get("name")) for entry in found.get("registered_models", [])]

    def _get(self, endpoint: str, **params: str | None) -> dict[str, Any]:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        return self._json("GET", f"{self.base}{API}{endpoint}{'?' + query if query else ''}", None)

    def _post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", f"{self.base}{API}{endpoint}", body)

    def _json(self, method: str, url: str, body: dict[str, Any] | None) -> dict[str, Any]:
        with self._open(method, url, body) as reply:
            payload = reply.read()
        try:
            document = json.loads(payload)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise ModelError(
                f"{self.uri} does not answer as an MLflow tracking server ({_path(url)} "
                "is not JSON); is --tracking-uri right?"
            )
        return document

    def _open(self, method: str, url: str, body: dict[str, Any] | None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(_ATTEMPTS):
            request = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                return urllib.request.urlopen(request, timeout=self._timeout, context=self._ssl)
            except urllib.error.HTTPError as exc:
                if exc.code in _RETRY_STATUSES and attempt + 1 < _ATTEMPTS:
                    time.sleep(0.5 * 2**attempt)
                    continue
                raise self._refusal(exc, url) from None
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise ModelError(
                    f"the tracking server at {self.uri} does not answer "
                    f"({first_line(reason) if isinstance(reason, BaseException) else reason}); "
                    "is it running, and is --tracking-uri (or MLFLOW_TRACKING_URI) right?"
                ) from None
        raise AssertionError("unreachable")

    def _refusal(self, exc: urllib.error.HTTPError, url: str) -> Exception:
        try:
            document = json.loads(exc.read())
        except (ValueError, OSError):
            document = None
        if not isinstance(document, dict):
            document = {}
        code, message = document.get("error_code"), str(document.get("message") or exc.reason)
        if exc.code == 401:
            given = "Authorization" in self._headers
            hint = (
                "check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or "
                "MLFLOW_TRACKING_TOKEN"
                if given
                else "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or "
                "MLFLOW_TRACKING_TOKEN"
            )
            return ModelError(
                f"the tracking server at {self.uri} refused the credentials (HTTP 401): {hint}"
            )
        if exc.code == 403:
            return ModelError(
                f"the tracking server at {self.uri} denies access to {_path(url)} (HTTP 403): "
                f"{message.splitlines()[0] if message else exc.reason}"
            )
        if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE") and exc.code in (
            400,
            404,
        ):
            return _NotFound(message)
        if exc.code == 404 and not document:
            return ModelError(
                f"{self.uri} does not answer as an MLflow tracking server (HTTP 404 for "
                f"{_path(url)}); is --tracking-uri right?"
            )
        return ModelError(
            f"the tracking server at {self.uri} answered HTTP {exc.code} to {_path(url)}: "
            f"{message.splitlines()[0] if message else exc.reason}"
        )


def _path(url: str) -> str:
    return urllib.parse.urlsplit(url).path


def _auth_headers(parsed: urllib.parse.SplitResult) -> dict[str, str]:
    headers = {"User-Agent": "infer-cli"}
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    user = os.environ.get("MLFLOW_TRACKING_USERNAME") or urllib.parse.unquote(parsed.username or "")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD") or urllib.parse.unquote(
        parsed.password or ""
    )
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif user or password:
        pair = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {pair}"
    workspace = os.environ.get("MLFLOW_WORKSPACE", "").strip()
    if workspace:
        headers["X-MLFLOW-WORKSPACE"] = workspace
    return headers


def _ssl_context() -> ssl.SSLContext:
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("1", "true"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH"))


def _model_version(entry: dict[str, Any]) -> ModelVersion:
    return ModelVersion(
        name=str(entry.get("name", "")),
        version=int(entry.get("version", 0)),
        stage=str(entry.get("current_stage") or "None"),
        status=str(entry.get("status") or ""),
        source=str(entry.get("source") or ""),
        run_id=entry.get("run_id") or None,
        model_id=entry.get("model_id") or None,
        status_message=entry.get("status_message") or None,
        aliases=tuple(sorted(str(alias) for alias in entry.get("aliases", []))),
    )


def _logged_model(info: dict[str, Any]) -> LoggedModel:
    status = str(info.get("status") or "")
    for prefix in ("LOGGED_MODEL_UPLOAD_", "LOGGED_MODEL_"):
        status = status.removeprefix(prefix)
    return LoggedModel(
        model_id=str(info.get("model_id", "")),
        name=str(info.get("name", "")),
        artifact_location=str(info.get("artifact_uri") or ""),
        run_id=info.get("source_run_id") or None,
        experiment_id=str(info.get("experiment_id", "")),
        status=status,
    )
