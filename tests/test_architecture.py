"""The house: stations import only from the layers below them, and no package's modules import each other in a
cycle (the import-linter contracts in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_stations_import_downward_only_and_without_cycles():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "Stations import downward only KEPT" in result.stdout and "No import cycles KEPT" in result.stdout


def test_the_contract_names_every_station():
    import tomllib

    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = " ".join(next(c for c in contracts if c["type"] == "layers")["layers"])
    stations = {p.name for p in (REPO / "keras_sign").iterdir() if (p / "__init__.py").is_file()}
    modules = {p.stem for p in (REPO / "keras_sign").glob("*.py") if p.stem != "__init__"}
    missing = sorted(name for name in stations | modules if f"keras_sign.{name}" not in layers)
    assert not missing, f"not in the layers contract (pyproject.toml): {missing}"
