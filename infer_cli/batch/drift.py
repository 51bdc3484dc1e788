"""Drift in `predict`: the model's training profile found, the scored rows counted into its
bins as they stream past (by `BatchScoring`), and the figures of the comparison for the
summary, `--summary-json` and `--fail-on-drift`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.drift import DRIFT_PSI, PREDICTION, Drift, DriftCounts, ProfileBins, compare
from ..core.model import Model
from ..core.profiling import find_profile
from ..errors import ExitCode


@dataclass(frozen=True)
class DriftCheck:
    """What a run judges its input by: the profile's bins, where the profile was found, and
    the PSI above which a column counts as drifted (and, with `fail`, fails the run)."""

    bins: ProfileBins
    source: str
    threshold: float = DRIFT_PSI
    fail: bool = False


def drift_check(
    model: Model, profile: str | None, fail_on_drift: float | None
) -> DriftCheck | None:
    """The check for a run of `model`, or None (with a notice on the model) without a profile."""
    found = find_profile(model, profile)
    if found.notice:
        model.notices.append(found.notice)
    if found.profile is None or found.source is None:
        return None
    threshold = DRIFT_PSI if fail_on_drift is None else fail_on_drift
    return DriftCheck(
        ProfileBins(found.profile), found.source, threshold, fail_on_drift is not None
    )


def judge(check: DriftCheck, counts: DriftCounts) -> Drift:
    return compare(check.bins, counts, threshold=check.threshold)


def drift_figures(check: DriftCheck | None, counts: DriftCounts | None) -> dict[str, Any]:
    """The `drift` section of a run's figures, and the verdict when it fails on drift."""
    if check is None or counts is None:
        return {"drift": None}
    drift = judge(check, counts)
    figures: dict[str, Any] = {
        "drift": {"profile": check.source, "seconds": round(counts.seconds, 4), **drift.to_dict()}
    }
    beyond = drift.beyond(check.threshold)
    if check.fail and beyond:
        worst = beyond[0]
        column = drift.prediction if worst == PREDICTION else drift.columns[worst]
        assert column is not None
        others = f" and {len(beyond) - 1} more" if len(beyond) > 1 else ""
        named = "the predictions" if worst == PREDICTION else f"'{worst}'"
        figures.update(
            status="drift",
            exit_code=int(ExitCode.DRIFT),
            error=f"drift: PSI {column.psi:.2f} on {named}{others} is above "
            f"--fail-on-drift {check.threshold:g} (the output is complete)",
        )
    return figures
