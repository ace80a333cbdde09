"""Chinese word segmentation with jieba: words joined by single spaces, for word-level models."""

from __future__ import annotations

import pyarrow as pa
from pydantic import Field

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.cleaners import CleanContext, Cleaner, CleanResult
from forgeline.plugins.cleaners.normalize import changed_examples, string_column


class SegmentChinese(Cleaner):
    """Splits Chinese text into words with jieba, joined by spaces."""

    name = "segment_zh"

    class Config(PluginConfig):
        output_column: str | None = Field(
            None,
            description="Column to write the segmented text to (added if new); default: "
            "overwrite the text column.",
        )
        cut_all: bool = Field(
            False, description="jieba full mode: every dictionary word found, overlapping."
        )
        user_words: list[str] = Field(
            default_factory=list,
            description="Extra words jieba keeps whole (brand or dish names, say).",
        )

    def clean(self, table: pa.Table, ctx: CleanContext) -> CleanResult:
        import jieba

        text = string_column(table, ctx.text_column, "text_column")
        target = self.config.output_column or ctx.text_column
        if target in table.column_names and target != ctx.text_column:
            string_column(table, target, "config.output_column")  # only text may be overwritten
        tokenizer = jieba.Tokenizer()  # private: user words must not leak into other requests
        for word in self.config.user_words:
            tokenizer.add_word(word)

        def segment(value: str | None) -> str | None:
            if value is None:
                return None
            words = tokenizer.lcut(value, cut_all=self.config.cut_all)
            return " ".join(word for word in words if not word.isspace())

        segmented = pa.chunked_array(
            [
                pa.array([segment(v) for v in chunk.to_pylist()], type=text.type)
                for chunk in text.chunks
            ],
            type=text.type,
        )
        changed, examples = changed_examples(text, segmented, "segmented", self.MAX_EXAMPLES)
        if target in table.column_names:
            index = table.column_names.index(target)
            field = table.schema.field(index)
            out = table.set_column(index, field, segmented.cast(field.type))
        else:
            out = table.append_column(target, segmented)
        return CleanResult(out, examples, {"rows_changed": changed, "column": target})
