"""Hostile models: skops gadgets, pickles, symlinks out of a model, malformed cards.

Each test is an attack on a promise of the README's "Loading models safely": a skops file
runs no code unless the user names it, `info` loads nothing, a model's files are read
within bounds, and a malformed model is exit 4 in bounded memory, never a traceback. The
CLI runs as a real subprocess, the memory-hungry attacks under an address-space limit so
that a regression fails instead of exhausting the machine.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import resource
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from infer_cli.core import Column, ModelCard, Signature, save_model
from infer_cli.core.card import CARD_FILE

from .limited import MEMORY_LIMIT_MIB

MEMORY_LIMIT = MEMORY_LIMIT_MIB * 1024 * 1024
ROWS = "x\n0.5\n2.5\n"
GADGET_FUNCTIONS = ["numpy.full_like", "numpy.max", "numpy.savetxt"]


def infer_cli(
    *args: str | Path, memory_limit: int | None = None, input: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run the installed command (stdin `input`); with `memory_limit`, under that
    address-space limit."""
    executable = Path(sys.executable).with_name("infer-cli")
    env = {key: value for key, value in os.environ.items() if key != "INFER_CLI_TRUST_TYPES"}
    env["OPENBLAS_NUM_THREADS"] = "1"

    def limit() -> None:
        if memory_limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    return subprocess.run(
        [str(executable), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        input=input,
        preexec_fn=limit,
        timeout=300,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single `infer-cli: error:` line a refused model must produce, and nothing else."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("infer-cli: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def fitted_final_step() -> LogisticRegression:
    return LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])


def gadget_pipeline(marker: Path) -> Pipeline:
    """Three numpy functions chained in FunctionTransformers: `np.savetxt(marker, [[1]])`.

    full_like turns the rows into an array filled with the marker's path, max takes that
    path out as a string, savetxt writes to it. Each is a numpy function, so the old rule
    (any numpy, SciPy or scikit-learn name listed in the metadata) took them on trust.
    """
    return Pipeline(
        [
            (
                "path",
                FunctionTransformer(
                    np.full_like, kw_args={"fill_value": str(marker), "dtype": "O"}
                ),
            ),
            ("one", FunctionTransformer(np.max)),
            ("write", FunctionTransformer(np.savetxt, kw_args={"X": [[1.0]]})),
            ("model", fitted_final_step()),
        ]
    )


def x_card() -> ModelCard:
    return ModelCard("classification", "y", [0, 1], Signature((Column("x", "float"),)))


def skops_model(estimator: Any, directory: Path) -> Path:
    """A model directory saved by infer-cli: its card lists what skops does not trust."""
    save_model(estimator, x_card(), directory, serialization="skops")
    return directory


def mlflow_skops_model(estimator: Any, directory: Path) -> Path:
    """An MLflow directory whose MLmodel lists what skops does not trust, as MLflow writes it."""
    import skops.io

    directory.mkdir()
    payload = skops.io.dumps(estimator)
    (directory / "model.skops").write_bytes(payload)
    listed = skops.io.get_untrusted_types(data=payload)
    (directory / "MLmodel").write_text(
        mlmodel_text("model.skops", "skops", trusted=listed), encoding="utf-8"
    )
    return directory


def mlmodel_text(
    model_file: str, serialization: str, *, trusted: Sequence[str] = (), extra: str = ""
) -> str:
    """An MLmodel as mlflow.sklearn writes it, for `model_file`; `extra` adds top-level keys."""
    listed = "".join(f"\n    - {name}" for name in trusted)
    return (
        "flavors:\n"
        "  python_function:\n"
        "    loader_module: mlflow.sklearn\n"
        f"    model_path: {model_file}\n"
        "  sklearn:\n"
        f"    pickled_model: {model_file}\n"
        f"    serialization_format: {serialization}\n"
        f"    sklearn_version: {sklearn.__version__}\n"
        f"    skops_trusted_types:{listed or ' []'}\n"
        "mlflow_version: 3.1.0\n"
        "signature:\n"
        """  inputs: '[{"name": "x", "type": "double"}]'\n"""
        f"{extra}"
    )


