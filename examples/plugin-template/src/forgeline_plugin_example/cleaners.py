"""``mask_urls``: replaces every URL in the text column with a placeholder.

Vectorized with pyarrow.compute (RE2 regular expressions), so it runs at column speed and
keeps nulls, the column's string type and every other column as they are.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from forgeline.contracts.base import PluginConfig
from forgeline.contracts.cleaners import CleanContext, Cleaner, CleanResult
from forgeline.errors import InvalidArgument
from pydantic import Field

# http(s):// or www. followed by URL characters (RFC 3986); a trailing full stop, comma, colon,
# semicolon, question or exclamation mark or closing bracket is taken as the sentence's, not the
# URL's. Only ASCII is URL text, so "见https://a.cn，谢谢" keeps its Chinese punctuation.
URL_PATTERN = (
    r"(?i)\b(?:https?://|www\.)"
    r"[A-Za-z0-9\-._~:/?#\[\]@!$&()*+,;=%]*"
    r"[A-Za-z0-9\-_~/#=&%+*@$]"
)
REASON = "url masked"


class MaskUrls(Cleaner):
    """Replaces URLs in the text column with a placeholder such as <url>."""

    name = "mask_urls"

    class Config(PluginConfig):
        replacement: str = Field(
            default="<url>",
            description="Text that takes the place of each URL; may be empty to delete URLs.",
        )

    def clean(self, table: pa.Table, ctx: CleanContext) -> CleanResult:
        index = table.schema.get_field_index(ctx.text_column)
        if index < 0:
            raise InvalidArgument(
                f"mask_urls: column {ctx.text_column!r} not in dataset: columns are "
                f"{', '.join(table.column_names)}"
            )
        before = table.column(index)
        if not (pa.types.is_string(before.type) or pa.types.is_large_string(before.type)):
            raise InvalidArgument(
                f"mask_urls: column {ctx.text_column!r} holds {before.type}, not text"
            )
        # RE2 reads backslashes in the replacement as group references; the user means them.
        replacement = self.config.replacement.replace("\\", "\\\\")
        after = pc.replace_substring_regex(before, URL_PATTERN, replacement)
        changed = pc.fill_null(pc.not_equal(before, after), False)
        rows_changed = pc.sum(changed).as_py() or 0
        urls = pc.sum(pc.count_substring_regex(before, URL_PATTERN)).as_py() or 0
        examples = pc.filter(before, changed).slice(0, self.MAX_EXAMPLES).to_pylist()
        return CleanResult(
            table=table.set_column(index, table.field(index), after),
            examples=[(text, REASON) for text in examples],
            details={"rows_changed": rows_changed, "urls_masked": urls},
        )
