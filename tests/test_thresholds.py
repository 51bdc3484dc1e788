"""Decision thresholds across the commands, as the churn team uses them: `predict
--threshold`, `evaluate --threshold` and `--choose-threshold ... --save`, the saved threshold
used by `predict`, `serve` and `info`, per-request thresholds, and every refusal. Real
subprocesses for the commands, a real socket for the server."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from infer_cli.core import Model, load_model
from infer_cli.serve.messages import Headers, Request
from infer_cli.serve.process import reload_model
from infer_cli.serve.routes import App, Job

from conftest import Server, call, run_infer_cli

NEGATIVE, POSITIVE = "no", "yes"
WIDE = {**os.environ, "COLUMNS": "250"}
"""A terminal wide enough for the tables not to wrap the lines a test reads."""


def _scored(*args: str | Path) -> pd.DataFrame:
    """`infer-cli predict ... -o -` as a frame (labels read as text)."""
    done = run_infer_cli("predict", *args, "-o", "-", "-q")
    assert done.returncode == 0, done.stderr.decode()
    return pd.read_csv(io.BytesIO(done.stdout), dtype={"prediction": str})


def _refused(result: Any) -> str:
    """The one line an in-process command refusing its options with exit code 2 wrote."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("infer-cli: error: "), result.stderr
    return str(lines[0].removeprefix("infer-cli: error: "))


def _one_line_error(done: subprocess.CompletedProcess[bytes], code: int) -> str:
    stderr = done.stderr.decode()
    assert done.returncode == code, stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    assert stderr.startswith("infer-cli: error: ")
    return stderr.removeprefix("infer-cli: error: ").strip()


@pytest.fixture(scope="module")
def probabilities(trained_models: dict[str, Path], sample_data: Path) -> pd.DataFrame:
    """The churn model's probabilities on churn_new.csv, from `predict --proba`."""
    return _scored("-m", trained_models["churn"], "-i", sample_data / "churn_new.csv",
                   "--proba", "--keep", "none")  # fmt: skip


def _at(probabilities: pd.DataFrame, threshold: float, positive: str = POSITIVE) -> list[str]:
    """Labels computed by hand from the probabilities."""
    other = NEGATIVE if positive == POSITIVE else POSITIVE
    chosen = probabilities[f"proba_{positive}"] >= threshold
    return [positive if flag else other for flag in chosen]


def test_predict_threshold_labels_rows_as_the_probabilities_say(
    trained_models: dict[str, Path], sample_data: Path, probabilities: pd.DataFrame
) -> None:
    model, rows = trained_models["churn"], sample_data / "churn_new.csv"
    at_06 = _scored("-m", model, "-i", rows, "--proba", "--keep", "none", "--threshold", "0.6")
    assert at_06["prediction"].tolist() == _at(probabilities, 0.6)
    assert at_06["prediction"].tolist() != probabilities["prediction"].tolist()
    pd.testing.assert_frame_equal(at_06.drop(columns="prediction"),
                                  probabilities.drop(columns="prediction"))  # fmt: skip
    on_no = _scored("-m", model, "-i", rows, "--keep", "none", "--threshold", "0.7",
                    "--positive-class", "no")  # fmt: skip
    assert on_no["prediction"].tolist() == _at(probabilities, 0.7, NEGATIVE)
    done = run_infer_cli("predict", "-m", model, "-i", rows, "-o", "-", "--threshold", "0.6")
    assert "note: labels at threshold 0.6 on P(yes), from --threshold" in done.stderr.decode()


def test_drift_judges_the_models_own_labels_whatever_the_threshold(
    trained_models: dict[str, Path], sample_data: Path, tmp_path: Path
) -> None:
    """The training profile holds the model's own labels: a threshold that moves many rows
    to the other class is no drift in the predictions."""
    drift = {}
    for name, arguments in (("own", []), ("at 0.9", ["--threshold", "0.9"])):
        summary = tmp_path / f"{name}.json"
        done = run_infer_cli("predict", "-m", trained_models["churn"], "-i",
                             sample_data / "churn_new.csv", "-o", tmp_path / f"{name}.csv",
                             "--summary-json", summary, "-q", *arguments)  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()
        drift[name] = json.loads(summary.read_text())["drift"]
    assert drift["own"]["prediction"] == drift["at 0.9"]["prediction"]
    labels = {name: pd.read_csv(tmp_path / f"{name}.csv")["prediction"] for name in drift}
    assert (labels["own"] == "yes").sum() > (labels["at 0.9"] == "yes").sum()