def mlflow_pickle_model(directory: Path, model_file: str = "model.pkl") -> Path:
    """An MLflow pickle-format model directory, its MLmodel naming `model_file`."""
    directory.mkdir(parents=True)
    (directory / "MLmodel").write_text(mlmodel_text(model_file, "pickle"), encoding="utf-8")
    return directory


def pickled_estimator() -> bytes:
    return pickle.dumps(fitted_final_step())


BUILDERS: dict[str, Callable[[Any, Path], Path]] = {
    "model.json": skops_model,
    "MLmodel": mlflow_skops_model,
}


# 1. A skops model's metadata vouches for functions ------------------------------------------


@pytest.mark.parametrize("metadata", sorted(BUILDERS))
def test_metadata_cannot_vouch_for_a_function_that_writes_files(
    metadata: str, tmp_path: Path
) -> None:
    marker = tmp_path / "written-by-the-model"
    directory = BUILDERS[metadata](gadget_pipeline(marker), tmp_path / "gadget")
    rows = tmp_path / "rows.csv"
    rows.write_text(ROWS)
    result = infer_cli("predict", "-m", directory, "-i", rows, "-o", tmp_path / "out.csv")
    assert not marker.exists(), "the model's metadata vouched for numpy.savetxt and it ran"
    assert result.returncode == 4, result.stderr
    line = one_error_line(result)
    assert "refusing to load types that are not trusted" in line
    for name in GADGET_FUNCTIONS:
        assert name in line
    assert f"--trust-types {','.join(GADGET_FUNCTIONS)}" in line
    assert not (tmp_path / "out.csv").exists()


def test_named_functions_are_admitted_only_by_the_user(tmp_path: Path) -> None:
    """--trust-types is the user's consent: naming the gadget's functions runs it."""
    marker = tmp_path / "written-by-the-model"
    directory = skops_model(gadget_pipeline(marker), tmp_path / "gadget")
    rows = tmp_path / "rows.csv"
    rows.write_text(ROWS)
    trust = ",".join(GADGET_FUNCTIONS)
    infer_cli("predict", "-m", directory, "-i", rows, "--trust-types", trust, "-q")
    assert marker.exists()


@pytest.mark.parametrize("metadata", sorted(BUILDERS))
def test_info_flags_every_function_and_runs_none(metadata: str, tmp_path: Path) -> None:
    marker = tmp_path / "written-by-the-model"
    directory = BUILDERS[metadata](gadget_pipeline(marker), tmp_path / "gadget")
    result = infer_cli("info", "-m", directory, "--json")
    assert result.returncode == 4, result.stderr
    shown = json.loads(result.stdout)
    assert shown["trust"]["functions"] == GADGET_FUNCTIONS
    assert shown["trust"]["vouched_by_metadata"] == []
    assert shown["trust"]["refused"] == GADGET_FUNCTIONS
    assert "numpy.savetxt" in one_error_line(result)
    assert not marker.exists()


