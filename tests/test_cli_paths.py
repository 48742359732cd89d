"""The checkout works wherever it lives: no absolute machine path in src/ or tests/, and the
tests find ``shared/`` relative to the repository (issue 14, point 7)."""

from __future__ import annotations

import re
from pathlib import Path

from _paths import ROOT, shared_dir, shared_file

# Built from pieces so that this file does not match itself.
_ROOTS = ("work", "root", "tmp", "home", "Users", "opt", "srv", "mnt")
MACHINE_PATH = re.compile(
    r"""(?:^|[\s"'(=,\[])(/(?:""" + "|".join(_ROOTS) + r""")/[\w.-]+|[A-Z]:\\\\?[\w.-]+\\)"""
)
TEXT = {".py", ".toml", ".md", ".txt", ".json", ".cfg", ".ini", ".csv", ".yml", ".yaml", ".sh"}


def _files() -> list[Path]:
    found = []
    for top in ("src", "tests"):
        for path in (ROOT / top).rglob("*"):
            if path.is_file() and path.suffix in TEXT and "__pycache__" not in path.parts:
                found.append(path)
    return found


def test_no_absolute_machine_path_in_src_or_tests() -> None:
    files = _files()
    assert len(files) > 50
    hits = []
    for path in files:
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines()):
            match = MACHINE_PATH.search(line)
            if match:
                hits.append(f"{path.relative_to(ROOT)}:{n + 1}: {match.group(1)}")
    assert hits == [], "absolute machine paths (use paths relative to the repository):\n" + (
        "\n".join(hits)
    )


def test_the_pattern_finds_what_it_must() -> None:
    for line in (
        'DISCOVERY = Path("/' + 'work/shared/specs/x.json")',
        "cd /" + "tmp/run && seqengine demo",
        "open('/" + "root/.cache/x')",
        'p = "C:\\\\' + 'Users\\\\me\\\\x"',
    ):
        assert MACHINE_PATH.search(line), line
    for line in ("sqlite:///relative/path.db", "https://api.x.com/2/users", "a/tmp/b"):
        assert not MACHINE_PATH.search(line), line


def test_shared_is_found_beside_the_repository(monkeypatch) -> None:
    monkeypatch.delenv("SEQENGINE_SHARED_DIR", raising=False)
    assert shared_dir() == ROOT.parent / "shared"
    assert shared_file("specs", "x.json") == ROOT.parent / "shared" / "specs" / "x.json"
    monkeypatch.setenv("SEQENGINE_SHARED_DIR", str(ROOT / "docs"))
    assert shared_dir() == ROOT / "docs"


def test_the_spec_tests_read_shared_from_the_repository() -> None:
    import test_email_gmail
    import test_x_openapi

    assert shared_file("specs", "x-api-v2-openapi.json") == test_x_openapi.SPEC_FILE
    assert shared_file("specs", "gmail-v1-discovery.json") == test_email_gmail.DISCOVERY
    # Present beside this checkout: then neither test skips.
    if test_x_openapi.SPEC_FILE.exists():
        assert test_x_openapi.SPEC is not None
