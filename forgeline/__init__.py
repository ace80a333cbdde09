"""forgeline: from raw data to a served, audited model.

This package is the kernel every service, plugin and client imports: settings, logging, errors,
the plugin registry, the operation store, the artifact store, the server bootstrap and the client.
It imports no service and no plugin. Heavy libraries are imported where they are used.
"""

__version__ = "0.1.0"
