"""Training: from a table and a target column to a fitted Pipeline, its card and its metrics.

Columns are sorted into numeric, categorical, free-text, identifier and ignored; one
ColumnTransformer prepares them all, so the saved model takes raw rows. `train_file` is the
`train` command: read, import scikit-learn, prepare, fit, measure and save, each timed.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .choices import CLASSIFIERS, REGRESSORS, Algorithm, InputFormat, ModelFormat, Task
from .core.card import EXAMPLE_ROWS, ModelCard
from .core.metrics import classification_metrics, regression_metrics
from .core.profiling import profile_rows
from .core.quick_start import quick_start
from .core.signature import Column, ColumnType, Signature
from .core.store import check_model_destination, save_model
from .errors import DataError, UsageError
from .tables.limits import MAX_COLUMNS
from .tables.whole_table import read_table
from .timing import Stopwatch

MAX_CLASSES_FOR_INTEGER_TARGET = 20
_IDENTIFIER_NAME = re.compile(r"(^|[_\-\s])(id|uuid|guid|key)$|[a-z]Id$|ID$", re.IGNORECASE)
_MIN_WORDS_FOR_TEXT = 3.0


@dataclass(frozen=True)
class TrainOptions:
    """What `infer-cli train` was asked to do."""

    target: str
    algorithm: Algorithm = "auto"
    task: Task = "auto"
    test_size: float = 0.2
    seed: int = 0
    text_columns: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()


@dataclass(frozen=True)
class ColumnRoles:
    """How each column of the training table is used."""

    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    identifiers: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def features(self) -> list[str]:
        return self.numeric + self.categorical + self.text


@dataclass
class TrainResult:
    """A fitted estimator with its card, and what the report shows about the run."""

    estimator: Any
    card: ModelCard
    roles: ColumnRoles
    model_name: str
    rows_train: int
    rows_test: int
    rows_dropped: int
    fit_seconds: float
    notices: list[str] = field(default_factory=list)


def train_file(
    input: str,
    output: str,
    options: TrainOptions,
    *,
    serialization: ModelFormat = "joblib",
    input_format: InputFormat | None = None,
    max_columns: int = MAX_COLUMNS,
) -> tuple[TrainResult, Stopwatch]:
    """Read a table, train on it and save the model in `output`; the stopwatch holds the time
    of each phase (read, import, prepare, fit, measure, save), so none hides in another."""
    # Before training, not after minutes of it.
    check_model_destination(output)
    stopwatch = Stopwatch()
    with stopwatch.phase("read"):
        frame = read_table(input, format=input_format, max_columns=max_columns)
    result = train(frame, options, stopwatch)
    with stopwatch.phase("save"):
        save_model(result.estimator, result.card, output, serialization=serialization)
    return result, stopwatch


def train(
    frame: pd.DataFrame, options: TrainOptions, stopwatch: Stopwatch | None = None
) -> TrainResult:
    """Fit a pipeline on `frame` and measure it on a held-out split; `stopwatch`, if given,
    records the time spent importing scikit-learn, preparing, fitting and measuring."""
    stopwatch = stopwatch or Stopwatch()
    with stopwatch.phase("import"):
        _import_scikit_learn()
    with stopwatch.phase("prepare"):
        prepared = _prepare(frame, options)
    with stopwatch.phase("fit"):
        prepared.pipeline.fit(prepared.x_train, prepared.y_train)
    with stopwatch.phase("measure"):
        return _measure(prepared, options, stopwatch.phases["fit"])


# What a fit and its measure import: timed apart, since it does not grow with the rows.
SCIKIT_LEARN_MODULES = (
    "sklearn.compose",
    "sklearn.ensemble",
    "sklearn.feature_extraction.text",
    "sklearn.impute",
    "sklearn.linear_model",
    "sklearn.metrics",
    "sklearn.model_selection",
    "sklearn.pipeline",
    "sklearn.preprocessing",
)


def _import_scikit_learn() -> None:
    with quick_start() as loaded:
        for module in SCIKIT_LEARN_MODULES:
            importlib.import_module(module)
        loaded()


@dataclass
class _Prepared:
    """Everything decided before fitting: the split, the column roles and the pipeline."""

    pipeline: Any
    task: str
    algorithm: str
    roles: ColumnRoles
    signature: Signature
    features: pd.DataFrame
    x_train: pd.DataFrame
    x_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series
    rows_dropped: int
    notices: list[str]


def _prepare(frame: pd.DataFrame, options: TrainOptions) -> _Prepared:
    _check_options(frame, options)
    notices: list[str] = []
    labelled = frame[frame[options.target].notna()]
    dropped = len(frame) - len(labelled)
    if dropped:
        notices.append(f"dropped {dropped} row(s) with no value in target '{options.target}'")
    if len(labelled) < 5:
        raise DataError(f"too few labelled rows to train on ({len(labelled)}); need at least 5")
    y = labelled[options.target]
    task = options.task if options.task != "auto" else detect_task(y)
    algorithm = _choose_algorithm(options.algorithm, task)
    if task == "classification":
        y = _class_labels(y)
        if y.nunique() < 2:
            raise DataError(
                f"target '{options.target}' has a single class ({y.iloc[0]!r}); "
                "a classifier needs at least two"
            )
    else:
        y = _numeric_target(y, options.target)

    features = labelled.drop(columns=[options.target])
    roles = infer_roles(features, options)
    if not roles.features:
        raise DataError("no feature columns left to train on (all are identifiers or ignored)")
    signature = _signature(features, roles)
    x = signature.validate(features).frame

    x_train, x_test, y_train, y_test = _split(x, y, task, options)
    pipeline = build_pipeline(roles, algorithm, task, options.seed)
    return _Prepared(
        pipeline, task, algorithm, roles, signature, features,
        x_train, x_test, y_train, y_test, dropped, notices,
    )  # fmt: skip


def _measure(prepared: _Prepared, options: TrainOptions, fit_seconds: float) -> TrainResult:
    pipeline, task = prepared.pipeline, prepared.task
    predicted = pipeline.predict(prepared.x_test)
    classes = pipeline.classes_.tolist() if task == "classification" else None
    if task == "classification":
        metrics = classification_metrics(prepared.y_test, predicted, labels=classes)
    else:
        metrics = regression_metrics(prepared.y_test, predicted)
    card = ModelCard(
        task=task,
        target=options.target,
        classes=classes,
        signature=prepared.signature,
        metrics=metrics,
        training={
            "model": prepared.algorithm,
            "rows_train": len(prepared.x_train),
            "rows_test": len(prepared.x_test),
            "seed": options.seed,
            "test_size": options.test_size,
            "fit_seconds": round(fit_seconds, 4),
        },
        example=_example_rows(prepared.features, prepared.signature),
        profile=profile_rows(
            prepared.signature, prepared.x_train, pipeline.predict(prepared.x_train), classes
        ).to_dict(),
    )
    return TrainResult(
        estimator=pipeline,
        card=card,
        roles=prepared.roles,
        model_name=prepared.algorithm,
        rows_train=len(prepared.x_train),
        rows_test=len(prepared.x_test),
        rows_dropped=prepared.rows_dropped,
        fit_seconds=fit_seconds,
        notices=prepared.notices,
    )


def detect_task(target: pd.Series) -> str:
    """Classification for labels and small sets of whole numbers; regression otherwise."""
    values = target.dropna()
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return "classification"
    numbers = values.to_numpy(dtype=np.float64)
    whole = bool(np.all(numbers == np.floor(numbers)))
    if whole and values.nunique() <= MAX_CLASSES_FOR_INTEGER_TARGET:
        return "classification"
    return "regression"


def infer_roles(features: pd.DataFrame, options: TrainOptions) -> ColumnRoles:
    """Sort the feature columns into numeric, categorical, text, identifier and ignored."""
    roles = ColumnRoles(ignored=list(options.ignore))
    for name in features.columns:
        name = str(name)
        if name in options.ignore:
            continue
        series = features[name]
        if name in options.text_columns:
            roles.text.append(name)
        elif _looks_like_identifier(series, name):
            roles.identifiers.append(name)
        elif pd.api.types.is_bool_dtype(series):
            roles.categorical.append(name)
        elif pd.api.types.is_numeric_dtype(series):
            roles.numeric.append(name)
        elif _looks_like_text(series):
            roles.text.append(name)
        else:
            roles.categorical.append(name)
    return roles


def build_pipeline(roles: ColumnRoles, model_name: str, task: str, seed: int) -> Any:
    """The whole Pipeline: one ColumnTransformer for every kind of column, then the estimator."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    dense = model_name == "gbm"
    scaled = model_name in ("logistic", "linear", "ridge")
    transformers: list[tuple[str, Any, Any]] = []
    if roles.numeric:
        steps: list[tuple[str, Any]] = [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True))
        ]
        if scaled:
            steps.append(("scale", StandardScaler()))
        transformers.append(("numeric", Pipeline(steps), roles.numeric))
    if roles.categorical:
        categorical = Pipeline(
            [
                ("impute", SimpleImputer(strategy="constant", fill_value="(missing)")),
                ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=not dense)),
            ]
        )
        transformers.append(("categorical", categorical, roles.categorical))
    for name in roles.text:
        # A single column name, not a list, hands the vectorizer the 1-D column it expects.
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True)
        transformers.append((f"text_{name}", vectorizer, name))
    prepare = ColumnTransformer(transformers, sparse_threshold=0.0 if dense else 0.3)
    return Pipeline([("prepare", prepare), ("model", _estimator(model_name, task, seed))])


