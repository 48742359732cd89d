"""The README's first install (`pip install -e .`, no extras) gives a working CLI: optional
packages (the console's, rich, httpx, psycopg, matplotlib) are imported only when used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Packages of the optional extras; the script below makes importing any of them fail.
OPTIONAL = (
    "starlette",
    "jinja2",
    "uvicorn",
    "itsdangerous",
    "multipart",
    "rich",
    "httpx",
    "tenacity",
    "psycopg",
    "psycopg_pool",
    "matplotlib",
    "pandas",
)

SCRIPT = f"""
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {OPTIONAL!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
        return None

sys.meta_path.insert(0, Block())
from seqengine._cli import main
sys.exit(main(sys.argv[1:]))
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_cli_works_without_any_extra(tmp_path: Path) -> None:
    help_ = _cli("--help", cwd=tmp_path)
    assert help_.returncode == 0, help_.stderr
    for command in ("simulate", "demo", "run", "status", "pause", "console"):
        assert command in help_.stdout
    example = str(ROOT / "examples" / "x-default.toml")
    ok = _cli("validate", example, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    ran = _cli("demo", "--leads", "20", "--days", "2", "--log-format", "text", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "Traceback" not in ran.stderr
    again = _cli("demo", "--leads", "20", "--days", "2", "--log-format", "text", cwd=tmp_path)
    assert again.returncode == 0, again.stderr  # the demo replaces its own previous run
    console = _cli("console", "--db", "seqengine-demo.db", cwd=tmp_path)
    assert console.returncode == 1
    assert 'pip install "seqengine[console]"' in console.stderr
    assert "Traceback" not in console.stderr
