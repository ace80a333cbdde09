"""The serving service: deployed classifiers behind their safety policy, micro-batched."""

from forgeline.service_spec import ServiceSpec

# What the kernel reads through the ``forgeline.services`` entry point (no heavy import).
SPEC = ServiceSpec(
    build="forgeline.services.serving.servicer:build",
    default_port=50057,
    plugin_kinds=("input_filters", "output_rules"),
)
