"""The simulation notebook runs as a person runs it in Jupyter, and shows what it promises.

It is executed in a real kernel (nbclient) with matplotlib's inline backend — the notebook
selects it itself, as Jupyter does — and no backend forced from outside: each chart cell must
come out with an ``image/png`` output, and the last cell with a non-empty result.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("pandas")
pytest.importorskip("matplotlib")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "docs" / "notebooks" / "simulate.ipynb"


def _outputs(cell: Any, kind: str) -> list[Any]:
    return [o for o in cell.get("outputs", []) if o.get("output_type") == kind]


@pytest.fixture(scope="module")
def executed() -> Any:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    client = nbclient.NotebookClient(
        nb,
        timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute(env=env)  # the kernel's environment: no backend chosen from outside
    return nb


def test_the_notebook_picks_the_inline_backend_itself() -> None:
    source = "\n".join(c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells)
    assert "%matplotlib inline" in source
    assert "Agg" not in source


def test_the_notebook_runs_without_errors(executed: Any) -> None:
    errors = [o for c in executed.cells for o in _outputs(c, "error")]
    assert errors == [], [f"{e['ename']}: {e['evalue']}" for e in errors]


def test_every_chart_cell_shows_its_chart(executed: Any) -> None:
    charts = [c for c in executed.cells if c.cell_type == "code" and ".plot_" in c.source]
    assert len(charts) >= 2
    for cell in charts:
        images = [
            o
            for o in _outputs(cell, "execute_result") + _outputs(cell, "display_data")
            if "image/png" in o.get("data", {})
        ]
        assert len(images) == 1, cell.source  # shown once, not twice
        assert len(images[0]["data"]["image/png"]) > 5000, cell.source  # a real picture


def test_the_last_cell_shows_a_non_empty_result(executed: Any) -> None:
    last = [c for c in executed.cells if c.cell_type == "code"][-1]
    (result,) = _outputs(last, "execute_result")
    text = result["data"]["text/plain"]
    assert "Series([]" not in text and "Empty" not in text, text
    assert "cancelled" in text and "completed" in text, text
