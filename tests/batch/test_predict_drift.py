"""Drift in `predict` and the `profile` command, through the real command line: a model's
training profile, the drift table and its JSON, --fail-on-drift's exit code 5 with a complete
output, too few rows, a model without a profile, and profiles added to models without one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
import pytest

from infer_cli.core import inspect_model, load_model
from infer_cli.errors import ExitCode

from conftest import run_infer_cli
from drift_data import customers, save_shop_model, shifted


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A model that reads every column but predicts from `score` alone, saved without a
    profile and given one by `infer-cli profile`; its training data beside it."""
    root = tmp_path_factory.mktemp("shop")
    training = customers(3000, seed=0)
    training.to_csv(root / "train.csv", index=False)
    save_shop_model(training, root / "model")
    added = run_infer_cli("profile", "-m", root / "model", "-i", root / "train.csv")
    assert added.returncode == 0, added.stderr.decode()
    assert b"written to" in added.stderr
    return {"model": root / "model", "train": root / "train.csv", "root": root}


class Done:
    """A finished command, from a subprocess or from the in-process runner alike."""

    def __init__(self, result: Any) -> None:
        self.returncode = getattr(result, "returncode", getattr(result, "exit_code", None))
        stderr = result.stderr
        self.stderr = stderr if isinstance(stderr, bytes) else stderr.encode()


def predict(
    model: Path, rows: pd.DataFrame, tmp_path: Path, *options: Any, cli: Any = None
) -> tuple[Done, dict]:
    """`predict` of `rows` (as a real subprocess, or in process through `cli`)."""
    source = tmp_path / "in.csv"
    rows.to_csv(source, index=False)
    summary = tmp_path / "run.json"
    arguments = ["predict", "-m", model, "-i", source, "-o", tmp_path / "out.csv",
                 "--summary-json", summary, *options]  # fmt: skip
    done = cli(*arguments) if cli is not None else run_infer_cli(*arguments)
    return Done(done), json.loads(summary.read_text())


def test_profile_writes_beside_the_model_and_its_sha256_check_still_passes(
    shop: dict[str, Path],
) -> None:
    written = json.loads((shop["model"] / "profile.json").read_text())
    assert set(written["columns"]) == {"amount", "visits", "plan", "score"}
    assert written["prediction"]["kind"] == "categorical"
    assert written["made_from"] == str(shop["train"])
    assert len(json.dumps(written)) < 8000
    inspection = inspect_model(shop["model"])
    assert inspection.matches is True
    assert "profile" not in json.loads((shop["model"] / "model.json").read_text()) or (
        json.loads((shop["model"] / "model.json").read_text())["profile"] is None
    )
    load_model(shop["model"])  # loads, SHA-256 checked
    info = run_infer_cli("info", "-m", shop["model"])
    assert info.returncode == 0, info.stderr.decode()


def test_the_same_distribution_scores_with_no_flag(shop: dict[str, Path], tmp_path: Path) -> None:
    done, figures = predict(shop["model"], shifted("none"), tmp_path, "--fail-on-drift", "0.25")
    assert done.returncode == 0, done.stderr.decode()
    drift = figures["drift"]
    assert drift["profile"] == str(shop["model"] / "profile.json")
    assert drift["rows"] == 2000 and drift["enough_rows"] is True
    assert drift["drifted"] == [] and drift["max_psi"] < 0.05
    assert set(drift["columns"]) == {"amount", "visits", "plan", "score"}
    assert drift["prediction"]["psi"] < 0.05
    stderr = done.stderr.decode()
    assert "Drift against the training profile" in stderr and " drift " not in stderr


@pytest.mark.parametrize(
    ("shift", "flagged"),
    [
        ("scale", ["amount"]),
        ("category", ["plan"]),
        ("empty", ["visits"]),
        # The label follows `score`: another mix of labels moves it and the predictions.
        ("labels", ["prediction", "score"]),
    ],
)
def test_each_shift_is_flagged_on_its_column_only(
    cli: Any, shop: dict[str, Path], tmp_path: Path, shift: str, flagged: list[str]
) -> None:
    done, figures = predict(shop["model"], shifted(shift), tmp_path, cli=cli)
    assert done.returncode == 0, done.stderr.decode()
    drift = figures["drift"]
    assert sorted(drift["drifted"]) == flagged
    columns = {**drift["columns"], "prediction": drift["prediction"]}
    for name, column in columns.items():
        assert (column["psi"] > 0.25) == (name in flagged), (name, column["psi"])
    assert drift["max_psi"] == max(column["psi"] for column in columns.values())
    if shift == "scale":
        assert columns["amount"]["out_of_range_share"] > 0.9
    if shift == "category":
        assert columns["plan"]["unseen_share"] == pytest.approx(1 / 3, abs=0.001)
    if shift == "empty":
        assert columns["visits"]["missing_share"] == 0.5
        assert columns["visits"]["missing_share_change"] == 0.5
    lines = done.stderr.decode().splitlines()
    marked = [line for line in lines if line.rstrip().endswith(" drift")]
    assert sorted(line.split()[0] for line in marked) == flagged


