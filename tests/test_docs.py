"""Every Python sample in the docs runs, and the notebook executes, so neither can drift.

Each page's ```python blocks run in order in one namespace, from a scratch folder holding a
copy of ``examples/``. A block right after ``<!-- docs-test: skip REASON -->`` is not run
(only for samples that need a service this machine does not have); the reason is reported.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BLOCK = re.compile(
    r"(<!--\s*docs-test:\s*skip(?P<why>[^>]*)-->\s*)?```python\n(?P<code>.*?)```", re.S
)
PAGES = sorted(p for p in DOCS.rglob("*.md"))


def blocks(page: Path) -> list[tuple[str, str | None]]:
    text = page.read_text(encoding="utf-8")
    return [
        (m["code"], (m["why"] or "").strip() if m.group(1) else None) for m in BLOCK.finditer(text)
    ]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_docs_code_samples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = blocks(page)
    if not found:
        pytest.skip("no Python samples on this page")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for i, (code, skip) in enumerate(found):
        if skip is not None:
            assert skip, f"{page.name} block {i + 1}: a docs-test skip needs a reason"
            continue
        try:
            exec(compile(code, f"{page.name}[block {i + 1}]", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message is the point
            pytest.fail(
                f"{page.relative_to(DOCS)} block {i + 1} failed: {type(exc).__name__}: {exc}"
            )


def test_notebook_executes(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("pandas")
    pytest.importorskip("matplotlib")
    notebook = DOCS / "notebooks" / "simulate.ipynb"
    nb = nbformat.read(notebook, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    os.environ.setdefault("MPLBACKEND", "Agg")
    client.execute()
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert errors == []
