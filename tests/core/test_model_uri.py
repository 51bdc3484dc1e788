"""MLflow model URIs resolved in real stores made by MLflow (SQLite, files, a tracking
server), and the predictions of what they resolve to compared with MLflow's own."""

from __future__ import annotations

import io
import json
import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow_stores import (
    PASSWORD,
    S3_SOURCE,
    SAMPLE_DATA,
    USER,
    Store,
    as_client_of,
    iris_features,
)

from infer_cli.core.model_cache import CACHE_ENV_VAR
from infer_cli.core.model_uri import lookup_model_uri, parse_model_uri, resolve_model_uri
from infer_cli.core.store import inspect_model, load_model, resolve_model_path
from infer_cli.errors import ModelError, UsageError

from conftest import run_infer_cli

# Each URI form, and the registered version it names (None: not a registered version).
FORMS = {
    "models:/iris/1": 1,
    "models:/iris/2": 2,
    "models:/iris/latest": 2,
    "models:/iris/production": 2,
    "models:/iris/STAGING": 1,
    "models:/iris@champion": 1,
    "models:/iris@challenger": 2,
    "models:/{v2}": None,
    "models:/{unregistered}": None,
    "runs:/{run_v1}/model": None,
    "runs:/{run_legacy}/legacy": None,
}


def form(template: str, store: Store) -> str:
    return template.format(
        v2=store.models["v2"],
        unregistered=store.models["unregistered"],
        run_v1=store.runs["v1"],
        run_legacy=store.runs["legacy"],
    )


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV_VAR, str(cache))
    return cache


@pytest.fixture
def client_of(monkeypatch: pytest.MonkeyPatch) -> Any:
    """This process's environment set as a user of the store sets it."""

    def use(store: Store) -> Store:
        for key, value in store.env.items():
            monkeypatch.setenv(key, value)
        return store

    return use


@pytest.mark.parametrize("template", list(FORMS))
def test_every_uri_form_predicts_what_mlflow_predicts(
    template: str, store: Store, client_of: Any, mlflow_predictions: Any
) -> None:
    uri = form(template, store)
    features = iris_features()
    expected = mlflow_predictions(store, uri, features)
    model = load_model(uri, tracking_uri=client_of(store).tracking_uri)
    assert list(model.predict(features).values) == expected
    registry = model.card.source["registry"]
    assert registry["uri"] == uri
    assert registry["version"] == FORMS[template]


def test_versions_differ_so_the_forms_are_told_apart(sqlite_store: Store) -> None:
    features = iris_features()
    one = load_model("models:/iris/1", tracking_uri=sqlite_store.tracking_uri)
    two = load_model("models:/iris/2", tracking_uri=sqlite_store.tracking_uri)
    assert list(one.predict(features).values) != list(two.predict(features).values)


def test_registry_facts_describe_the_version(store: Store, client_of: Any) -> None:
    facts = lookup_model_uri("models:/iris@champion", client_of(store).tracking_uri)
    assert (facts.name, facts.version, facts.stage) == ("iris", 1, "Staging")
    assert "champion" in facts.aliases and "reload" in facts.aliases
    assert facts.run_id == store.runs["v1"]
    assert facts.model_id == store.models["v1"]
    assert facts.source == f"models:/{store.models['v1']}"
    assert facts.resolved == "models:/iris/1"
    assert facts.tracking_uri == store.tracking_uri
    assert PASSWORD not in str(facts.to_dict())


def test_a_deleted_version_never_resolves(store: Store, client_of: Any) -> None:
    with pytest.raises(ModelError, match=r"model 'iris' (version 3 was deleted|has no version 3)"):
        resolve_model_uri("models:/iris/3", client_of(store).tracking_uri)


def test_an_unknown_alias_lists_the_aliases(store: Store, client_of: Any) -> None:
    with pytest.raises(ModelError) as raised:
        resolve_model_uri("models:/iris@champ", client_of(store).tracking_uri)
    assert "has no alias 'champ'" in str(raised.value)
    assert "@champion -> 1" in str(raised.value)
    assert "@challenger -> 2" in str(raised.value)


def test_an_unknown_name_suggests_close_names(store: Store, client_of: Any) -> None:
    with pytest.raises(ModelError, match=r"no registered model 'irs' .*did you mean 'iris'\?"):
        resolve_model_uri("models:/irs/1", client_of(store).tracking_uri)


