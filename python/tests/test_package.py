"""The package as shipped: a pure-Python wheel, and a verifier that stays independent of the
client it checks."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

PYTHON = Path(__file__).resolve().parents[1]
VERIFY = PYTHON / "src" / "custody" / "verify"


def test_the_package_builds_as_a_pure_python_wheel(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(PYTHON),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    assert wheel.name.endswith("-py3-none-any.whl"), wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    assert "custody/py.typed" in names and "custody/verify/merkle.py" in names


def test_the_verifier_imports_nothing_of_the_client_it_checks() -> None:
    """custody.verify must be able to catch a wrong answer from the client's own code: it
    imports only the standard library, its dependencies, custody.errors and itself."""
    for path in sorted(VERIFY.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level > 1 or (node.level == 0 and module.startswith("custody")):
                    absolute = module if node.level == 0 else f"custody.{module}"
                    assert absolute.startswith(("custody.verify", "custody.errors")), (
                        f"{path.name} imports {absolute}"
                    )
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("custody") or alias.name.startswith(
                        "custody.verify"
                    ), f"{path.name} imports {alias.name}"


def test_every_public_item_says_what_it_is_for() -> None:
    """Docstrings on every public module, class, function and method of the package."""
    import importlib
    import inspect
    import pkgutil

    import custody

    missing: list[str] = []
    for info in pkgutil.walk_packages(custody.__path__, "custody."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        module = importlib.import_module(info.name)
        if not (module.__doc__ or "").strip():
            missing.append(info.name)
        for name, item in vars(module).items():
            if name.startswith("_") or getattr(item, "__module__", None) != module.__name__:
                continue
            if not (inspect.isclass(item) or inspect.isfunction(item)):
                continue
            if not (item.__doc__ or "").strip():
                missing.append(f"{info.name}.{name}")
            if inspect.isclass(item):
                for member, value in vars(item).items():
                    if member.startswith("_") or not callable(value):
                        continue
                    if not (getattr(value, "__doc__", None) or "").strip():
                        missing.append(f"{info.name}.{name}.{member}")
    assert not missing, missing
