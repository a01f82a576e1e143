"""Regenerate ``protocol_pb2.py`` and ``protocol_pb2.pyi`` from ``protocol.proto``.

Run from the repository root::

    python -m data_plane.wire.generate           # rewrite the committed modules
    python -m data_plane.wire.generate --check   # exit 1 if they are stale

The generated modules are committed so that no process needs protoc at run time. The
``.pyi`` stub comes from mypy-protobuf so that callers type-check under ``mypy --strict``.
Both are produced with the ``.proto`` addressed as ``data_plane/wire/protocol.proto``,
which is the name the descriptor registers in protobuf's default pool.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

PROTO = Path("data_plane/wire/protocol.proto")
GENERATED = (Path("data_plane/wire/protocol_pb2.py"), Path("data_plane/wire/protocol_pb2.pyi"))
REPO_ROOT = Path(__file__).resolve().parents[2]


def _mypy_plugin() -> str:
    """Locate ``protoc-gen-mypy``: next to this interpreter first (an unactivated venv)."""
    beside = Path(sys.executable).parent / "protoc-gen-mypy"
    if beside.exists():
        return str(beside)
    found = shutil.which("protoc-gen-mypy")
    if found is None:
        raise RuntimeError("protoc-gen-mypy not found: install mypy-protobuf")
    return found


def generate(out_dir: Path, root: Path = REPO_ROOT) -> None:
    """Compile the ``.proto`` under ``root`` into ``out_dir`` (mirroring the package path)."""
    args = [
        "grpc_tools.protoc",
        f"--proto_path={root}",
        f"--plugin=protoc-gen-mypy={_mypy_plugin()}",
        f"--python_out={out_dir}",
        f"--mypy_out={out_dir}",
        str(root / PROTO),
    ]
    code = protoc.main(args)
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")


def stale_files(root: Path = REPO_ROOT) -> list[Path]:
    """Regenerate into a temporary directory; return the committed files that differ."""
    with tempfile.TemporaryDirectory(prefix="cirno-wire-") as tmp:
        out = Path(tmp)
        generate(out, root)
        stale = []
        for rel in GENERATED:
            committed = root / rel
            if not committed.exists() or committed.read_bytes() != (out / rel).read_bytes():
                stale.append(rel)
        return stale


def write(root: Path = REPO_ROOT) -> None:
    """Regenerate and overwrite the committed modules."""
    with tempfile.TemporaryDirectory(prefix="cirno-wire-") as tmp:
        out = Path(tmp)
        generate(out, root)
        for rel in GENERATED:
            shutil.copyfile(out / rel, root / rel)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m data_plane.wire.generate")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the committed modules are stale"
    )
    opts = parser.parse_args(argv)
    if opts.check:
        stale = stale_files()
        for rel in stale:
            print(f"stale: {rel} (run python -m data_plane.wire.generate)", file=sys.stderr)
        return 1 if stale else 0
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
