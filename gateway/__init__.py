"""The gateway: pipelines that chain the services, and the run reports (the gateway issue)."""

from forgeline.service_spec import ServiceSpec

# What the kernel reads through the ``forgeline.services`` entry point (no heavy import).
SPEC = ServiceSpec(
    build="forgeline.gateway.servicer:build",
    default_port=50050,
)