def test_evaluate_threshold_reports_its_metrics_and_confusion_matrix_at_it(
    trained_models: dict[str, Path], sample_data: Path
) -> None:
    model, labelled = trained_models["churn"], sample_data / "churn.csv"
    scored = _scored("-m", model, "-i", labelled, "--proba", "--keep", "churned")
    predicted = np.where(scored["proba_yes"] >= 0.7, POSITIVE, NEGATIVE)
    actual = scored["churned"].to_numpy()
    done = run_infer_cli("evaluate", "-m", model, "-i", labelled, "--threshold", "0.7", "--json")
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    matrix = [[int(((actual == truth) & (predicted == label)).sum()) for label in ("no", "yes")]
              for truth in ("no", "yes")]  # fmt: skip
    assert report["metrics"]["confusion_matrix"] == {"labels": ["no", "yes"], "matrix": matrix}
    assert report["metrics"]["accuracy"] == pytest.approx(float(np.mean(actual == predicted)))
    assert (report["threshold"], report["threshold_from"]) == (0.7, "--threshold")
    assert report["metrics"]["per_class"]["yes"]["recall"] == pytest.approx(
        report["at_threshold"]["recall"]
    )


def test_a_chosen_and_saved_threshold_is_used_by_predict_serve_and_info(
    model_copy: Callable[[str], Path], sample_data: Path, probabilities: pd.DataFrame
) -> None:
    saved_churn = model_copy("churn")
    model_file = saved_churn / "model.joblib"
    model_bytes = model_file.read_bytes()
    card_before = json.loads((saved_churn / "model.json").read_text())
    mode_before = (saved_churn / "model.json").stat().st_mode
    done = run_infer_cli("evaluate", "-m", saved_churn, "-i", sample_data / "churn.csv",
                         "--choose-threshold", "precision>=0.9", "--save", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    threshold = report["threshold"]
    assert 0.5 < threshold < 1 and report["chosen_by"] == "precision>=0.9"
    assert report["at_threshold"]["precision"] >= 0.9
    assert report["saved_to"] == str(saved_churn / "model.json")

    # The model file and its hash are untouched; the card says how the threshold was chosen.
    assert model_file.read_bytes() == model_bytes
    card = json.loads((saved_churn / "model.json").read_text())
    assert card["sha256"] == card_before["sha256"] == hashlib.sha256(model_bytes).hexdigest()
    assert card["decision"] == {
        "threshold": threshold,
        "positive_class": "yes",
        "chosen_by": "precision>=0.9",
        "source": "churn.csv",
        "rows": 1000,
        "precision": report["at_threshold"]["precision"],
        "recall": report["at_threshold"]["recall"],
        "f1": report["at_threshold"]["f1"],
    }
    assert card["format_version"] == 3
    assert {k: v for k, v in card.items() if k not in ("decision", "format_version")} == {
        k: v for k, v in card_before.items() if k != "format_version"
    }
    assert (saved_churn / "model.json").stat().st_mode == mode_before
    assert sorted(path.name for path in saved_churn.iterdir()) == ["model.joblib", "model.json"]

    # predict uses it, and says so; --threshold overrides it.
    rows = sample_data / "churn_new.csv"
    assert _scored("-m", saved_churn, "-i", rows)["prediction"].tolist() == _at(
        probabilities, threshold
    )
    done = run_infer_cli("predict", "-m", saved_churn, "-i", rows, "-o", "-")
    assert f"labels at threshold {threshold:g} on P(yes), from model.json" in done.stderr.decode()
    overridden = _scored("-m", saved_churn, "-i", rows, "--threshold", "0.5")
    assert overridden["prediction"].tolist() == _at(probabilities, 0.5)

    # info shows it and the model still loads and passes its integrity check.
    info = run_infer_cli("info", "-m", saved_churn, "--json")
    assert info.returncode == 0, info.stderr.decode()
    assert json.loads(info.stdout)["decision"] == card["decision"]
    assert json.loads(info.stdout)["sha256_matches"] is True
    shown = run_infer_cli("info", "-m", saved_churn, env=WIDE)
    assert re.search(rf"threshold\s+{threshold} on P\(yes\), chosen by precision>=0\.9 on "
                     r"churn\.csv \(1,000 rows\)", shown.stderr.decode())  # fmt: skip

    # serve answers at it unless the request or serve --threshold says otherwise.
    new_rows = pd.read_csv(rows).head(40)
    records = json.loads(new_rows.to_json(orient="records"))
    expected = probabilities.head(40)
    process, port = _start_serving("-m", saved_churn)
    try:
        assert _post(port, {"dataframe_records": records}) == (
            200, {"predictions": _at(expected, threshold), "threshold": threshold},
        )  # fmt: skip
        assert _post(port, {"dataframe_records": records, "params": {"threshold": 0.3}}) == (
            200, {"predictions": _at(expected, 0.3), "threshold": 0.3},
        )  # fmt: skip
        status, answer = _post(port, {"dataframe_records": records, "params": {"threshold": 0.5}})
        assert (status, answer) == (200, {"predictions": _at(expected, 0.5)})
    finally:
        process.send_signal(signal.SIGTERM)
    code, stderr = _finish(process)
    assert code == 0, stderr
    assert f"threshold {threshold:g} on P(yes), from model.json" in stderr
    process, port = _start_serving("-m", saved_churn, "--threshold", "0.4")
    try:
        assert _post(port, {"dataframe_records": records}) == (
            200, {"predictions": _at(expected, 0.4), "threshold": 0.4},
        )  # fmt: skip
    finally:
        process.send_signal(signal.SIGTERM)
    assert _finish(process)[0] == 0


def test_a_reload_picks_up_a_threshold_saved_over_the_served_model(
    model_copy: Callable[[str], Path], sample_data: Path
) -> None:
    from infer_cli.core import save_decision

    path = model_copy("churn")
    app = App()
    app.model = load_model(path)
    save_decision(path, {"threshold": 0.75, "positive_class": "yes"}, app.model.card.sha256)
    assert reload_model(app, path) is True
    assert app.model.decision() is not None and app.model.decision().threshold == 0.75
    assert reload_model(app, path) is False, "nothing changed since"


def test_requests_with_different_thresholds_share_one_model_call(
    trained_models: dict[str, Path], sample_data: Path
) -> None:
    loaded = load_model(trained_models["churn"])
    calls: list[int] = []
    counted = Model(_Counting(loaded.estimator, calls), loaded.card, loaded.path)
    app = App()
    app.model = counted
    rows = pd.read_csv(sample_data / "churn_new.csv").head(6)
    records = json.loads(rows.to_json(orient="records"))
    expected = loaded.estimator.predict_proba(rows)[:, 1]
    asked: list[Any] = [None, 0.2, 0.8, 0.5, 0.35, None]
    jobs = []
    for record, threshold in zip(records, asked, strict=True):
        document: dict[str, Any] = {"dataframe_records": [record]}
        if threshold is not None:
            document["params"] = {"threshold": threshold}
        jobs.append(_job(app, "/invocations", document))
    tensors = [{"name": name, "shape": [1], "data": [records[0][name]]}
               for name in loaded.signature.names]  # fmt: skip
    v2 = {"inputs": tensors, "parameters": {"threshold": 0.9}}
    jobs.append(_job(app, "/v2/models/churn/infer", v2))
    replies = app.answer(jobs)
    assert calls == [len(jobs)], "one model call for every request"
    for index, threshold in enumerate(asked):
        answer = json.loads(replies[index].body)
        if threshold is None:
            assert answer == {"predictions": [loaded.estimator.predict(rows.iloc[[index]])[0]]}
            continue
        label = POSITIVE if expected[index] >= threshold else NEGATIVE
        assert answer["predictions"] == [label]
        assert answer.get("threshold") == (None if threshold == 0.5 else threshold)
    v2_answer = json.loads(replies[-1].body)
    assert v2_answer["outputs"][0]["data"] == [POSITIVE if expected[0] >= 0.9 else NEGATIVE]
    assert v2_answer["parameters"] == {"threshold": 0.9}


def test_concurrent_requests_each_get_their_own_threshold(
    serve: Server, trained_models: dict[str, Path], sample_data: Path
) -> None:
    loaded = load_model(trained_models["churn"])
    _, port = serve(loaded)
    rows = pd.read_csv(sample_data / "churn_new.csv").head(24)
    records = json.loads(rows.to_json(orient="records"))
    expected = loaded.estimator.predict_proba(rows)[:, 1]
    thresholds = [round(0.1 + 0.8 * index / len(records), 3) for index in range(len(records))]
    answers: dict[int, Any] = {}
    start = threading.Barrier(len(records))

    def client(index: int) -> None:
        start.wait()
        document = {"dataframe_records": [records[index]],
                    "params": {"threshold": thresholds[index], "proba": True}}  # fmt: skip
        answers[index] = _post(port, document)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(records))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for index, threshold in enumerate(thresholds):
        status, answer = answers[index]
        assert status == 200, answer
        assert answer["predictions"] == [POSITIVE if expected[index] >= threshold else NEGATIVE]
        assert answer.get("threshold") == (None if threshold == 0.5 else threshold)
        assert answer["probabilities"][0][1] == pytest.approx(expected[index])


