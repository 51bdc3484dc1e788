"""The quick start of `serve` and `predict`: what it skips changes nothing a prediction or SciPy
relies on."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import pytest

from infer_cli.core import load_model
from infer_cli.core.quick_start import quick_start
from infer_cli.errors import ModelError

# Run in a fresh interpreter: SciPy must not be imported yet for the quick start to apply.
PROBE = """
import gc, json, sys
import pandas as pd
from infer_cli.core.store import load_model

paused = False
if sys.argv[2] == "quick":
    from infer_cli.core.quick_start import quick_start

    with quick_start() as loaded:
        model = load_model(sys.argv[1])
        paused = not gc.isenabled()
        loaded()
        frozen, collecting, hooks = gc.get_freeze_count(), gc.isenabled(), list(sys.meta_path)
else:
    model = load_model(sys.argv[1])
    frozen, collecting, hooks = 0, gc.isenabled(), list(sys.meta_path)

from scipy._lib import _array_api
import scipy.stats

frame = pd.DataFrame(model.card.example)
predictions = model.predict(frame, proba=True)
table = {
    f"{getattr(f, '__module__', '')}.{getattr(f, '__qualname__', getattr(f, '__name__', ''))}":
        repr(capabilities)
    for f, capabilities in _array_api.xp_capabilities_table.items()
}
print(json.dumps({
    "paused": paused,
    "frozen": frozen,
    "collecting": collecting,
    "hooks_left": [type(hook).__name__ for hook in hooks if "quick_start" in type(hook).__module__],
    "decorator": _array_api.xp_capabilities.__module__,
    "values": [str(value) for value in predictions.values],
    "probabilities": predictions.probabilities.tolist(),
    "table": table,
    "noted": "Array API Standard Support" in (scipy.stats.rankdata.__doc__ or ""),
}))
"""


def _probe(model: Path, mode: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(model), mode], capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def test_a_quick_start_predicts_and_records_scipy_capabilities_as_usual(
    trained_models: dict[str, Path],
) -> None:
    usual = _probe(trained_models["churn"], "usual")
    quick = _probe(trained_models["churn"], "quick")

    assert quick["values"] == usual["values"]
    assert quick["probabilities"] == usual["probabilities"]
    # SciPy's registry of array API capabilities is the same, entry for entry.
    assert len(usual["table"]) > 100
    assert quick["table"] == usual["table"]
    # Only the docstrings differ: the quick start left them as written.
    if usual["noted"]:
        assert not quick["noted"], "the quick start no longer skips SciPy's docstring notes"
    # Collection was paused during the load, and is back once the model is loaded, with
    # what the load made frozen; SciPy's own decorator and import hooks are back too.
    assert quick["paused"] and quick["collecting"] and quick["frozen"] > 10_000
    assert quick["hooks_left"] == [] and quick["decorator"] == "scipy._lib._array_api"


def test_a_failed_start_restores_collection_and_freezes_nothing(tmp_path: Path) -> None:
    frozen = gc.get_freeze_count()
    hooks = list(sys.meta_path)
    with pytest.raises(ModelError), quick_start():
        assert not gc.isenabled()
        load_model(tmp_path / "missing")
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen
    assert sys.meta_path == hooks


def test_a_process_that_collects_nothing_is_left_so() -> None:
    gc.disable()
    try:
        with quick_start() as loaded:
            loaded()
        assert not gc.isenabled()
    finally:
        gc.enable()
