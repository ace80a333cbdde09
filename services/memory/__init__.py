"""The memory service: stored samples with their embeddings, replay through samplers plugins, and
continual updates of a model without forgetting."""

from forgeline.service_spec import ServiceSpec

# What the kernel reads through the ``forgeline.services`` entry point (no heavy import).
SPEC = ServiceSpec(
    build="forgeline.services.memory.servicer:build",
    default_port=50055,
    plugin_kinds=("samplers", "selectors", "regularizers"),
)
