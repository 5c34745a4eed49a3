"""Inputs that pass the config's own checks and would then fail every trial are refused before Ray starts.

    scripts/loopback-only .venv/bin/python -m pytest tests/config/test_caught_before_ray.py -q -p no:cacheprovider

Each kind is generated at its root cause: a quniform whose rounding leaves the key's range, garbage bytes as an
embedding vector file or a model.init_from checkpoint, an MLflow run that does not exist, an embedding on float
data, zeros at random places in a target searched by val_mape, a validation split of one class under val_auc.
Each input runs through `lstm-ray validate` and `lstm-ray tune` in process: one `error: KEY: ...` line on stderr,
exit 2, and no Ray imported.
"""

from __future__ import annotations

import csv
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_bad_input import ray_state, run_in_process

ROWS = 80  # a series long enough for lookback 8 + horizon 2 in every split
BASE = {
    "name": "caught",
    "data": {"source": "builtin:co2", "target": "co2", "time_column": "date", "lookback": 8, "horizon": 2},
    "model": {"hidden_size": 8},
    "train": {"max_epochs": 2},
    "search": {"num_samples": 2, "space": {}},
}
CHECKED = settings(max_examples=8, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def refused(folder: Path, raw: dict[str, Any], key: str) -> str:
    """Run `validate` and `tune` on `raw`; assert each prints one error line naming `key`, exits 2 and leaves Ray
    alone. Returns the line."""
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    before = ray_state()
    lines = []
    for command in ("validate", "tune"):
        code, out, err = run_in_process(command, [str(path)])
        assert code == 2 and out == "" and "Traceback" not in err, (command, code, out, err)
        assert len(err.splitlines()) == 1 and err.startswith(f"error: {key}: "), err
        lines.append(err.strip())
    assert ray_state() == before, "Ray was imported or started"
    assert lines[0] == lines[1]
    return lines[0]


def experiment(**sections: dict[str, Any]) -> dict[str, Any]:
    """BASE with the keys of each section given replaced."""
    raw = yaml.safe_load(yaml.safe_dump(BASE))
    for section, keys in sections.items():
        raw.setdefault(section, {}).update(keys)
    return raw


def write_csv(path: Path, columns: dict[str, list]) -> str:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(zip(*columns.values(), strict=True))
    return str(path)


def wave(n: int = ROWS) -> list[float]:
    """A positive series: no zeros of its own."""
    return [round(2.0 + math.sin(i / 5), 6) for i in range(n)]


# --- quniform ranges whose rounded ends leave the key's range -----------------------------------------------------


@st.composite
def rounded_out_of_range(draw: st.DrawFn) -> tuple[str, list[float], str]:
    """(config path, [low, high, q], the end that rounds out): low and high valid, round(end / q) * q not."""
    kind = draw(st.sampled_from(["lr to 0", "dropout to 1", "hidden size to 0"]))
    if kind == "lr to 0":  # round(low / q) is 0: the lowest lr drawn is 0.0
        q = draw(st.floats(1e-4, 1.0))
        low = q * draw(st.floats(0.01, 0.49))
        return "train.lr", [low, min(10.0, low + draw(st.floats(0.0, 5.0))), q], "low"
    if kind == "dropout to 1":  # round(high / q) * q >= 1: the highest dropout drawn is 1.0 or more
        steps = draw(st.integers(2, 20))  # q in [1 / steps, 1 / (steps - 0.5)): highs in (1 - q / 2, 1) round up
        q = draw(st.floats(1 / steps, 1 / (steps - 0.5), exclude_max=True))
        high = draw(st.floats((steps - 0.5) * q, 1.0, exclude_min=True, exclude_max=True))
        assume(round(high / q) * q >= 1.0)
        return "model.dropout", [0.0, high, q], "high"
    q = draw(st.integers(3, 64))  # round(low / q) is 0: the smallest hidden size drawn is 0
    low = draw(st.integers(1, (q - 1) // 2))
    return "model.hidden_size", [low, low + draw(st.integers(0, 256)), q], "low"


@CHECKED
@given(case=rounded_out_of_range(), algorithm=st.sampled_from(["hyperopt", "optuna"]))
def test_a_quniform_that_rounds_out_of_its_key_range_is_refused(case, algorithm):
    path, bounds, end = case
    with tempfile.TemporaryDirectory() as tmp:
        raw = experiment(search={"algorithm": algorithm, "space": {path: {"quniform": bounds}}})
        line = refused(Path(tmp), raw, f"search.space.{path}")
    assert f"rounds its {end} end to" in line and "multiples of q" in line


@CHECKED
@given(q=st.sampled_from([0.3, 0.07, 0.15]), low_steps=st.integers(0, 3), offset=st.floats(0.01, 0.4))
def test_random_search_refuses_quniform_bounds_that_are_not_multiples_of_q(q, low_steps, offset):
    high = (low_steps + 1 + offset) * q  # a valid dropout below 1, and not a multiple of q
    assume(high < 0.95 and round(high / q) * q < 1.0)
    with tempfile.TemporaryDirectory() as tmp:
        raw = experiment(search={"algorithm": "random", "space": {"model.dropout": {"quniform": [0.0, high, q]}}})
        line = refused(Path(tmp), raw, "search.space.model.dropout")
    assert "multiples of q" in line


# --- files that are not what their key says -------------------------------------------------------------------


@CHECKED
@given(contents=st.binary(max_size=300))
def test_garbage_bytes_as_an_init_from_checkpoint_are_refused(contents):
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "checkpoint.pt"
        source.write_bytes(contents)
        line = refused(Path(tmp), experiment(model={"hidden_size": 8, "init_from": str(source)}), "model.init_from")
    assert "does not load as weights only" in line or "is not an lstm-ray checkpoint" in line


@settings(max_examples=2, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(run_id=st.text("0123456789abcdef", min_size=32, max_size=32))
def test_an_init_from_run_that_does_not_exist_is_refused(run_id):
    with tempfile.TemporaryDirectory() as tmp:
        raw = experiment(
            model={"hidden_size": 8, "init_from": f"runs:/{run_id}/model"},
            tracking={"uri": f"sqlite:///{tmp}/mlflow.db"},
        )
        line = refused(Path(tmp), raw, "model.init_from")
    assert run_id in line and "not found" in line


@CHECKED
@given(
    good=st.lists(st.text("abc", min_size=1, max_size=3), min_size=1, max_size=3),
    bad=st.binary(min_size=1, max_size=20),
)
def test_a_vector_file_that_is_not_utf8_is_refused(good, bad):
    with tempfile.TemporaryDirectory() as tmp:
        vectors = Path(tmp) / "vectors.txt"
        lines = [f"{token} 0.1 0.2\n".encode() for token in good]
        vectors.write_bytes(b"".join(lines) + b"w \xff" + bad + b" 0.3\n")  # 0xff never appears in UTF-8
        line = refused(Path(tmp), experiment(model={"embedding_vectors": str(vectors)}), "model.embedding_vectors")
    assert "not UTF-8" in line


@CHECKED
@given(contents=st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_a_malformed_vector_file_is_refused(contents):
    with tempfile.TemporaryDirectory() as tmp:
        vectors = Path(tmp) / "vectors.txt"
        vectors.write_bytes(contents)
        refused(Path(tmp), experiment(model={"embedding_vectors": str(vectors)}), "model.embedding_vectors")


# --- data the model or the metric cannot use ------------------------------------------------------------------


@CHECKED
@given(dim=st.integers(1, 32), vocab=st.integers(2, 1000), rows=st.integers(ROWS, 2 * ROWS))
def test_an_embedding_on_float_data_is_refused(dim, vocab, rows):
    with tempfile.TemporaryDirectory() as tmp:
        source = write_csv(Path(tmp) / "series.csv", {"t": list(range(rows)), "y": wave(rows)})
        raw = experiment(
            data={"source": source, "target": "y", "time_column": "t"},
            model={"hidden_size": 8, "embedding_dim": dim, "vocab_size": vocab},
        )
        line = refused(Path(tmp), raw, "model.embedding_dim")
    assert "no categorical column to embed" in line


@CHECKED
@given(data=st.data())
def test_val_mape_on_a_target_with_zeros_is_a_data_error(data):
    zeros = data.draw(st.sets(st.integers(0, ROWS - 1), min_size=1, max_size=ROWS // 4), label="zeros at")
    values = [0.0 if i in zeros else v for i, v in enumerate(wave())]
    with tempfile.TemporaryDirectory() as tmp:
        source = write_csv(Path(tmp) / "series.csv", {"t": list(range(ROWS)), "y": values})
        raw = experiment(data={"source": source, "target": "y", "time_column": "t"}, search={"metric": "val_mape"})
        line = refused(Path(tmp), raw, "search.metric")
    assert f"{len(zeros)} zero values" in line and "val_smape" in line and "val_mase" in line


@CHECKED
@given(data=st.data())
def test_val_auc_on_a_validation_split_of_one_class_is_a_data_error(data):
    sequences, steps = 40, 4
    val = data.draw(st.sets(st.integers(0, sequences - 1), min_size=2, max_size=8), label="val sequences")
    only = data.draw(st.sampled_from(["cat", "dog"]), label="the one validation class")
    test = [s for s in range(sequences) if s not in val][:6]
    labels = [only if s in val else ("cat", "dog")[s % 2] for s in range(sequences)]
    split = ["val" if s in val else "test" if s in test else "train" for s in range(sequences)]
    with tempfile.TemporaryDirectory() as tmp:
        source = write_csv(
            Path(tmp) / "sequences.csv",
            {
                "id": [s for s in range(sequences) for _ in range(steps)],
                "step": list(range(steps)) * sequences,
                "x": wave(sequences * steps),
                "label": [labels[s] for s in range(sequences) for _ in range(steps)],
                "split": [split[s] for s in range(sequences) for _ in range(steps)],
            },
        )
        classify = {"task": "classify", "id_column": "id", "target": "label", "time_column": "step"}
        raw = experiment(
            data={"source": source, "features": ["x"], "split_column": "split", **classify},
            search={"metric": "val_auc"},
        )
        line = refused(Path(tmp), raw, "search.metric")
    assert f"holds only [{only!r}]" in line


def test_a_token_column_that_fits_the_embedding_passes(tmp_path):
    """The embedding check's control: a categorical token column, index-encoded, as the only input."""
    sequences, steps = 40, 4
    source = write_csv(
        tmp_path / "tokens.csv",
        {
            "id": [s for s in range(sequences) for _ in range(steps)],
            "step": list(range(steps)) * sequences,
            "token": [f"w{(s * 7 + k) % 11}" for s in range(sequences) for k in range(steps)],
            "label": [("cat", "dog")[s % 2] for s in range(sequences) for _ in range(steps)],
        },
    )
    data = {"source": source, "task": "classify", "id_column": "id", "target": "label", "time_column": "step"}
    data |= {"features": ["token"], "categorical": ["token"], "categorical_encoding": "index"}
    path = tmp_path / "experiment.yaml"
    raw = experiment(data=data, model={"hidden_size": 8, "embedding_dim": 4, "vocab_size": 12})
    path.write_text(yaml.safe_dump(raw))
    code, out, err = run_in_process("validate", [str(path)])
    assert code == 0 and out.startswith("OK: ") and err == "", err
    raw["model"]["vocab_size"] = 11
    assert refused(tmp_path, raw, "model.vocab_size").endswith("set model.vocab_size: 12")


@pytest.mark.parametrize("metric", ["val_smape", "val_mase"])
def test_the_metrics_the_zeros_error_suggests_are_accepted_on_the_same_data(tmp_path, metric):
    values = [0.0 if i % 9 == 0 else v for i, v in enumerate(wave())]
    source = write_csv(tmp_path / "series.csv", {"t": list(range(ROWS)), "y": values})
    path = tmp_path / "experiment.yaml"
    raw = experiment(data={"source": source, "target": "y", "time_column": "t"}, search={"metric": metric})
    path.write_text(yaml.safe_dump(raw))
    code, out, err = run_in_process("validate", [str(path)])
    assert code == 0, err
