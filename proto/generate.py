"""Regenerate the typed Python for every contract in proto/ into genproto/.

One step writes messages (_pb2), gRPC stubs (_pb2_grpc) and their type stubs
(.pyi, by mypy-protobuf) for our packages and for the vendored
buf/validate/validate.proto, whose module the generated code imports.

    python proto/generate.py [OUT_DIR]      # default: genproto/

tests/test_generated_code.py runs this into a temporary folder and fails if
the committed genproto/ differs, so generated code cannot drift from proto/.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"
VENDOR = PROTO / "vendor"


def proto_files() -> list[Path]:
    return sorted(p for p in PROTO.rglob("*.proto"))


def generate(out_dir: Path) -> None:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    # grpc_tools ships the well-known types (google/protobuf/*.proto).
    well_known = Path(protoc.__file__).parent / "_proto"
    files = [
        str(p.relative_to(VENDOR if p.is_relative_to(VENDOR) else PROTO)) for p in proto_files()
    ]
    # The mypy-protobuf plugins live beside the interpreter in the venv.
    bin_dir = Path(sys.executable).parent
    args = [
        "protoc",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"-I{PROTO}",
        f"-I{VENDOR}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see the messages above")
    # Regular packages (not namespace packages) so mypy and importers agree.
    for folder in [out_dir, *(d for d in out_dir.rglob("*") if d.is_dir())]:
        if folder != out_dir:
            (folder / "__init__.py").touch()


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "genproto"
    generate(out)
    print(f"generated {sum(1 for _ in out.rglob('*.py*'))} files into {out}")


if __name__ == "__main__":
    main()
