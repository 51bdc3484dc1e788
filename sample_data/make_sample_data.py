"""Generate the sample CSV datasets used by infer-cli's docs, examples and tests.

Running ``python sample_data/make_sample_data.py`` (re)writes these files into
the directory this script lives in:

* ``iris.csv`` / ``iris_new.csv``
    The real 150-row iris data (multiclass classification on ``species``) and
    30 unlabelled "new" flowers made by jittering real rows.
* ``churn.csv`` / ``churn_new.csv``
    1,000 synthetic telecom customers (binary classification on ``churned``)
    and 200 unlabelled new customers.  Churn follows a logistic model: short
    tenure, month-to-month contracts, fiber internet, electronic-check payment
    and many support calls raise the churn probability.  ``total_charges``
    (~3%) and ``payment_method`` (~2%) have missing values.
* ``reviews.csv`` / ``reviews_new.csv``
    800 short synthetic product reviews (text classification on
    ``sentiment``), built from templates and phrase vocabularies, with ~5%
    label noise, and 100 unlabelled new reviews.  Some reviews contain commas
    and double quotes, so the CSV exercises quoting.
* ``housing.csv`` / ``housing_new.csv``
    800 synthetic houses (regression on ``price``) and 100 unpriced new
    houses.  Price is a mostly linear function of the features plus noise.
    ``lot_size`` (in acres) has ~3% missing values.

Every file has a header row, comma separated fields, ``\\n`` line endings and
UTF-8 encoding; missing values are written as empty fields.

The output is fully deterministic: every dataset draws from its own
``numpy.random.default_rng`` with a fixed seed and all numbers are formatted
explicitly, so running the script twice produces byte-identical files.

Only numpy, the standard library and scikit-learn's *bundled* iris data
(``sklearn.datasets.load_iris``, read from the installed package, no
download) are used.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

OUT_DIR = Path(__file__).resolve().parent

IRIS_SEED = 1001
CHURN_SEED = 2002
REVIEWS_SEED = 3003
HOUSING_SEED = 4004


def write_csv(name: str, header: list[str], rows: Sequence[Sequence[object]]) -> None:
    """Write ``rows`` under ``header`` to ``OUT_DIR / name``.

    ``None`` values become empty fields.  Values are converted with ``str``,
    so callers pass numbers already formatted as they should appear.
    """
    path = OUT_DIR / name
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(["" if value is None else value for value in row])
    print(f"wrote {path.name}: {len(rows)} rows")


def missing_mask(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    """Boolean mask marking exactly ``round(rate * n)`` randomly chosen rows."""
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=round(rate * n), replace=False)] = True
    return mask


def fmt(value: float, decimals: int) -> str:
    """Format a float with a fixed number of decimals (avoids ``-0.00``)."""
    text = f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


# ---------------------------------------------------------------------------
# iris
# ---------------------------------------------------------------------------

IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def make_iris() -> None:
    """Real iris data plus 30 jittered copies of random real rows."""
    from sklearn.datasets import load_iris  # bundled with scikit-learn

    iris = load_iris()
    data = np.asarray(iris.data, dtype=float)
    species = [str(name) for name in iris.target_names[iris.target]]

    rows = [
        [fmt(v, 1) for v in features] + [label]
        for features, label in zip(data, species, strict=True)
    ]
    write_csv("iris.csv", [*IRIS_FEATURES, "species"], rows)

    rng = np.random.default_rng(IRIS_SEED)
    picks = rng.choice(len(data), size=30, replace=False)
    # Jitter each measurement by roughly a third of its within-species std (cm).
    jitter_sd = np.array([0.15, 0.10, 0.15, 0.06])
    new = data[picks] + rng.normal(0.0, 1.0, size=(30, 4)) * jitter_sd
    new = np.clip(np.round(new, 1), 0.1, None)
    new_rows = [[fmt(v, 1) for v in features] for features in new]
    write_csv("iris_new.csv", IRIS_FEATURES, new_rows)


# ---------------------------------------------------------------------------
# churn
# ---------------------------------------------------------------------------

CHURN_COLUMNS = [
    "customer_id",
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "contract",
    "internet_service",
    "payment_method",
    "support_calls",
]
CONTRACTS = ["month-to-month", "one-year", "two-year"]
INTERNET = ["fiber", "dsl", "none"]
PAYMENT_METHODS = ["electronic-check", "mailed-check", "bank-transfer", "credit-card"]


def _churn_rows(rng: np.random.Generator, n: int, first_id: int) -> list[list[object]]:
    """Generate ``n`` customers; the last field of each row is ``churned``."""
    # Tenure: a mix of recent sign-ups and long-standing customers.
    recent = rng.random(n) < 0.45
    tenure = np.where(
        recent,
        rng.integers(1, 13, size=n),
        rng.integers(1, 73, size=n),
    )

    # Longer-tenure customers are more likely to be on long contracts.
    long_share = np.clip(tenure / 72.0, 0.0, 1.0)
    p_contract = np.stack(
        [0.75 - 0.45 * long_share, 0.15 + 0.15 * long_share, 0.10 + 0.30 * long_share],
        axis=1,
    )
    u = rng.random(n)
    contract_idx = (u[:, None] > np.cumsum(p_contract, axis=1)).sum(axis=1)
    contract_idx = np.minimum(contract_idx, 2)

    internet_idx = rng.choice(3, size=n, p=[0.45, 0.35, 0.20])
    base_charge = np.array([80.0, 55.0, 22.0])[internet_idx]
    monthly = np.clip(base_charge + rng.normal(0.0, 9.0, size=n), 18.25, 119.75)
    monthly = np.round(monthly, 2)
    total = np.round(tenure * monthly * rng.uniform(0.96, 1.04, size=n), 2)

    payment_idx = rng.choice(4, size=n, p=[0.35, 0.20, 0.22, 0.23])
    support_calls = rng.poisson(0.9 + 0.8 * (internet_idx == 0), size=n)

    logit = (
        -1.6
        - 0.045 * tenure
        + 1.5 * (contract_idx == 0)
        - 0.9 * (contract_idx == 2)
        + 0.9 * (internet_idx == 0)
        - 0.8 * (internet_idx == 2)
        + 0.5 * (payment_idx == 0)
        + 0.45 * support_calls
        + 0.01 * (monthly - 60.0)
    )
    churned = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))

    total_missing = missing_mask(rng, n, 0.03)
    payment_missing = missing_mask(rng, n, 0.02)

    rows = []
    for i in range(n):
        rows.append(
            [
                f"C-{first_id + i}",
                int(tenure[i]),
                fmt(monthly[i], 2),
                None if total_missing[i] else fmt(total[i], 2),
                CONTRACTS[contract_idx[i]],
                INTERNET[internet_idx[i]],
                None if payment_missing[i] else PAYMENT_METHODS[payment_idx[i]],
                int(support_calls[i]),
                "yes" if churned[i] else "no",
            ]
        )
    return rows


def make_churn() -> None:
    """Customer churn: 1,000 labelled rows and 200 new, unlabelled rows."""
    rng = np.random.default_rng(CHURN_SEED)
    rows = _churn_rows(rng, 1000, first_id=10001)
    write_csv("churn.csv", [*CHURN_COLUMNS, "churned"], rows)

    new_rows = [row[:-1] for row in _churn_rows(rng, 200, first_id=20001)]
    write_csv("churn_new.csv", CHURN_COLUMNS, new_rows)


# ---------------------------------------------------------------------------
# reviews
# ---------------------------------------------------------------------------

PRODUCTS = [
    "blender",
    "backpack",
    "desk lamp",
    "coffee maker",
    "phone case",
    "keyboard",
    "water bottle",
    "vacuum",
    "office chair",
    "toaster",
    "speaker",
    "jacket",
    "kettle",
    "monitor stand",
    "yoga mat",
    "rice cooker",
]
DETERMINERS = ["this", "the", "my new", "our"]

POSITIVE_CLAUSES = [
    "works perfectly",
    "exceeded my expectations",
    "is great value for the money",
    "is really well made",
    "feels sturdy and solid",
    "was easy to set up",
    "arrived quickly and well packed",
    "looks even better in person",
    "does exactly what it promises",
    "is a joy to use every day",
    "has held up beautifully",
    "is quiet and reliable",
]
NEGATIVE_CLAUSES = [
    "stopped working after a week",
    "is a complete waste of money",
    "feels cheap and flimsy",
    "broke on the first day",
    "arrived damaged",
    "is much smaller than pictured",
    "was a pain to set up",
    "never worked properly",
    "is worse than my old one",
    "started rattling almost immediately",
    "is noisy and unreliable",
    "fell apart within a month",
]
POSITIVE_CLOSERS = [
    "Highly recommend it.",
    "Would buy again.",
    "Five stars from me.",
    "Love it.",
    'Calling it "premium" is fair.',
    "Very happy with this purchase.",
    "Great product.",
]
NEGATIVE_CLOSERS = [
    "Would not recommend.",
    "Returning it.",
    "Very disappointed.",
    'So much for "premium quality".',
    "Avoid this one.",
    "Save your money.",
    "Terrible product.",
]
# Mild remarks of the opposite polarity, so single words are not decisive.
MILD_POSITIVE = ["the color is nice", "shipping was fast", "the price was fair", "the box was neat"]
MILD_NEGATIVE = [
    "the manual is confusing",
    "shipping took a while",
    "the cord is a bit short",
    "the packaging was wasteful",
]
FILLERS = [
    "Honestly",
    "To be fair",
    "After a month of use",
    "I bought it for my apartment and",
    "My partner picked it out and",
    "Compared to the last one",
    "For what it's worth",
    'The listing calls it "heavy duty" and',
    "Bought it on sale and",
    "As a gift for my dad",
]


def _make_review(rng: np.random.Generator, positive: bool) -> str:
    """Compose one review of the given polarity from the phrase vocabularies."""

    def pick(options: list[str]) -> str:
        return options[int(rng.integers(len(options)))]

    main, closers, mild = (
        (POSITIVE_CLAUSES, POSITIVE_CLOSERS, MILD_NEGATIVE)
        if positive
        else (NEGATIVE_CLAUSES, NEGATIVE_CLOSERS, MILD_POSITIVE)
    )
    while True:
        subject = f"{pick(DETERMINERS)} {pick(PRODUCTS)}"
        first, second = (main[int(i)] for i in rng.choice(len(main), size=2, replace=False))
        sentence = f"{subject} {first}"
        if rng.random() < 0.35:
            sentence += f" and {second}"
        if rng.random() < 0.3:
            sentence += f", but {pick(mild)}"
        if rng.random() < 0.4:
            filler = pick(FILLERS)
            sep = " " if filler.endswith(" and") else ", "
            sentence = f"{filler}{sep}{sentence}"
        sentence = sentence[0].upper() + sentence[1:] + "."
        if rng.random() < 0.5:
            sentence += f" {pick(closers)}"
        if 6 <= len(sentence.split()) <= 25:
            return sentence


def _review_rows(rng: np.random.Generator, n: int, first_id: int) -> list[list[object]]:
    """Generate ``n`` reviews; the last field of each row is ``sentiment``."""
    rows = []
    for i in range(n):
        positive = bool(rng.random() < 0.5)
        text = _make_review(rng, positive)
        label = positive if rng.random() >= 0.05 else not positive  # ~5% label noise
        rows.append([first_id + i, text, "positive" if label else "negative"])
    return rows


def make_reviews() -> None:
    """Product review sentiment: 800 labelled and 100 new reviews."""
    rng = np.random.default_rng(REVIEWS_SEED)
    rows = _review_rows(rng, 800, first_id=1)
    write_csv("reviews.csv", ["review_id", "review", "sentiment"], rows)

    new_rows = [row[:-1] for row in _review_rows(rng, 100, first_id=801)]
    write_csv("reviews_new.csv", ["review_id", "review"], new_rows)


# ---------------------------------------------------------------------------
# housing
# ---------------------------------------------------------------------------

HOUSING_COLUMNS = [
    "house_id",
    "sqft",
    "bedrooms",
    "bathrooms",
    "age_years",
    "neighborhood",
    "has_garage",
    "lot_size",
]
NEIGHBORHOODS = ["Riverside", "Oak Hill", "Downtown", "Maple Grove", "Eastgate"]
NEIGHBORHOOD_PREMIUM = np.array([25_000.0, 70_000.0, 45_000.0, 10_000.0, -30_000.0])


def _housing_rows(rng: np.random.Generator, n: int, first_id: int) -> list[list[object]]:
    """Generate ``n`` houses; the last field of each row is ``price``."""
    sqft = np.clip(np.round(rng.lognormal(np.log(1750), 0.35, size=n), -1), 500, 5000)
    bedrooms = np.clip(np.round(sqft / 650 + rng.normal(0.0, 0.6, size=n)), 1, 6)
    bathrooms = np.clip(
        np.round((0.6 * bedrooms + rng.normal(0.3, 0.45, size=n)) * 2) / 2, 1.0, 4.5
    )
    age = np.clip(np.round(rng.exponential(25.0, size=n)), 0, 110)
    hood_idx = rng.choice(5, size=n, p=[0.22, 0.15, 0.18, 0.25, 0.20])
    garage = rng.random(n) < np.clip(0.35 + sqft / 6000, 0.0, 0.95)
    lot = np.round(0.06 + sqft / 12_000 * rng.gamma(4.0, 0.3, size=n), 2)

    price = (
        40_000
        + 120.0 * sqft
        + 6_000.0 * bedrooms
        + 14_000.0 * bathrooms
        - 1_100.0 * np.minimum(age, 60)
        + NEIGHBORHOOD_PREMIUM[hood_idx]
        + 18_000.0 * garage
        + 35_000.0 * lot
        + rng.normal(0.0, 38_000.0, size=n)
    )
    price = np.maximum(np.round(price, -2), 30_000.0)

    lot_missing = missing_mask(rng, n, 0.03)

    rows = []
    for i in range(n):
        rows.append(
            [
                f"H-{first_id + i:04d}",
                int(sqft[i]),
                int(bedrooms[i]),
                fmt(bathrooms[i], 1),
                int(age[i]),
                NEIGHBORHOODS[hood_idx[i]],
                "yes" if garage[i] else "no",
                None if lot_missing[i] else fmt(lot[i], 2),
                fmt(price[i], 1),
            ]
        )
    return rows


def make_housing() -> None:
    """House prices: 800 labelled and 100 new, unpriced houses."""
    rng = np.random.default_rng(HOUSING_SEED)
    rows = _housing_rows(rng, 800, first_id=1)
    write_csv("housing.csv", [*HOUSING_COLUMNS, "price"], rows)

    new_rows = [row[:-1] for row in _housing_rows(rng, 100, first_id=801)]
    write_csv("housing_new.csv", HOUSING_COLUMNS, new_rows)


def main() -> None:
    make_iris()
    make_churn()
    make_reviews()
    make_housing()


if __name__ == "__main__":
    main()
