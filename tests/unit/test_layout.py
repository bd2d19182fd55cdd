"""bot/ reads as the pipeline: a package per stage, shared modules under them, drivers above them.

- every package under bot/ is in README.md's tables, and every package those tables name exists;
- a stage package never imports another stage package, nor a driver (pipeline, daemon, cli) or the demo;
- drivers (pipeline, daemon, cli, b4check, workers) use a stage package only through its package (bot.<stage>), never
  its internals;
- shared modules (config, results, patches, proc, repo, retry, store, arches, errors) import no stage or driver;
- no module over 400 lines, no function over 60.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BOT = REPO / "bot"
STAGES = {"fetch", "tree", "build", "boot", "walkdiff", "report", "dashboard"}  # dashboard: the output after report
DRIVERS = {"pipeline", "daemon", "cli", "b4check", "workers"}  # workers: runs stage runners on another machine
DEMO = {"demo"}
MAX_LINES, MAX_FUNCTION = 400, 60


def modules() -> list[Path]:
    return sorted(BOT.rglob("*.py"))


def top(path: Path) -> str:
    """The top-level unit under bot/ a file belongs to: a package or a module name."""
    return path.relative_to(BOT).parts[0].removesuffix(".py")


def imports(path: Path) -> list[str]:
    """Every bot.* module a file imports, as dotted names (from-imports include the imported name)."""
    tree = ast.parse(path.read_text())
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("bot")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bot") and node.level == 0:
            out += [f"{node.module}.{a.name}" for a in node.names]
    return out


def unit_of(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_packages_match_the_readme() -> None:
    packages = {p.name for p in BOT.iterdir() if (p / "__init__.py").is_file()}
    readme = (REPO / "README.md").read_text()
    rows = [line.split("|")[1:3] for line in readme.splitlines() if line.startswith("| ")]
    named = {m for cells in rows for m in re.findall(r"`bot/(\w+)/`", " ".join(cells))}
    assert named == packages, f"README tables name {sorted(named)}, bot/ has {sorted(packages)}"


def test_stage_packages_import_only_shared_modules() -> None:
    bad = []
    for path in modules():
        unit = top(path)
        if unit not in STAGES:
            continue
        for dotted in imports(path):
            other = unit_of(dotted)
            if other != unit and other in STAGES | DRIVERS | DEMO:
                bad.append(f"{path.relative_to(REPO)} imports {dotted}")
    assert not bad, "\n".join(bad)


def test_drivers_use_stage_packages_not_their_internals() -> None:
    bad = []
    for path in modules():
        if top(path) not in DRIVERS:
            continue
        for dotted in imports(path):
            parts = dotted.split(".")
            # "bot.fetch" or "from bot import fetch" / "from bot.fetch import Name" are the package's API
            if len(parts) >= 3 and parts[1] in STAGES:
                module = BOT / parts[1] / f"{parts[2]}.py"
                if module.exists() or (BOT / parts[1] / parts[2]).is_dir():
                    bad.append(f"{path.relative_to(REPO)} imports {dotted}")
    assert not bad, "\n".join(bad)


def test_shared_modules_import_no_stage_or_driver() -> None:
    bad = []
    for path in modules():
        unit = top(path)
        if unit in STAGES | DRIVERS | DEMO or unit == "__init__":
            continue
        for dotted in imports(path):
            if unit_of(dotted) in STAGES | DRIVERS | DEMO:
                bad.append(f"{path.relative_to(REPO)} imports {dotted}")
    assert not bad, "\n".join(bad)


def test_modules_and_functions_are_small() -> None:
    long_modules = [f"{p.relative_to(REPO)}: {n} lines" for p in modules()
                    if (n := len(p.read_text().splitlines())) > MAX_LINES]
    long_functions = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION:
                    long_functions.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}(): {length} lines")
    assert not long_modules and not long_functions, "\n".join(long_modules + long_functions)


def test_every_package_says_what_goes_in_and_out() -> None:
    for init in BOT.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc.splitlines()) >= 2, f"{init.relative_to(REPO)} needs a docstring"
