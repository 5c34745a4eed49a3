"""The sweep report and leaderboard, read from Tune's results or from MLflow (never imported by tracking/).

    record.py   `SweepRecord`: a sweep's trials, their leaderboard, hyperparameter importance, `trial_size`
    figures.py  the report's figures (matplotlib, PNG)
    front.py    a multi-objective sweep's Pareto front as the report draws it, read from Tune or from MLflow
    page.py     `write_report` (the offline HTML page) and `report_sweep` (`lstm-ray report`)

Imports point one way: page -> figures -> record -> front.
"""

from lstm_ray.reports.page import report_sweep, write_report
from lstm_ray.reports.record import SweepRecord, TrialRecord, importance, trial_size

__all__ = ["SweepRecord", "TrialRecord", "importance", "report_sweep", "trial_size", "write_report"]
