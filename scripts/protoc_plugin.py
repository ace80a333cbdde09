"""A protoc plugin that runs one of grpcio-tools' bundled generators (python, pyi, grpc_python).

buf invokes it as a local plugin (see buf.gen.yaml): it reads the CodeGeneratorRequest from stdin,
hands the request's descriptors to grpcio-tools' protoc, and answers with the generated files. This
keeps the generated code in step with the grpcio/protobuf runtime we pin.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc


def main() -> int:
    generator = sys.argv[1]  # python | pyi | grpc_python
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    response = plugin_pb2.CodeGeneratorResponse()
    # grpcio-tools' generators handle proto3 `optional` fields (synthetic oneofs).
    response.supported_features = plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    with tempfile.TemporaryDirectory() as tmp:
        descriptors = Path(tmp) / "descriptors.pb"
        out = Path(tmp) / "out"
        out.mkdir()
        descriptors.write_bytes(
            descriptor_pb2.FileDescriptorSet(file=request.proto_file).SerializeToString()
        )
        args = [
            "protoc",
            f"--descriptor_set_in={descriptors}",
            f"--{generator}_out={out}",
            *request.file_to_generate,
        ]
        if protoc.main(args) != 0:
            response.error = f"grpc_tools.protoc failed for {generator}"
        else:
            for path in sorted(out.rglob("*")):
                if path.is_file():
                    response.file.add(
                        name=str(path.relative_to(out)), content=path.read_text("utf-8")
                    )
    sys.stdout.buffer.write(response.SerializeToString())
    return 0


if __name__ == "__main__":
    sys.exit(main())