def test_an_unknown_version_or_empty_stage_lists_the_versions(store: Store, client_of: Any) -> None:
    uri = client_of(store).tracking_uri
    with pytest.raises(
        ModelError, match=r"no version 9 .*versions: 1 \(Staging\), 2 \(Production\)\)"
    ):
        resolve_model_uri("models:/iris/9", uri)
    with pytest.raises(ModelError, match=r"no version in stage Archived .*versions: 1 \(Staging\)"):
        resolve_model_uri("models:/iris/archived", uri)


def test_a_model_stored_in_s3_names_the_fix(store: Store, client_of: Any) -> None:
    with pytest.raises(ModelError) as raised:
        resolve_model_uri("models:/remote/1", client_of(store).tracking_uri)
    message = str(raised.value)
    assert f"model 'remote' version 1 is stored at {S3_SOURCE}" in message
    assert f"mlflow artifacts download --artifact-uri {S3_SOURCE}" in message


def test_malformed_uris_are_usage_errors() -> None:
    for text in ("models:/iris/nightly", "models:/", "models:/a/b/c", "runs:/", "models:/@x"):
        with pytest.raises(UsageError):
            parse_model_uri(text)
    with pytest.raises(UsageError, match="is a server, not a model"):
        parse_model_uri("http://127.0.0.1:5000")


def _copy_sqlite_store(store: Store, destination: Path) -> Path:
    """A copy of a SQLite store, made with SQLite's own backup so it is consistent."""
    assert store.database is not None
    destination.mkdir(parents=True, exist_ok=True)
    copy = destination / "mlflow.db"
    with sqlite3.connect(store.database) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    return copy


def _rewrite_paths(database: Path, old: str, new: str) -> None:
    """Point a SQLite store's recorded artifact paths elsewhere, as a copy from another
    machine records them."""
    with sqlite3.connect(database) as db:
        for table, column in (
            ("model_versions", "storage_location"),
            ("logged_models", "artifact_location"),
            ("runs", "artifact_uri"),
            ("experiments", "artifact_location"),
        ):
            db.execute(f"UPDATE {table} SET {column} = replace({column}, ?, ?)", (old, new))


def test_a_sqlite_store_without_workspace_columns_resolves(
    sqlite_store: Store, tmp_path: Path, mlflow_predictions: Any
) -> None:
    """Stores written before MLflow 3.10 have no `workspace` column in the registry."""
    database = _copy_sqlite_store(sqlite_store, tmp_path / "old")
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA foreign_keys = OFF")
        for table in ("registered_models", "model_versions", "registered_model_aliases"):
            columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
            assert "workspace" in columns
            kept = ", ".join(c for c in columns if c != "workspace")
            db.execute(f"CREATE TABLE {table}_old AS SELECT {kept} FROM {table}")
            db.execute(f"DROP TABLE {table}")
            db.execute(f"ALTER TABLE {table}_old RENAME TO {table}")
    features = iris_features()
    for uri in ("models:/iris@champion", "models:/iris/production", "models:/iris/latest"):
        expected = mlflow_predictions(sqlite_store, uri, features)
        model = load_model(uri, tracking_uri=f"sqlite:///{database}")
        assert list(model.predict(features).values) == expected
    with pytest.raises(ModelError, match="version 3 was deleted"):
        resolve_model_uri("models:/iris/3", f"sqlite:///{database}")


