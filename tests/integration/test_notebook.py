"""The walkthrough notebook runs top to bottom (its code cells, in order, in one namespace)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "walkthrough.ipynb"


def test_walkthrough_runs_top_to_bottom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNOPS_HOME", str(tmp_path / "home"))
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    namespace: dict[str, object] = {"__name__": "__walkthrough__"}
    code_cells = [c for c in cells if c["cell_type"] == "code"]
    assert len(code_cells) >= 6
    for index, cell in enumerate(code_cells):
        source = "".join(cell["source"])
        # Our own notebook, run as a user would, cell after cell in one namespace.
        exec(compile(source, f"{NOTEBOOK.name}[{index}]", "exec"), namespace)
    rows = namespace["rows"]
    assert isinstance(rows, list)
    statuses = [row.status for row in rows]
    assert statuses[-1] == "unknown_customer"
    assert "ok" in statuses
    assert len(namespace["scores"]) == statuses.count("ok")  # type: ignore[arg-type]
