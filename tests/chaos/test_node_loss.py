"""A worker node dies mid-sweep: its trials continue from their last checkpoints on another node.

The fault is `local_cluster.kill_worker`: SIGKILL to every process of the node (raylet, agents, trial actors),
as when a machine goes away. The sweep's storage is a folder every node sees, as NFS would be.
"""

from __future__ import annotations

import pytest
from cli_runs import cli, finish
from mlflow.tracking import MlflowClient
from tracked_metrics import epochs_once_each, logged, parent_run_id, reported, sweep_folder

from chaos.sweeps import local_cluster, node_of, random_sweep, tune_rows, wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

EPOCHS = 10
TRIALS = 4


def training_on(cluster, node, results):
    """Trial id -> (last epoch, pid) of the trials training on `node` now, past epoch 1 and before the end."""
    pids = set(cluster.session_pids()[node.name])
    caught = {}
    for trial, rows in tune_rows(results).items():
        last = rows[-1]
        if last["pid"] in pids and 2 <= last["epoch"] <= EPOCHS - 3:
            caught[trial] = (last["epoch"], last["pid"])
    return caught


def test_a_killed_worker_nodes_trials_resume_from_their_checkpoints_on_another_node(cluster, mlflow_server, tmp_path):
    sweep = random_sweep(tmp_path, "chaos-node-loss", mlflow_server.url, TRIALS, EPOCHS)
    number, victim = next((i, w) for i, w in enumerate(cluster.workers, start=1) if not w.stopped)
    driver = cli("tune", str(sweep), cwd=tmp_path, env=cluster.client_env())
    try:
        caught = wait_until(
            lambda: training_on(cluster, victim, tmp_path / "results"), f"a trial trains on {victim.name}", driver
        )
        local_cluster.kill_worker(cluster, number)
        out = finish(driver)
    finally:
        finish(driver)
    assert driver.returncode == 0, out[-3000:]
    assert f"Sweep chaos-node-loss: {TRIALS} trials" in out and "0 failed" in out, out[-3000:]

    rows = tune_rows(tmp_path / "results")
    for trial, (epoch, pid) in caught.items():
        before = [r["epoch"] for r in rows[trial] if r["pid"] == pid]
        after = [r for r in rows[trial] if r["pid"] != pid]
        # Restored from the checkpoint of the last epoch it reported there, not started again. Tune registers a
        # result's checkpoint in a second call to the trial's actor: a node lost between the two restores the
        # checkpoint before, and that one epoch trains again.
        assert before == list(range(1, len(before) + 1)) and len(before) >= epoch, before
        again = after[0]["epoch"]
        assert again in (len(before), len(before) + 1) and [r["epoch"] for r in after] == list(range(again, EPOCHS + 1))
        lost, elsewhere = node_of(cluster, pid), node_of(cluster, after[0]["pid"])
        assert lost["state"] == "DEAD" and elsewhere["state"] == "ALIVE" and not elsewhere["is_head_node"]

    client = MlflowClient(mlflow_server.url)
    truth = reported(sweep_folder(out), first_of_each_epoch=True)
    assert len(truth) == TRIALS and epochs_once_each(truth)
    history = logged(client, parent_run_id(out), truth)
    assert history == truth  # each child run continued: every epoch once (the first of one trained again)
    parent = client.get_run(parent_run_id(out))
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_completed"] == TRIALS
