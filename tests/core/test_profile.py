"""The training profile and drift arithmetic: bins, round trips, PSI, and each kind of shift
flagged on its own column."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from infer_cli.core.drift import (
    DRIFT_PSI,
    MIN_ROWS,
    DriftCounts,
    ProfileBins,
    compare,
    psi,
)
from infer_cli.core.profile import Profile, build_profile, profile_column

KINDS: dict[str, Any] = {
    "amount": "numeric",
    "visits": "numeric",
    "plan": "categorical",
    "note": "text",
}
PLANS = np.array(["basic", "plus", "pro"], dtype=object)
CLASSES = ["no", "yes"]


def rows(count: int, seed: int, *, yes_share: float = 0.3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    words = rng.integers(1, 25, count)
    return {
        "amount": rng.lognormal(4, 1, count),
        "visits": rng.poisson(3, count).astype(float),
        "plan": rng.choice(PLANS, count, p=[0.5, 0.3, 0.2]),
        "note": np.array([" ".join(["word"] * int(n)) for n in words], dtype=object),
        "prediction": rng.choice(np.array(CLASSES, dtype=object), count,
                                 p=[1 - yes_share, yes_share]),
    }  # fmt: skip


@pytest.fixture(scope="module")
def profile() -> Profile:
    training = rows(2000, seed=0)
    return build_profile(
        {name: (kind, training[name]) for name, kind in KINDS.items()},
        ("categorical", training["prediction"]),
        classes=CLASSES,
    )


def judge(profile: Profile, data: dict[str, np.ndarray]) -> Any:
    bins = ProfileBins(profile)
    counts = DriftCounts.empty(bins)
    count = len(data["amount"])
    counts.observe(bins, data, data["prediction"], count)
    return compare(bins, counts)


def test_a_profile_is_a_few_kilobytes_and_reads_back_as_it_was(profile: Profile) -> None:
    text = json.dumps(profile.to_dict())
    assert len(text) < 4000
    assert Profile.from_dict(json.loads(text)) == profile
    amount = profile.columns["amount"]
    assert len(amount.shares) == 10 and sum(amount.shares) == pytest.approx(1.0)
    assert amount.low is not None and amount.high is not None and amount.low < amount.high
    assert profile.columns["plan"].categories == ("basic", "plus", "pro")
    assert profile.columns["note"].kind == "text"
    assert profile.prediction is not None and profile.prediction.categories == tuple(CLASSES)


def test_the_same_distribution_gives_a_psi_near_zero_and_no_flag(profile: Profile) -> None:
    drift = judge(profile, rows(3000, seed=1))
    assert drift.drifted == []
    assert drift.max_psi is not None and drift.max_psi < 0.05
    assert all(column.out_of_range_share < 0.01 for column in _numbers(drift))
    assert drift.columns["plan"].unseen_share == 0.0


@pytest.mark.parametrize(
    ("shift", "column"),
    [("scale", "amount"), ("category", "plan"), ("empty", "visits"), ("labels", "prediction")],
)
def test_each_shift_is_flagged_on_its_column_and_only_there(
    profile: Profile, shift: str, column: str
) -> None:
    data = rows(3000, seed=2, yes_share=0.8 if shift == "labels" else 0.3)
    if shift == "scale":
        data["amount"] = data["amount"] * 100
    elif shift == "category":
        data["plan"][::3] = "enterprise"
    elif shift == "empty":
        data["visits"][::2] = np.nan
    drift = judge(profile, data)
    assert drift.drifted == [column]
    assert drift.beyond(DRIFT_PSI) == [column]
    flagged = drift.prediction if column == "prediction" else drift.columns[column]
    assert flagged is not None and flagged.psi > 1.0
    if shift == "scale":
        assert flagged.out_of_range_share is not None and flagged.out_of_range_share > 0.8
    if shift == "category":
        assert flagged.unseen_share == pytest.approx(1 / 3, abs=0.01)
    if shift == "empty":
        assert flagged.missing_share == pytest.approx(0.5)
        assert flagged.training_missing_share == 0.0


def test_too_few_rows_are_not_judged(profile: Profile) -> None:
    data = rows(MIN_ROWS // 4, seed=3)
    data["amount"] = data["amount"] * 100
    drift = judge(profile, data)
    assert not drift.enough_rows
    assert drift.drifted == [] and drift.beyond(0.0) == []
    assert drift.columns["amount"].psi > DRIFT_PSI  # measured, but not flagged


def test_counts_of_parts_merge_into_the_counts_of_the_whole(profile: Profile) -> None:
    bins = ProfileBins(profile)
    data = rows(1000, seed=4)
    whole = DriftCounts.empty(bins)
    whole.observe(bins, data, data["prediction"], 1000)
    merged = DriftCounts()
    for start in range(0, 1000, 300):
        part = DriftCounts.empty(bins)
        piece = {name: values[start : start + 300] for name, values in data.items()}
        part.observe(bins, piece, piece["prediction"], len(piece["amount"]))
        merged.merge(part)
    assert merged.rows == whole.rows
    assert all((a == b).all() for a, b in zip(merged.counts, whole.counts, strict=True))


def test_a_column_the_rows_lack_counts_as_missing(profile: Profile) -> None:
    data = rows(500, seed=5)
    del data["visits"]
    drift = judge(profile, data)
    assert drift.columns["visits"].missing_share == 1.0
    assert drift.drifted == ["visits"]


def test_categories_are_known_however_they_are_spelled() -> None:
    column = profile_column("categorical", np.array([3.0, 4.0, None, 3.0], dtype=object))
    assert column.categories == ("3", "4") and column.missing_share == 0.25
    flags = profile_column("categorical", np.array([True, False, True]), boolean=True)
    profile = Profile(3, {"flag": flags, "code": column})
    bins = ProfileBins(profile)
    codes = bins.codes(
        {"flag": np.array(["TRUE", "false", "1"], dtype=object),
         "code": np.array(["3", "4", "5"], dtype=object)},
        None, 3,
    )  # fmt: skip
    assert codes[:, 0].tolist() == [1, 2, 1]
    assert codes[:, 1].tolist() == [1, 2, 3]  # 5 is another category


def test_numbers_beyond_the_training_range_fall_in_the_outer_bins() -> None:
    column = profile_column("numeric", np.arange(100, dtype=float))
    bins = ProfileBins(Profile(100, {"x": column}))
    codes = bins.codes({"x": np.array([-5.0, 0.0, 50.0, 99.0, 500.0, np.nan])}, None, 6)
    width = len(column.shares) + 3
    assert codes[:, 0].tolist() == [1, 2, 7, width - 2, width - 1, 0]


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift() -> None:
    even = np.full(4, 0.25)
    assert psi(even, even) == 0.0
    small = psi(even, np.array([0.3, 0.2, 0.25, 0.25]))
    large = psi(even, np.array([0.7, 0.1, 0.1, 0.1]))
    assert 0 < small < 0.1 < DRIFT_PSI < large


def test_a_text_column_profiles_empty_texts_and_lengths() -> None:
    texts = np.array(["short", "", None, "a much longer text here"], dtype=object)
    column = profile_column("text", texts)
    assert column.missing_share == 0.5
    assert (column.low, column.high) == (5.0, 23.0)


def _numbers(drift: Any) -> list[Any]:
    return [c for c in drift.columns.values() if c.kind in ("numeric", "text")]
