"""How a fitted estimator becomes bytes and back, and which of those bytes may be trusted.

joblib, pickle and cloudpickle files can run any code when they are loaded. A skops file
cannot: it names the types it holds, and is loaded only when each of them is trusted by
skops itself, vouched for by the model's own metadata, or named by the user.
"""

from __future__ import annotations

import io
import pickle
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelError, first_line

SKOPS = "skops"
PICKLE_BASED = ("joblib", "pickle", "cloudpickle")
SERIALIZATIONS = (SKOPS, *PICKLE_BASED)
# A model's metadata may vouch for types of these libraries only: the ones scikit-learn
# models are made of. Anything else it lists still has to be named by the user, because the
# metadata travels with the file it vouches for.
VOUCHABLE_MODULES = ("numpy", "scipy", "sklearn")


class UntrustedTypes(ModelError):
    """A skops file holding types nobody has said to trust; `types` lists them."""

    def __init__(self, source: Path, types: list[str], listed: Iterable[str] = ()) -> None:
        self.types = types
        named = ", ".join(types)
        unvouched = sorted(set(types) & set(listed))
        because = ""
        if unvouched:
            because = (
                f" (the model's metadata lists {', '.join(unvouched)}, but only numpy, SciPy "
                "and scikit-learn types are taken on its word)"
            )
        super().__init__(
            f"{source}: refusing to load types that are not trusted: {named}{because}; "
            f"if you trust where this model came from, pass --trust-types {','.join(types)}"
        )


def is_pickle_based(serialization: str) -> bool:
    return serialization in PICKLE_BASED


def describe(serialization: str) -> str:
    """The format in words a user can act on."""
    if is_pickle_based(serialization):
        return f"{serialization} (pickle: can run code when loaded; load only trusted models)"
    if serialization == SKOPS:
        return "skops (loads trusted types only; cannot run code when loaded)"
    return serialization


@dataclass(frozen=True)
class TrustReview:
    """Which of a skops file's types skops does not trust by default, and who admits each."""

    untrusted: tuple[str, ...]
    vouched: tuple[str, ...]
    named: tuple[str, ...]
    refused: tuple[str, ...]

    def to_dict(self) -> dict[str, list[str]]:
        return {
            "untrusted": list(self.untrusted),
            "vouched_by_metadata": list(self.vouched),
            "named_by_user": list(self.named),
            "refused": list(self.refused),
        }


def review_trust(
    payload: bytes, source: Path, *, listed: Iterable[str] = (), trust: Iterable[str] = ()
) -> TrustReview:
    """Read a skops file's types, without loading anything, and sort them by who trusts them.

    `listed` are the types the model's metadata says to trust, `trust` those the user named.
    """
    import skops.io

    try:
        untrusted = tuple(skops.io.get_untrusted_types(data=payload))
    except Exception as exc:
        raise ModelError(f"{source}: not a readable skops file ({first_line(exc)})") from exc
    listed_set, trust_set = set(listed), set(trust)
    vouched = tuple(name for name in untrusted if name in listed_set and _vouchable(name))
    named = tuple(name for name in untrusted if name in trust_set and name not in vouched)
    refused = tuple(name for name in untrusted if name not in vouched and name not in named)
    return TrustReview(untrusted, vouched, named, refused)


def load_skops(
    payload: bytes, source: Path, *, listed: Iterable[str] = (), trust: Iterable[str] = ()
) -> Any:
    """Load a skops file if every type in it is trusted; raise UntrustedTypes otherwise."""
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    listed, trust = list(listed), list(trust)
    admitted = [name for name in listed if _vouchable(name)] + trust
    try:
        with _quiet_version_warnings():
            # skops audits every type before it builds anything; reviewing them first as
            # well would read a large model's schema twice.
            return skops.io.loads(payload, trusted=admitted)
    except UntrustedTypesFoundException as exc:
        review = review_trust(payload, source, listed=listed, trust=trust)
        if not review.refused:
            raise ModelError(f"{source}: cannot load the model ({first_line(exc)})") from exc
        raise UntrustedTypes(source, list(review.refused), listed) from None
    except Exception as exc:
        if not zipfile.is_zipfile(io.BytesIO(payload)):
            raise ModelError(f"{source}: not a readable skops file ({first_line(exc)})") from exc
        raise ModelError(f"{source}: cannot load the model ({first_line(exc)})") from exc


def dump_skops(estimator: Any) -> tuple[bytes, list[str]]:
    """The estimator as a skops file, and the types in it that skops does not trust itself."""
    import skops.io

    # Deflated: the file is mostly its JSON schema, which shrinks about twentyfold.
    payload = skops.io.dumps(estimator, compression=zipfile.ZIP_DEFLATED)
    return payload, list(skops.io.get_untrusted_types(data=payload))


def load_pickled(payload: bytes, source: Path, serialization: str) -> Any:
    """Unpickle a joblib, pickle or cloudpickle file: this runs whatever code the file holds."""
    try:
        with _quiet_version_warnings():
            if serialization == "joblib":
                import joblib

                return joblib.load(io.BytesIO(payload))
            if serialization == "cloudpickle":
                import cloudpickle

                return cloudpickle.loads(payload)
            if serialization == "pickle":
                return pickle.loads(payload)
    except Exception as exc:
        raise ModelError(f"{source}: cannot load the model ({first_line(exc)})") from exc
    raise ModelError(
        f"{source}: unknown serialization '{serialization}' "
        f"(infer-cli reads {', '.join(SERIALIZATIONS)})"
    )


def _vouchable(name: str) -> bool:
    return name.split(".", 1)[0] in VOUCHABLE_MODULES


@contextmanager
def _quiet_version_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        # The core says this once, in one line, from the versions it knows.
        warnings.filterwarnings("ignore", message=".*Trying to unpickle estimator.*")
        yield
