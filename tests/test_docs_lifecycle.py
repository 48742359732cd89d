"""The lifecycle diagram in the docs is the one generated from the table in code."""

from pathlib import Path

from seqengine._lifecycle import to_mermaid

DOC = Path(__file__).resolve().parents[1] / "docs" / "concepts.md"


def test_r_life_docs_diagram_matches_the_table() -> None:
    assert to_mermaid() in DOC.read_text(encoding="utf-8"), (
        "docs/concepts.md is out of date: paste seqengine._lifecycle.to_mermaid() into it"
    )
