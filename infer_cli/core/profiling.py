"""A model's training profile on disk and in tables: made from a table of rows, and found
for a loaded model (its card, `profile.json` beside it, or a path given).

The profile is never written into a model's own files: an infer-cli model directory and an
MLflow model directory get a `profile.json` of their own, a bare file `NAME.profile.json`
beside it, so that the model file's SHA-256 and MLflow's files stay as they were.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError, ModelError
from .card import CARD_FILE
from .model_files import METADATA_LIMIT, read_regular
from .profile import Kind, Profile, build_profile, column_kind

if TYPE_CHECKING:
    import pandas as pd

    from .model import Model
    from .signature import Signature

PROFILE_FILE = "profile.json"
PROFILE_SUFFIX = ".profile.json"


@dataclass(frozen=True)
class FoundProfile:
    """A model's profile and where it was found (None, with a notice, if it has none)."""

    profile: Profile | None
    source: str | None
    notice: str | None = None


def profile_rows(
    signature: Signature, features: pd.DataFrame, predictions: Any, classes: list[Any] | None
) -> Profile:
    """The profile of rows the model reads (`features`, by the signature's names) and of
    its `predictions` for them; `classes` a classifier's, None for a regressor."""
    columns: dict[str, tuple[Kind, np.ndarray]] = {}
    for name, values in model_columns(signature, features).items():
        column_type = signature.inputs[signature.names.index(name)].dtype
        columns[name] = (column_kind(column_type, values), values)
    boolean = frozenset(c.name for c in signature.inputs if c.dtype == "boolean")
    kind: Kind = "categorical" if classes is not None else "numeric"
    return build_profile(columns, (kind, np.asarray(predictions)), boolean=boolean, classes=classes)


def model_columns(signature: Signature, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The columns of `frame` the model reads, by the signature's names; a model that
    takes columns by position takes the first ones, whatever their names."""
    if signature.positional:
        count = min(len(signature.inputs), frame.shape[1])
        return {signature.names[i]: frame.iloc[:, i].to_numpy() for i in range(count)}
    return {name: frame[name].to_numpy() for name in signature.names if name in frame.columns}


def find_profile(model: Model, path: str | None = None) -> FoundProfile:
    """The profile to judge `model`'s input by: the file at `path` if given, else the one
    beside the model (`infer-cli profile` writes it), else the one in its card. A model
    without one is told how to add one."""
    if path is not None:
        return FoundProfile(read_profile(Path(path)), path)
    beside = profile_path(model.path)
    if beside is not None and beside.is_file():
        return FoundProfile(read_profile(beside), str(beside))
    recorded = model.card.profile
    if recorded is not None:
        try:
            where = model.path / CARD_FILE if model.path.is_dir() else model.path
            return FoundProfile(Profile.from_dict(recorded), str(where))
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
            reason = f"the model's profile is unreadable ({exc}), so drift is not checked"
            return FoundProfile(None, None, reason)
    return FoundProfile(
        None,
        None,
        "the model has no training profile, so drift is not checked "
        f"(add one: infer-cli profile -m {model.path} -i TRAIN.csv)",
    )


def profile_path(model_path: Path) -> Path | None:
    """Where the profile of the model at `model_path` is kept beside it."""
    if model_path.is_dir():
        return model_path / PROFILE_FILE
    if model_path.is_file():
        return model_path.with_name(model_path.stem + PROFILE_SUFFIX)
    return None


def read_profile(path: Path) -> Profile:
    """A profile file, or a DataError naming it."""
    try:
        document = json.loads(read_regular(path, limit=METADATA_LIMIT))
    except FileNotFoundError:
        raise DataError(f"{path}: no such profile") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from exc
    except ModelError as exc:
        # Not a regular file, or too large to be a profile: a device or a pipe is never read.
        raise DataError(str(exc)) from None
    except RecursionError:
        raise DataError(f"{path}: not a profile (nested too deeply)") from None
    except ValueError as exc:
        raise DataError(f"{path}: not a profile (not JSON: {exc})") from exc
    if isinstance(document, Mapping) and isinstance(document.get("profile"), Mapping):
        document = document["profile"]  # a model card holds one too
    try:
        return Profile.from_dict(document)
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
        raise DataError(f"{path}: not a profile ({exc})") from exc
