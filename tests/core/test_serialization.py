"""Model files as skops or joblib: `train --format skops`, trusted types, integrity, old models."""

from __future__ import annotations

import json
import operator
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from infer_cli.core import Column, Signature, load_model, save_model
from infer_cli.core.card import CARD_FILE, MODEL_FILE, ModelCard
from infer_cli.core.serialization import UntrustedTypes, review_trust
from infer_cli.errors import ModelError
from infer_cli.training import TrainOptions, train


@pytest.fixture(scope="session")
def skops_iris(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> Path:
    """The session's iris model, trained the same way and saved as skops by the CLI."""
    from typer.testing import CliRunner

    from infer_cli.cli import app

    directory = tmp_path_factory.mktemp("skops") / "iris"
    arguments = ["train", "-i", str(sample_data / "iris.csv"), "-t", "species"]
    result = CliRunner().invoke(app, [*arguments, "-o", str(directory), "--format", "skops"])
    assert result.exit_code == 0, result.output
    return directory


def negating_model(tmp_path: Path) -> Path:
    """A model holding a function that skops does not trust, saved as skops by infer-cli."""
    pipeline = Pipeline(
        [("negate", FunctionTransformer(operator.neg)), ("model", LogisticRegression())]
    )
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    pipeline.fit(frame, [1, 1, 0, 0])
    card = ModelCard("classification", "y", [0, 1], Signature((Column("x", "float"),)))
    save_model(pipeline, card, tmp_path / "negating", serialization="skops")
    return tmp_path / "negating"


def test_skops_model_records_its_format_and_predicts_as_the_joblib_one(
    skops_iris: Path, trained_models: dict[str, Path], sample_data: Path
) -> None:
    assert sorted(path.name for path in skops_iris.iterdir()) == [CARD_FILE, "model.skops"]
    card = json.loads((skops_iris / CARD_FILE).read_text())
    assert card["serialization"] == "skops"
    assert card["model_file"] == "model.skops"
    assert card["format_version"] == 2
    assert card["trusted_types"] == ["numpy.dtype"]
    rows = pd.read_csv(sample_data / "iris_new.csv")
    ours = load_model(skops_iris).predict(rows, proba=True)
    joblib = load_model(trained_models["iris"]).predict(rows, proba=True)
    assert ours.values.tolist() == joblib.values.tolist()
    assert np.array_equal(ours.probabilities, joblib.probabilities)  # type: ignore[arg-type]


def test_joblib_models_stay_format_1(trained_models: dict[str, Path]) -> None:
    card = json.loads((trained_models["iris"] / CARD_FILE).read_text())
    assert (card["format_version"], card["serialization"]) == (1, "joblib")


def test_model_saved_before_skops_still_loads(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    directory = tmp_path / "old"
    shutil.copytree(trained_models["iris"], directory)
    card = json.loads((directory / CARD_FILE).read_text())
    for key in ("serialization", "model_file", "trusted_types", "source"):
        del card[key]
    (directory / CARD_FILE).write_text(json.dumps(card))
    model = load_model(directory)
    assert model.card.serialization == "joblib"
    assert model.card.model_file == MODEL_FILE


def test_tampered_skops_file_is_refused(skops_iris: Path, tmp_path: Path, cli: Any) -> None:
    directory = tmp_path / "iris"
    shutil.copytree(skops_iris, directory)
    with open(directory / "model.skops", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelError, match=r"model\.skops: SHA-256 mismatch"):
        load_model(directory)
    result = cli("info", "-m", directory, "--json")
    assert result.exit_code == 4
    assert "model.skops does not match the SHA-256" in result.stderr


def test_info_says_skops_cannot_run_code(skops_iris: Path, cli: Any) -> None:
    result = cli("info", "-m", skops_iris, "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["pickle_based"] is False
    assert shown["model_format"] == "skops"
    assert "cannot run code" in shown["serialization"]
    assert shown["trust"]["vouched_by_metadata"] == ["numpy.dtype"]
    assert shown["source"] == {}


def test_untrusted_function_is_refused_with_its_name_until_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_data: Path
) -> None:
    directory = negating_model(tmp_path)
    assert json.loads((directory / CARD_FILE).read_text())["trusted_types"] == ["_operator.neg"]
    monkeypatch.delenv("INFER_CLI_TRUST_TYPES", raising=False)
    with pytest.raises(UntrustedTypes) as caught:
        load_model(directory)
    assert caught.value.types == ["_operator.neg"]
    assert caught.value.exit_code == 4
    assert str(caught.value) == (
        f"{directory / 'model.skops'}: refusing to load types that are not trusted: "
        "_operator.neg (listed by the model's metadata, which cannot vouch for functions or type "
        "objects); if you trust where this model came from, pass --trust-types _operator.neg"
    )
    rows = pd.DataFrame({"x": [0.0, 3.0]})
    trusted = load_model(directory, trust_types=["_operator.neg"])
    assert trusted.predict(rows).values.tolist() == [1, 0]
    monkeypatch.setenv("INFER_CLI_TRUST_TYPES", "numpy.float64, _operator.neg")
    assert load_model(directory).predict(rows).values.tolist() == [1, 0]


def test_forest_trees_are_vouched_for_by_the_card(tmp_path: Path, sample_data: Path) -> None:
    result = train(
        pd.read_csv(sample_data / "iris.csv"), TrainOptions(target="species", algorithm="forest")
    )
    card = save_model(result.estimator, result.card, tmp_path / "forest", serialization="skops")
    assert "sklearn.tree._tree.Tree" in card.trusted_types
    assert load_model(tmp_path / "forest").card.training["model"] == "forest"


def test_not_a_skops_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"junk\.skops: not a readable skops file"):
        review_trust(b"PK not really a zip", tmp_path / "junk.skops")


def test_train_format_must_be_joblib_or_skops(cli: Any, sample_data: Path, tmp_path: Path) -> None:
    result = cli(
        "train", "-i", sample_data / "iris.csv", "-t", "species", "-o", tmp_path / "m",
        "--format", "pickle",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "'--format': 'pickle' is not one of 'joblib', 'skops'" in result.stderr
    assert not (tmp_path / "m").exists()


def test_serve_admits_only_the_types_it_is_told_to_trust(tmp_path: Path) -> None:
    """The server's workers load the model too: the types reach them, and nothing else."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    from conftest import run_infer_cli

    directory = negating_model(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {key: value for key, value in os.environ.items() if key != "INFER_CLI_TRUST_TYPES"}
    serve = ["serve", "-m", directory, "--port", str(port), "--workers", "2", "-q"]
    refused = run_infer_cli(*serve, env=env)
    assert refused.returncode == 4
    assert b"refusing to load types that are not trusted: _operator.neg" in refused.stderr
    executable = Path(sys.executable).with_name("infer-cli")
    server = subprocess.Popen(
        [str(executable), *map(str, serve), "--trust-types", "_operator.neg"],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        body = json.dumps({"dataframe_split": {"columns": ["x"], "data": [[0.0], [3.0]]}})
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    answer = json.loads(response.read())
                break
            except OSError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "the server did not answer in time"
                time.sleep(0.2)
        assert answer == {"predictions": [1, 0]}
    finally:
        server.terminate()
        server.wait(timeout=30)
