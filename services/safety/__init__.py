"""The safety service: input filters, output rules, fairness audits and the audit log."""

from forgeline.service_spec import ServiceSpec

# What the kernel reads through the ``forgeline.services`` entry point (no heavy import).
SPEC = ServiceSpec(
    build="forgeline.services.safety.servicer:build",
    default_port=50056,
    plugin_kinds=("input_filters", "output_rules", "mitigators"),
    keeps_audit_log=True,
)