def test_another_workspace_is_read_from_mlflow_workspace(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_WORKSPACE", "team-b")
    with pytest.raises(ModelError, match="no registered model 'iris'"):
        resolve_model_uri("models:/iris/1", sqlite_store.tracking_uri)


def test_a_moved_sqlite_store_finds_its_artifacts_beside_it(
    sqlite_store: Store, tmp_path: Path
) -> None:
    moved = tmp_path / "moved"
    database = _copy_sqlite_store(sqlite_store, moved)
    shutil.copytree(sqlite_store.root / "mlruns", moved / "mlruns")
    _rewrite_paths(database, str(sqlite_store.root), "/srv/gone/elsewhere")
    for uri in ("models:/iris@challenger", f"runs:/{sqlite_store.runs['legacy']}/legacy"):
        resolved = resolve_model_uri(uri, f"sqlite:///{database}")
        assert resolved.directory.is_relative_to(moved)
        assert (resolved.directory / "MLmodel").is_file()
        assert resolved.facts is not None
        assert resolved.facts.artifact_location.startswith("/srv/gone/elsewhere")


def test_a_moved_file_store_finds_its_artifacts_inside_it(
    file_store: Store, tmp_path: Path, sqlite_store: Store
) -> None:
    moved = tmp_path / "copied" / "mlruns"
    shutil.copytree(file_store.root, moved)
    old = str(file_store.root)
    for meta in moved.rglob("meta.yaml"):
        meta.write_text(meta.read_text().replace(old, "/srv/gone/mlruns"))
    features = iris_features()
    expected = load_model("models:/iris/2", tracking_uri=file_store.tracking_uri)
    for uri in ("models:/iris/2", f"models:/{file_store.models['v2']}"):
        model = load_model(uri, tracking_uri=moved.as_uri())
        assert model.path.is_relative_to(moved)
        assert list(model.predict(features).values) == list(expected.predict(features).values)
    # A store that lost its artifacts says where it looked.
    shutil.rmtree(moved / "0" / "models" / file_store.models["v1"])
    with pytest.raises(ModelError, match=r"model 'iris' version 1: its files are not at /srv/gone"):
        resolve_model_uri("models:/iris/1", str(moved))


def _mark(database: Path, name: str, status: str, message: str | None = None) -> None:
    with sqlite3.connect(database) as db:
        db.execute(
            "UPDATE model_versions SET status = ?, status_message = ? WHERE name = ?",
            (status, message, name),
        )


@pytest.mark.parametrize("kind", ["sqlite", "server"])
def test_a_version_still_registering_or_failed_is_refused(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, client_of: Any
) -> None:
    store: Store = client_of(request.getfixturevalue(f"{kind}_store"))
    if kind == "sqlite":
        database = _copy_sqlite_store(store, tmp_path)
        tracking_uri = f"sqlite:///{database}"
    else:  # the server reads its database at each request
        assert store.database is not None
        database, tracking_uri = store.database, store.tracking_uri
    try:
        _mark(database, "pending", "PENDING_REGISTRATION")
        with pytest.raises(ModelError, match=r"'pending' version 1 is still PENDING_REGISTRATION"):
            resolve_model_uri("models:/pending/1", tracking_uri)
        _mark(database, "pending", "FAILED_REGISTRATION", "copy to the registry failed")
        with pytest.raises(
            ModelError, match=r"is FAILED_REGISTRATION: copy to the registry failed; it cannot"
        ):
            resolve_model_uri("models:/pending/latest", tracking_uri)
    finally:
        _mark(database, "pending", "READY")


def test_a_store_that_does_not_exist_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.db"
    with pytest.raises(ModelError, match=r"no MLflow store at sqlite:///.*nothing\.db"):
        resolve_model_uri("models:/iris/1", f"sqlite:///{missing}")
    assert not missing.exists()
    with pytest.raises(ModelError, match=r"no MLflow store at .*mlruns: .* is not a directory"):
        resolve_model_uri("models:/iris/1", str(tmp_path / "mlruns"))
    with pytest.raises(
        ModelError, match=r"not the postgresql database postgresql://u:\*\*\*@db/ml"
    ):
        resolve_model_uri("models:/iris/1", "postgresql://u:hunter2@db/ml")


def test_a_dead_server_is_named(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port once the probe is closed.
    with pytest.raises(
        ModelError, match=rf"tracking server at http://127\.0\.0\.1:{port} does not answer"
    ):
        resolve_model_uri("models:/iris/1", f"http://127.0.0.1:{port}")


def test_refused_credentials_are_named_without_the_password(
    server_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", USER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong-Passw0rd")
    with pytest.raises(ModelError) as raised:
        resolve_model_uri("models:/iris/1", server_store.tracking_uri)
    assert "refused the credentials (HTTP 401)" in str(raised.value)
    assert "wrong-Passw0rd" not in str(raised.value)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    with pytest.raises(
        ModelError, match="set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
    ):
        resolve_model_uri("models:/iris/1", server_store.tracking_uri)
    # Credentials in the URI work, and are not repeated back.
    with_password = server_store.tracking_uri.replace("://", f"://{USER}:{PASSWORD}@")
    resolved = resolve_model_uri("models:/iris/1", with_password)
    assert resolved.facts is not None
    assert PASSWORD not in str(resolved.facts.to_dict())


def test_a_download_is_cached_and_not_repeated(
    server_store: Store, client_of: Any, _private_cache: Path
) -> None:
    first = resolve_model_uri("models:/iris/2", client_of(server_store).tracking_uri)
    assert first.facts is not None and first.facts.cache == str(first.directory)
    assert first.directory.parent == _private_cache / "models"
    assert first.directory.name.startswith("iris-v2-")
    stamp = (first.directory / "MLmodel").stat().st_ino
    again = resolve_model_uri("models:/iris@challenger", server_store.tracking_uri)
    assert again.directory == first.directory
    assert (again.directory / "MLmodel").stat().st_ino == stamp
    assert sorted(p.name for p in _private_cache.joinpath("models").iterdir()) == [
        first.directory.name
    ]
    # A damaged entry (a file deleted by hand) is downloaded again.
    (first.directory / "MLmodel").unlink()
    repaired = resolve_model_uri("models:/iris/2", server_store.tracking_uri)
    assert (repaired.directory / "MLmodel").is_file()
    assert [p.name for p in _private_cache.joinpath("models").iterdir()] == [first.directory.name]


def test_two_runs_downloading_at_once_both_get_a_whole_model(
    server_store: Store, tmp_path: Path
) -> None:
    cache = tmp_path / "shared-cache"
    env = server_store.cli_env(**{CACHE_ENV_VAR: str(cache)})
    executable = Path(sys.executable).with_name("infer-cli")
    command = [
        str(executable), "info", "--json", "-m", "models:/iris/1",
        "--tracking-uri", server_store.tracking_uri,
    ]  # fmt: skip
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for _ in range(2)
    ]
    documents = []
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err.decode()
        documents.append(json.loads(out))
    entries = list((cache / "models").iterdir())
    assert len(entries) == 1 and not entries[0].name.startswith(".")
    assert [document["path"] for document in documents] == [str(entries[0])] * 2


def test_the_default_store_is_mlflow_db_here_unless_mlruns_holds_runs(
    sqlite_store: Store, file_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    _copy_sqlite_store(sqlite_store, tmp_path)
    facts = lookup_model_uri("models:/iris@champion")
    assert (facts.tracking_uri, facts.store) == ("sqlite:///mlflow.db", "SQLite store")
    shutil.copytree(file_store.root, tmp_path / "mlruns")
    facts = lookup_model_uri("models:/iris@champion")
    assert (facts.tracking_uri, facts.store) == ("mlruns", "file store")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_store.tracking_uri)
    assert lookup_model_uri("models:/iris/1").tracking_uri == sqlite_store.tracking_uri


def test_info_describes_a_registered_model_without_loading_it(sqlite_store: Store) -> None:
    inspection = inspect_model("models:/iris@challenger", tracking_uri=sqlite_store.tracking_uri)
    registry = inspection.card.source["registry"]
    assert (registry["name"], registry["version"], registry["stage"]) == ("iris", 2, "Production")
    assert inspection.card.source["format"] == "mlflow"


def test_mlflow_is_not_imported_to_resolve_a_uri(server_store: Store) -> None:
    script = (
        "import sys\n"
        "from infer_cli.core.store import load_model\n"
        f"model = load_model('models:/iris@champion', tracking_uri={server_store.tracking_uri!r})\n"
        "print(model.card.source['registry']['version'], 'mlflow' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
        env=server_store.cli_env(PYTHONWARNINGS="ignore"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "False"]


def test_predict_writes_what_mlflow_models_predict_writes_and_records_the_version(
    store: Store, client_of: Any, mlflow_module: Any, cli: Any, tmp_path: Path, sample_data: Path
) -> None:
    from mlflow.pyfunc.scoring_server import predictions_to_json

    rows = tmp_path / "rows.csv"
    iris_features().head(40).to_csv(rows, index=False)
    with as_client_of(client_of(store)):
        served = mlflow_module.pyfunc.load_model("models:/iris@challenger")
    expected = io.StringIO()
    predictions_to_json(served.predict(iris_features().head(40)), expected)
    output, summary = tmp_path / "predictions.json", tmp_path / "run.json"
    result = cli(
        "predict", "-m", "models:/iris@challenger", "--tracking-uri", store.tracking_uri,
        "-i", rows, "-o", output, "--output-format", "mlflow-json", "--summary-json", summary,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert output.read_text() == expected.getvalue()
    figures = json.loads(summary.read_text())
    assert (figures["model_uri"], figures["model_version"]) == ("models:/iris@challenger", 2)
    assert "models:/iris@challenger (version 2)" in result.stderr


def test_a_failed_run_records_the_uri_it_was_given(
    sqlite_store: Store, cli: Any, tmp_path: Path
) -> None:
    rows, summary = tmp_path / "rows.csv", tmp_path / "run.json"
    iris_features().head(3).to_csv(rows, index=False)
    result = cli(
        "predict", "-m", "models:/iris@nobody", "--tracking-uri", sqlite_store.tracking_uri,
        "-i", rows, "-o", tmp_path / "out.csv", "--summary-json", summary,
    )  # fmt: skip
    assert result.exit_code == 4
    figures = json.loads(summary.read_text())
    assert (figures["model_uri"], figures["model_version"]) == ("models:/iris@nobody", None)
    assert not (tmp_path / "out.csv").exists()


def test_every_command_that_takes_a_model_takes_a_uri(
    sqlite_store: Store, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    labelled = tmp_path / "labelled.csv"
    frame = iris_features()
    frame["species"] = pd.read_csv(SAMPLE_DATA / "iris.csv")["species"]
    frame.to_csv(labelled, index=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_store.tracking_uri)
    evaluated = cli(
        "evaluate", "-m", "models:/iris/production", "-i", labelled, "--target", "species", "--json"
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["metrics"]["accuracy"] > 0.9
    benched = cli(
        "bench", "-m", f"runs:/{sqlite_store.runs['v2']}/model", "--max-batch", "10",
        "--seconds", "0.05", "--json",
    )  # fmt: skip
    assert benched.exit_code == 0, benched.output
    shown = cli("info", "-m", "models:/iris@champion", "--json")
    assert shown.exit_code == 0, shown.output
    registry = json.loads(shown.stdout)["source"]["registry"]
    assert registry["uri"] == "models:/iris@champion"
    assert (registry["name"], registry["version"], registry["stage"]) == ("iris", 1, "Staging")
    assert registry["aliases"] == ["champion", "reload"]
    assert registry["tracking_uri"] == sqlite_store.tracking_uri
    card = cli("info", "-m", "models:/iris@champion")
    for fact in ("model URI", "iris version 1 (stage Staging, @champion, @reload)", "SQLite store"):
        assert fact in card.stderr


@pytest.mark.parametrize(
    ("arguments", "code", "message"),
    [
        (("-m", "models:/iris/nightly"), 2, "'nightly' is not a version number, 'latest' or a"),
        (("-m", "models:/irs/1"), 4, "no registered model 'irs' in sqlite:///"),
        (("-m", "models:/remote/1"), 4, f"is stored at {S3_SOURCE}, which infer-cli does not"),
        (("-m", "s3://bucket/model"), 4, "the model is stored at s3://bucket/model"),
        (("-m", "models:/iris/1", "--tracking-uri", "mysql://x@db/ml"), 4, "not the mysql"),
    ],
)
def test_uri_errors_are_one_line_with_their_exit_code(
    arguments: tuple[str, ...], code: int, message: str, sqlite_store: Store
) -> None:
    rows = SAMPLE_DATA / "iris_new.csv"
    done = run_infer_cli(
        "predict", "--tracking-uri", sqlite_store.tracking_uri, *arguments, "-i", rows,
        env=sqlite_store.cli_env(),
    )  # fmt: skip
    stderr = done.stderr.decode()
    assert done.returncode == code, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("infer-cli: error: ")
    assert message in stderr


def test_file_uris_and_proxied_artifact_locations_name_a_model_too(
    file_store: Store, server_store: Store, client_of: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    features = iris_features()
    directory = resolve_model_uri("models:/iris/2", file_store.tracking_uri).directory
    expected = list(load_model(directory).predict(features).values)
    by_file_uri = load_model(directory.as_uri())
    # serve watches a file URI's directory as it watches a path.
    assert resolve_model_path(directory.as_uri()) == directory
    assert by_file_uri.path == directory and "registry" not in by_file_uri.card.source
    assert list(by_file_uri.predict(features).values) == expected
    monkeypatch.setenv("INFER_CLI_MODEL", f"models:/{file_store.models['v2']}")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", file_store.tracking_uri)
    assert list(load_model().predict(features).values) == expected
    located = lookup_model_uri("models:/iris/2", client_of(server_store).tracking_uri)
    assert located.artifact_location.startswith("mlflow-artifacts:/")
    proxied = load_model(located.artifact_location, tracking_uri=server_store.tracking_uri)
    assert list(proxied.predict(features).values) == list(
        load_model("models:/iris/2", tracking_uri=server_store.tracking_uri)
        .predict(features)
        .values
    )
