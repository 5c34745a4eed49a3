"""The python blocks of README.md and docs/*.md run as written, where a user would run them: in a folder after
a small co2 sweep (`mlflow.db` with the winner registered as `co2-forecaster`, `lstm-ray-results/`, the clone's
`configs/`, and `latest_weeks.csv` cut from the bundled co2 rows as a user would cut it).

A document's blocks run in order in one Python process sharing their names, as a user pastes them into one
session; every block runs unless the line above its fence says why it cannot, e.g.
`<!-- snippet: no-run: needs a Ray cluster -->`. A failing block is named in the traceback as `document:line`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, TINY

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!-- snippet: (?P<mark>[^\n]*?) -->\n)?```python\n(?P<code>.*?)^```", re.S | re.M)
NO_RUN = "no-run:"
LATEST_WEEKS = 52  # rows of latest_weeks.csv: a year of the bundled series' last weeks
RUNNER = """
import json, sys
names = {"__name__": "__main__"}
for where, code in json.load(sys.stdin):
    exec(compile(code, where, "exec"), names)
"""


@dataclass(frozen=True)
class Snippet:
    """One fenced python block: where it is, its code, and the mark above its fence ('' when none)."""

    document: str
    line: int
    code: str
    mark: str

    def __str__(self) -> str:
        return f"{self.document}:{self.line}"


def snippets() -> list[Snippet]:
    """Every ```python block of the README and docs/*.md, in document order."""
    found = []
    for path in DOCUMENTS:
        text = path.read_text()
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("code"))  # the fence's line, counted from 1
            found.append(Snippet(str(path.relative_to(REPO)), line, match["code"], match["mark"] or ""))
    return found


SNIPPETS = snippets()
RUNNABLE = [s for s in SNIPPETS if not s.mark.startswith(NO_RUN)]
RUNNABLE_DOCUMENTS = list(dict.fromkeys(s.document for s in RUNNABLE))


def test_the_model_snippet_is_found_and_not_marked_no_run():
    assert any('model.predict(pd.read_csv("latest_weeks.csv"))' in s.code for s in RUNNABLE), RUNNABLE


def test_every_mark_is_known_and_a_block_that_does_not_run_says_why():
    for snippet in SNIPPETS:
        if snippet.mark:
            assert snippet.mark.startswith(NO_RUN), f"{snippet}: unknown mark {snippet.mark!r}; use '{NO_RUN} WHY'"
            assert snippet.mark.removeprefix(NO_RUN).strip(), f"{snippet}: say why it does not run"


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory, local_ray):
    """A folder after a one-trial co2 sweep that registered its winner as co2-forecaster, run from there (a
    SQLite store keeps its artifacts in ./mlruns of the working directory)."""
    import lstm_ray
    from lstm_ray.config import parse_config
    from lstm_ray.sweep.tuning import run_sweep

    folder = tmp_path_factory.mktemp("user")
    raw = TINY | {
        "search": {"num_samples": 1, "space": {}},
        "tracking": {"uri": f"sqlite:///{folder}/mlflow.db", "register_as": "co2-forecaster"},
        "storage": {"path": str(folder / "lstm-ray-results")},
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        run_sweep(parse_config(raw), config_text="name: tiny\n")
    bundled = (Path(lstm_ray.__file__).parent / "data" / "sets" / "co2.csv").read_text().splitlines()
    (folder / "latest_weeks.csv").write_text("\n".join([bundled[0], *bundled[-LATEST_WEEKS:]]) + "\n")
    (folder / "configs").symlink_to(REPO / "configs")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("document", RUNNABLE_DOCUMENTS)
def test_the_snippets_of_a_document_run_as_written(document, user_folder):
    blocks = [(str(s), s.code) for s in RUNNABLE if s.document == document]
    result = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=json.dumps(blocks),
        cwd=user_folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"a python block of {document} failed:\n{result.stderr[-4000:]}"
