"""Customer rows for the drift tests: a label that follows one column, the others there to
drift, each kind of shift, and a model that reads every column but predicts from one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from infer_cli.core import Column, ModelCard, Signature, save_model

PLANS = ["basic", "plus", "pro"]


def customers(count: int, seed: int, *, yes_share: float | None = None) -> pd.DataFrame:
    """Customers whose label follows `score` alone; the other columns are there to drift."""
    rng = np.random.default_rng(seed)
    score = rng.normal(size=count * 3)
    label = np.where(score + rng.normal(scale=0.3, size=len(score)) > 0.5, "yes", "no")
    keep = np.arange(count)
    if yes_share is not None:  # another mix of labels: resampled, not relabelled
        yes, no = np.flatnonzero(label == "yes"), np.flatnonzero(label == "no")
        wanted = round(count * yes_share)
        keep = np.concatenate([yes[:wanted], no[: count - wanted]])
        rng.shuffle(keep)
    frame = pd.DataFrame(
        {
            "customer_id": [f"C-{i:05d}" for i in range(count)],
            "amount": rng.lognormal(4, 1, count).round(2),
            "visits": rng.poisson(3, count),
            "plan": rng.choice(PLANS, count, p=[0.5, 0.3, 0.2]),
            "score": score[keep].round(4),
            "label": label[keep],
        }
    )
    return frame


def shifted(shift: str, count: int = 2000, seed: int = 1) -> pd.DataFrame:
    rows = customers(count, seed, yes_share=0.9 if shift == "labels" else None)
    if shift == "scale":
        rows["amount"] = rows["amount"] * 100
    elif shift == "category":
        rows.loc[rows.index[::3], "plan"] = "enterprise"
    elif shift == "empty":
        rows["visits"] = rows["visits"].astype(float)
        rows.loc[rows.index[::2], "visits"] = np.nan
    return rows.drop(columns=["label"])


def save_shop_model(training: pd.DataFrame, directory: Path) -> ModelCard:
    """A model that reads every column but predicts from `score` alone, saved without a
    profile."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    pipeline = Pipeline(
        [
            ("pick", ColumnTransformer([("score", "passthrough", ["score"])])),
            ("model", LogisticRegression()),
        ]
    ).fit(training.drop(columns=["label"]), training["label"])
    card = ModelCard(
        task="classification",
        target="label",
        classes=["no", "yes"],
        signature=Signature(
            (
                Column("amount", "float"),
                Column("visits", "integer", required=False),
                Column("plan", "string"),
                Column("score", "float"),
            ),
            passthrough=("customer_id",),
        ),
    )
    return save_model(pipeline, card, directory)
