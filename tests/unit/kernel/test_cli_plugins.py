"""`forgeline plugins show NAME [--kind KIND]`: a plugin's whole description and the JSON Schema
of its config (issue 19), run in-process through typer's CliRunner over the real registry."""

from __future__ import annotations

import json
from importlib import metadata

import pytest
from typer.testing import CliRunner

from forgeline.cli import build_app
from forgeline.errors import InvalidArgument, NotFound
from forgeline.registry import PluginRegistry, config_schema

REGISTRY = PluginRegistry()


def show(*args: str):
    return CliRunner().invoke(build_app()[0], ["plugins", "show", *args])


def test_shows_the_whole_description_and_the_config_schema():
    result = show("safety_filter")
    assert result.exit_code == 0, result.output
    header, _, schema_text = result.stdout.partition("config (JSON Schema):")
    version = metadata.version("forgeline")
    assert header.splitlines()[0] == f"cleaners:safety_filter  forgeline=={version}"
    # This description was cut at "... or masks what" when it was the docstring's first line.
    assert " ".join(header.split()[2:]) == (
        "Drops the rows an input filter (blocklist, pii, classifier...) matches, or masks what "
        "it found."
    )
    assert json.loads(schema_text) == config_schema(REGISTRY.get("cleaners", "safety_filter"))


def test_json_output_and_kind_choose_among_plugins_sharing_a_name():
    result = show("classifier", "--kind", "output_rules", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)  # logs, if any, are on stderr
    cls = REGISTRY.get("output_rules", "classifier")
    assert (shown["kind"], shown["name"], shown["distribution"]) == (
        "output_rules",
        "classifier",
        "forgeline",
    )
    assert shown["description"] == cls.description()
    assert shown["config_schema"] == config_schema(cls)


def test_a_name_two_kinds_share_asks_for_the_kind():
    result = show("classifier")
    assert isinstance(result.exception, InvalidArgument)
    assert [v.field for v in result.exception.violations] == ["--kind"]
    assert "input_filters, output_rules" in result.exception.message


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["dedup_nearr"], "no plugin named 'dedup_nearr' is installed"),
        (["dedup_nearr", "--kind", "cleaners"], "known: balance_labels"),
    ],
    ids=["any-kind", "one-kind"],
)
def test_an_unknown_name_is_not_found(args, says):
    result = show(*args)
    assert isinstance(result.exception, NotFound)
    assert result.exception.reason == "PLUGIN_NOT_FOUND"
    assert says in result.exception.message