@pytest.mark.parametrize(
    ("model", "arguments", "message"),
    [
        ("housing", ["--threshold", "0.6"],
         "--threshold: a decision threshold is for binary classifiers, not a regressor"),
        ("iris", ["--threshold", "0.6"], "--threshold: a decision threshold is for binary "
         "classifiers; this model has 3 classes (setosa, versicolor, virginica)"),
        ("churn", ["--threshold", "1.5"],
         "--threshold must be a number between 0 and 1 (exclusive), not 1.5"),
        ("churn", ["--threshold", "0"],
         "--threshold must be a number between 0 and 1 (exclusive), not 0.0"),
        ("churn", ["--threshold", "0.6", "--positive-class", "maybe"],
         "--positive-class 'maybe' is not one of the model's classes (no, yes)"),
        ("churn", ["--positive-class", "yes"],
         "--positive-class goes with --threshold (or a saved one)"),
    ],
)  # fmt: skip
def test_predict_refuses_thresholds_that_do_not_fit_with_one_line(
    cli: Callable[..., Any], trained_models: dict[str, Path], sample_data: Path, model: str,
    arguments: list[str], message: str, tmp_path: Path,
) -> None:  # fmt: skip
    output = tmp_path / "out.csv"
    result = cli("predict", "-m", trained_models[model], "-i", sample_data / f"{model}_new.csv",
                 "-o", output, *arguments)  # fmt: skip
    assert _refused(result) == message
    assert not output.exists()


