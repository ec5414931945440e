"""The wheel ships every subpackage: pyproject's explicit package list must name them all."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "popgen").rglob("__init__.py")}
    on_disk |= {"popgen.kernels." + p.parent.name for p in (ROOT / "kernels").glob("*/__init__.py")}
    on_disk.add("popgen.kernels")
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"
