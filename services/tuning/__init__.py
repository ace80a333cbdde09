"""The tuning service: searches a training request's hyper-parameters with Ray Tune and Optuna."""

from forgeline.service_spec import ServiceSpec

# What the kernel reads through the ``forgeline.services`` entry point (no heavy import).
SPEC = ServiceSpec(
    build="forgeline.services.tuning.servicer:build",
    default_port=50053,
    plugin_kinds=("searchers", "schedulers", "finetune"),
)
