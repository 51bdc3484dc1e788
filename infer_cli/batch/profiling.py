"""`infer-cli profile`: the training profile of a model that has none (an older infer-cli
model, an MLflow model, a bare file), made from its training data and written beside it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.model import Model
from ..core.model_uri import is_model_uri
from ..core.profile import Profile
from ..core.profiling import PROFILE_FILE, profile_path, profile_rows
from ..core.store import load_model
from ..errors import SchemaError, UsageError
from ..tables import STDIO, read_table, refuse_aliases, write_json


@dataclass(frozen=True)
class ProfileWritten:
    """A profile made by `infer-cli profile`, and where it went."""

    profile: Profile
    path: Path
    model: Model


def write_training_profile(
    model_reference: str | None,
    training_data: str,
    destination: str | None = None,
    *,
    trust_types: list[str] | None = None,
    tracking_uri: str | None = None,
) -> ProfileWritten:
    """Profile `training_data` as the model reads it, with the model's predictions for it,
    and write the profile to `destination`, by default beside the model."""
    if destination == STDIO:
        raise UsageError("--profile must be a file, not stdout")
    if destination is None and model_reference and is_model_uri(model_reference):
        raise UsageError(
            f"{model_reference}: a registry's model is not written to; "
            "give the profile a place of its own with --profile PATH"
        )
    model = load_model(model_reference, trust_types=trust_types, tracking_uri=tracking_uri)
    target = Path(destination) if destination else profile_path(model.path)
    if target is None:  # pragma: no cover (a loaded model is a file or a directory)
        raise UsageError(f"give the profile a place with --profile PATH (e.g. {PROFILE_FILE})")
    _refuse_overwrites(model, training_data, target)
    frame = read_table(training_data)
    try:
        validated = model.signature.validate(frame)
    except SchemaError as error:
        # A missing column is named by the reason already; a bad value by row and column.
        column = error.column if error.row is not None else None
        raise SchemaError(
            error.reason, column=column, row=error.row, source=training_data
        ) from None
    predictions = model.predict(validated.frame).values
    classes = model.card.classes if model.is_classifier else None
    profile = profile_rows(model.signature, validated.frame, predictions, classes)
    profile = Profile(
        profile.rows, profile.columns, profile.prediction, {"made_from": training_data}
    )
    write_json(str(target), profile.to_dict())
    return ProfileWritten(profile, target, model)


def _refuse_overwrites(model: Model, training_data: str, target: Path) -> None:
    """A profile goes beside a model, never over its files, its training data or itself."""
    model_file = [("--model", str(model.path))] if model.path.is_file() else []
    refuse_aliases([("--input", training_data), *model_file], [("--profile", str(target))])
    inside = model.path.is_dir() and model.path.resolve() in target.resolve().parents
    if inside and target.resolve() != (model.path / PROFILE_FILE).resolve():
        raise UsageError(
            f"--profile {target}: would write over the model's own files; "
            f"name another file, or leave --profile out for {PROFILE_FILE}"
        )