def _estimator(model_name: str, task: str, seed: int) -> Any:
    from sklearn import ensemble, linear_model

    if task == "classification":
        return {
            "logistic": lambda: linear_model.LogisticRegression(max_iter=2000),
            "forest": lambda: ensemble.RandomForestClassifier(n_estimators=200, random_state=seed),
            "gbm": lambda: ensemble.HistGradientBoostingClassifier(random_state=seed),
        }[model_name]()
    return {
        "linear": lambda: linear_model.LinearRegression(),
        "ridge": lambda: linear_model.Ridge(alpha=1.0),
        "forest": lambda: ensemble.RandomForestRegressor(n_estimators=200, random_state=seed),
        "gbm": lambda: ensemble.HistGradientBoostingRegressor(random_state=seed),
    }[model_name]()


def _check_options(frame: pd.DataFrame, options: TrainOptions) -> None:
    columns = [str(name) for name in frame.columns]
    if options.target not in columns:
        raise UsageError(
            f"no target column '{options.target}' in the data (columns: {', '.join(columns)})"
        )
    for flag, names in (("--text-column", options.text_columns), ("--ignore", options.ignore)):
        for name in names:
            if name not in columns:
                raise UsageError(f"{flag} names no column of the data: '{name}'")
            if name == options.target:
                raise UsageError(f"{flag} names the target column '{name}'")
    if not 0.0 < options.test_size < 1.0:
        raise UsageError(f"--test-size must be between 0 and 1, not {options.test_size}")