def test_fail_on_drift_exits_5_after_writing_the_whole_output(
    shop: dict[str, Path], tmp_path: Path
) -> None:
    rows = shifted("scale")
    done, figures = predict(shop["model"], rows, tmp_path, "--fail-on-drift", "0.25")
    assert done.returncode == ExitCode.DRIFT == 5
    stderr = done.stderr.decode().strip().splitlines()
    assert stderr[-1].startswith("infer-cli: error: drift: PSI ")
    assert "'amount'" in stderr[-1] and "--fail-on-drift 0.25" in stderr[-1]
    assert any("Scored" in line for line in stderr)  # the summary came first
    scored = pd.read_csv(tmp_path / "out.csv")
    assert len(scored) == len(rows)
    assert scored["customer_id"].tolist() == rows["customer_id"].tolist()
    expected = load_model(shop["model"]).predict(rows).values.tolist()
    assert scored["prediction"].tolist() == expected
    assert figures["status"] == "drift" and figures["exit_code"] == 5
    assert figures["error"] == stderr[-1].removeprefix("infer-cli: error: ")
    assert figures["drift"]["columns"]["amount"]["psi"] > 0.25


def test_fail_on_drift_at_a_higher_level_lets_a_shift_pass(
    cli: Any, shop: dict[str, Path], tmp_path: Path
) -> None:
    rows = shifted("category")
    done, figures = predict(shop["model"], rows, tmp_path, "--fail-on-drift", "50", cli=cli)
    assert done.returncode == 0, done.stderr.decode()
    assert figures["status"] == "ok" and figures["drift"]["drifted"] == []


def test_too_few_rows_are_said_to_be_too_few_and_not_flagged(
    cli: Any, shop: dict[str, Path], tmp_path: Path
) -> None:
    rows = shifted("scale", count=20)
    done, figures = predict(shop["model"], rows, tmp_path, "--fail-on-drift", "0.25", cli=cli)
    assert done.returncode == 0, done.stderr.decode()
    assert "too few rows to judge (20 scored; at least 200 are needed)" in done.stderr.decode()
    assert figures["drift"]["enough_rows"] is False and figures["drift"]["drifted"] == []


def test_a_model_without_a_profile_gets_a_one_line_notice(
    shop: dict[str, Path], tmp_path: Path
) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(shop["model"], bare)
    (bare / "profile.json").unlink()
    done, figures = predict(bare, shifted("scale"), tmp_path, "--fail-on-drift", "0.25")
    assert done.returncode == 0, done.stderr.decode()
    notes = [line for line in done.stderr.decode().splitlines() if "no training profile" in line]
    assert notes == [
        f"note: the model has no training profile, so drift is not checked (add one: "
        f"infer-cli profile -m {bare} -i TRAIN.csv)"
    ]
    assert figures["drift"] is None


def test_train_records_the_profile_in_the_model_card(
    cli: Any, trained_models: dict[str, Path], sample_data: Path, tmp_path: Path
) -> None:
    card = json.loads((trained_models["churn"] / "model.json").read_text())
    profile = card["profile"]
    assert profile["rows"] == card["training"]["rows_train"]
    assert profile["columns"]["contract"]["kind"] == "categorical"
    assert profile["columns"]["tenure_months"]["kind"] == "numeric"
    assert set(profile["prediction"]["categories"]) == {"no", "yes"}
    reviews = json.loads((trained_models["reviews"] / "model.json").read_text())["profile"]
    assert reviews["columns"]["review"]["kind"] == "text"
    housing = json.loads((trained_models["housing"] / "model.json").read_text())["profile"]
    assert housing["prediction"]["kind"] == "numeric"
    rows = pd.read_csv(sample_data / "churn_new.csv")
    done, figures = predict(trained_models["churn"], rows, tmp_path, cli=cli)
    assert done.returncode == 0, done.stderr.decode()
    assert figures["drift"]["profile"] == str(trained_models["churn"] / "model.json")
    assert figures["drift"]["drifted"] == []


