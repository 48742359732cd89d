"""The core is pure: no I/O, no clock, no hidden randomness (DESIGN.md, R-LIB-3)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import seqengine

CORE = Path(seqengine.__file__).parent
#: Modules of the pure core: the package's private top-level modules, minus the CLI shell, and
#: the AI protocol package (its network client lives in the runtime).
CORE_MODULES = sorted(
    [p for p in CORE.glob("_*.py") if p.name not in ("_cli.py",)] + list(CORE.glob("ai/*.py"))
)
# Not listed, on purpose: ``_thread`` (the lock that lets World versions sharing their tables
# be read from several threads) and ``heapq``/``hashlib`` (pure computation).
FORBIDDEN = {
    "asyncio",
    "http",
    "httpx",
    "io",
    "os",
    "psycopg",
    "psycopg_pool",
    "random",
    "requests",
    "secrets",
    "select",
    "shutil",
    "smtplib",
    "socket",
    "sqlite3",
    "subprocess",
    "tenacity",
    "threading",
    "time",
    "urllib",
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    # URL parsing is pure string work; urllib.request is not.
    return {n.split(".")[0] for n in names if n != "urllib.parse"}


def test_r_lib_3_core_modules_import_nothing_that_does_io() -> None:
    assert len(CORE_MODULES) > 10
    offenders = {str(p.relative_to(CORE)): sorted(_imports(p) & FORBIDDEN) for p in CORE_MODULES}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_r_lib_3_importing_seqengine_loads_no_io_module() -> None:
    # io, os, time and threading are loaded by the interpreter itself; urllib by urllib.parse.
    watched = sorted(FORBIDDEN - {"io", "os", "time", "threading", "urllib", "urllib.request"})
    code = (
        "import sys, seqengine\n"
        f"bad = sorted(m for m in {watched!r}"
        " if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"import seqengine pulled in: {out}"


def test_public_api_is_unique_and_complete() -> None:
    names = list(seqengine.__all__)
    assert len(names) == len(set(names))
    missing = [n for n in names if n != "simulate" and not hasattr(seqengine, n)]
    assert missing == []
    assert callable(seqengine.simulate)
