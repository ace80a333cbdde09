"""An example third-party forgeline service, ``wordcount``: what ``forgeline serve wordcount`` and
``forgeline up`` find through the ``forgeline.services`` entry point.

This module is all forgeline reads to learn the service's port and plugin kinds (the CLI and the
gateway look ports up often), so it stays light: build() is named by string and imported only
when the service is started.
"""

from forgeline.service_spec import ServiceSpec

SPEC = ServiceSpec(
    build="forgeline_service_example.servicer:build",
    default_port=50070,
    # Loaded before the service reports SERVING; ListPlugins on this service lists them.
    plugin_kinds=("cleaners",),
)
