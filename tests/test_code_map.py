"""The code map (docs/code-map.md) names every module of the package, and only modules that exist."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pyterrier_hybrid"


def code_map() -> str:
    return (ROOT / "docs" / "code-map.md").read_text(encoding="utf-8")


def mapped_modules() -> set[str]:
    """``package/module.py`` for every module the map names, read package by package (a heading names a package,
    ``training/`` or a nested one, ``training/sources/``)."""
    names = set()
    package = ""
    for line in code_map().splitlines():
        heading = re.match(r"\*\*`(?:pyterrier_hybrid/)?([a-z_]+(?:/[a-z_]+)*|)/?`\*\*", line)
        if heading:
            package = heading.group(1)
        for module in re.findall(r"`([a-z_0-9]+\.py)`", line):
            names.add(f"{package}/{module}" if package else module)
    return names


def package_modules() -> set[str]:
    return {str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
            if path.name != "__init__.py" and "__pycache__" not in path.parts}


def test_code_map_names_every_module():
    missing = package_modules() - mapped_modules()
    assert not missing, f"modules missing from the code map: {sorted(missing)}"


def test_code_map_names_no_module_that_does_not_exist():
    stale = mapped_modules() - package_modules()
    assert not stale, f"the code map names modules that do not exist: {sorted(stale)}"
