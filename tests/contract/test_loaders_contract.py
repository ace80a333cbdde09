"""Every installed loader, forgeline's own and third parties', against the loader contract.

Formats differ, so what is checked is what every loader shares: the kernel contract, a
documented config, sane extension claims, and refusals as forgeline errors rather than crashes.
"""

from __future__ import annotations

import json

import pytest

from forgeline.contracts.loaders import Loader, LoadSource
from forgeline.errors import InvalidArgument
from forgeline.registry import PluginRegistry, config_schema, contract_problem

REGISTRY = PluginRegistry()
NAMES = [entry.name for entry in REGISTRY.discover("loaders")]
FILE_LOADERS = [
    n
    for n in NAMES
    if REGISTRY.get("loaders", n).extensions and not REGISTRY.get("loaders", n).reads_urls
]
URL_LOADERS = [n for n in NAMES if REGISTRY.get("loaders", n).reads_urls]


@pytest.fixture(params=NAMES)
def loader_cls(request) -> type[Loader]:
    return REGISTRY.get("loaders", request.param)


def make(cls: type[Loader]) -> Loader:
    config = cls.contract_config()
    return cls(cls.Config.model_validate(config) if config is not None else None)


def test_there_are_loaders_to_certify():
    assert {"csv", "tsv", "jsonl", "txt", "parquet", "hf_disk", "http"} <= set(NAMES)


def test_fulfils_the_kernel_contract(loader_cls):
    assert contract_problem("loaders", loader_cls.name, loader_cls) is None
    assert loader_cls.description()


def test_config_schema_is_json_with_every_field_described(loader_cls):
    schema = json.loads(json.dumps(config_schema(loader_cls)))
    for name, prop in schema.get("properties", {}).items():
        assert prop.get("description"), f"config field {name!r} has no description"


def test_extensions_are_lowercase_suffixes(loader_cls):
    for extension in loader_cls.extensions:
        assert extension.startswith(".") and extension == extension.lower()


def test_detects_answers_for_any_path_without_raising(loader_cls, tmp_path):
    assert loader_cls.detects(tmp_path / "missing.bin") is False
    assert isinstance(loader_cls.detects(tmp_path), bool)
    odd = tmp_path / "notes.unknown-extension"
    odd.write_text("x")
    assert loader_cls.detects(odd) is False


@pytest.mark.parametrize("name", FILE_LOADERS)
def test_an_empty_file_is_refused_as_invalid(name, tmp_path):
    loader_cls = REGISTRY.get("loaders", name)
    for extension in loader_cls.extensions:
        empty = tmp_path / f"empty{extension}"
        empty.write_bytes(b"")
        assert loader_cls.detects(empty)
        with pytest.raises(InvalidArgument):
            make(loader_cls).load(LoadSource(path=empty))


@pytest.mark.parametrize("name", URL_LOADERS)
def test_url_loaders_refuse_other_schemes(name):
    loader_cls = REGISTRY.get("loaders", name)
    with pytest.raises(InvalidArgument):
        make(loader_cls).load(LoadSource(url="file:///etc/passwd"))
