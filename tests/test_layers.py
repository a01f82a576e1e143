"""The layering contracts (``[tool.importlinter]`` in pyproject.toml) hold, and bite.

``make layers`` runs ``lint-imports`` on the tree; these tests run it too, so a plain
pytest run checks the layering, and they show a contract failing: a copy of the tree
with one import the layering forbids must fail the check, naming the contract.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONFIG: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
    "importlinter"
]


def contract(contract_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in CONFIG["contracts"] if c["id"] == contract_id)
    return found


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on ``tree`` (its pyproject.toml, its packages first on the path)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def copy_tree(target: Path) -> None:
    """The root packages' Python files and pyproject.toml, nothing else (fast)."""
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    for package in CONFIG["root_packages"]:
        for source in (ROOT / package).rglob("*.py"):
            copy = target / source.relative_to(ROOT)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, copy)


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(CONFIG['contracts'])} kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "contract_id"),
    [
        ("data_plane/gateway/auth.py", "import data_plane.storage.urls", "gateway"),
        ("control_plane/keys.py", "import data_plane.logic", "control-plane-to-data-plane"),
        ("cirno_sdk/errors.py", "import data_plane.cluster.tenants", "sdk"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, module: str, bad_import: str, contract_id: str
) -> None:
    copy_tree(tmp_path)
    assert lint_imports(tmp_path).returncode == 0  # the copy itself is clean
    with (tmp_path / module).open("a") as source:
        source.write(f"\n{bad_import}  # deliberately against the layering\n")
    result = lint_imports(tmp_path)
    name = contract(contract_id)["name"]
    assert result.returncode != 0
    assert f"{name} BROKEN" in result.stdout, result.stdout
    importer = module.removesuffix(".py").replace("/", ".")
    assert f"{importer} -> {bad_import.removeprefix('import ')}" in result.stdout


@pytest.mark.parametrize("contract_id", ["wire", "sdk"])
def test_the_all_but_wire_lists_name_every_part_of_data_plane(contract_id: str) -> None:
    # "imports nothing of ours but wire" is a list: a new data_plane package must join it.
    parts = {
        f"data_plane.{p.stem}"
        for p in (ROOT / "data_plane").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    }
    forbidden = set(contract(contract_id)["forbidden_modules"])
    assert parts - {"data_plane.wire"} <= forbidden
    assert "data_plane.wire" not in forbidden
