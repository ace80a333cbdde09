"""The compression service: int8 quantization, structured pruning, distillation and ONNX
export as one measured chain with an accuracy budget."""

from forgeline.service_spec import ServiceSpec

# What the kernel reads through the ``forgeline.services`` entry point (no heavy import).
SPEC = ServiceSpec(
    build="forgeline.services.compression.servicer:build",
    default_port=50054,
    plugin_kinds=("compressors",),
)
