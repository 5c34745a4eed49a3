"""Spilled MLflow writes: a replay the server cuts short keeps exactly what it could not send."""

from __future__ import annotations

import json

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from lstm_ray.tracking.outbox import SPILL_FILE, Outbox, Write, replay_spilled, spill_folder
from lstm_ray.tracking.runs import connect

NOBODY = "http://127.0.0.1:9"  # nothing listens there: every write stays unsent


def test_a_replay_cut_short_keeps_the_unsent_writes_and_the_runs_it_created(tmp_path):
    connect(NOBODY)  # short HTTP retries
    store = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(store)
    experiment = client.create_experiment("replay")
    parent = client.create_run(experiment).info.run_id
    staged = tmp_path / "model"
    staged.mkdir()
    (staged / "partial.txt").write_text("no model here: logging it fails at every try")
    down = Outbox(MlflowClient(NOBODY), experiment, parent)
    down.put(Write("start", "t1"))
    down.put(Write("log", "t1", metrics=[Metric("train_loss", 0.5, 0, 1)]))
    down.put(Write("model", None, source=str(staged)))
    assert not down.close(timeout=0.5)
    spill = tmp_path / "results" / "mlflow-outbox" / parent
    down.spill(spill_folder(str(tmp_path / "results"), parent))
    state = json.loads((spill / SPILL_FILE).read_text())
    (spill / SPILL_FILE).write_text(json.dumps(state | {"tracking_uri": store}))  # the server is back, elsewhere

    assert replay_spilled(str(tmp_path / "results"), timeout=2) == []
    kept = json.loads((spill / SPILL_FILE).read_text())
    assert [w["kind"] for w in kept["writes"]] == ["model"]  # the start and the log were sent, not kept
    runs = client.search_runs([experiment], "tags.`lstm_ray.trial_id` = 't1'")
    assert len(runs) == 1 and kept["run_ids"] == {"t1": runs[0].info.run_id}
    assert [m.value for m in client.get_metric_history(runs[0].info.run_id, "train_loss")] == [0.5]
