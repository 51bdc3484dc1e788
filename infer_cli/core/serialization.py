"""How a fitted estimator becomes bytes and back, and which of those bytes may be trusted.

joblib, pickle and cloudpickle files can run any code when they are loaded. A skops file
cannot: it names the types it holds, and is loaded only when each of them is trusted by
skops itself, vouched for by the model's own metadata (classes on an allow-list only,
never a function or a type object: see `skops_schema`), or named by the user.
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
from .skops_schema import VOUCHABLE_CLASSES, check_unpacked_size, read_contents, vouchable
from .tree_checks import check_trees

SKOPS = "skops"
PICKLE_BASED = ("joblib", "pickle", "cloudpickle")
SERIALIZATIONS = (SKOPS, *PICKLE_BASED)
PICKLE_WARNING = "a pickle: runs code when loaded"
# The first bytes of the compressed files joblib writes (`joblib.dump(..., compress=...)`).
_JOBLIB_COMPRESSIONS = {
    b"\x78": "zlib",
    b"\x1f\x8b": "gzip",
    b"BZh": "bz2",
    b"\xfd7zXZ": "xz",
    b"]\x00\x00": "lzma",
    b"\x04\x22\x4d\x18": "lz4",
}
# The opcodes a protocol 0 or 1 pickle starts with: a mark, a global, an empty container...
_OLD_PICKLE_STARTS = b"(c]})NIFLSVUXGJKM"


class UntrustedTypes(ModelError):
    """A skops file holding types nobody has said to trust; `types` lists them.

    `unvouched` names why the model's metadata could not vouch for those it lists: they are
    functions, type objects, or classes off the allow-list.
    """

    def __init__(self, source: Path, types: list[str], unvouched: Iterable[str] = ()) -> None:
        self.types = types
        named = ", ".join(types)
        kinds = " or ".join(unvouched)
        because = ""
        if kinds:
            because = f" (listed by the model's metadata, which cannot vouch for {kinds})"
        super().__init__(
            f"{source}: refusing to load types that are not trusted: {named}{because}; "
            f"if you trust where this model came from, pass --trust-types {','.join(types)}"
        )


def is_pickle_based(serialization: str) -> bool:
    return serialization in PICKLE_BASED


def describe(serialization: str) -> str:
    """The format in words a user can act on."""
    if is_pickle_based(serialization):
        return f"{serialization} ({PICKLE_WARNING})"
    if serialization == SKOPS:
        return "skops (loads trusted types only; cannot run code when loaded)"
    return serialization


@dataclass(frozen=True)
class TrustReview:
    """Which of a skops file's types skops does not trust by default, and who admits each;
    and every function and type object (a class, or a built-in function, held as a value)
    the file holds, trusted or not."""

    untrusted: tuple[str, ...]
    vouched: tuple[str, ...]
    named: tuple[str, ...]
    refused: tuple[str, ...]
    functions: tuple[str, ...] = ()
    type_objects: tuple[str, ...] = ()
    listed: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, list[str]]:
        return {
            "untrusted": list(self.untrusted),
            "vouched_by_metadata": list(self.vouched),
            "named_by_user": list(self.named),
            "refused": list(self.refused),
            "functions": list(self.functions),
            "type_objects": list(self.type_objects),
        }

    def refusal(self, source: Path) -> UntrustedTypes:
        """The error for the refused types, saying why the metadata did not vouch for them."""
        listed = set(self.listed) & set(self.refused)
        callables = set(self.functions) | set(self.type_objects)
        kinds = []
        if listed & callables:
            kinds.append("functions or type objects")
        if listed - callables:
            kinds.append("classes off infer-cli's allow-list")
        return UntrustedTypes(source, list(self.refused), kinds)


def review_trust(
    payload: bytes, source: Path, *, listed: Iterable[str] = (), trust: Iterable[str] = ()
) -> TrustReview:
    """Read a skops file's types, without loading anything, and sort them by who trusts them.

    `listed` are the types the model's metadata says to trust, `trust` those the user named.
    Metadata vouches only for classes on the allow-list that the file holds as instances.
    """
    import skops.io

    contents = read_contents(payload, source)
    try:
        untrusted = tuple(skops.io.get_untrusted_types(data=payload))
    except Exception as exc:
        raise ModelError(f"{source}: not a readable skops file ({first_line(exc)})") from exc
    listed, trust_set = tuple(listed), set(trust)
    vouched = tuple(name for name in untrusted if name in listed and vouchable(name, contents))
    named = tuple(name for name in untrusted if name in trust_set and name not in vouched)
    refused = tuple(name for name in untrusted if name not in vouched and name not in named)
    return TrustReview(
        untrusted, vouched, named, refused, contents.functions, contents.type_objects, listed
    )


def load_skops(
    payload: bytes, source: Path, *, listed: Iterable[str] = (), trust: Iterable[str] = ()
) -> Any:
    """Load a skops file if every type in it is trusted; raise UntrustedTypes otherwise.

    Its trees are checked before it is returned (see `tree_checks`).
    """
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    listed, trust = list(listed), list(trust)
    check_unpacked_size(payload, source)
    admitted = list(trust)
    if any(name in VOUCHABLE_CLASSES for name in listed):
        # Whether the file holds them as instances only is in its schema.
        contents = read_contents(payload, source)
        admitted += [name for name in listed if vouchable(name, contents)]
    try:
        with _quiet_version_warnings():
            # skops audits every type before it builds anything; reviewing them first as
            # well would read a large model's schema twice.
            estimator = skops.io.loads(payload, trusted=admitted)
    except UntrustedTypesFoundException as exc:
        review = review_trust(payload, source, listed=listed, trust=trust)
        if not review.refused:
            raise ModelError(f"{source}: cannot load the model ({first_line(exc)})") from exc
        raise review.refusal(source) from None
    except RecursionError:
        raise ModelError(f"{source}: not a readable skops file (nested too deeply)") from None
    except Exception as exc:
        if not zipfile.is_zipfile(io.BytesIO(payload)):
            raise ModelError(f"{source}: not a readable skops file ({first_line(exc)})") from exc
        raise ModelError(f"{source}: cannot load the model ({first_line(exc)})") from exc
    check_trees(estimator, source)
    return estimator


def sniff_pickle(head: bytes, source: Path) -> tuple[str, str]:
    """(serialization, description) of a bare estimator file, from its first bytes alone.

    A pickle is not parsed to be described: even reading its opcodes past the header is
    reading an attacker's program.
    """
    serialization = "joblib" if source.suffix.lower() == ".joblib" else "pickle"
    if head[:1] == b"\x80" and len(head) > 1:
        return serialization, f"{serialization}, pickle protocol {head[1]}"
    for magic, compression in _JOBLIB_COMPRESSIONS.items():
        if head.startswith(magic):
            return "joblib", f"joblib, {compression}-compressed pickle"
    if head[:1] and head[:1] in _OLD_PICKLE_STARTS:
        return serialization, f"{serialization}, pickle protocol 0 or 1"
    if not head:
        raise ModelError(f"{source}: not a pickle (the file is empty)")
    shown = head[:8].hex(" ")
    raise ModelError(f"{source}: not a pickle (it starts with bytes {shown})")


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


@contextmanager
def _quiet_version_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        # The core says this once, in one line, from the versions it knows.
        warnings.filterwarnings("ignore", message=".*Trying to unpickle estimator.*")
        yield
