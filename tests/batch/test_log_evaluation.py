"""`evaluate --log`: a server's logged predictions joined to labels that came later, measured
as they were served; and each way the join can fail, one line and its exit code."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.metrics import precision_score, recall_score

from infer_cli.core import load_model

from conftest import Server, run_infer_cli


@pytest.fixture
def churn_log(
    serve: Server, trained_models: dict[str, Path], sample_data: Path, tmp_path: Path
) -> tuple[Path, pd.DataFrame, dict[str, str]]:
    """A prediction log of 60 churn customers scored over a socket (half of them asking
    probabilities, one scored twice), the customers and the request id each was answered
    under."""
    directory = tmp_path / "log"
    app, port = serve(load_model(trained_models["churn"]), log_predictions=str(directory))
    customers = pd.read_csv(sample_data / "churn.csv").head(60)
    answered: dict[str, str] = {}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    for index, record in enumerate(customers.drop(columns=["churned"]).to_dict("records")):
        document: dict[str, Any] = {"dataframe_records": [record]}
        if index % 2:
            document["params"] = {"proba": True}
        for _ in range(2 if index == 0 else 1):
            body = json.dumps(document).encode()
            connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            assert response.status == 200
            prediction = json.loads(response.read())["predictions"][0]
            answered[record["customer_id"]] = prediction
            ids = response.getheader("X-Request-Id")
        customers.loc[index, "request_id"] = ids
    connection.close()
    app.close()
    return directory, customers, answered


def test_evaluate_log_measures_the_served_predictions(
    churn_log: tuple[Path, pd.DataFrame, dict[str, str]], tmp_path: Path, cli: Any
) -> None:
    directory, customers, answered = churn_log
    labels = tmp_path / "outcomes.csv"
    customers[["customer_id", "churned"]].to_csv(labels, index=False)
    result = run_infer_cli(
        "evaluate", "--log", directory, "--labels", labels, "--on", "customer_id", "--json"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    truth = customers["churned"].tolist()
    served = [answered[customer] for customer in customers["customer_id"]]
    assert report["rows"] == 60 and report["task"] == "classification"
    metrics = report["metrics"]
    assert metrics["accuracy"] == pytest.approx(sum(map(str.__eq__, truth, served)) / 60)
    assert metrics["per_class"]["yes"]["precision"] == pytest.approx(
        precision_score(truth, served, pos_label="yes", zero_division=0)
    )
    assert metrics["per_class"]["yes"]["recall"] == pytest.approx(
        recall_score(truth, served, pos_label="yes", zero_division=0)
    )
    assert report["roc_auc"] is not None and report["positive_class"] == "yes"
    stderr = result.stderr.decode()
    assert "joined 60 of 60 labels" in stderr and "1 logged row(s) share" in stderr
    assert "30 of 60 rows have logged probabilities" in stderr

    # By request id, a label file of another format and name for its label column.
    by_id = tmp_path / "by_id.jsonl"
    customers[["request_id", "churned"]].rename(columns={"churned": "outcome"}).to_json(
        by_id, orient="records", lines=True
    )
    again: Any = cli(
        "evaluate", "--log", directory, "--labels", by_id, "--on", "request_id", "--json"
    )
    assert again.exit_code == 0, again.output
    document = json.loads(again.stdout)
    assert (document["target"], document["rows"]) == ("outcome", 60)
    assert document["metrics"] == metrics


def _error(result: Any) -> tuple[int, str]:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return result.exit_code, lines[0]


def test_evaluate_log_refuses_what_cannot_be_joined(
    churn_log: tuple[Path, pd.DataFrame, dict[str, str]], tmp_path: Path, cli: Any
) -> None:
    directory, customers, _ = churn_log
    labels = tmp_path / "labels.csv"
    customers[["customer_id", "churned"]].to_csv(labels, index=False)

    def evaluate(*args: Any) -> tuple[int, str]:
        return _error(cli("evaluate", *args))

    empty = tmp_path / "empty"
    empty.mkdir()
    assert evaluate("--log", empty, "--labels", labels, "--on", "customer_id") == (
        3,
        f"infer-cli: error: {empty}: no prediction log files (predictions-*.parquet or "
        ".jsonl) in it",
    )
    code, message = evaluate("--log", directory, "--labels", labels, "--on", "account")
    assert code == 2 and message.startswith(
        "infer-cli: error: --on account: the prediction log has no such column (request_id, "
        "or one of its inputs: "
    )
    no_key = tmp_path / "no_key.csv"
    customers[["churned"]].assign(id=1).to_csv(no_key, index=False)
    assert evaluate("--log", directory, "--labels", no_key, "--on", "customer_id") == (
        2,
        f"infer-cli: error: {no_key}: no column 'customer_id' (--on); it has: churned, id",
    )
    strangers = tmp_path / "strangers.csv"
    pd.DataFrame({"customer_id": ["X-1", "X-2"], "churned": ["no", "yes"]}).to_csv(
        strangers, index=False
    )
    code, message = evaluate("--log", directory, "--labels", strangers, "--on", "customer_id")
    assert code == 3 and message.startswith(
        f"infer-cli: error: {strangers}: none of its 2 keys in 'customer_id' ('X-1', 'X-2'...) "
        "is in the prediction log (61 rows in 1 file(s) in "
    )
    twice = tmp_path / "twice.csv"
    pd.concat([customers.head(3), customers.iloc[[1]]])[["customer_id", "churned"]].to_csv(
        twice, index=False
    )
    assert evaluate("--log", directory, "--labels", twice, "--on", "customer_id") == (
        3,
        f"infer-cli: error: {twice}: key 'C-10002' is labelled twice (lines 3 and 5); each "
        "key must be labelled once",
    )
    assert evaluate("--log", directory, "--on", "customer_id") == (
        2,
        "infer-cli: error: --log needs --labels FILE and --on COLUMN (request_id or an input)",
    )
    assert evaluate("--log", directory, "-i", labels, "--labels", labels, "--on", "x") == (
        2,
        "infer-cli: error: give --input FILE or --log DIR, not both",
    )
    assert evaluate(
        "--log", directory, "--labels", labels, "--on", "customer_id", "--threshold", "0.3"
    ) == (
        2,
        "infer-cli: error: --threshold: not with --log, which measures the predictions as "
        "they were served",
    )
    assert evaluate("--labels", labels) == (
        2,
        "infer-cli: error: --labels and --on go with --log DIR (the prediction log)",
    )
