"""`predict --drift-report FILE`: one self-contained HTML page for a person to look at, the
drift table and, for each drifting column, a chart of its training distribution against
today's. Inline SVG and CSS only: no script, no font, no file fetched from anywhere."""

from __future__ import annotations

from html import escape
from typing import Any

from ..tables.atomic import atomic_output
from .drift import percent

TRAINING_COLOUR = "#9aa5b1"
CURRENT_COLOUR = "#d1495b"
_BAR_HEIGHT = 11
_ROW_HEIGHT = 30
_LABEL_WIDTH = 170
_PLOT_WIDTH = 420
_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2933;
       margin: 2em auto; max-width: 960px; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 2em; }
.facts { color: #52606d; } table { border-collapse: collapse; margin: 1em 0; }
th, td { padding: 0.3em 0.8em; border-bottom: 1px solid #e4e7eb; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.drifted td { background: #fdecee; font-weight: 600; }
.flag { color: #b3261e; font-weight: 700; } .note { color: #7b5e00; }
.legend span { display: inline-block; width: 0.9em; height: 0.9em; margin: 0 0.3em 0 1em;
               vertical-align: -0.1em; }
svg text { font: 12px system-ui, sans-serif; fill: #1f2933; }
"""


def write_drift_report(path: str, figures: dict[str, Any]) -> None:
    """Write the report of a `predict` run's figures to `path`, atomically."""
    with atomic_output(path) as handle:
        handle.write(drift_page(figures).encode("utf-8"))


def drift_page(figures: dict[str, Any]) -> str:
    """The HTML page of a run's figures (their `drift` section, and what was scored)."""
    drift = figures.get("drift")
    title = f"Drift of {figures.get('input') or 'the input'}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
    ]
    model = figures.get("model_uri") or figures.get("model")
    if drift is None:
        parts.append(
            f'<p class="facts">scored by {escape(str(model))}</p>'
            '<p class="note">The model has no training profile, so there is nothing to compare '
            "this input with. Add one with <code>infer-cli profile -m MODEL -i TRAIN.csv</code>."
            "</p></body></html>"
        )
        return "\n".join(parts)
    parts.append(
        f'<p class="facts">{drift["rows"]:,} rows scored by {escape(str(model))}, against '
        f"the training profile in {escape(str(drift['profile']))}. A PSI above "
        f"{drift['threshold']:g} is marked as drift.</p>"
    )
    if not drift["enough_rows"]:
        parts.append(
            f'<p class="note">Too few rows to judge: {drift["rows"]:,} scored, at least '
            f"{drift['min_rows']:,} are needed. Nothing is flagged.</p>"
        )
    columns = _columns(drift)
    anchors = {name: f"column-{position}" for position, (name, _) in enumerate(columns)}
    parts.append(_table(columns, anchors))
    drifting = [(name, column) for name, column in columns if column["drifted"]]
    steady = [(name, column) for name, column in columns if not column["drifted"]]
    if drifting:
        parts.append(_legend())
        parts.extend(_section(name, column, anchors[name]) for name, column in drifting)
    else:
        parts.append("<p>No column has drifted.</p>")
    if steady:
        parts.append("<details><summary>Columns that have not drifted</summary>")
        parts.extend(_section(name, column, anchors[name]) for name, column in steady)
        parts.append("</details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _columns(drift: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    columns = list(drift["columns"].items())
    if drift["prediction"] is not None:
        columns.append(("prediction", drift["prediction"]))
    return columns


def _table(columns: list[tuple[str, dict[str, Any]]], anchors: dict[str, str]) -> str:
    rows = [
        "<table><thead><tr><th>column</th><th>PSI</th><th>out of range</th><th>unseen</th>"
        "<th>missing then</th><th>missing now</th><th></th></tr></thead><tbody>"
    ]
    for name, column in columns:
        marked = column["drifted"]
        link = f'<a href="#{anchors[name]}">{escape(name)}</a>'
        rows.append(
            f'<tr class="{"drifted" if marked else ""}"><td>{link}</td>'
            f"<td>{column['psi']:.3f}</td><td>{percent(column['out_of_range_share'])}</td>"
            f"<td>{percent(column['unseen_share'])}</td>"
            f"<td>{percent(column['training_missing_share'])}</td>"
            f"<td>{percent(column['missing_share'])}</td>"
            f'<td class="flag">{"drift" if marked else ""}</td></tr>'
        )
    rows.append("</tbody></table>")
    return "".join(rows)


def _legend() -> str:
    return (
        f'<p class="legend">share of rows in each bin:<span style="background:{TRAINING_COLOUR}">'
        f'</span>training<span style="background:{CURRENT_COLOUR}"></span>this input</p>'
    )


def _section(name: str, column: dict[str, Any], anchor: str) -> str:
    facts = [f"PSI {column['psi']:.3f}"]
    if column["out_of_range_share"]:
        facts.append(f"{percent(column['out_of_range_share'])} outside the training range")
    if column["unseen_share"]:
        facts.append(f"{percent(column['unseen_share'])} categories unseen in training")
    return (
        f'<section id="{anchor}"><h2>{escape(name)} '
        f'<small class="facts">({escape(column["kind"])})</small></h2>'
        f"<p>{escape(', '.join(facts))}</p>{_chart(name, column['bins'])}</section>"
    )


def _chart(name: str, bins: dict[str, Any]) -> str:
    """Horizontal bars, two per bin: the training share above today's."""
    labels, training, current = bins["labels"], bins["training"], bins["current"]
    top = max([*training, *current, 1e-9])
    height = _ROW_HEIGHT * len(labels) + 10
    width = _LABEL_WIDTH + _PLOT_WIDTH + 60
    shapes = [
        f'<svg class="chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(name, quote=True)}: training against this input">'
    ]
    for row, (label, then, now) in enumerate(zip(labels, training, current, strict=True)):
        y = 5 + row * _ROW_HEIGHT
        shapes.append(
            f'<text x="{_LABEL_WIDTH - 8}" y="{y + _BAR_HEIGHT + 3}" text-anchor="end">'
            f"{escape(_clip(str(label)))}</text>"
        )
        for offset, share, colour, kind in (
            (0, then, TRAINING_COLOUR, "training"),
            (_BAR_HEIGHT + 1, now, CURRENT_COLOUR, "current"),
        ):
            length = max(_PLOT_WIDTH * share / top, 0.0)
            shapes.append(
                f'<rect class="{kind}" x="{_LABEL_WIDTH}" y="{y + offset}" '
                f'width="{length:.1f}" height="{_BAR_HEIGHT}" fill="{colour}">'
                f"<title>{escape(str(label))}, {kind}: {percent(share)}</title></rect>"
            )
        shapes.append(
            f'<text x="{_LABEL_WIDTH + _PLOT_WIDTH + 8}" y="{y + _BAR_HEIGHT + 3}">'
            f"{percent(now)}</text>"
        )
    shapes.append("</svg>")
    return "".join(shapes)


def _clip(label: str) -> str:
    return label if len(label) <= 24 else label[:23] + "…"
