"""Every contract suite: a plugin package's one-line test file star-imports this module.

Importing a test function into a test file is enough for pytest to collect it there, under the
name it is bound to. The suites share test names (each kind has ``test_fulfils_the_kernel_
contract``), so each test is bound here as ``test_<kind>_<rest of its name>``.
"""

from importlib import import_module

KINDS = (
    "augmenters",
    "baselines",
    "cleaners",
    "compressors",
    "finetune",
    "generation_metrics",
    "input_filters",
    "loaders",
    "long_inputs",
    "mitigators",
    "output_rules",
    "regularizers",
    "samplers",
    "schedulers",
    "searchers",
    "selectors",
    "trackers",
)
SUITES = tuple(import_module(f"{__name__}.{kind}") for kind in KINDS)

__all__: list[str] = []
for _suite in SUITES:
    _kind = _suite.__name__.rsplit(".", 1)[1]
    for _name in _suite.__all__:
        _alias = f"test_{_kind}_{_name.removeprefix('test_')}"
        globals()[_alias] = getattr(_suite, _name)
        __all__.append(_alias)
