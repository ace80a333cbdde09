"""The names clients give artifacts, and the references they find them by: one rule for every
service, so a name never carries a path, a NUL byte or a megabyte into the catalog or a folder.

A name is 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit. A reference is
an artifact id (a name by that rule too, e.g. "ds_4f2a..."), a name (its latest version) or
"name@version" with a version from 1.
"""

from __future__ import annotations

import re

from forgeline.errors import InvalidArgument, excerpt

MAX_NAME_CHARS = 128
NAME_PATTERN = rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_NAME_CHARS - 1}}}"


def artifact_name(name: str, field: str) -> str:
    """``name`` when it is a valid artifact name; InvalidArgument naming ``field`` if not."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise InvalidArgument.for_field(
            field,
            f"{excerpt(name)} is not a valid name: use letters, digits, '.', '_' and '-', "
            f"starting with a letter or digit (at most {MAX_NAME_CHARS})",
        )
    return name


def artifact_ref(ref: str, field: str) -> str:
    """``ref`` when it is an id, a name or "name@version"; InvalidArgument naming ``field``."""
    if not re.fullmatch(rf"{NAME_PATTERN}(@[1-9][0-9]{{0,8}})?", ref):
        raise InvalidArgument.for_field(
            field, f"{excerpt(ref)} is not an id, a name or name@version (version from 1)"
        )
    return ref
