"""`submit_sweep` and its `SweepJob` handle, called from Python as a notebook would, against a real local cluster.

The calls run in a client process of their own: Ray reads RAY_AUTH_MODE once, when it is first imported, so this
pytest process (which may have imported Ray already) cannot turn into a token-auth client. The sweep's driver runs
on the head as a Ray job and writes the SQLite MLflow store; the handle's result is checked against what MLflow
itself holds. Cluster helpers (start, stop, the tiny sweep) are test_submit.py's.
"""

from __future__ import annotations

import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor

import pytest
from cluster_runs import mlflow_runs, running_cluster, tiny_sweep, wait_for

import lstm_ray
from lstm_ray.cluster.job_handle import SweepJob, param_value, submit_sweep
from lstm_ray.config import load_config
from lstm_ray.errors import ConfigError
from lstm_ray.tracking.runs import TAG_BEST_TRIAL_ID, TAG_MODEL_URI, TAG_ROLE, TAG_TRIAL_ID


def test_mlflow_params_read_back_as_the_values_they_were():
    texts = ["8", "1e-05", "0.01", "None", "True", "[4, 8]", "gru", "a b"]
    assert [param_value(t) for t in texts] == [8, 1e-05, 0.01, None, True, [4, 8], "gru", "a b"]


@pytest.mark.parametrize(
    ("section", "values", "key"),
    [("storage", {"path": "results"}, "storage.path"), ("model", {"dropout": 1.5}, "model.dropout")],
)
def test_a_config_mapping_is_validated_for_a_cluster_before_anything_is_sent(tiny_raw, section, values, key):
    raw = tiny_raw | {"tracking": {"uri": "sqlite:////srv/mlflow.db"}, "storage": {"path": "/srv/results"}}
    raw[section] = raw[section] | values
    with pytest.raises(ConfigError) as err:
        submit_sweep(raw, "http://127.0.0.1:9")  # nothing listens there: refused before it is asked
    assert err.value.key == key


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One worker with 1 fake GPU: two 0.5-GPU trials at once."""
    with running_cluster(tmp_path_factory.mktemp("handle-cluster"), workers=1) as handle:
        yield handle


@pytest.fixture(scope="module")
def client(cluster):
    """`client(fn, *args)`: fn(*args) in a fresh Python process with the cluster's client environment (token
    auth), its return value or exception brought back here."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(cluster.client_env(saved))
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    try:
        pool.submit(os.getpid).result()  # started now, under this environment
    finally:
        os.environ.clear()
        os.environ.update(saved)
    with pool:
        yield lambda fn, *args: pool.submit(fn, *args).result()


@pytest.mark.slow
@pytest.mark.cluster
def test_a_submitted_sweep_succeeds_and_its_result_is_the_parent_run_in_mlflow(client, cluster, tmp_path):
    job = client(submit_sweep, load_config(tiny_sweep(tmp_path)), cluster.dashboard_url)  # a loaded config
    assert client(job.status) in {"PENDING", "RUNNING", "SUCCEEDED"}
    assert client(job.wait, 300) == "SUCCEEDED" and client(job.status) == "SUCCEEDED"
    logs = client(job.logs)
    assert "4/4 trials done: 4 completed" in logs
    outcome = client(job.result, 10)
    parent = next(r for r in mlflow_runs(tmp_path) if r.data.tags.get(TAG_ROLE) == "sweep")
    assert outcome.parent_run_id == parent.info.run_id and f"MLflow parent run {parent.info.run_id}" in logs
    assert outcome.status == "FINISHED" and outcome.metric == "val_rmse"
    assert f"Best trial: val_rmse = {outcome.best_value:.5g}" in logs  # the driver's summary says the same
    assert outcome.test_metrics and outcome.test_metrics == {
        k: v for k, v in parent.data.metrics.items() if k.startswith("test_") and not k.endswith("_vs_baseline")
    }
    for key, value in outcome.test_metrics.items():
        assert f"{key} = {value:.5g}" in logs  # "Winner on the held-out test split: test_rmse = ..."
    assert outcome.baselines and all(parent.data.metrics[f"baseline.{k}"] == v for k, v in outcome.baselines.items())
    assert outcome.model_uri and outcome.model_uri == parent.data.tags[TAG_MODEL_URI]
    # The winner's hyperparameters, typed again, are those of the child run the parent names as the best trial.
    best = next(r for r in mlflow_runs(tmp_path) if r.data.tags.get(TAG_TRIAL_ID) == outcome.best_trial_id)
    assert outcome.best_trial_id == parent.data.tags[TAG_BEST_TRIAL_ID]
    assert outcome.best_params == {"model.hidden_size": int(best.data.params["model.hidden_size"])}
    assert outcome.best_params["model.hidden_size"] in (4, 8)
    # lstm_ray.submit's handle gives the same sweep as the SweepResult tune() returns, leaderboard included.
    result = client(lstm_ray.Job(**vars(job)).result, 10)
    assert isinstance(result, lstm_ray.SweepResult) and result.parent_run_id == outcome.parent_run_id
    assert (result.best_params, result.test_metrics) == (outcome.best_params, outcome.test_metrics)
    assert result.baseline_ratios == {k: v for k, v in parent.data.metrics.items() if k.endswith("_vs_baseline")}
    assert len(result.leaderboard) == 4 and result.storage_path == parent.data.params["storage.path"]


@pytest.mark.slow
@pytest.mark.cluster
def test_stop_ends_a_running_sweep_stopped_and_it_has_no_result(client, cluster, tmp_path):
    long = tiny_sweep(tmp_path, train={"max_epochs": 500}, search={"num_samples": 40})
    job = client(submit_sweep, long, cluster.dashboard_url)  # the YAML file
    running = re.compile(r"trials done: .* \| [1-9]\d* running")  # the driver's progress line
    assert wait_for(lambda: running.search(client(job.logs)), timeout=120)
    with pytest.raises(TimeoutError, match=f"job {job.job_id} still RUNNING after 1 s"):
        client(job.wait, 1)
    assert client(job.stop) == "STOPPED"
    attached = client(SweepJob.attach, job.job_id, cluster.dashboard_url)
    assert attached == job and client(attached.status) == "STOPPED"  # same experiment and MLflow store, from metadata
    with pytest.raises(RuntimeError, match="ended STOPPED: the sweep has no result"):
        client(job.result)


@pytest.mark.slow
@pytest.mark.cluster
def test_attaching_to_an_unknown_job_names_the_job(client, cluster):
    with pytest.raises(ConfigError) as err:
        client(SweepJob.attach, "no-such-job", cluster.dashboard_url)
    assert err.value.key == "JOB" and "no job 'no-such-job'" in str(err.value)
