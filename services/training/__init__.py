"""The training service: fine-tunes Hugging Face models with finetune plugins on Ray Train."""

from forgeline.service_spec import ServiceSpec

# What the kernel reads through the ``forgeline.services`` entry point (no heavy import).
SPEC = ServiceSpec(
    build="forgeline.services.training.servicer:build",
    default_port=50052,
    plugin_kinds=("finetune", "trackers", "baselines", "generation_metrics", "long_inputs"),
)
