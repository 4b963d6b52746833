"""The ranking score of a scenario: a formula over the model's per-task scores, from params.yaml.

A formula is an arithmetic expression (`+ - * / **`, numbers, parentheses) of the names in
`NAMES`, e.g. `p_ctcvr * relevance / 3` (expected purchase, weighted by predicted relevance on
its 0..3 scale) or `p_ctcvr * price` (expected revenue). It is parsed once, with Python's own
parser, and anything else (calls, attributes, unknown names) is refused when params load, so a
typo fails the config, not a request.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

# What a formula can read: the model's outputs and the item's price (0 where unknown).
NAMES = ("p_ctr", "p_cvr", "p_ctcvr", "relevance", "price")
_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)


class BlendError(ValueError):
    """A formula that is not a plain arithmetic expression of the known names."""


@dataclass(frozen=True)
class Blend:
    formula: str
    tree: ast.Expression

    @classmethod
    def parse(cls, formula: str) -> Blend:
        try:
            tree = ast.parse(formula, mode="eval")
        except SyntaxError as error:
            raise BlendError(f"{formula!r} is not an expression: {error.msg}") from None
        for node in ast.walk(tree):
            _check(node, formula)
        return cls(formula, tree)

    @property
    def names(self) -> set[str]:
        return {node.id for node in ast.walk(self.tree) if isinstance(node, ast.Name)}

    def __call__(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """The score of every row; `columns` holds (at least) the names the formula reads."""
        missing = self.names - set(columns)
        if missing:
            raise BlendError(f"{self.formula!r} reads {sorted(missing)}, which are not given")
        with np.errstate(divide="ignore", invalid="ignore"):
            value = _evaluate(self.tree.body, columns)
        rows = len(next(iter(columns.values()))) if columns else 0
        return np.nan_to_num(np.broadcast_to(np.asarray(value, dtype=np.float64), (rows,)))


def _check(node: ast.AST, formula: str) -> None:
    allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Name, ast.Load, ast.Constant)
    if isinstance(node, _OPERATORS):
        return
    if not isinstance(node, allowed):
        raise BlendError(f"{formula!r}: {type(node).__name__} is not allowed (only + - * / **)")
    if isinstance(node, ast.Name) and node.id not in NAMES:
        raise BlendError(f"{formula!r}: unknown name {node.id!r}; known: {', '.join(NAMES)}")
    if isinstance(node, ast.Constant) and not isinstance(node.value, int | float):
        raise BlendError(f"{formula!r}: {node.value!r} is not a number")


def _evaluate(node: ast.AST, columns: Mapping[str, np.ndarray]) -> np.ndarray | float:
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return np.asarray(columns[node.id], dtype=np.float64)
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand, columns)
        return -value if isinstance(node.op, ast.USub) else value
    left, right = _evaluate(node.left, columns), _evaluate(node.right, columns)
    operations = {
        ast.Add: np.add,
        ast.Sub: np.subtract,
        ast.Mult: np.multiply,
        ast.Div: np.divide,
        ast.Pow: np.power,
    }
    return operations[type(node.op)](left, right)
