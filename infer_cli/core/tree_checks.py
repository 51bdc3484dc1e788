"""Checks of the decision trees in a model loaded from a skops file, before it predicts.

scikit-learn walks a tree's node indices (children, feature) in compiled code without
bounds checks, so a crafted file whose types are all trusted could still make `predict`
read outside its arrays or loop for ever. A tree built by scikit-learn numbers a node's
children after the node itself and splits on columns it was fitted on; these checks
require exactly that, so a model's metadata may vouch for the tree types (see
`skops_schema`) without vouching for their contents.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError

_TREE = "sklearn.tree._tree.Tree"
_PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
_LEAF = -1


class _Malformed(Exception):
    """A tree whose structure scikit-learn could not walk safely."""


def check_trees(estimator: Any, source: Path) -> None:
    """Refuse a model holding a tree (or an ensemble of them) that scikit-learn did not build."""
    try:
        for owner in _objects(estimator):
            _check_owner(owner)
    except _Malformed as exc:
        raise ModelError(f"{source}: {exc}; refusing to load it") from None


def _objects(root: Any) -> Iterator[Any]:
    """Every object reachable from `root` through attributes, containers and object arrays."""
    seen: set[int] = set()
    pending = [root]
    while pending:
        item = pending.pop()
        if id(item) in seen or item is None or isinstance(item, (str, bytes, int, float)):
            continue
        seen.add(id(item))
        if isinstance(item, np.ndarray):
            if item.dtype == object:
                pending.extend(item.ravel().tolist())
            continue
        if isinstance(item, dict):
            pending.extend(item.values())
            continue
        if isinstance(item, (list, tuple, set, frozenset)):
            pending.extend(item)
            continue
        yield item
        attributes = getattr(item, "__dict__", None)
        if isinstance(attributes, dict):
            pending.extend(attributes.values())


def _type_name(item: Any) -> str:
    return f"{type(item).__module__}.{type(item).__qualname__}"


def _check_owner(item: Any) -> None:
    name = _type_name(item)
    if name == _TREE:
        _check_tree(item, int(item.n_features))
        return
    if not name.startswith("sklearn."):
        # Only scikit-learn's own estimators hand trees to its compiled code.
        return
    width = getattr(item, "n_features_in_", None)
    tree = getattr(item, "tree_", None)
    widths_differ = not isinstance(width, int) or int(getattr(tree, "n_features", -1)) != width
    if tree is not None and _type_name(tree) == _TREE and widths_differ:
        raise _Malformed(f"a tree of {tree.n_features} columns in a model of {width}")
    members = getattr(item, "estimators_", None)
    if members is not None and isinstance(width, int):
        _check_members(item, members, width)
    predictors = getattr(item, "_predictors", None)
    if predictors is not None:
        _check_predictors(item, predictors, width)


def _check_tree(tree: Any, width: int) -> None:
    count = int(tree.node_count)
    left = np.asarray(tree.children_left)[:count].astype(np.int64)
    right = np.asarray(tree.children_right)[:count].astype(np.int64)
    feature = np.asarray(tree.feature)[:count].astype(np.int64)
    if count < 1 or len(left) != count:
        raise _Malformed("a tree without nodes")
    split = left != _LEAF
    positions = np.arange(count)
    for children in (left, right):
        if np.any(split & ((children <= positions) | (children >= count))):
            raise _Malformed("a tree whose nodes lead outside it or back up it")
    if np.any(split & ((feature < 0) | (feature >= width))):
        raise _Malformed(f"a tree that splits on a column beyond its {width}")


def _check_members(owner: Any, members: Any, width: int) -> None:
    """Trees in an ensemble read the ensemble's columns, or a subset it picks itself."""
    subsets = getattr(owner, "estimators_features_", None)
    flat = list(np.asarray(members, dtype=object).ravel()) if _is_sequence(members) else []
    for position, member in enumerate(flat):
        if _type_name(getattr(member, "tree_", None)) != _TREE:
            continue
        expected = width
        if subsets is not None:
            try:
                expected = len(subsets[position])
            except (IndexError, TypeError):
                raise _Malformed("an ensemble whose column subsets miss its trees") from None
        if getattr(member, "n_features_in_", None) != expected:
            raise _Malformed(f"an ensemble of {width} columns holding a tree of another width")
    stages = getattr(owner, "n_trees_per_iteration_", None)
    boosting = isinstance(members, np.ndarray) and stages is not None and bool(flat)
    # Gradient boosting writes stage k of each row's predictions at column k.
    if boosting and (members.ndim != 2 or members.shape[1] != stages):
        raise _Malformed("a boosting ensemble whose trees do not match its stages")


def _check_predictors(owner: Any, predictors: Any, width: Any) -> None:
    if not isinstance(width, int) or not _is_sequence(predictors):
        raise _Malformed("a histogram gradient boosting model without its column count")
    binner = getattr(owner, "_bin_mapper", None)
    categorical = getattr(binner, "is_categorical_", None)
    if categorical is not None:
        categorical = np.asarray(categorical, dtype=bool)
        if categorical.shape != (width,):
            raise _Malformed("a histogram gradient boosting model of mismatched columns")
    for stage in predictors:
        for predictor in stage if _is_sequence(stage) else [stage]:
            if _type_name(predictor) != _PREDICTOR:
                raise _Malformed("a histogram gradient boosting model of unknown trees")
            _check_predictor(predictor, width, categorical)


def _check_predictor(predictor: Any, width: int, categorical: np.ndarray | None) -> None:
    nodes = predictor.nodes
    names = getattr(getattr(nodes, "dtype", None), "names", None) or ()
    needed = ("left", "right", "feature_idx", "is_leaf", "is_categorical", "bitset_idx")
    if not isinstance(nodes, np.ndarray) or nodes.ndim != 1 or not set(needed) <= set(names):
        raise _Malformed("a histogram gradient boosting tree of unknown layout")
    count = len(nodes)
    if count < 1:
        raise _Malformed("a tree without nodes")
    split = ~nodes["is_leaf"].astype(bool)
    positions = np.arange(count)
    for field in ("left", "right"):
        children = nodes[field].astype(np.int64)
        if np.any(split & ((children <= positions) | (children >= count))):
            raise _Malformed("a tree whose nodes lead outside it or back up it")
    feature = nodes["feature_idx"].astype(np.int64)
    if np.any(split & ((feature < 0) | (feature >= width))):
        raise _Malformed(f"a tree that splits on a column beyond its {width}")
    by_category = split & nodes["is_categorical"].astype(bool)
    if np.any(by_category):
        bitsets = min(len(predictor.raw_left_cat_bitsets), len(predictor.binned_left_cat_bitsets))
        chosen = nodes["bitset_idx"][by_category].astype(np.int64)
        if categorical is None or np.any((chosen < 0) | (chosen >= bitsets)):
            raise _Malformed("a tree whose categorical splits lead outside it")
        if not np.all(categorical[feature[by_category]]):
            raise _Malformed("a tree that splits by category on a column that has none")


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))
