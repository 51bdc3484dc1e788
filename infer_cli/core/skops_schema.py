"""What a skops file holds, read from its schema without loading anything: the functions and
type objects in it, and which of its classes a model's own metadata may vouch for.

A skops file is a zip whose `schema.json` describes every object to build, each with its
`__module__`, `__class__` and `__loader__` (the kind of node skops builds it with). skops
names the types it does not trust by default, but not what they are; the loader says it:
a `FunctionNode` is a function the model will call, a `TypeNode` a class handed over as a
value (and callable like one), and only the other nodes build instances.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelError, first_line

SCHEMA_MEMBER = "schema.json"
# The schema of a 500-tree forest is a few MiB; its arrays are separate members.
SCHEMA_LIMIT = 256 * 1024 * 1024
# skops unpacks every array when it loads a file. A model's arrays shrink a few times when
# deflated (its schema about twentyfold), so a file that unpacks to a hundred times its
# size is a decompression bomb; up to 1 GiB unpacked is let through whatever the ratio.
UNPACKED_RATIO = 100
UNPACKED_FLOOR = 1024 * 1024 * 1024

# The classes a model's metadata may vouch for, the ones scikit-learn pipelines hold beyond
# what skops trusts itself: state that is data, read back by Python code or, for the two
# tree types, checked by infer-cli after loading (`tree_checks`). Anything else, a function
# or a type object above all, loads only when the user names it with --trust-types.
VOUCHABLE_CLASSES = frozenset(
    {
        # The dtype of an array (SimpleImputer, KBinsDiscretizer...), built from an empty
        # array, never called.
        "numpy.dtype",
        # The node storage of decision trees, forests and gradient boosting.
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        # Estimators' private parts.
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn._loss.loss.HalfTweedieLoss",
        "sklearn._loss.loss.HalfTweedieLossIdentity",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        "sklearn.cluster._bisect_k_means._BisectingTree",
        "sklearn.gaussian_process._gpc._BinaryGaussianProcessClassifierLaplace",
        "sklearn.gaussian_process.kernels.ConstantKernel",
        "sklearn.gaussian_process.kernels.DotProduct",
        "sklearn.gaussian_process.kernels.ExpSineSquared",
        "sklearn.gaussian_process.kernels.Exponentiation",
        "sklearn.gaussian_process.kernels.Matern",
        "sklearn.gaussian_process.kernels.Product",
        "sklearn.gaussian_process.kernels.RBF",
        "sklearn.gaussian_process.kernels.RationalQuadratic",
        "sklearn.gaussian_process.kernels.Sum",
        "sklearn.gaussian_process.kernels.WhiteKernel",
    }
)

_FUNCTION_LOADERS = ("FunctionNode", "OperatorFuncNode")
# skops records the type of each dict key as a type object; these are not the model's.
_KEY_TYPES = frozenset({"builtins.str", "builtins.int", "builtins.float", "builtins.bool"})


@dataclass(frozen=True)
class SchemaContents:
    """The callables a skops file holds: `functions` (functions, methods, partials and
    operator getters, in the order of first appearance) and `type_objects` (classes held
    as values)."""

    functions: tuple[str, ...]
    type_objects: tuple[str, ...]

    @property
    def callables(self) -> frozenset[str]:
        return frozenset(self.functions) | frozenset(self.type_objects)


def read_contents(payload: bytes, source: Path) -> SchemaContents:
    """The functions and type objects in a skops file, from its schema alone."""
    functions: dict[str, None] = {}
    type_objects: dict[str, None] = {}

    def note(node: dict[str, Any]) -> Any:
        # The JSON parser hands over each object once its members are parsed, innermost
        # first: every node is seen without walking the tree again (a forest's schema is
        # megabytes), and each is dropped once noted, except what a method's node reads.
        loader = node.get("__loader__")
        if not isinstance(loader, str):
            return node if "func" in node and "obj" in node else None
        name = f"{node.get('__module__')}.{node.get('__class__')}"
        if loader in _FUNCTION_LOADERS:
            functions[name] = None
        elif loader == "PartialNode":
            functions["functools.partial"] = None
        elif loader == "MethodNode":
            functions[_method_name(node, name)] = None
        elif loader == "TypeNode" and name not in _KEY_TYPES:
            type_objects[name] = None
        return name

    _read_schema(payload, source, note)
    return SchemaContents(tuple(functions), tuple(type_objects))


def check_unpacked_size(payload: bytes, source: Path) -> None:
    """Refuse a skops file whose members unpack to far more than its size, before skops
    unpacks them. The sizes are the archive's own word, which zipfile holds each member to."""
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ModelError(f"{source}: not a readable skops file ({first_line(exc)})") from exc
    if unpacked > max(UNPACKED_FLOOR, UNPACKED_RATIO * len(payload)):
        raise ModelError(
            f"{source}: unpacks to {unpacked} bytes, {unpacked // len(payload)} times its "
            "size; refusing to load it (a decompression bomb)"
        )


def vouchable(name: str, contents: SchemaContents) -> bool:
    """Whether metadata may vouch for `name`: a class on the allow-list that the file
    holds only as instances, never as a function or a type object."""
    return name in VOUCHABLE_CLASSES and name not in contents.callables


def _method_name(node: dict[str, Any], name: str) -> str:
    content = node.get("content")
    if isinstance(content, dict) and isinstance(content.get("obj"), str):
        return f"{content['obj']}.{content.get('func')}"
    return name


def _read_schema(payload: bytes, source: Path, note: Callable[[dict[str, Any]], Any]) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            member = archive.getinfo(SCHEMA_MEMBER)
            if member.file_size > SCHEMA_LIMIT:
                raise ModelError(
                    f"{source}: its {SCHEMA_MEMBER} unpacks to {member.file_size} bytes "
                    f"(more than {SCHEMA_LIMIT // (1024 * 1024)} MiB); not a model file"
                )
            text = archive.read(member)
        json.loads(text, object_hook=note)
    except RecursionError:
        raise ModelError(f"{source}: not a readable skops file (nested too deeply)") from None
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
        raise ModelError(f"{source}: not a readable skops file ({first_line(exc)})") from exc
