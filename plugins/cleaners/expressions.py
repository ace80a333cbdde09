"""A small, safe expression language over a table's columns (filter_rows, derive_column).

Text is parsed with Python's ``ast`` module and only these constructs are accepted; nothing is
ever handed to ``eval``, and evaluation runs column-wise in pyarrow.compute:

- column names (``age``), or ``col("hours-per-week")`` for names that are not identifiers;
- literals: strings, numbers, True, False, None; lists or tuples of literals after ``in``;
- comparisons ``== != < <= > >=`` (chains such as ``18 <= age < 65`` too), ``in`` /
  ``not in`` a list, ``is None`` / ``is not None``;
- ``and``, ``or``, ``not``; arithmetic ``+ - * /`` and unary ``-`` (``+`` joins strings);
- the functions in ``FUNCTIONS``: lower, upper, strip, len, abs, round, str, int, float,
  is_null, contains, startswith, endswith, if_else, col.

A missing value (null) makes a comparison or an ``in`` test null (unless the list holds None),
and filter_rows drops rows whose condition is null. Errors name the config field and the
offending piece of the expression.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from forgeline.errors import InvalidArgument, excerpt

MAX_EXPRESSION_CHARS = 2000
# Checking and evaluating recurse once per level: far below Python's recursion limit.
MAX_DEPTH = 100
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)

Value = Any  # a pa.ChunkedArray (a column), a pa.Scalar or a Python literal


class ExpressionError(ValueError):
    """An expression that is not in the language; the message names the offending token."""


@dataclass(frozen=True)
class _Function:
    arity: tuple[int, ...]
    apply: Callable[..., Value]
    # Positions of arguments that must be literals of this type (e.g. contains' substring).
    literals: tuple[tuple[int, type], ...] = ()


def _length(x: Value) -> Value:
    if isinstance(x, pa.ChunkedArray | pa.Array) and pa.types.is_list(x.type):
        return pc.list_value_length(x)
    return pc.utf8_length(x)


def _add(a: Value, b: Value) -> Value:
    if _is_text(a) or _is_text(b):
        return pc.binary_join_element_wise(a, b, "")
    return pc.add_checked(a, b)


def _is_text(x: Value) -> bool:
    if isinstance(x, str):
        return True
    kind = getattr(x, "type", None)
    return kind is not None and (pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _truncated(x: Value) -> Value:
    """Numbers rounded toward zero, as Python's int() does; anything else as it is."""
    kind = getattr(x, "type", None)
    return pc.trunc(x) if kind is not None and pa.types.is_floating(kind) else x


def _as_float(x: Value) -> Value:
    return float(x) if isinstance(x, int | float) else pc.cast(x, pa.float64())


FUNCTIONS: dict[str, _Function] = {
    "lower": _Function((1,), pc.utf8_lower),
    "upper": _Function((1,), pc.utf8_upper),
    "strip": _Function((1,), pc.utf8_trim_whitespace),
    "len": _Function((1,), _length),
    "abs": _Function((1,), pc.abs_checked),
    "round": _Function((1, 2), lambda x, n=0: pc.round(x, ndigits=n), ((1, int),)),
    "str": _Function((1,), lambda x: pc.cast(x, pa.string())),
    "int": _Function((1,), lambda x: pc.cast(_truncated(x), pa.int64())),
    "float": _Function((1,), lambda x: pc.cast(x, pa.float64())),
    "is_null": _Function((1,), pc.is_null),
    "contains": _Function((2,), lambda x, s: pc.match_substring(x, s), ((1, str),)),
    "startswith": _Function((2,), lambda x, s: pc.starts_with(x, s), ((1, str),)),
    "endswith": _Function((2,), lambda x, s: pc.ends_with(x, s), ((1, str),)),
    "if_else": _Function((3,), pc.if_else),
    "col": _Function((1,), lambda name: name, ((0, str),)),  # resolved as a column, see below
}
_COMPARISONS: dict[type, tuple[str, Callable[..., Value]]] = {
    ast.Eq: ("==", pc.equal),
    ast.NotEq: ("!=", pc.not_equal),
    ast.Lt: ("<", pc.less),
    ast.LtE: ("<=", pc.less_equal),
    ast.Gt: (">", pc.greater),
    ast.GtE: (">=", pc.greater_equal),
}
_ARITHMETIC: dict[type, tuple[str, Callable[..., Value]]] = {
    ast.Add: ("+", _add),
    ast.Sub: ("-", pc.subtract_checked),
    ast.Mult: ("*", pc.multiply_checked),
    ast.Div: ("/", lambda a, b: pc.divide(_as_float(a), _as_float(b))),
}
_LITERAL_TYPES = (str, int, float, bool, type(None))
_DESCRIPTIONS = {
    ast.Attribute: "attribute access",
    ast.Subscript: "indexing",
    ast.Lambda: "lambda",
    ast.IfExp: "'x if c else y' (use if_else(c, x, y))",
    ast.NamedExpr: "assignment",
    ast.Dict: "a dict",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Starred: "unpacking",
    ast.JoinedStr: "an f-string",
    ast.BitAnd: "'&' (use and)",
    ast.BitOr: "'|' (use or)",
    ast.BitXor: "'^'",
    ast.Pow: "'**'",
    ast.FloorDiv: "'//'",
    ast.Mod: "'%'",
    ast.LShift: "'<<'",
    ast.RShift: "'>>'",
    ast.MatMult: "'@'",
    ast.Invert: "'~' (use not)",
}


