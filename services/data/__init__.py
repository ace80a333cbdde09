"""The data service: ingest, upload, clean, augment, split, profile and read datasets."""

from forgeline.service_spec import ServiceSpec

# What the kernel reads through the ``forgeline.services`` entry point (no heavy import).
SPEC = ServiceSpec(
    build="forgeline.services.data.servicer:build",
    default_port=50051,
    plugin_kinds=("loaders", "cleaners", "augmenters"),
)
