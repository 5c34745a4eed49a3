"""Everything MLflow: a parent run per sweep, a child run per trial, the winner as a raw-row pyfunc model.

    runs.py          every tag name, `connect` (the one way to open MLflow), queries that read runs back
    callbacks.py     the Ray Tune callbacks: trial events become child-run writes (`TrialLogger`)
    sweep.py         the parent run (`SweepTracker`, `start_tracking`): config, leaderboard, report, checkpoints
    outbox.py        the ordered queue of writes one background thread sends; spilled when the server is down
    serving.py       the winner as a pyfunc model predicting from raw rows
    sqlite_store.py  new local SQLite stores, copied from a migrated empty one

Nothing here imports `lstm_ray.reports`: the sweep writes its report and hands the folder to the tracker.
"""

from lstm_ray.tracking.callbacks import OutcomeCounter, TrialLogger
from lstm_ray.tracking.outbox import Outbox, replay_spilled
from lstm_ray.tracking.runs import TAG_MODEL_URI, child_runs, connect, sweep_trials
from lstm_ray.tracking.sweep import SweepTracker, UntrackedSweep, start_tracking

__all__ = [
    "TAG_MODEL_URI",
    "OutcomeCounter",
    "Outbox",
    "SweepTracker",
    "TrialLogger",
    "UntrackedSweep",
    "child_runs",
    "connect",
    "replay_spilled",
    "start_tracking",
    "sweep_trials",
]
