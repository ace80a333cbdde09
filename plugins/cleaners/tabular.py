"""Row filters and derived columns for tabular data (census rows, scored records), written in the
safe expression language of ``expressions``: keep two groups with
``race in ['White', 'Black']``, make a prediction column with ``score != 'Low'``."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import AfterValidator, Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.cleaners import CleanContext, Cleaner, CleanResult
from forgeline.errors import InvalidArgument, excerpt
from forgeline.plugins.cleaners.expressions import MAX_EXPRESSION_CHARS, Expression, parse

# Characters of each value an example shows.
_VALUE_CHARS = 40


def _in_the_language(source: str) -> str:
    parse(source, "")  # ExpressionError is a ValueError: pydantic names the field
    return source


ExpressionText = Annotated[str, AfterValidator(_in_the_language)]
_LANGUAGE = (
    "Column names (col('a b') for other names), literals, == != < <= > >=, in / not in "
    "[list], is None, and / or / not, + - * /, and lower upper strip len abs round str int "
    "float is_null contains startswith endswith if_else. Never eval'd."
)


class FilterRows(Cleaner):
    """Keeps the rows where a condition on their columns holds, e.g. race in ['White', 'Black']."""

    name = "filter_rows"

    class Config(PluginConfig):
        where: ExpressionText = Field(
            ...,
            min_length=1,
            max_length=MAX_EXPRESSION_CHARS,
            description="The condition a kept row meets; rows where it is false or unknown "
            f"(a missing value) are dropped. {_LANGUAGE}",
        )

    @classmethod
    def contract_config(cls) -> dict[str, Any]:
        return {"where": "label == 1 or score >= 2"}

    def clean(self, table: pa.Table, ctx: CleanContext) -> CleanResult:
        expression = parse(self.config.where, "config.where")
        keep = expression.evaluate(table)
        if not pa.types.is_boolean(keep.type):
            raise InvalidArgument.for_field(
                "config.where",
                f"{excerpt(self.config.where)} gives {keep.type} values, not true or false",
            )
        unknown = keep.null_count
        kept = pc.fill_null(keep, False)
        dropped = np.flatnonzero(~kept.to_numpy(zero_copy_only=False))
        examples = [
            (
                _row_text(table, int(row), expression, ctx.text_column),
                "condition unknown (a missing value)"
                if keep[int(row)].as_py() is None
                else "condition false",
            )
            for row in dropped[: self.MAX_EXAMPLES]
        ]
        details = {
            "rows_kept": table.num_rows - len(dropped),
            "rows_dropped": len(dropped),
            "rows_unknown": unknown,
        }
        return CleanResult(table.filter(kept), examples, details)


class DeriveColumn(Cleaner):
    """Adds a column computed from the others, e.g. pred = score != 'Low'."""

    name = "derive_column"

    class Config(PluginConfig):
        column: str = Field(
            ..., min_length=1, max_length=128, description="Name of the new column."
        )
        expression: ExpressionText = Field(
            ...,
            min_length=1,
            max_length=MAX_EXPRESSION_CHARS,
            description=f"What each row's value is, computed from its columns. {_LANGUAGE}",
        )
        replace: bool = Field(
            False,
            description="Allow replacing an existing column of that name (its type may change); "
            "otherwise an existing name is an error.",
        )

    @classmethod
    def contract_config(cls) -> dict[str, Any]:
        return {"column": "long_review", "expression": "len(text) > 40 and label == 0"}

    def clean(self, table: pa.Table, ctx: CleanContext) -> CleanResult:
        name = self.config.column
        if name in table.column_names and not self.config.replace:
            raise InvalidArgument.for_field(
                "config.column",
                f"column {excerpt(name)} exists; choose another name or set replace: true",
            )
        values = parse(self.config.expression, "config.expression").evaluate(table)
        if name in table.column_names:
            out = table.set_column(table.column_names.index(name), name, values)
        else:
            out = table.append_column(name, values)
        details = {
            "column": name,
            "type": str(values.type),
            "nulls": values.null_count,
            "replaced": name in table.column_names,
        }
        return CleanResult(out, [], details)


def _row_text(table: pa.Table, row: int, expression: Expression, text_column: str) -> str:
    """How an example shows a row: its text, else the columns the expression reads."""
    if text_column in table.column_names:
        value = table.column(text_column)[row].as_py()
        return "" if value is None else str(value)
    shown = [name for name in expression.columns() if name in table.column_names]
    return ", ".join(
        f"{name}={excerpt(table.column(name)[row].as_py(), _VALUE_CHARS)}" for name in shown
    )