def test_a_refusal_is_one_line_from_the_real_command(trained_models: dict[str, Path]) -> None:
    rows = b"sepal_length,sepal_width,petal_length,petal_width\n1,2,3,4\n"
    model = trained_models["iris"]
    done = run_infer_cli("predict", "-m", model, "-i", "-", "--threshold", "0.6", input=rows)
    assert _one_line_error(done, 2).startswith("--threshold: a decision threshold is for binary")
    assert done.stdout == b""


def test_evaluate_refusals(
    cli: Callable[..., Any], trained_models: dict[str, Path], sample_data: Path, tmp_path: Path,
    model_copy: Callable[[str], Path],
) -> None:  # fmt: skip
    churn, labelled = model_copy("churn"), sample_data / "churn.csv"
    card = (churn / "model.json").read_bytes()

    def evaluate(model: Path, *arguments: str | Path, data: Path = labelled) -> str:
        return _refused(cli("evaluate", "-m", model, "-i", data, *arguments))

    # A constraint no threshold meets: the best score with the top-ranked churner relabelled.
    scored = _scored("-m", churn, "-i", labelled, "--proba")
    relabelled = scored.drop(columns=["prediction", "proba_no", "proba_yes"])
    relabelled.loc[scored["proba_yes"].idxmax(), "churned"] = "no"
    relabelled.to_csv(tmp_path / "relabelled.csv", index=False)
    message = evaluate(churn, "--choose-threshold", "precision>=0.99", "--save",
                       data=tmp_path / "relabelled.csv")  # fmt: skip
    assert re.fullmatch(
        r"no threshold gives precision>=0\.99 on relabelled\.csv: the best precision reachable "
        r"is 0\.9\d{3} \(at threshold 0\.\d+, with recall 0\.\d{4}\)",
        message,
    ), message
    assert (churn / "model.json").read_bytes() == card, "a failed choice saves nothing"
    assert evaluate(churn, "--choose-threshold", "accuracy>=0.9") == (
        "--choose-threshold must be precision>=P, recall>=R or f1, with P and R in (0, 1] "
        "(got 'accuracy>=0.9')"
    )
    assert evaluate(churn, "--save") == (
        "--save records a threshold: give --choose-threshold or --threshold"
    )
    assert evaluate(churn, "--threshold", "0.6", "--choose-threshold", "f1") == (
        "give --threshold or --choose-threshold, not both"
    )
    assert evaluate(trained_models["iris"], "--choose-threshold", "f1",
                    data=sample_data / "iris.csv") == (
        "--choose-threshold: a decision threshold is for binary classifiers; this model has "
        "3 classes (setosa, versicolor, virginica)"
    )  # fmt: skip
    # Only infer-cli's own directories have a card to record a threshold in.
    bare = tmp_path / "churn.joblib"
    bare.write_bytes((churn / "model.joblib").read_bytes())
    assert evaluate(bare, "--threshold", "0.6", "--target", "churned", "--save") == (
        f"--save: {bare} is a bare model file, with no model.json to record a threshold in; "
        "pass --threshold to predict and serve"
    )
    mlflow_model = _mlflow_directory(load_model(churn), tmp_path / "mlflow_churn")
    assert evaluate(mlflow_model, "--choose-threshold", "f1", "--target", "churned", "--save") == (
        f"--save: {mlflow_model} is an MLflow model, with no model.json to record a threshold "
        "in; pass --threshold to predict and serve"
    )
    assert sorted(p.name for p in mlflow_model.iterdir()) == ["MLmodel", "model.pkl"]
    # Such models still take a threshold on the command line.
    on_mlflow = _scored("-m", mlflow_model, "-i", sample_data / "churn_new.csv", "--proba",
                        "--threshold", "0.6")  # fmt: skip
    assert on_mlflow["prediction"].tolist() == _at(on_mlflow, 0.6)


