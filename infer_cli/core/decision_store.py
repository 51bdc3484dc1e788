"""A decision threshold recorded in a model directory's card (`evaluate --save`): which
models have a card to record it in, and rewriting `model.json` in place, atomically, with
the model file and its SHA-256 left as they are."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

from ..errors import ModelError, UsageError
from .card import CARD_FILE, DECISION_FORMAT_VERSION, parse_card
from .mlflow_model import is_mlflow_directory
from .model_files import METADATA_LIMIT, read_regular
from .model_uri import is_model_uri
from .store import model_reference


def decision_card(path: str | os.PathLike[str] | None) -> Path:
    """The card a decision threshold for the model at `path` is saved in, or a UsageError
    saying why it has none: only infer-cli's own model directories have a card to write."""
    reference = model_reference(path)
    instead = "with no model.json to record a threshold in; pass --threshold to predict and serve"
    if is_model_uri(reference):
        raise UsageError(f"--save: {reference} names a model in an MLflow registry, {instead}")
    location = Path(reference)
    if location.is_file():
        raise UsageError(f"--save: {location} is a bare model file, {instead}")
    if location.is_dir() and not (location / CARD_FILE).exists() and is_mlflow_directory(location):
        raise UsageError(f"--save: {location} is an MLflow model, {instead}")
    return location / CARD_FILE


def save_decision(path: str | os.PathLike[str] | None, record: dict[str, Any], sha256: str) -> Path:
    """Record a decision threshold in the card of the model directory at `path`, the model
    evaluated being the one whose file has `sha256`; returns the card's path.

    Card and directory are read and written through one directory handle, and the card is
    written to a hidden sibling renamed over `model.json`: a reader sees the old card or
    the new one, never part of one, and a model saved over this one meanwhile is not given
    a threshold chosen for another.
    """
    location = decision_card(path).parent
    replaced = ModelError(
        f"{location}: the model was replaced while it was evaluated; evaluate it again"
    )
    try:
        directory = os.open(location, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise ModelError(f"cannot open model directory '{location}': {exc.strerror}") from exc
    try:
        try:
            card_bytes = read_regular(
                Path(CARD_FILE), limit=METADATA_LIMIT, dir_fd=directory, shown=location / CARD_FILE
            )
        except OSError as exc:
            raise ModelError(f"cannot read {location / CARD_FILE}: {exc.strerror}") from exc
        if parse_card(card_bytes, location).sha256 != sha256:
            raise replaced
        document = json.loads(card_bytes)
        document["decision"] = record
        document["format_version"] = max(
            int(document.get("format_version", 1)), DECISION_FORMAT_VERSION
        )
        written = (json.dumps(document, indent=2) + "\n").encode()
        parse_card(written, location)
        _replace_at(directory, location, CARD_FILE, written)
        # A save over the directory meanwhile retires the one written into.
        if _moved(directory, location):
            raise replaced
    finally:
        os.close(directory)
    return location / CARD_FILE


def _replace_at(directory: int, location: Path, name: str, payload: bytes) -> None:
    """Write `name` in the open `directory` through a hidden sibling renamed over it, with
    the mode the file had."""
    staging = f".{name}.{os.getpid()}.{secrets.token_hex(4)}.part"
    try:
        mode = os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode & 0o7777
        descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=directory)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fchmod(handle.fileno(), mode)
                os.fsync(handle.fileno())
            os.replace(staging, name, src_dir_fd=directory, dst_dir_fd=directory)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(staging, dir_fd=directory)
            raise
        os.fsync(directory)
    except OSError as exc:
        raise ModelError(f"cannot write {location / name}: {exc.strerror}") from exc


def _moved(directory: int, location: Path) -> bool:
    """Whether `location` no longer names the directory open as `directory`."""
    try:
        return os.stat(location).st_ino != os.fstat(directory).st_ino
    except FileNotFoundError:
        return True
