"""examples/quickstart.ipynb runs top to bottom against a real local Ray and an MLflow SQLite store.

nbclient is not a dependency, so the code cells run with plain `exec`, in order, in one namespace, from a
scratch copy of the repository layout (the notebook reads ../configs/quickstart.yaml, as Jupyter started in
examples/ would). A cell's last bare expression is Jupyter's display only: exec evaluates it and drops it. The
one name Jupyter gives every cell, `display`, is a function here that keeps what the notebook shows.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest
from conftest import REPO

NOTEBOOK = REPO / "examples" / "quickstart.ipynb"


def code_cells() -> list[str]:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    return ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]


@pytest.mark.slow
def test_the_quickstart_notebook_runs_and_its_winner_predicts(tmp_path, local_ray, monkeypatch):
    (tmp_path / "configs").mkdir()
    shutil.copy(REPO / "configs" / "quickstart.yaml", tmp_path / "configs")
    (tmp_path / "examples").mkdir()
    monkeypatch.chdir(tmp_path / "examples")
    shown: list = []
    namespace: dict = {"__name__": "__main__", "display": lambda *objects, **options: shown.extend(objects)}
    for number, source in enumerate(code_cells(), 1):
        exec(compile(source, f"{NOTEBOOK.name} cell {number}", "exec"), namespace)
    result = namespace["result"]
    assert len(result.leaderboard) == 4 and result.model_uri
    assert len(namespace["figures"]) >= 3 and namespace["page"].is_file()
    assert [bundle["image/png"][:8] for bundle in shown] == [b"\x89PNG\r\n\x1a\n"] * len(namespace["figures"])
    predicted = namespace["predicted"]
    assert len(predicted) and all(math.isfinite(v) for v in predicted.select_dtypes("number").to_numpy().ravel())