def test_a_threshold_saved_for_another_model_is_refused(
    model_copy: Callable[[str], Path],
) -> None:
    from infer_cli.core import save_decision
    from infer_cli.errors import ModelError

    path = model_copy("churn")
    card = (path / "model.json").read_bytes()
    with pytest.raises(ModelError, match="the model was replaced while it was evaluated"):
        save_decision(path, {"threshold": 0.6, "positive_class": "yes"}, "0" * 64)
    assert (path / "model.json").read_bytes() == card


@pytest.mark.parametrize(
    ("decision", "reason"),
    [
        ({"threshold": 2, "positive_class": "yes"}, "'threshold' must be between 0 and 1, not 2"),
        ({"threshold": "0.6", "positive_class": "yes"}, "'threshold' must be a number, not text"),
        ({"threshold": 0.6, "positive_class": "maybe"}, "'positive_class' must be one of"),
    ],
)
def test_a_card_whose_saved_threshold_makes_no_sense_does_not_load(
    model_copy: Callable[[str], Path], decision: dict[str, Any], reason: str
) -> None:
    from infer_cli.errors import ModelError

    path = model_copy("churn")
    card = json.loads((path / "model.json").read_text())
    (path / "model.json").write_text(json.dumps({**card, "decision": decision}))
    with pytest.raises(ModelError, match=re.escape(f"field 'decision': {reason}")) as caught:
        load_model(path)
    assert caught.value.exit_code == 4


def test_serve_refuses_a_threshold_the_model_cannot_take(trained_models: dict[str, Path]) -> None:
    done = run_infer_cli("serve", "-m", trained_models["iris"], "-p", "0", "--threshold", "0.6")
    assert _one_line_error(done, 2) == (
        "--threshold: a decision threshold is for binary classifiers; this model has 3 classes "
        "(setosa, versicolor, virginica)"
    )


