"""A start-up without the work that buys it nothing: `serve`'s, and `predict`'s of a few rows.

Loading a model imports scikit-learn, SciPy and pandas, most of the time `serve` takes to
start, and two parts of that serve no prediction (measured on a 2-core machine, where they
took 0.35 s of a 1.6 s start; see benchmarks/bench_startup.py):

- The cyclic garbage collector walks the objects being made again and again while modules
  are imported (0.12 s). It is paused until the model is loaded; then everything made so
  far is frozen, so that no later collection walks it either (a full one took 80 ms
  before), and the collector runs again.
- SciPy rewrites the docstrings of some 470 functions as it is imported: its
  `xp_capabilities` decorator parses each one to append a note on array API support
  (0.23 s). Until the model is loaded the decorator still records each function's
  capabilities in SciPy's table, as before, but leaves the docstring as written.
"""

from __future__ import annotations

import gc
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

SCIPY_CAPABILITIES_MODULE = "scipy._lib._array_api"


@contextmanager
def quick_start() -> Iterator[Callable[[], None]]:
    """Start quickly inside the block; call the function it gives once the model is loaded.

    Leaving the block without that call (a failed start) undoes the rest, freezing nothing.
    """
    finder = _CapabilitiesWithoutNotes()
    sys.meta_path.insert(0, finder)
    collecting = gc.isenabled()
    gc.disable()
    modules = len(sys.modules)

    def loaded() -> None:
        finder.restore()
        if collecting and not gc.isenabled():
            # Frozen only when the libraries were imported here: a process that had them
            # already (a test runner calling commands in turn) would keep, uncollected,
            # whatever of its own later became garbage.
            if len(sys.modules) > modules:
                gc.freeze()
            gc.enable()

    try:
        yield loaded
    finally:
        finder.restore()
        if collecting:
            gc.enable()


class _CapabilitiesWithoutNotes(importlib.abc.MetaPathFinder):
    """Imports SciPy's `xp_capabilities` module with a decorator that skips the docstring."""

    def __init__(self) -> None:
        self.module: ModuleType | None = None
        self.original: Any = None

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name != SCIPY_CAPABILITIES_MODULE or self.module is not None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or not isinstance(spec.loader, importlib.abc.Loader):
            return None
        spec.loader = _ThenPatch(spec.loader, self)
        return spec

    def patch(self, module: ModuleType) -> None:
        original = getattr(module, "xp_capabilities", None)
        table = getattr(module, "xp_capabilities_table", None)
        if not callable(original) or not isinstance(table, dict):
            return  # not the SciPy this was written for: leave it as it is
        self.module, self.original = module, original
        module.xp_capabilities = _without_notes(original, table)  # type: ignore[attr-defined]

    def restore(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        if self.module is not None:
            self.module.xp_capabilities = self.original  # type: ignore[attr-defined]


class _ThenPatch(importlib.abc.Loader):
    """The module's own loader, and the patch once the module has run."""

    def __init__(self, loader: importlib.abc.Loader, finder: _CapabilitiesWithoutNotes):
        self.loader = loader
        self.finder = finder

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # The import system recorded this loader on the module; SciPy's own is the right one
        # for anything that reads it later (reloading, resources).
        module.__loader__ = module.__spec__.loader = self.loader  # type: ignore[union-attr]
        self.loader.exec_module(module)
        self.finder.patch(module)


def _without_notes(original: Callable[..., Any], table: dict[Any, Any]) -> Callable[..., Any]:
    def xp_capabilities(**options: Any) -> Callable[[Any], Any]:
        decorate = original(**options)
        recorded = options.get("capabilities_table")
        recorded = table if recorded is None else recorded

        def record(function: Any) -> Any:
            # SciPy's decorator applied to a stand-in with no docstring records exactly the
            # capabilities it would have recorded for the function.
            def stand_in() -> None:
                pass

            if decorate(stand_in) is not stand_in or stand_in not in recorded:
                return decorate(function)  # it does more than record: let it do all of it
            recorded[function] = recorded.pop(stand_in)
            return function

        return record

    return xp_capabilities
