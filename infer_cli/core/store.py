"""Models on disk: save a model directory atomically, load one (verifying its SHA-256), an
MLflow model directory or a bare joblib/pickle file, and inspect one without loading it.

Nothing else in the package unpickles a model. A saved model is a directory holding
`model.joblib` or `model.skops` (the fitted Pipeline) and `model.json` (its card). MLflow
model directories are read by `mlflow_model`, skops and pickle files by `serialization`,
both on behalf of this module.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ModelError, UsageError
from .card import (
    CARD_FILE,
    FORMAT_VERSION,
    MODEL_FILE,
    Inspection,
    ModelCard,
    card_of_estimator,
    check_card,
    parse_card,
    version_notices,
)
from .model import Model
from .model_files import METADATA_LIMIT, digest_regular, read_regular
from .model_uri import RegistryFacts, is_model_uri, is_registry_uri, resolve_model_uri
from .profiling import PROFILE_FILE
from .serialization import (
    PICKLE_WARNING,
    describe,
    dump_skops,
    is_pickle_based,
    load_pickled,
    load_skops,
    sniff_pickle,
)
from .serialization import review_trust as _review_trust
from .signature import Signature

SKOPS_MODEL_FILE = "model.skops"
MODEL_FILES = {"joblib": MODEL_FILE, "skops": SKOPS_MODEL_FILE}
DEFAULT_MODEL_DIR = "model"
MODEL_ENV_VAR = "INFER_CLI_MODEL"
TRUST_ENV_VAR = "INFER_CLI_TRUST_TYPES"
_READ_ATTEMPTS = 20
BARE_SUFFIXES = (".joblib", ".pkl", ".pickle")


def resolve_model_path(path: str | os.PathLike[str] | None) -> Path:
    """The model a command uses: `-m`, else $INFER_CLI_MODEL, else ./model; a `file:` URI
    is the path it names."""
    reference = model_reference(path)
    if is_model_uri(reference) and not is_registry_uri(reference):
        return resolve_model_uri(reference).directory
    return Path(reference)


def model_reference(path: str | os.PathLike[str] | None) -> str:
    """The model a command uses as given, a path or a model URI (`models:/NAME/VERSION`)."""
    if path is not None and str(path) != "":
        return str(path)
    return os.environ.get(MODEL_ENV_VAR) or DEFAULT_MODEL_DIR


def resolve_trust_types(trust_types: Iterable[str] | None) -> tuple[str, ...]:
    """The types a skops model may hold beyond those vouched for: the ones given, else
    $INFER_CLI_TRUST_TYPES (comma-separated), which also reaches a server's workers."""
    if trust_types is None:
        trust_types = os.environ.get(TRUST_ENV_VAR, "").split(",")
    return tuple(name.strip() for name in trust_types if name.strip())


def library_versions() -> dict[str, str]:
    import joblib
    import sklearn

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "joblib": joblib.__version__,
    }


