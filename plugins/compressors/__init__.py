"""Built-in compressors: dynamic_int8, structured_prune, distill, onnx_export."""