@pytest.mark.parametrize(
    ("model", "params", "message"),
    [
        ("churn", {"threshold": 1.5},
         "params: 'threshold' must be a number between 0 and 1 (exclusive), not 1.5"),
        ("churn", {"threshold": "0.6"},
         "params: 'threshold' must be a number between 0 and 1 (exclusive), not a str"),
        ("churn", {"threshold": ["x" * 50]},
         "params: 'threshold' must be a number between 0 and 1 (exclusive), not a list"),
        ("iris", {"threshold": 0.6}, "params: 'threshold': a decision threshold is for binary "
         "classifiers; this model has 3 classes (setosa, versicolor, virginica)"),
        ("housing", {"threshold": 0.6},
         "params: 'threshold': a decision threshold is for binary classifiers, not a regressor"),
    ],
)  # fmt: skip
def test_a_request_threshold_that_does_not_fit_is_a_400(
    serve: Server, trained_models: dict[str, Path], sample_data: Path, model: str,
    params: dict[str, Any], message: str,
) -> None:  # fmt: skip
    loaded = load_model(trained_models[model])
    _, port = serve(loaded)
    records = json.loads(pd.read_csv(sample_data / f"{model}_new.csv").head(2).to_json(
        orient="records"))  # fmt: skip
    assert _post(port, {"dataframe_records": records, "params": params}) == (
        400, {"error_code": "INVALID_PARAMETER_VALUE", "message": message},
    )  # fmt: skip
    v2 = {"inputs": [{"name": name, "shape": [2], "data": [row[name] for row in records]}
                     for name in loaded.signature.names], "parameters": params}  # fmt: skip
    status, answer = _post(port, v2, f"/v2/models/{model}/infer")
    assert (status, answer) == (400, {"error": message.replace("params:", "parameters:")})
    assert _post(port, {"dataframe_records": records})[0] == 200


# Helpers.


class _Counting:
    """An estimator that counts the rows of each call it gets."""

    def __init__(self, inner: Any, calls: list[int]) -> None:
        self.inner = inner
        self.calls = calls
        self.feature_names_in_ = getattr(inner, "feature_names_in_", None)

    def predict(self, features: Any) -> Any:
        self.calls.append(len(features))
        return self.inner.predict(features)

    def predict_proba(self, features: Any) -> Any:
        return self.inner.predict_proba(features)


def _job(app: App, path: str, document: Any) -> Job:
    headers = Headers({"Content-Type": "application/json"})
    request = Request("POST", path, headers, json.dumps(document).encode())
    routed = app.route(request)
    assert isinstance(routed, Job), routed
    return routed


def _post(port: int, document: Any, path: str = "/invocations") -> tuple[int, Any]:
    status, _, body = call(port, "POST", path, json.dumps(document).encode())
    return status, json.loads(body)


def _mlflow_directory(model: Model, directory: Path) -> Path:
    """An MLflow model directory as `mlflow.sklearn.save_model` writes one in pickle format."""
    directory.mkdir()
    with open(directory / "model.pkl", "wb") as handle:
        pickle.dump(model.estimator, handle)
    (directory / "MLmodel").write_text(
        "flavors:\n"
        "  python_function:\n    loader_module: mlflow.sklearn\n    model_path: model.pkl\n"
        "  sklearn:\n    pickled_model: model.pkl\n    serialization_format: pickle\n"
        "    sklearn_version: 1.0\n"
    )
    return directory


_STARTED: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _no_server_left_behind() -> Iterator[None]:
    yield
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _start_serving(*args: str | Path) -> tuple[subprocess.Popen[bytes], int]:
    executable = Path(sys.executable).with_name("infer-cli")
    process = subprocess.Popen(
        [str(executable), "serve", "-p", "0", "--no-access-log", *map(str, args)],
        stderr=subprocess.PIPE,
        env=WIDE,
        start_new_session=True,
    )
    _STARTED.append(process)
    assert process.stderr is not None
    seen = []
    for raw in process.stderr:
        seen.append(raw.decode())
        found = re.search(r"http://127\.0\.0\.1:(\d+)/invocations", seen[-1])
        if found:
            return process, int(found.group(1))
    raise AssertionError(f"the server did not start: {''.join(seen)}")


def _finish(process: subprocess.Popen[bytes]) -> tuple[int, str]:
    assert process.stderr is not None
    remaining = process.stderr.read().decode()
    return process.wait(30), remaining
