"""`predict --drift-report`: one self-contained HTML page, opened in a real headless Chromium
(the system's package) to see that it renders its charts."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from infer_cli.report.drift_html import CURRENT_COLOUR, TRAINING_COLOUR, drift_page

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# No network, no first-run work, a profile of its own: only the page is looked at.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--hide-scrollbars",
)  # fmt: skip


@pytest.fixture(scope="module")
def report(trained_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of churn rows whose charges are in cents and a third of whose contracts
    are of a kind never seen in training."""
    from typer.testing import CliRunner

    from infer_cli.cli import app

    root = tmp_path_factory.mktemp("drift_report")
    rows = pd.read_csv(Path(__file__).parents[2] / "sample_data" / "churn.csv")
    rows["monthly_charges"] = rows["monthly_charges"] * 100
    rows.loc[rows.index[::3], "contract"] = "weekly"
    rows.to_csv(root / "in.csv", index=False)
    page = root / "drift.html"
    arguments = ["predict", "-m", trained_models["churn"], "-i", root / "in.csv",
                 "-o", root / "out.csv", "--drift-report", page]  # fmt: skip
    result = CliRunner().invoke(app, [str(argument) for argument in arguments])
    assert result.exit_code == 0, result.output + result.stderr
    return page


def drifting_charts(html: str) -> list[str]:
    """The names of the columns charted before the section of steady ones."""
    drifting = html.split("<details>")[0]
    return re.findall(r'<section id="[^"]+"><h2>([^ <]+) ', drifting)


def test_the_page_is_self_contained_with_a_chart_per_drifting_column(report: Path) -> None:
    html = report.read_text()
    assert html.startswith("<!DOCTYPE html>")
    for outside in ("http:", "https:", "<script", "<link", "src=", "url(", "@import"):
        assert outside not in html, outside
    assert sorted(drifting_charts(html)) == ["contract", "monthly_charges", "prediction"]
    assert html.count('<svg class="chart"') == 8  # 7 columns and the predictions
    assert "33.4% categories unseen in training" in html
    assert "100.0% outside the training range" in html


def test_names_and_labels_are_escaped() -> None:
    column = {
        "kind": "categorical", "psi": 1.0, "missing_share": 0.0, "training_missing_share": 0.0,
        "out_of_range_share": None, "unseen_share": 0.5, "drifted": True,
        "bins": {"labels": ["(missing)", "<b>x</b>"], "training": [0.0, 1.0],
                 "current": [0.0, 0.5]},
    }  # fmt: skip
    figures: dict[str, Any] = {
        "input": "<in>.csv", "model": "m",
        "drift": {"profile": "p", "rows": 500, "min_rows": 200, "enough_rows": True,
                  "threshold": 0.25, "columns": {"<script>": column}, "prediction": None},
    }  # fmt: skip
    html = drift_page(figures)
    assert "<script>" not in html and "<b>x</b>" not in html
    assert "&lt;script&gt;" in html and "&lt;b&gt;x&lt;/b&gt;" in html


def test_a_run_without_a_profile_still_gets_a_page_that_says_so() -> None:
    html = drift_page({"input": "in.csv", "model": "model", "drift": None})
    assert "has no training profile" in html and "infer-cli profile" in html


def _browser() -> str | None:
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def _chromium(*arguments: str) -> subprocess.CompletedProcess[bytes]:
    browser = _browser()
    if browser is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments],
            capture_output=True,
            timeout=120,
        )


def test_chromium_renders_the_charts(report: Path, tmp_path: Path) -> None:
    dom = _chromium("--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr.decode()[-2000:]
    rendered = dom.stdout.decode()
    assert sorted(drifting_charts(rendered)) == ["contract", "monthly_charges", "prediction"]
    assert rendered.count('class="current"') > 30

    shot = tmp_path / "page.png"
    done = _chromium("--window-size=1000,2400", f"--screenshot={shot}", report.as_uri())
    assert done.returncode == 0 and shot.is_file(), done.stderr.decode()[-2000:]
    from PIL import Image

    pixels = np.frombuffer(Image.open(shot).convert("RGB").tobytes(), np.uint8).reshape(-1, 3)
    counts = {colour: int((pixels == _rgb(colour)).all(axis=1).sum())
              for colour in (CURRENT_COLOUR, TRAINING_COLOUR)}  # fmt: skip
    # Bars of both colours on screen: the charts were drawn, not only present in the DOM.
    assert counts[CURRENT_COLOUR] > 5000, counts
    assert counts[TRAINING_COLOUR] > 5000, counts


def _rgb(colour: str) -> tuple[int, int, int]:
    return (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16))
