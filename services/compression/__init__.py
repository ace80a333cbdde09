"""The compression service: int8 quantization, structured pruning, distillation and ONNX
export as one measured chain with an accuracy budget."""
