"""The repository's folders install as ``himo.<folder>`` and never under their bare names.

Each bare name (``envs``, ``agents``, ...) is another distribution on the package index; installed
side by side, one would overwrite the other's files.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).parent.parent
FOLDERS = ("envs", "modalities", "agents", "hierarchy", "scenarios")


@pytest.mark.parametrize("folder", FOLDERS)
def test_each_folder_imports_as_himo_package_from_outside_the_repository(folder: str, tmp_path: Path) -> None:
    script = (
        f"import importlib, pathlib\n"
        f"module = importlib.import_module('himo.{folder}')\n"
        f"assert pathlib.Path(module.__file__).parent.name == '{folder}', module.__file__\n"
        f"try:\n"
        f"    importlib.import_module('{folder}')\n"
        f"except ModuleNotFoundError:\n"
        f"    print('bare name absent')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "bare name absent"


def test_wheel_holds_only_the_himo_package(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPOSITORY)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("himo-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"himo", wheel.name.split("-py3")[0] + ".dist-info"}
    assert {f"himo/{folder}/__init__.py" for folder in FOLDERS} <= set(names)
    assert "himo/scenarios/beacon.yaml" in names
