"""What every plugin is, whatever its kind: a class with a short lowercase ``name``, a pydantic
``Config`` (unknown fields refused, every field described, so its JSON Schema documents it) and a
docstring whose first paragraph is its user-facing description."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


class PluginConfig(BaseModel):
    """Base of every plugin Config: unknown fields are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Plugin:
    """Base of every plugin. Subclass a kind (forgeline.contracts.<kind>), never this directly."""

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    Config: ClassVar[type[PluginConfig]] = PluginConfig

    def __init__(self, config: PluginConfig | None = None) -> None:
        self.config = config if config is not None else self.Config()

    @classmethod
    def contract_config(cls) -> dict[str, Any] | None:
        """A config the contract suites use when the defaults cannot run (None: defaults)."""
        return None

    @classmethod
    def description(cls) -> str:
        """The first paragraph of the class's own docstring with its lines joined: what
        `forgeline plugins list` and ListPlugins show. A paragraph, not a line, because a
        sentence wrapped at the line length would otherwise be cut in the middle."""
        doc = (cls.__doc__ or "").strip()
        return " ".join(_PARAGRAPH_BREAK.split(doc, maxsplit=1)[0].split())

    @classmethod
    def kind_problem(cls) -> str | None:
        """Why this class breaks a rule of its kind beyond the base contract (a class attribute
        out of range, say); None when it keeps them. Kinds with such rules override this."""
        return None


def never_cancelled() -> None:
    """The default cancellation check of a context: nothing ever cancels."""
    return None