@dataclass(frozen=True)
class Expression:
    """A parsed expression: its text, the tree, and the config field it came from."""

    source: str
    tree: ast.expr
    field: str

    def columns(self) -> list[str]:
        """The columns it reads, in order of first mention."""
        names: list[str] = []

        def visit(node: ast.AST) -> None:
            name = _column_name(node)
            if name is not None:
                names.append(name)
            elif isinstance(node, ast.Call):
                for arg in node.args:  # not node.func: a function is not a column
                    visit(arg)
            else:
                for child in ast.iter_child_nodes(node):
                    visit(child)

        visit(self.tree)
        return list(dict.fromkeys(names))

    def evaluate(self, table: pa.Table) -> pa.ChunkedArray:
        """One value per row of ``table`` (a constant expression is repeated)."""
        try:
            value = self._eval(self.tree, table)
        except (*_ARROW_ERRORS, TypeError) as exc:
            raise InvalidArgument.for_field(
                self.field, f"cannot evaluate {excerpt(self.source)}: {_arrow_message(exc)}"
            ) from exc
        if isinstance(value, pa.ChunkedArray):
            return value
        if isinstance(value, pa.Array):
            return pa.chunked_array([value])
        scalar = value if isinstance(value, pa.Scalar) else pa.scalar(value)
        return pa.chunked_array([pa.repeat(scalar, table.num_rows)], type=scalar.type)

    def _eval(self, node: ast.expr, table: pa.Table) -> Value:
        name = _column_name(node)
        if name is not None:
            return self._column(table, name, node)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.UnaryOp):
            operand = self._eval(node.operand, table)
            if isinstance(node.op, ast.Not):
                return not operand if isinstance(operand, bool) else pc.invert(operand)
            if isinstance(node.op, ast.USub):
                return -operand if isinstance(operand, int | float) else pc.negate_checked(operand)
            return operand  # unary plus
        if isinstance(node, ast.BoolOp):
            combine = pc.and_kleene if isinstance(node.op, ast.And) else pc.or_kleene
            result = self._eval(node.values[0], table)
            for value in node.values[1:]:
                result = combine(result, self._eval(value, table))
            return result
        if isinstance(node, ast.BinOp):
            symbol, apply = _ARITHMETIC[type(node.op)]
            return self._apply(
                symbol, apply, node, self._eval(node.left, table), self._eval(node.right, table)
            )
        if isinstance(node, ast.Compare):
            return self._compare(node, table)
        assert isinstance(node, ast.Call)  # the parser let nothing else through
        function = FUNCTIONS[node.func.id]
        args = [self._eval(arg, table) for arg in node.args]
        return self._apply(f"{node.func.id}()", function.apply, node, *args)

    def _compare(self, node: ast.Compare, table: pa.Table) -> Value:
        result = None
        left_node, left = node.left, self._eval(node.left, table)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                value = self._member(left, left_node, right_node)
                if isinstance(op, ast.NotIn):
                    value = pc.invert(value)
                right = None
            elif isinstance(op, ast.Is | ast.IsNot):
                value = pc.is_null(left) if isinstance(op, ast.Is) else pc.is_valid(left)
                right = None
            else:
                right = self._eval(right_node, table)
                symbol, apply = _COMPARISONS[type(op)]
                value = self._apply(symbol, apply, node, left, right)
            result = value if result is None else pc.and_kleene(result, value)
            left_node, left = right_node, right
        return result

    def _member(self, left: Value, left_node: ast.expr, right_node: ast.expr) -> Value:
        values = [_literal(element) for element in right_node.elts]
        if not isinstance(left, pa.ChunkedArray | pa.Array):
            raise InvalidArgument.for_field(
                self.field,
                f"the left side of 'in' must read a column, not {_segment(self.source, left_node)}",
            )
        try:
            value_set = pa.array(values, type=left.type)
        except _ARROW_ERRORS as exc:
            raise InvalidArgument.for_field(
                self.field,
                f"{_segment(self.source, right_node)} cannot be compared with "
                f"{_segment(self.source, left_node)}, which holds {left.type}",
            ) from exc
        member = pc.is_in(left, value_set=value_set)
        if None in values:
            return member  # a missing value is in a list that holds None
        return pc.if_else(pc.is_valid(left), member, pa.scalar(None, pa.bool_()))

    def _apply(self, symbol: str, apply: Callable[..., Value], node: ast.AST, *args: Value):
        try:
            return apply(*args)
        except _ARROW_ERRORS as exc:
            kinds = " and ".join(str(getattr(a, "type", type(a).__name__)) for a in args)
            raise InvalidArgument.for_field(
                self.field,
                f"{symbol} cannot take {kinds} in {_segment(self.source, node)}: "
                f"{_arrow_message(exc)}",
            ) from exc

    def _column(self, table: pa.Table, name: str, node: ast.AST) -> pa.ChunkedArray:
        if name not in table.column_names:
            names = table.column_names
            more = f" and {len(names) - 20} more" if len(names) > 20 else ""
            raise InvalidArgument.for_field(
                self.field,
                f"{_segment(self.source, node)} is not a column: columns are "
                f"{', '.join(names[:20])}{more}",
            )
        return table.column(name)


