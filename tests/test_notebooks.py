"""The notebooks run from top to bottom (their code cells, in order, in one namespace, with SMALL = True).

A notebook that reads ../shared/data names the folders in its metadata
(`"personalize_torch": {"shared_data": ["movielens/ml-100k"]}`) and is skipped when one is missing. Each
notebook checks its own results with asserts and ends by defining `recommendations`.
"""

import json
import tempfile
from pathlib import Path

import pytest
from tests.conftest import shared_data

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def data_folders(path: Path) -> list[str]:
    """The ../shared/data folders a notebook reads (its metadata says)."""
    return json.loads(path.read_text())["metadata"].get("personalize_torch", {}).get("shared_data", [])


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name, marks=[pytest.mark.real_data] if data_folders(p) else [])
                                  for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")   # figures are drawn, not shown
    for folder in data_folders(path):
        shared_data(folder)
    notebook = json.loads(path.read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))   # the notebooks' mkdtemp() work dirs go here too
    cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert cells
    namespace = {"SMALL": True, "__name__": "__main__"}
    try:
        for i, cell in enumerate(cells):
            source = "".join(cell["source"])
            exec(compile(source, f"{path.name}[cell {i}]", "exec"), namespace)
    finally:
        import matplotlib.pyplot as plt

        plt.close("all")
    recommendations = namespace.get("recommendations")
    assert isinstance(recommendations, list) and recommendations, "the notebook ends with a list of recommendations"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    """Outputs would go stale with every change to the package (and can carry data)."""
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in cells)
