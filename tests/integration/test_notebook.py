"""The walkthrough notebook runs top to bottom in a real Jupyter kernel (nbclient), as the
README's `jupyter nbconvert --execute` does: no error, no warning noise on stderr, the plots
rendered as images, the whole loop through monitoring and the retraining check, and its
temporary home removed at the end."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "walkthrough.ipynb"


def _text(output: dict) -> str:  # type: ignore[type-arg]
    if output["output_type"] == "stream":
        return str(output["text"])
    return str(output.get("data", {}).get("text/plain", ""))


def test_walkthrough_runs_in_a_kernel_quietly_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.delenv("CHURNOPS_HOME", raising=False)  # the notebook makes (and removes) its own
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # ... under here, so the cleanup can be checked
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()  # raises CellExecutionError on any failing cell

    code = [c for c in notebook.cells if c.cell_type == "code"]
    outputs = [o for c in code for o in c.outputs]
    stderr = [o["text"] for o in outputs if o["output_type"] == "stream" and o["name"] == "stderr"]
    assert stderr == [], stderr
    images = [o for o in outputs if o["output_type"] == "display_data" and "image/png" in o["data"]]
    assert len(images) >= 2  # ROC and calibration of the test split
    text = "\n".join(_text(o) for o in outputs)
    assert "registered as version 1" in text
    assert "'unknown_customer'" in text and "'ok'" in text
    assert "customers scored as of" in text and ": drift" in text  # the price rise is detected
    assert "retrain due:" in text
    assert "cleaned up" in text
    assert not list(tmp_path.glob("churnops-walkthrough-*"))  # its temporary home is gone


def test_the_committed_notebook_has_its_outputs() -> None:
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code)  # executed top to bottom, in order
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs)
