"""The predict summary: its figures, its table, and the progress bar only on a terminal."""

from __future__ import annotations

import io

from rich.console import Console

from infer_cli.batch import ScoringReport, predict_figures
from infer_cli.errors import DataError
from infer_cli.report import predict_progress, render_predict_summary

PATHS = {"model": "m", "input": "in.csv", "output": "out.csv", "rejects": "rejects.csv"}


def test_figures_of_a_failed_run_carry_its_status_code_and_counts() -> None:
    report = ScoringReport(rows_read=120, rows_scored=100, rows_rejected=0)
    error = DataError("in.csv, line 121, column 'x': 'a' is not a number")
    figures = predict_figures(
        report, model_load=0.5, scoring=1.5, wall=2.0, paths=PATHS, error=error
    )
    assert (figures["status"], figures["exit_code"], figures["error"]) == (
        "failed",
        3,
        "in.csv, line 121, column 'x': 'a' is not a number",
    )
    # Over the scoring time: the model's load does not grow with the input.
    assert (figures["rows_read"], figures["rows_per_second"]) == (120, 80)
    interrupted = predict_figures(
        None, model_load=0.1, scoring=0.0, wall=0.2, paths=PATHS, error=KeyboardInterrupt()
    )
    assert (interrupted["status"], interrupted["exit_code"], interrupted["rows_read"]) == (
        "interrupted",
        130,
        0,
    )


def test_summary_table_names_every_figure_and_where_the_rows_went() -> None:
    report = ScoringReport(rows_read=10, rows_scored=8, rows_rejected=2, read_seconds=1.5)
    console = Console(file=io.StringIO(), width=100)
    figures = predict_figures(report, model_load=0.2, scoring=2.5, wall=3, paths=PATHS)
    render_predict_summary(console, figures)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    labels = ["model load time", "rows read", "rows scored", "rows rejected", "read time"]
    labels += ["predict time", "write time", "scoring time", "wall time", "rows per second"]
    labels += ["peak memory"]
    assert all(label in text for label in labels), text
    assert "1.50 s" in text and "2.50 s" in text
    assert "4 (over scoring time)" in text
    assert "8 rows written to out.csv" in text
    assert "2 rejected rows written to rejects.csv" in text
    assert "start-up time" not in text  # not measured: not shown
    console = Console(file=io.StringIO(), width=100)
    one_row = {**figures, "output": "-", "rows_scored": 1}
    render_predict_summary(console, {**one_row, "seconds": {**figures["seconds"], "start_up": 0.4}})
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "1 row written to stdout" in text
    assert "start-up time" in text and "400.0 ms" in text


def test_progress_bar_only_on_a_terminal() -> None:
    with predict_progress(Console(file=io.StringIO())) as progress:
        assert progress is None
    with predict_progress(Console(file=io.StringIO(), quiet=True, force_terminal=True)) as progress:
        assert progress is None
    screen = io.StringIO()
    with predict_progress(Console(file=screen, force_terminal=True, width=100)) as progress:
        assert progress is not None
        progress(ScoringReport(rows_read=5000), 50, 100)
    assert "5,000 rows" in screen.getvalue()