def _choose_algorithm(requested: str, task: str) -> str:
    if requested == "auto":
        return "logistic" if task == "classification" else "ridge"
    allowed = CLASSIFIERS if task == "classification" else REGRESSORS
    if requested not in allowed:
        other = "regression" if task == "classification" else "classification"
        raise UsageError(
            f"--algorithm {requested} is for {other}, and this is a {task} task "
            f"(choose one of: {', '.join(allowed)}, or force --task {other})"
        )
    return requested


def _class_labels(target: pd.Series) -> pd.Series:
    if pd.api.types.is_float_dtype(target):
        return target.astype(np.int64)
    if pd.api.types.is_numeric_dtype(target) or pd.api.types.is_bool_dtype(target):
        return target
    return target.astype(str).astype(object)


def _numeric_target(target: pd.Series, name: str) -> pd.Series:
    numbers = pd.to_numeric(target, errors="coerce")
    bad = numbers.isna() & target.notna()
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"row {position + 1}, column '{name}': {target.iloc[position]!r} is not a number; "
            "a regression target must be numeric (or use --task classification)"
        )
    return numbers.astype(np.float64)


def _looks_like_identifier(series: pd.Series, name: str) -> bool:
    values = series.dropna()
    if len(values) < 10 or len(values) != len(series) or values.nunique() != len(values):
        return False
    if pd.api.types.is_integer_dtype(values):
        return bool(_IDENTIFIER_NAME.search(name))
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return False
    # Free text is unique too, but made of words: a code has no spaces.
    return not values.astype(str).str.contains(r"\s", regex=True).any()


def _looks_like_text(series: pd.Series) -> bool:
    values = series.dropna().astype(str)
    if values.empty:
        return False
    words = values.map(lambda text: len(text.split())).mean()
    return bool(words >= _MIN_WORDS_FOR_TEXT and values.nunique() > 0.2 * len(values))


def _signature(features: pd.DataFrame, roles: ColumnRoles) -> Signature:
    columns = []
    for name in features.columns:
        name = str(name)
        series = features[name]
        optional = bool(series.isna().any())
        if name in roles.numeric:
            whole = pd.api.types.is_integer_dtype(series) or _whole_numbers(series)
            kind: ColumnType = "integer" if whole else "float"
            columns.append(Column(name, kind, required=not optional))
        elif name in roles.categorical:
            columns.append(Column(name, "string", required=not optional))
        elif name in roles.text:
            columns.append(Column(name, "text", required=not optional))
    return Signature(tuple(columns), passthrough=tuple(roles.identifiers + roles.ignored))


def _example_rows(features: pd.DataFrame, signature: Signature) -> list[dict[str, Any]]:
    """A few training rows, as MLflow's input example: what a request to this model looks like."""
    rows = features[signature.names].head(EXAMPLE_ROWS)
    return [
        {name: _json_value(value) for name, value in row.items()}
        for row in rows.to_dict(orient="records")
    ]


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def _whole_numbers(series: pd.Series) -> bool:
    numbers = series.dropna().to_numpy(dtype=np.float64)
    return bool(len(numbers)) and bool(np.all(numbers == np.floor(numbers)))


def _split(
    x: pd.DataFrame, y: pd.Series, task: str, options: TrainOptions
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    from sklearn.model_selection import train_test_split

    stratify = None
    if task == "classification" and y.value_counts().min() >= 2:
        stratify = y
    test_rows = max(1, round(len(x) * options.test_size))
    try:
        parts = train_test_split(
            x, y, test_size=test_rows, random_state=options.seed, stratify=stratify
        )
    except ValueError:
        parts = train_test_split(x, y, test_size=test_rows, random_state=options.seed)
    return parts[0], parts[1], parts[2], parts[3]
