"""The loader contract, over every loader to certify (fixture ``loaders_plugin``).

Formats differ, so what is checked is what every loader shares: the kernel contract, a
documented config, sane extension claims, and refusals as forgeline errors rather than crashes.
"""

from __future__ import annotations

import json

import pytest

from forgeline.contracts.loaders import LoadSource
from forgeline.errors import InvalidArgument
from forgeline.registry import config_schema, contract_problem
from forgeline.testing.selection import contract_instance

__all__ = [
    "test_fulfils_the_kernel_contract",
    "test_config_schema_is_json_with_every_field_described",
    "test_extensions_are_lowercase_suffixes",
    "test_detects_answers_for_any_path_without_raising",
    "test_an_empty_file_is_refused_as_invalid",
    "test_url_loaders_refuse_other_schemes",
]


def test_fulfils_the_kernel_contract(loaders_plugin):
    assert contract_problem("loaders", loaders_plugin.name, loaders_plugin) is None
    assert loaders_plugin.description()


def test_config_schema_is_json_with_every_field_described(loaders_plugin):
    schema = json.loads(json.dumps(config_schema(loaders_plugin)))
    for name, prop in schema.get("properties", {}).items():
        assert prop.get("description"), f"config field {name!r} has no description"


def test_extensions_are_lowercase_suffixes(loaders_plugin):
    for extension in loaders_plugin.extensions:
        assert extension.startswith(".") and extension == extension.lower()


def test_detects_answers_for_any_path_without_raising(loaders_plugin, tmp_path):
    assert loaders_plugin.detects(tmp_path / "missing.bin") is False
    assert isinstance(loaders_plugin.detects(tmp_path), bool)
    odd = tmp_path / "notes.unknown-extension"
    odd.write_text("x")
    assert loaders_plugin.detects(odd) is False


def test_an_empty_file_is_refused_as_invalid(loaders_plugin, tmp_path):
    if not loaders_plugin.extensions or loaders_plugin.reads_urls:
        pytest.skip(f"{loaders_plugin.name} does not read files by extension")
    for extension in loaders_plugin.extensions:
        empty = tmp_path / f"empty{extension}"
        empty.write_bytes(b"")
        assert loaders_plugin.detects(empty)
        with pytest.raises(InvalidArgument):
            contract_instance(loaders_plugin).load(LoadSource(path=empty))


def test_url_loaders_refuse_other_schemes(loaders_plugin):
    if not loaders_plugin.reads_urls:
        pytest.skip(f"{loaders_plugin.name} does not read URLs")
    with pytest.raises(InvalidArgument):
        contract_instance(loaders_plugin).load(LoadSource(url="file:///etc/passwd"))
