"""`info`: the model card, as people and machines read it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infer_cli.core.card import CARD_FILE, MODEL_FILE


def test_info_json_matches_the_saved_card(cli: Any, trained_models: dict[str, Path]) -> None:
    result = cli("info", "-m", trained_models["churn"], "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    saved = json.loads((trained_models["churn"] / CARD_FILE).read_text())
    for key in ("task", "target", "classes", "signature", "metrics", "versions", "created"):
        assert shown[key] == saved[key]
    assert shown["sha256_matches"] is True
    assert shown["size_bytes"] == (trained_models["churn"] / MODEL_FILE).stat().st_size
    assert "pickle" in shown["serialization"]
    assert len(shown["example"]) == 3
    assert set(shown["example"][0]) == {c["name"] for c in saved["signature"]["inputs"]}


def test_info_card_names_signature_metrics_and_integrity(
    cli: Any, trained_models: dict[str, Path]
) -> None:
    result = cli("info", "-m", trained_models["reviews"])
    assert result.exit_code == 0, result.output
    for fact in ("sentiment", "review_id", "pass-through", "text", "matches model.json"):
        assert fact in result.stderr
    assert "accuracy" in result.stderr
    assert result.stdout == ""


def test_info_reports_a_tampered_file_and_fails(
    cli: Any, model_copy: Callable[[str], Path]
) -> None:
    directory = model_copy("iris")
    with open(directory / MODEL_FILE, "ab") as handle:
        handle.write(b"tampered")
    result = cli("info", "-m", directory, "--json")
    assert result.exit_code == 4
    assert json.loads(result.stdout)["sha256_matches"] is False
    assert "does not match the SHA-256" in result.stderr