def parse(source: str, field: str) -> Expression:
    """The expression in ``source``, checked against the language (not yet against columns).
    Raises ExpressionError naming the offending token."""
    if len(source) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"is {len(source):,} characters; at most {MAX_EXPRESSION_CHARS:,}")
    try:
        tree = ast.parse(source.strip(), mode="eval").body
    except SyntaxError as exc:
        at = max((exc.offset or 1) - 1, 0)
        token = source.strip()[at : at + 12] or "the end"
        hint = " (compare with ==)" if token.startswith("=") else ""
        raise ExpressionError(f"not a valid expression: {exc.msg} at {token!r}{hint}") from None
    except (RecursionError, MemoryError, ValueError):
        raise ExpressionError("not a valid expression: too deeply nested") from None
    if _depth(tree) > MAX_DEPTH:
        raise ExpressionError(f"nests more than {MAX_DEPTH} levels deep")
    _check(tree, source.strip())
    return Expression(source.strip(), tree, field)


def _depth(tree: ast.AST) -> int:
    """How deep the tree nests, counted without recursion."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _check(node: ast.AST, source: str) -> None:
    """Refuses every construct outside the language, naming it."""
    if _column_name(node) is not None:
        return
    if isinstance(node, ast.Name):
        return
    if isinstance(node, ast.Constant):
        if not isinstance(node.value, _LITERAL_TYPES):
            raise ExpressionError(f"{_segment(source, node)} is not a string, number or None")
        return
    if isinstance(node, ast.Call):
        _check_call(node, source)
    elif isinstance(node, ast.Compare):
        if len(node.ops) > 1 and any(
            isinstance(op, ast.In | ast.NotIn | ast.Is | ast.IsNot) for op in node.ops
        ):
            raise ExpressionError(
                f"join 'in' and 'is' tests with and, not in a chain: {_segment(source, node)}"
            )
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                if not isinstance(right, ast.List | ast.Tuple | ast.Set):
                    raise ExpressionError(
                        f"'in' takes a list of values such as ['a', 'b'], not "
                        f"{_segment(source, right)} (contains(column, 'text') finds text)"
                    )
                for element in right.elts:
                    _literal(element, source)
            elif isinstance(op, ast.Is | ast.IsNot):
                if not (isinstance(right, ast.Constant) and right.value is None):
                    raise ExpressionError(
                        f"'is' compares only with None, not {_segment(source, right)}"
                    )
            elif isinstance(right, ast.Constant) and right.value is None:
                raise ExpressionError(
                    f"compare with None using 'is None' or 'is not None', not "
                    f"{_segment(source, node)}"
                )
            elif type(op) not in _COMPARISONS:
                raise ExpressionError(f"{_describe(op)} is not allowed")
        for child in [node.left, *node.comparators]:
            if not isinstance(child, ast.List | ast.Tuple | ast.Set):
                _check(child, source)
        if isinstance(node.left, ast.List | ast.Tuple | ast.Set):
            raise ExpressionError(f"a list may only follow 'in': {_segment(source, node.left)}")
    elif isinstance(node, ast.BoolOp | ast.UnaryOp | ast.BinOp):
        op = node.op
        if isinstance(node, ast.BinOp) and type(op) not in _ARITHMETIC:
            raise ExpressionError(
                f"{_describe(op)} is not allowed in {_segment(source, node)}; "
                "the operators are + - * /"
            )
        if isinstance(node, ast.UnaryOp) and not isinstance(op, ast.Not | ast.USub | ast.UAdd):
            raise ExpressionError(f"{_describe(op)} is not allowed in {_segment(source, node)}")
        children = (
            node.values
            if isinstance(node, ast.BoolOp)
            else [node.operand]
            if isinstance(node, ast.UnaryOp)
            else [node.left, node.right]
        )
        for child in children:
            _check(child, source)
    elif isinstance(node, ast.List | ast.Tuple | ast.Set):
        raise ExpressionError(f"a list may only follow 'in': {_segment(source, node)}")
    else:
        raise ExpressionError(f"{_describe(node)} is not allowed: {_segment(source, node)}")


def _check_call(node: ast.Call, source: str) -> None:
    if not isinstance(node.func, ast.Name):
        raise ExpressionError(f"{_describe(node.func)} is not allowed: {_segment(source, node)}")
    if node.func.id not in FUNCTIONS:
        raise ExpressionError(
            f"{_segment(source, node.func)} is not a function of the language; the functions "
            f"are {', '.join(FUNCTIONS)}"
        )
    name, function = node.func.id, FUNCTIONS[node.func.id]
    if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
        raise ExpressionError(f"{name}() takes plain arguments: {_segment(source, node)}")
    if len(node.args) not in function.arity:
        counts = " or ".join(map(str, function.arity))
        raise ExpressionError(
            f"{name}() takes {counts} arguments, not {len(node.args)}: {_segment(source, node)}"
        )
    for position, kind in function.literals:
        if position < len(node.args):
            arg = node.args[position]
            if not (isinstance(arg, ast.Constant) and type(arg.value) is kind):
                raise ExpressionError(
                    f"argument {position + 1} of {name}() must be a {kind.__name__} literal, "
                    f"not {_segment(source, arg)}"
                )
    literal_positions = {position for position, _ in function.literals}
    for position, arg in enumerate(node.args):
        if position not in literal_positions:
            _check(arg, source)


def _column_name(node: ast.AST) -> str | None:
    """The column a node reads: a bare name, or col("name")."""
    if isinstance(node, ast.Name):
        return node.id
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "col"
        and len(node.args) == 1
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return node.args[0].value
    return None


def _literal(node: ast.expr, source: str = "") -> Any:
    """A list element: a literal, possibly negated."""
    if isinstance(node, ast.Constant) and isinstance(node.value, _LITERAL_TYPES):
        return node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, int | float)
    ):
        return -node.operand.value
    raise ExpressionError(f"a list after 'in' holds literals only, not {_segment(source, node)}")


def _segment(source: str, node: ast.AST) -> str:
    return excerpt(ast.get_source_segment(source, node) or type(node).__name__, 40)


def _describe(node: ast.AST) -> str:
    return _DESCRIPTIONS.get(type(node), type(node).__name__)


def _arrow_message(exc: Exception) -> str:
    """The first line of pyarrow's message, short (it can quote whole values)."""
    lines = str(exc).splitlines()
    return lines[0][:160] if lines else type(exc).__name__