def test_a_bare_file_gets_its_profile_beside_it_and_elsewhere_with_profile(
    shop: dict[str, Path], tmp_path: Path
) -> None:
    estimator = load_model(shop["model"]).estimator
    bare = tmp_path / "shop.joblib"
    joblib.dump(estimator, bare)
    done = run_infer_cli("profile", "-m", bare, "-i", shop["train"])
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "shop.profile.json").is_file()
    elsewhere = tmp_path / "kept" / "shop-profile.json"
    elsewhere.parent.mkdir()
    done = run_infer_cli("profile", "-m", bare, "-i", shop["train"], "--profile", elsewhere)
    assert done.returncode == 0, done.stderr.decode()
    (tmp_path / "shop.profile.json").unlink()
    scored, figures = predict(bare, shifted("category"), tmp_path, "--profile", elsewhere)
    assert scored.returncode == 0, scored.stderr.decode()
    assert figures["drift"]["profile"] == str(elsewhere)
    assert figures["drift"]["drifted"] == ["plan"]


def test_profile_refuses_rows_that_do_not_fit_the_model(
    shop: dict[str, Path], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    customers(30, seed=5).drop(columns=["score"]).to_csv(bad, index=False)
    done = run_infer_cli(
        "profile", "-m", shop["model"], "-i", bad, "--profile", tmp_path / "p.json"
    )
    assert done.returncode == ExitCode.DATA
    assert done.stderr.decode().startswith(f"infer-cli: error: {bad}: missing column 'score'")
    assert not (tmp_path / "p.json").exists()


def test_an_mlflow_model_gets_a_profile_json_and_its_own_files_stay_as_they_were(
    mlflow_module: Any, shop: dict[str, Path], tmp_path: Path
) -> None:
    from mlflow.models import infer_signature

    training = pd.read_csv(shop["train"])
    features = training.drop(columns=["label", "customer_id"])
    estimator = load_model(shop["model"]).estimator
    directory = tmp_path / "mlflow_shop"
    mlflow_module.sklearn.save_model(
        estimator, directory, serialization_format="pickle",
        signature=infer_signature(features), pip_requirements=[],
    )  # fmt: skip
    before = {path.name: path.read_bytes() for path in directory.rglob("*") if path.is_file()}
    done = run_infer_cli("profile", "-m", directory, "-i", shop["train"])
    assert done.returncode == 0, done.stderr.decode()
    after = {path.name: path.read_bytes() for path in directory.rglob("*") if path.is_file()}
    assert set(after) - set(before) == {"profile.json"}
    assert all(after[name] == content for name, content in before.items())
    scored, figures = predict(directory, shifted("scale"), tmp_path)
    assert scored.returncode == 0, scored.stderr.decode()
    assert figures["drift"]["profile"] == str(directory / "profile.json")
    assert figures["drift"]["drifted"] == ["amount"]


def test_profile_never_writes_over_the_model_or_its_training_data(
    cli: Any, shop: dict[str, Path], tmp_path: Path
) -> None:
    model = tmp_path / "model"
    shutil.copytree(shop["model"], model)
    card = (model / "model.json").read_bytes()
    over_card = cli("profile", "-m", model, "-i", shop["train"], "--profile", model / "model.json")
    assert over_card.exit_code == ExitCode.USAGE
    assert "would write over the model's own files" in over_card.stderr
    assert (model / "model.json").read_bytes() == card
    data = shop["train"].read_bytes()
    over_data = cli("profile", "-m", model, "-i", shop["train"], "--profile", shop["train"])
    assert over_data.exit_code == ExitCode.USAGE
    assert "is the same file as --input" in over_data.stderr
    assert shop["train"].read_bytes() == data


def test_a_model_with_a_profile_json_is_trained_over_like_any_model(
    cli: Any, shop: dict[str, Path], tmp_path: Path
) -> None:
    model = tmp_path / "model"
    shutil.copytree(shop["model"], model)
    assert (model / "profile.json").is_file()
    training = pd.read_csv(shop["train"])
    done = cli("train", "-i", shop["train"], "--target", "label", "-o", model, "-q")
    assert done.exit_code == 0, done.stderr
    # The new model's card holds its own profile; the old model's file went with it.
    assert not (model / "profile.json").exists()
    card = json.loads((model / "model.json").read_text())
    assert card["profile"]["rows"] == round(len(training) * 0.8)


def test_the_dask_engine_sums_the_partitions_into_the_same_figures(
    shop: dict[str, Path], tmp_path: Path
) -> None:
    pytest.importorskip("distributed")
    rows = shifted("category")
    single, alone = predict(shop["model"], rows, tmp_path)
    assert single.returncode == 0, single.stderr.decode()
    parts = tmp_path / "parts"
    parts.mkdir()
    for index in range(3):
        rows.iloc[index::3].to_csv(parts / f"day-{index}.csv", index=False)
    summary = tmp_path / "dask.json"
    done = run_infer_cli(
        "predict", "--engine", "dask", "-m", shop["model"], "-i", parts,
        "-o", tmp_path / "scored", "--summary-json", summary,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    spread = json.loads(summary.read_text())["drift"]
    for figures in (spread, alone["drift"]):
        figures.pop("seconds")
    assert spread == alone["drift"]
