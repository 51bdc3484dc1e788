"""infer-cli: batch scoring and real-time serving for scikit-learn models."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__version__ = "0.1.0"


def lazy_surface(package: str, surface: Mapping[str, str]) -> Callable[[str], Any]:
    """A wing's module `__getattr__`: each public name, imported from its module (a value of
    `surface`) when first asked for, so that importing a wing stays as cheap as its first use
    (`infer-cli --help` and `serve`'s start load no library they do not need)."""

    def attribute(name: str) -> Any:
        module = surface.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return attribute