def save_model(
    estimator: Any,
    card: ModelCard,
    directory: str | os.PathLike[str],
    *,
    serialization: str = "joblib",
) -> ModelCard:
    """Write a model directory atomically and return the card as written.

    The files are written into a temporary sibling and renamed into place, so a reader
    never sees a half-written model; an existing model is replaced only once the new one
    is complete. `serialization` is joblib or skops.
    """
    if serialization not in MODEL_FILES:
        raise UsageError(f"cannot save a model as '{serialization}' (joblib or skops)")
    check_model_destination(directory)
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _staging_directory(target)
    try:
        payload, card.trusted_types = _serialize(estimator, serialization)
        card.serialization = serialization
        card.model_file = MODEL_FILES[serialization]
        card.format_version = 2 if serialization == "skops" else 1
        card.sha256 = hashlib.sha256(payload).hexdigest()
        card.created = card.created or datetime.now(timezone.utc).isoformat(timespec="seconds")
        card.versions = card.versions or library_versions()
        _write_synced(staging / card.model_file, payload)
        _write_synced(staging / CARD_FILE, (json.dumps(card.to_dict(), indent=2) + "\n").encode())
        _replace_directory(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return card


def check_model_destination(directory: str | os.PathLike[str]) -> None:
    """Refuse to save a model where it would replace anything but a model.

    Saving replaces the directory as a whole, so it may stand only where nothing would be
    lost: a path that does not exist, an empty directory, or a directory holding an
    infer-cli model and nothing else (a retrain saving over the last one).
    """
    target = Path(directory)
    where = f"cannot save the model to '{target}'"
    if target.is_symlink():
        raise UsageError(f"{where}: it is a symbolic link; name the directory it points to")
    if not target.exists():
        return
    if not target.is_dir():
        raise UsageError(f"{where}: a file of that name exists")
    try:
        entries = sorted(target.iterdir())
    except OSError as exc:
        raise UsageError(f"{where}: cannot list it ({exc.strerror})") from None
    # The profile `infer-cli profile` adds describes the model replaced: it goes with it.
    allowed = {CARD_FILE, PROFILE_FILE, *MODEL_FILES.values()}
    others = [
        entry.name
        for entry in entries
        if entry.name not in allowed or entry.is_symlink() or not entry.is_file()
    ]
    if others or (entries and not (target / CARD_FILE).is_file()):
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        held = f" ({shown})" if others else ""
        raise UsageError(
            f"{where}: the directory holds files that are not an infer-cli model{held}, and "
            "saving would delete them; choose another directory"
        )


def load_model(
    path: str | os.PathLike[str] | None = None,
    *,
    trust_types: Iterable[str] | None = None,
    tracking_uri: str | None = None,
) -> Model:
    """Load a model directory (verifying its SHA-256 first), an MLflow model directory or a
    bare joblib/pickle file, found at a path or by an MLflow model URI resolved in the store
    at `tracking_uri`. `trust_types` admits types of a skops file that nothing else vouches
    for."""
    reference = model_reference(path)
    if is_model_uri(reference):
        resolved = resolve_model_uri(reference, tracking_uri)
        model = load_model(resolved.directory, trust_types=trust_types)
        _record_registry(model.card, resolved.facts)
        return model
    location = Path(reference)
    trust_types = resolve_trust_types(trust_types)
    if location.is_dir():
        if _is_mlflow(location):
            from .mlflow_model import load_mlflow_model

            return load_mlflow_model(location, trust_types=trust_types)
        return _load_directory(location, trust_types)
    _check_bare(location)
    return _load_bare(location)


def _check_bare(location: Path) -> None:
    if not location.exists():
        hint = "train one with `infer-cli train`, or point -m or $INFER_CLI_MODEL at one"
        raise ModelError(f"no model at '{location}' ({hint})")
    if location.suffix.lower() not in BARE_SUFFIXES:
        raise ModelError(
            f"{location}: not a model (expected a model directory or a "
            f"{'/'.join(BARE_SUFFIXES)} file)"
        )


def inspect_model(
    path: str | os.PathLike[str] | None = None,
    *,
    trust_types: Iterable[str] | None = None,
    tracking_uri: str | None = None,
) -> Inspection:
    """Describe a model without loading it: a directory is read without unpickling, so a
    tampered file is reported rather than loaded, and a bare pickle is described from its
    bytes alone."""
    reference = model_reference(path)
    if is_model_uri(reference):
        resolved = resolve_model_uri(reference, tracking_uri)
        inspection = inspect_model(resolved.directory, trust_types=trust_types)
        _record_registry(inspection.card, resolved.facts)
        return inspection
    location = Path(reference)
    trust_types = resolve_trust_types(trust_types)
    if location.is_dir() and _is_mlflow(location):
        from .mlflow_model import inspect_mlflow_model

        return inspect_mlflow_model(location, trust_types=trust_types)
    if not location.is_dir():
        return _inspect_bare(location)
    card, payload = _read_model_files(location)
    actual = hashlib.sha256(payload).hexdigest()
    trust = None
    if card.serialization == "skops":
        source = location / card.model_file
        trust = _review_trust(payload, source, listed=card.trusted_types, trust=trust_types)
    return Inspection(
        location, "infer-cli model directory", describe(card.serialization),
        card, len(payload), actual, actual == card.sha256,
        pickle_based=is_pickle_based(card.serialization), trust=trust,
    )  # fmt: skip


def check_loadable(inspection: Inspection) -> None:
    """Raise the error loading the inspected model would raise: a file that no longer
    matches its SHA-256, or a skops file holding types nobody vouched for."""
    if inspection.matches is False:
        raise ModelError(
            f"{inspection.path}: {inspection.card.model_file} does not match the SHA-256 in "
            "model.json; it will not load"
        )
    if inspection.trust is not None and inspection.trust.refused:
        raise inspection.trust.refusal(inspection.path / inspection.card.model_file)


def _inspect_bare(location: Path) -> Inspection:
    """A bare estimator file from its bytes: unpickling it to describe it would run it."""
    _check_bare(location)
    try:
        size, digest, head = digest_regular(location)
    except OSError as exc:
        raise ModelError(f"cannot read {location}: {exc.strerror}") from exc
    serialization, details = sniff_pickle(head, location)
    card = ModelCard(
        task="unknown (a pickle is not loaded to be described)",
        target=None,
        classes=None,
        signature=Signature(()),
        sha256=digest,
        serialization=serialization,
        model_file=location.name,
    )
    return Inspection(
        location, "bare estimator file", f"{details} ({PICKLE_WARNING})",
        card, size, digest, None,
    )  # fmt: skip


def _record_registry(card: ModelCard, facts: RegistryFacts | None) -> None:
    """Keep what the registry says beside what the model's own files say."""
    if facts is not None:
        card.source["registry"] = facts.to_dict()


def _is_mlflow(location: Path) -> bool:
    from .mlflow_model import is_mlflow_directory

    return not (location / CARD_FILE).exists() and is_mlflow_directory(location)


def _serialize(estimator: Any, serialization: str) -> tuple[bytes, list[str]]:
    """The model file's bytes, and the types beyond skops's own that it needs trusted."""
    if serialization == "skops":
        return dump_skops(estimator)
    import joblib

    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    return buffer.getvalue(), []


def _load_directory(location: Path, trust_types: Iterable[str] = ()) -> Model:
    card, payload = _read_model_files(location)
    if card.format_version > FORMAT_VERSION:
        raise ModelError(
            f"{location}: model format {card.format_version} is newer than this infer-cli "
            f"understands ({FORMAT_VERSION}); upgrade infer-cli"
        )
    actual = hashlib.sha256(payload).hexdigest()
    source = location / card.model_file
    if actual != card.sha256:
        raise ModelError(
            f"{source}: SHA-256 mismatch (recorded {card.sha256[:12]}, "
            f"found {actual[:12]}); the file was changed after it was saved, refusing to load it"
        )
    if card.serialization == "skops":
        estimator = load_skops(payload, source, listed=card.trusted_types, trust=trust_types)
    else:
        estimator = load_pickled(payload, source, "joblib")
    check_card(card, estimator, location)
    return Model(estimator, card, location, version_notices(card))


def _load_bare(location: Path) -> Model:
    try:
        payload = read_regular(location)
    except OSError as exc:
        raise ModelError(f"cannot read {location}: {exc.strerror}") from exc
    estimator = load_pickled(payload, location, "joblib")
    card = card_of_estimator(estimator, location)
    card.sha256 = hashlib.sha256(payload).hexdigest()
    return Model(estimator, card, location)


def _read_model_files(location: Path) -> tuple[ModelCard, bytes]:
    """Read the card and the model through one directory handle.

    Opening both relative to the same directory descriptor means a save that swaps the
    directory midway cannot pair one model's card with another model's file. A save can
    still remove the old directory while it is being read, or be between its two renames:
    then the read starts again, briefly, on the new one.
    """
    for attempt in range(_READ_ATTEMPTS):
        try:
            return _read_once(location)
        except _Replaced:
            time.sleep(0.002 * (attempt + 1))
    raise ModelError(f"{location}: the model kept changing while it was read; try again")


class _Replaced(Exception):
    """The model directory was replaced while being opened or read."""


def _read_once(location: Path) -> tuple[ModelCard, bytes]:
    try:
        directory = os.open(location, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError as exc:
        raise _Replaced from exc
    except OSError as exc:
        raise ModelError(f"cannot open model directory '{location}': {exc.strerror}") from exc
    try:
        try:
            card_bytes = _read_at(directory, location, CARD_FILE, METADATA_LIMIT)
            card = parse_card(card_bytes, location)
            return card, _read_at(directory, location, _model_file_of(card, location))
        except ModelError:
            if _moved(directory, location):
                raise _Replaced from None
            raise
    finally:
        os.close(directory)


def _moved(directory: int, location: Path) -> bool:
    """Whether `location` no longer names the directory open as `directory`."""
    try:
        return os.stat(location).st_ino != os.fstat(directory).st_ino
    except FileNotFoundError:
        return True


def _model_file_of(card: ModelCard, location: Path) -> str:
    name = card.model_file
    if name not in MODEL_FILES.values():
        raise ModelError(f"{location / CARD_FILE}: unknown model file '{name}'")
    return name


def _read_at(directory: int, location: Path, name: str, limit: int | None = None) -> bytes:
    try:
        return read_regular(Path(name), limit=limit, dir_fd=directory, shown=location / name)
    except FileNotFoundError as exc:
        raise ModelError(f"{location}: not a model directory (no {name})") from exc
    except OSError as exc:
        raise ModelError(f"cannot read {location / name}: {exc.strerror}") from exc


def _staging_directory(target: Path) -> Path:
    """A new hidden sibling of `target`, created with the umask's permissions (mkdtemp's are
    0700, which a model renamed into place would keep: a service account could not read it)."""
    for _ in range(100):
        staging = target.parent / f".{target.name}.{secrets.token_hex(4)}"
        try:
            os.mkdir(staging, 0o777)
        except FileExistsError:
            continue
        return staging
    raise UsageError(f"cannot create a staging directory beside '{target}'")


def _write_synced(path: Path, payload: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())


def _replace_directory(staging: Path, target: Path) -> None:
    if not target.exists():
        os.rename(staging, target)
        return
    # Again, now that training is done: the directory may have changed meanwhile.
    check_model_destination(target)
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    os.rmdir(retired)
    os.rename(target, retired)
    os.rename(staging, target)
    shutil.rmtree(retired, ignore_errors=True)