def test_info_flags_functions_skops_trusts_itself(tmp_path: Path) -> None:
    """numpy's ufuncs load without anyone's word, and info still says the model holds one."""
    pipeline = Pipeline([("log", FunctionTransformer(np.log1p)), ("model", fitted_final_step())])
    directory = skops_model(pipeline, tmp_path / "log1p")
    result = infer_cli("info", "-m", directory, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["trust"]["functions"] == ["numpy.log1p"]
    shown = infer_cli("info", "-m", directory)
    assert "numpy.log1p" in shown.stderr


@pytest.mark.parametrize("metadata", sorted(BUILDERS))
def test_metadata_cannot_vouch_for_a_type_object(metadata: str, tmp_path: Path) -> None:
    """numpy.dtype may be vouched for as the dtype of an array, never as a callable type."""
    pipeline = Pipeline([("cast", FunctionTransformer(np.dtype)), ("model", fitted_final_step())])
    directory = BUILDERS[metadata](pipeline, tmp_path / "dtype")
    result = infer_cli("info", "-m", directory, "--json")
    assert result.returncode == 4, result.stderr
    assert json.loads(result.stdout)["trust"]["type_objects"] == ["numpy.dtype"]
    line = one_error_line(result)
    assert "numpy.dtype" in line
    assert "--trust-types numpy.dtype" in line


def test_metadata_cannot_vouch_for_a_class_off_the_allow_list(tmp_path: Path) -> None:
    """A scikit-learn class the allow-list does not name is refused, whatever its module."""
    from sklearn.neighbors import KNeighborsClassifier

    neighbours = KNeighborsClassifier(n_neighbors=1, algorithm="kd_tree")
    neighbours.fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    directory = skops_model(neighbours, tmp_path / "neighbours")
    result = infer_cli("predict", "-m", directory, "-i", "-", "-q")
    assert result.returncode == 4, result.stderr
    assert "sklearn.neighbors._kd_tree.KDTree" in one_error_line(result)


def crafted_tree(kind: str) -> Any:
    """A fitted tree model whose nodes are changed after fitting, as a crafted file would have
    them: a child beyond the last node, a split on a column the model does not have, or a
    child that leads back to the root (a loop)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 1))
    y = (x[:, 0] > 0).astype(int)
    if kind.startswith("gbm"):
        boosted = HistGradientBoostingClassifier(max_iter=3).fit(x, y)
        nodes = boosted._predictors[0][0].nodes
        field = {"gbm-child": "left", "gbm-column": "feature_idx"}[kind]
        nodes[field][0] = 10_000
        return boosted
    forest = RandomForestClassifier(n_estimators=2, random_state=0).fit(x, y)
    tree = forest.estimators_[0].tree_
    if kind == "forest-child":
        tree.children_left[0] = 10_000
    elif kind == "forest-column":
        tree.feature[0] = 10_000
    else:
        tree.children_right[0] = 0
    return forest


@pytest.mark.parametrize(
    "kind", ["forest-child", "forest-column", "forest-loop", "gbm-child", "gbm-column"]
)
def test_crafted_trees_are_refused_although_their_types_are_vouched_for(
    kind: str, tmp_path: Path
) -> None:
    """Metadata may vouch for the tree types, so their node indices are checked on load:
    scikit-learn follows them in compiled code without bounds checks."""
    directory = skops_model(crafted_tree(kind), tmp_path / kind)
    rows = tmp_path / "rows.csv"
    rows.write_text(ROWS)
    result = infer_cli("predict", "-m", directory, "-i", rows, memory_limit=MEMORY_LIMIT)
    assert result.returncode == 4, result.stderr
    line = one_error_line(result)
    assert f"{directory / 'model.skops'}: a tree" in line
    assert "refusing to load it" in line


@pytest.mark.parametrize("model", ["forest", "gbm"])
def test_trained_tree_models_saved_as_skops_load_on_their_metadata(
    model: str, sample_data: Path, tmp_path: Path
) -> None:
    directory = tmp_path / model
    trained = infer_cli(
        "train", "-i", sample_data / "churn.csv", "-t", "churned", "--algorithm", model,
        "--format", "skops", "-o", directory, "-q",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    result = infer_cli("predict", "-m", directory, "-i", sample_data / "churn_new.csv", "-q")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == len(
        (sample_data / "churn_new.csv").read_text().splitlines()
    )


def test_skops_decompression_bomb_is_refused_before_it_is_unpacked(tmp_path: Path) -> None:
    """An array member of a few MiB that unpacks to 1.2 GiB of zeros, where the model's
    coefficients were: refused from the archive's sizes, under a memory limit."""
    import zipfile

    directory = skops_model(fitted_final_step(), tmp_path / "bomb")
    original = (directory / "model.skops").read_bytes()
    bombed = tmp_path / "bombed.skops"
    with (
        zipfile.ZipFile(io.BytesIO(original)) as source,
        zipfile.ZipFile(bombed, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        arrays = [name for name in source.namelist() if name.endswith(".npy")]
        for name in source.namelist():
            if name != arrays[0]:
                target.writestr(name, source.read(name))
        count = 150_000_000
        with target.open(arrays[0], "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(
                member, {"descr": "<f8", "fortran_order": False, "shape": (count,)}
            )
            block = bytes(8 * 1_000_000)
            for _ in range(count // 1_000_000):
                member.write(block)
    payload = bombed.read_bytes()
    (directory / "model.skops").write_bytes(payload)
    card = json.loads((directory / CARD_FILE).read_text())
    card["sha256"] = hashlib.sha256(payload).hexdigest()
    (directory / CARD_FILE).write_text(json.dumps(card))
    rows = tmp_path / "rows.csv"
    rows.write_text(ROWS)
    result = infer_cli("predict", "-m", directory, "-i", rows, memory_limit=MEMORY_LIMIT)
    assert result.returncode == 4, result.stderr
    line = one_error_line(result)
    assert "model.skops: unpacks to" in line
    assert "a decompression bomb" in line


# 4. info on a bare pickle ---------------------------------------------------------------


class OpensAFile:
    """Unpickling this creates the file it names: proof that something was unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize("suffix", [".pkl", ".pickle", ".joblib"])
def test_info_describes_a_bare_pickle_without_unpickling_it(suffix: str, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    path = tmp_path / f"model{suffix}"
    if suffix == ".joblib":
        joblib.dump(OpensAFile(marker), path)
    else:
        path.write_bytes(pickle.dumps(OpensAFile(marker)))
    payload = path.read_bytes()
    result = infer_cli("info", "-m", path, "--json")
    assert not marker.exists(), "info unpickled the file"
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["size_bytes"] == len(payload)
    assert shown["sha256_actual"] == hashlib.sha256(payload).hexdigest()
    assert shown["pickle_based"] is True
    assert "a pickle: runs code when loaded" in shown["serialization"]
    assert shown["model_format"] == ("joblib" if suffix == ".joblib" else "pickle")
    rendered = infer_cli("info", "-m", path)
    assert rendered.returncode == 0, rendered.stderr
    assert "a pickle: runs code when loaded" in rendered.stderr
    assert not marker.exists()


def test_info_on_a_bare_file_that_is_not_a_pickle_says_so(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(b"PK\x03\x04 a zip, not a pickle")
    result = infer_cli("info", "-m", path)
    assert result.returncode == 4, result.stderr
    assert "model.pkl: not a pickle" in one_error_line(result)


# 5. The card against the estimator ---------------------------------------------------------


def edited_card(model_copy: Callable[[str], Path], edit: Callable[[dict[str, Any]], None]) -> Path:
    directory = model_copy("iris")
    card = json.loads((directory / CARD_FILE).read_text())
    edit(card)
    (directory / CARD_FILE).write_text(json.dumps(card))
    return directory


def test_reordered_classes_are_refused(
    model_copy: Callable[[str], Path], sample_data: Path, tmp_path: Path
) -> None:
    """The hash covers the model file, not the card: a reordered class list would mislabel
    every probability column without a check against the estimator."""
    directory = edited_card(model_copy, lambda card: card["classes"].reverse())
    out = tmp_path / "out.csv"
    result = infer_cli(
        "predict", "-m", directory, "-i", sample_data / "iris_new.csv", "-o", out, "--proba"
    )
    assert result.returncode == 4, result.stderr
    assert one_error_line(result) == (
        f"infer-cli: error: {directory / CARD_FILE}: classes ['virginica', 'versicolor', "
        "'setosa'] do not match the model's ['setosa', 'versicolor', 'virginica']"
    )
    assert not out.exists()


@pytest.mark.parametrize(
    ("edit", "complaint"),
    [
        (lambda card: card["signature"]["inputs"].pop(), "columns"),
        (lambda card: card["signature"]["inputs"][0].update(name="sepal"), "columns"),
        (lambda card: card.update(task="regression", classes=None, metrics={}), "task"),
        (lambda card: card.update(classes=None), "classes"),
    ],
    ids=["missing", "renamed", "task", "no-classes"],
)
def test_card_that_disagrees_with_the_estimator_is_refused(
    edit: Callable[[dict[str, Any]], None],
    complaint: str,
    model_copy: Callable[[str], Path],
    sample_data: Path,
) -> None:
    directory = edited_card(model_copy, edit)
    result = infer_cli("predict", "-m", directory, "-i", sample_data / "iris_new.csv", "-q")
    assert result.returncode == 4, result.stderr
    line = one_error_line(result)
    assert f"{directory / CARD_FILE}: {complaint}" in line


# 5. MLflow model files out of bounds --------------------------------------------------------


def test_mlflow_model_file_symlinked_out_of_the_directory_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.pkl"
    outside.write_bytes(pickled_estimator())
    directory = mlflow_pickle_model(tmp_path / "mlflow")
    (directory / "model.pkl").symlink_to(outside)
    for command in (("info",), ("predict", "-i", "-")):
        result = infer_cli(*command, "-m", directory)
        assert result.returncode == 4, result.stderr
        assert one_error_line(result) == (
            f"infer-cli: error: {directory / 'model.pkl'}: leads out of the model directory "
            f"(to {outside}); MLmodel must name a file inside it"
        )


def test_mlflow_sub_directory_symlinked_out_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "model.pkl").write_bytes(pickled_estimator())
    directory = mlflow_pickle_model(tmp_path / "mlflow", "data/model.pkl")
    (directory / "data").symlink_to(elsewhere)
    result = infer_cli("info", "-m", directory)
    assert result.returncode == 4, result.stderr
    assert "data/model.pkl: leads out of the model directory" in one_error_line(result)


def test_mlflow_symlink_inside_the_directory_is_followed(tmp_path: Path) -> None:
    directory = mlflow_pickle_model(tmp_path / "mlflow")
    (directory / "data").mkdir()
    (directory / "data" / "estimator.pkl").write_bytes(pickled_estimator())
    (directory / "model.pkl").symlink_to(Path("data") / "estimator.pkl")
    result = infer_cli("predict", "-m", directory, "-i", "-", "-q")
    assert result.returncode == 3, result.stderr  # the model loaded; stdin held no CSV
    assert "is empty" in result.stderr or "no header" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("special", "complaint"),
    [("dev-zero", "leads out of the model directory"), ("fifo", "not a regular file")],
)
def test_mlflow_model_file_that_is_not_a_regular_file_is_refused(
    special: str, complaint: str, tmp_path: Path
) -> None:
    """Neither read without end (/dev/zero) nor waited on for ever (a named pipe)."""
    directory = mlflow_pickle_model(tmp_path / "mlflow")
    if special == "fifo":
        os.mkfifo(directory / "model.pkl")
    else:
        (directory / "model.pkl").symlink_to("/dev/zero")
    result = infer_cli("info", "-m", directory, memory_limit=MEMORY_LIMIT)
    assert result.returncode == 4, result.stderr
    assert f"{directory / 'model.pkl'}: {complaint}" in one_error_line(result)


def test_mlflow_input_example_out_of_bounds_is_left_out(tmp_path: Path) -> None:
    """The input example is only shown: one that leads to /dev/zero is not read, and the
    model is described without it."""
    directory = mlflow_pickle_model(tmp_path / "mlflow")
    (directory / "model.pkl").write_bytes(pickled_estimator())
    (directory / "input_example.json").symlink_to("/dev/zero")
    extra = (
        "saved_input_example_info:\n"
        "  artifact_path: input_example.json\n"
        "  type: dataframe\n"
        "  pandas_orient: split\n"
    )
    (directory / "MLmodel").write_text(mlmodel_text("model.pkl", "pickle", extra=extra))
    result = infer_cli("info", "-m", directory, "--json", memory_limit=MEMORY_LIMIT)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["example"] == []


# 5. Malformed but parseable cards -----------------------------------------------------------


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


CARD_EDITS: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "task-not-text": (lambda card: card.update(task=["classification"]), "'task'"),
    "trusted-types-a-string": (
        lambda card: card.update(trusted_types="numpy.dtype"),
        "'trusted_types'",
    ),
    "example-a-string": (lambda card: card.update(example="abc"), "'example'"),
    "column-name-a-list": (
        lambda card: card["signature"]["inputs"][0].update(name=["sepal_length"]),
        "'name'",
    ),
    "metrics-wrong-shape": (lambda card: card["metrics"].update(per_class=[1, 2]), "'metrics'"),
    "metrics-accuracy-text": (lambda card: card["metrics"].update(accuracy="high"), "'metrics'"),
    "versions-a-list": (lambda card: card.update(versions=["1.0"]), "'versions'"),
    "format-version-infinite": (
        lambda card: card.update(format_version=float("inf")),
        "'format_version'",
    ),
    "source-a-list": (lambda card: card.update(source=[1]), "'source'"),
}


@pytest.mark.parametrize("case", sorted(CARD_EDITS))
def test_malformed_card_is_a_model_error(
    case: str, model_copy: Callable[[str], Path], sample_data: Path
) -> None:
    edit, field = CARD_EDITS[case]
    directory = model_copy("iris")
    card = json.loads((directory / CARD_FILE).read_text())
    edit(card)
    (directory / CARD_FILE).write_text(json.dumps(card))
    for command in (("info",), ("predict", "-i", sample_data / "iris_new.csv", "-q")):
        result = infer_cli(*command, "-m", directory)
        assert result.returncode == 4, result.stderr
        line = one_error_line(result)
        assert f"{directory / CARD_FILE}: " in line
        assert field in line


@pytest.mark.parametrize(
    ("case", "text", "complaint"),
    [
        ("deep-nesting", '{"task": ' + deep(200_000) + "}", "nested too deeply"),
        ("oversized", '{"task": "' + "a" * (17 * 1024 * 1024) + '"}', "larger than"),
        ("not-an-object", "[1, 2, 3]", "not a JSON object"),
    ],
)
def test_hostile_card_is_refused_in_bounded_memory(
    case: str, text: str, complaint: str, model_copy: Callable[[str], Path]
) -> None:
    directory = model_copy("iris")
    (directory / CARD_FILE).write_text(text)
    result = infer_cli("info", "-m", directory, memory_limit=MEMORY_LIMIT)
    assert result.returncode == 4, result.stderr
    line = one_error_line(result)
    assert f"{directory / CARD_FILE}: " in line
    assert complaint in line


def test_card_that_is_a_fifo_is_refused(model_copy: Callable[[str], Path]) -> None:
    directory = model_copy("iris")
    (directory / CARD_FILE).unlink()
    os.mkfifo(directory / CARD_FILE)
    result = infer_cli("info", "-m", directory)
    assert result.returncode == 4, result.stderr
    assert "model.json: not a regular file" in one_error_line(result)


ALIAS_BOMB = "".join(
    [
        'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n',
        *(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 10)),
        "utc_time_created: *a9\n",
        "run_id: *a9\n",
    ]
)


@pytest.mark.parametrize(
    ("case", "extra", "complaint"),
    [
        ("alias-bomb", ALIAS_BOMB, "aliases"),
        ("deep-nesting", "run_id: " + deep(100_000) + "\n", "nested too deeply"),
        ("oversized", "run_id: '" + "a" * (17 * 1024 * 1024) + "'\n", "larger than"),
        ("run-id-a-list", "run_id: [1, 2]\n", "'run_id'"),
        ("created-a-mapping", "utc_time_created: {a: 1}\n", "'utc_time_created'"),
        ("signature-inputs-a-number", "signature:\n  inputs: 5\n", "signature"),
        (
            "signature-name-a-list",
            'signature:\n  inputs: \'[{"name": ["x"], "type": "double"}]\'\n',
            "signature",
        ),
        ("signature-deep", "signature:\n  inputs: '" + deep(100_000) + "'\n", "signature"),
    ],
)
def test_hostile_mlmodel_is_refused_in_bounded_memory(
    case: str, extra: str, complaint: str, tmp_path: Path
) -> None:
    directory = mlflow_pickle_model(tmp_path / "mlflow")
    (directory / "model.pkl").write_bytes(pickled_estimator())
    (directory / "MLmodel").write_text(mlmodel_text("model.pkl", "pickle", extra=extra))
    for command in (("info", "--json"), ("predict", "-i", "-")):
        result = infer_cli(*command, "-m", directory, memory_limit=MEMORY_LIMIT)
        assert result.returncode == 4, result.stderr
        line = one_error_line(result)
        assert f"{directory / 'MLmodel'}: " in line
        assert complaint in line


@pytest.mark.parametrize(
    ("case", "sklearn_flavor"),
    [
        ("model-file-a-mapping", "    pickled_model: {a: b}\n    serialization_format: pickle\n"),
        (
            "trusted-types-a-string",
            "    pickled_model: model.pkl\n    serialization_format: skops\n"
            "    skops_trusted_types: numpy.dtype\n",
        ),
        ("format-a-list", "    pickled_model: model.pkl\n    serialization_format: [pickle]\n"),
    ],
)
def test_mlmodel_of_the_wrong_types_is_a_model_error(
    case: str, sklearn_flavor: str, tmp_path: Path
) -> None:
    directory = tmp_path / "mlflow"
    directory.mkdir()
    (directory / "model.pkl").write_bytes(pickled_estimator())
    (directory / "MLmodel").write_text("flavors:\n  sklearn:\n" + sklearn_flavor)
    result = infer_cli("info", "-m", directory)
    assert result.returncode == 4, result.stderr
    assert f"{directory / 'MLmodel'}: " in one_error_line(result)


# 5. A model's training profile ------------------------------------------------------------


def test_profile_that_is_a_device_is_not_read(
    model_copy: Callable[[str], Path], sample_data: Path
) -> None:
    directory = model_copy("iris")
    rows = sample_data / "iris_new.csv"
    result = infer_cli(
        "predict", "-m", directory, "-i", rows, "--profile", "/dev/zero", "-q",
        memory_limit=MEMORY_LIMIT,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert "/dev/zero: not a regular file (a device)" in one_error_line(result)


def test_profile_beside_the_model_nested_too_deeply_is_a_data_error(
    model_copy: Callable[[str], Path], sample_data: Path
) -> None:
    directory = model_copy("iris")
    (directory / "profile.json").write_text(deep(100_000))
    result = infer_cli("predict", "-m", directory, "-i", sample_data / "iris_new.csv", "-q")
    assert result.returncode == 3, result.stderr
    assert "profile.json: not a profile (nested too deeply)" in one_error_line(result)


def test_card_profile_of_infinite_rows_is_left_unused(
    model_copy: Callable[[str], Path], sample_data: Path
) -> None:
    """A profile is only used to judge drift: one that cannot be read is said, not fatal."""
    directory = edited_card(
        model_copy, lambda card: card.update(profile={"rows": float("inf"), "columns": {}})
    )
    result = infer_cli("predict", "-m", directory, "-i", sample_data / "iris_new.csv")
    assert result.returncode == 0, result.stderr
    assert "the model's profile is unreadable" in result.stderr


# 5. Saved models honour the umask -----------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_saved_model_directory_honours_the_umask(
    umask: int, sample_data: Path, tmp_path: Path
) -> None:
    executable = Path(sys.executable).with_name("infer-cli")
    directory = tmp_path / "model"
    subprocess.run(
        [str(executable), "train", "-i", str(sample_data / "iris.csv"), "-t", "species",
         "-o", str(directory), "-q"],
        check=True,
        preexec_fn=lambda: os.umask(umask),
        timeout=300,
    )  # fmt: skip
    assert directory.stat().st_mode & 0o777 == 0o777 & ~umask
    for path in directory.iterdir():
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask
