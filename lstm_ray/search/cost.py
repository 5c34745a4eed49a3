"""What a sweep has spent: GPU-hours and money, per trial and in all, from the resources each trial holds times
the time it holds them. Ray-free: the clock is passed in, so the accounting is tested without a cluster.

    ledger = CostLedger(PricesConfig(gpu_hour=2.5, cpu_hour=0.05), slots=2)
    ledger.start("t1", cpu=1, gpu=0.25, now=0.0)   # a quarter GPU counts a quarter
    ledger.stop("t1", now=3600.0)
    ledger.trial("t1", now=3600.0)                 # Spend(gpu_hours=0.25, cpu_hours=1.0, usd=0.675)
    ledger.idle(now=3600.0)                        # the second slot, held for nothing: 0.25 GPU-h more
    share_price(1, 0.25, {"CPU": 4, "GPU": 1}, {PRICE_LABEL: "1.006"})  # 0.2515 USD/h: a quarter of the node
    budget = Budget(BudgetConfig(usd=150), ledger, max_epochs=20)
    budget.over(now)                               # "usd 150.2 >= 150" once the cap is reached, else None
    budget.room_for_next(cpu=1, gpu=0.25, now=now) # False once the next trial could not finish within it
    sweep_cost_lines(cfg, data)                    # `validate`: the whole sweep's estimated cost, before any spend

A trial that holds resources again (paused and resumed by HyperBand or PBT, restarted after a failure) adds each
stretch it held them. A trial on a node labelled `lstm-ray/usd-per-hour` (cluster/*.yaml) pays its share of the
node's price: the larger of its share of the node's GPUs and of its CPUs (a quarter of a 4-GPU node's GPUs pays a
quarter of the node); on a node without the label it pays `search.prices`. The sweep's `slots` are held from its
first trial's start to its end: while fewer trials than slots run, the free slots cost what the latest trial
held (`idle`), and count against the budget.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from lstm_ray.config import ExperimentConfig
from lstm_ray.config.budget import BudgetConfig, PricesConfig
from lstm_ray.errors import ConfigError

__all__ = [
    "PRICE_LABEL",
    "Budget",
    "CostLedger",
    "Spend",
    "planned_trials",
    "refuse_unpriced_budget",
    "share_price",
    "spend_of",
    "sweep_cost_lines",
]

HOUR = 3600.0
PRICE_LABEL = "lstm-ray/usd-per-hour"  # a Ray node label: what the whole node costs an hour (cluster/*.yaml)


@dataclass(frozen=True)
class Spend:
    gpu_hours: float = 0.0
    cpu_hours: float = 0.0
    usd: float = 0.0

    def __add__(self, other: Spend) -> Spend:
        return Spend(self.gpu_hours + other.gpu_hours, self.cpu_hours + other.cpu_hours, self.usd + other.usd)

    def scaled(self, factor: float) -> Spend:
        return Spend(self.gpu_hours * factor, self.cpu_hours * factor, self.usd * factor)


def spend_of(
    cpu: float, gpu: float, seconds: float, prices: PricesConfig | None, usd_per_hour: float | None = None
) -> Spend:
    """What holding `cpu` cores and `gpu` GPUs (a fraction counts its fraction) for `seconds` costs: at
    `usd_per_hour` (the share of a labelled node's price) when given, else at `prices`."""
    gpu_hours, cpu_hours = gpu * seconds / HOUR, cpu * seconds / HOUR
    if usd_per_hour is not None:
        return Spend(gpu_hours, cpu_hours, usd_per_hour * seconds / HOUR)
    usd = 0.0 if prices is None else gpu_hours * prices.gpu_hour + cpu_hours * prices.cpu_hour
    return Spend(gpu_hours, cpu_hours, usd)


def share_price(cpu: float, gpu: float, resources: dict[str, float], labels: dict[str, str]) -> float | None:
    """USD an hour for holding `cpu` and `gpu` of a node with Ray `resources` and `labels`: the node's
    PRICE_LABEL times the larger of the GPU and CPU shares held (at most the whole node); None without the label
    (or with one that is not a number >= 0: `search.prices` then counts)."""
    try:
        price = float(labels[PRICE_LABEL])
    except (KeyError, ValueError):
        return None
    if not math.isfinite(price) or price < 0:
        return None
    held = [(gpu, resources.get("GPU", 0.0)), (cpu, resources.get("CPU", 0.0))]
    shares = [part / whole for part, whole in held if whole > 0]
    return price * min(1.0, max(shares, default=1.0))


@dataclass
class _Held:
    cpu: float
    gpu: float
    since: float | None  # None while the trial holds nothing
    closed: Spend = dataclasses.field(default_factory=Spend)  # the stretches it held before
    epochs: int = 0
    seconds: float = 0.0  # held time of the closed stretches
    usd_per_hour: float | None = None  # its share of a labelled node's price; None: search.prices


class CostLedger:
    """Per-trial holdings and their spend at `prices`, and the sweep's idle `slots`; every method takes the clock
    (`now`, seconds)."""

    def __init__(self, prices: PricesConfig | None, slots: int = 0):
        self.prices, self.slots = prices, slots
        self.trials: dict[str, _Held] = {}
        self.idle_closed = Spend()  # what the free slots cost up to idle_since
        self.idle_since: float | None = None  # None before the first trial starts and after the sweep ends
        self.slot = _Held(0.0, 0.0, None)  # what one slot holds: the latest trial started

    def start(self, trial_id: str, *, cpu: float, gpu: float, now: float, usd_per_hour: float | None = None) -> None:
        self._tick(now)
        held = self.trials.setdefault(trial_id, _Held(cpu, gpu, None))
        if held.since is None:
            held.cpu, held.gpu, held.since, held.usd_per_hour = cpu, gpu, now, usd_per_hour
            self.slot = _Held(cpu, gpu, None, usd_per_hour=usd_per_hour)
            self.idle_since = now if self.idle_since is None else self.idle_since

    def stop(self, trial_id: str, *, now: float) -> None:
        held = self.trials.get(trial_id)
        if held is None or held.since is None:
            return
        self._tick(now)
        held.closed += spend_of(held.cpu, held.gpu, now - held.since, self.prices, held.usd_per_hour)
        held.seconds += now - held.since
        held.since = None

    def end(self, *, now: float) -> None:
        """The sweep is over: every trial stops holding, and so do the slots."""
        for trial_id in self.running():
            self.stop(trial_id, now=now)
        self._tick(now)
        self.idle_since = None

    def epoch(self, trial_id: str, epoch: int) -> None:
        """The trial has trained `epoch` epochs (the rate of a future trial is measured per epoch)."""
        if trial_id in self.trials:
            self.trials[trial_id].epochs = max(self.trials[trial_id].epochs, epoch)

    def trial(self, trial_id: str, *, now: float) -> Spend:
        held = self.trials[trial_id]
        if held.since is None:
            return held.closed
        return held.closed + spend_of(held.cpu, held.gpu, now - held.since, self.prices, held.usd_per_hour)

    def idle(self, *, now: float) -> Spend:
        """What the slots no trial held have cost: (slots - running trials) x what a slot holds, over time."""
        return self.idle_closed + self._idle_since(now)

    def total(self, *, now: float) -> Spend:
        """Every trial's spend and the idle slots'."""
        return sum((self.trial(t, now=now) for t in self.trials), self.idle(now=now))

    def running(self) -> list[str]:
        return [t for t, held in self.trials.items() if held.since is not None]

    def seconds_per_epoch(self, *, now: float) -> float | None:
        """Held seconds per trained epoch over every trial with an epoch; None before the first epoch."""
        trained = [h for h in self.trials.values() if h.epochs > 0]
        if not trained:
            return None
        seconds = sum(h.seconds + (0.0 if h.since is None else now - h.since) for h in trained)
        return seconds / sum(h.epochs for h in trained)

    def snapshot(self, *, now: float) -> dict[str, Any]:
        """The ledger as it stands, each open stretch closed at `now`: what a resumed sweep has spent already
        (`restore`). Plain data, saved by Tune with the experiment."""
        trials = {
            t: dataclasses.asdict(h) | {"since": None, "closed": dataclasses.asdict(self.trial(t, now=now))}
            for t, h in self.trials.items()
        }
        for t, held in self.trials.items():
            trials[t]["seconds"] = held.seconds + (0.0 if held.since is None else now - held.since)
        return {"trials": trials, "idle": dataclasses.asdict(self.idle(now=now))}

    def restore(self, saved: dict[str, Any]) -> None:
        """Go on from a `snapshot`: the trials it holds hold nothing until they start again."""
        for trial_id, held in saved["trials"].items():
            self.trials[trial_id] = _Held(**(held | {"closed": Spend(**held["closed"])}))
        self.idle_closed, self.idle_since = Spend(**saved["idle"]), None

    def _idle_since(self, now: float) -> Spend:
        if self.idle_since is None:
            return Spend()
        free = max(0, self.slots - len(self.running()))
        slot = self.slot
        rate = None if slot.usd_per_hour is None else slot.usd_per_hour * free
        return spend_of(slot.cpu * free, slot.gpu * free, now - self.idle_since, self.prices, rate)

    def _tick(self, now: float) -> None:
        """Close the idle stretch since the last change in running trials."""
        if self.idle_since is not None:
            self.idle_closed += self._idle_since(now)
            self.idle_since = now


class Budget:
    """`search.budget` against a ledger: whether the cap is reached and whether another trial still fits."""

    def __init__(self, limits: BudgetConfig, ledger: CostLedger, max_epochs: int):
        self.limits, self.ledger, self.max_epochs = limits, ledger, max_epochs

    def over(self, *, now: float) -> str | None:
        """Which limit the spend has reached ("gpu_hours 20.01 >= 20"), or None."""
        return self._beyond(self.ledger.total(now=now))

    def room_for_next(self, *, cpu: float, gpu: float, now: float) -> bool:
        """False when the spend so far, the running trials trained to max_epochs and one more trial of `cpu` and
        `gpu`, all at the measured seconds per epoch, would pass a limit. True before any epoch is measured."""
        per_epoch = self.ledger.seconds_per_epoch(now=now)
        if per_epoch is None:
            return self.over(now=now) is None
        projected = self.ledger.total(now=now)
        for trial_id in self.ledger.running():
            held = self.ledger.trials[trial_id]
            left = max(0, self.max_epochs - held.epochs) * per_epoch
            projected += spend_of(held.cpu, held.gpu, left, self.ledger.prices, held.usd_per_hour)
        rate = self.ledger.slot.usd_per_hour  # the next trial is priced as the latest
        projected += spend_of(cpu, gpu, self.max_epochs * per_epoch, self.ledger.prices, rate)
        return self._beyond(projected) is None

    def state(self, *, now: float) -> str:
        """The budget's state for the progress line: "spent 3.1/20 GPU-h, $12.30/$150"."""
        spent = self.ledger.total(now=now)
        parts = []
        if self.limits.gpu_hours is not None:
            parts.append(f"{spent.gpu_hours:.3g}/{self.limits.gpu_hours:.3g} GPU-h")
        if self.limits.usd is not None:
            parts.append(f"${spent.usd:.2f}/${self.limits.usd:g}")
        return "spent " + ", ".join(parts)

    def _beyond(self, spend: Spend) -> str | None:
        if self.limits.gpu_hours is not None and spend.gpu_hours >= self.limits.gpu_hours:
            return f"gpu_hours {spend.gpu_hours:.4g} >= {self.limits.gpu_hours:g}"
        if self.limits.usd is not None and spend.usd >= self.limits.usd:
            return f"usd {spend.usd:.4g} >= {self.limits.usd:g}"
        return None


def refuse_unpriced_budget(cfg: ExperimentConfig, node_labels: list[dict[str, str]]) -> None:
    """ConfigError naming search.budget.usd when a node a trial may run on (`node_labels`: the labels of each; []
    for the Ray this process starts, which has none) has no PRICE_LABEL and search.prices gives no price."""
    budget, prices = cfg.search.budget, cfg.search.prices
    if budget is None or budget.usd is None or (prices is not None and not prices.free):
        return
    if node_labels and all(share_price(0, 0, {}, labels) is not None for labels in node_labels):
        return
    unpriced = sum(share_price(0, 0, {}, labels) is None for labels in node_labels)
    where = (
        f"{unpriced} of the cluster's {len(node_labels)} node (type)s have no {PRICE_LABEL} label"
        if node_labels
        else "this machine's Ray has no node price"
    )
    raise ConfigError(
        "search.budget.usd",
        f"{budget.usd:g} USD cannot be counted without prices ({where}); set search.prices, e.g. "
        f"{{gpu_hour: 2.5, cpu_hour: 0.05}} (USD per GPU and per CPU core held for an hour), or label every node "
        f'type with its price, {PRICE_LABEL}: "3.06" (cluster/aws-gpu.yaml)',
    )


def planned_trials(cfg: ExperimentConfig) -> int:
    """Trials the sweep will run: num_samples (times the grid), capped by max_trials."""
    grid = math.prod(len(d.args) for d in cfg.parsed_space().values() if d.kind == "grid")
    total = cfg.search.num_samples * grid
    return min(total, cfg.search.max_trials or total)


def sweep_cost_lines(cfg: ExperimentConfig, data: Any) -> list[str]:
    """What `validate` prints with search.budget or search.prices: trials x epochs x one epoch of the cheapest trial
    timed here (`train.epoch_estimate`) x what a trial holds, at search.prices, against the budget. Every trial
    trains max_epochs (an upper bound where a scheduler stops trials early); with resources.gpu: auto a trial is
    counted as one whole GPU. [] without budget and prices; one line saying why when nothing can be timed here."""
    search = cfg.search
    if search.budget is None and search.prices is None:
        return []
    from lstm_ray.train.epoch_estimate import estimate_epoch  # torch: only when there is a cost to estimate

    estimate = estimate_epoch(cfg, data)
    if estimate is None:
        return ["Estimated cost: unknown here (trials ask for a GPU and this machine has none to time an epoch on)"]
    trials, epochs = planned_trials(cfg), cfg.train.max_epochs
    gpu = 1.0 if cfg.resources.gpu == "auto" else float(cfg.resources.gpu)
    spend = spend_of(cfg.resources.cpu, gpu, trials * epochs * estimate.seconds, search.prices)
    money = f", ${spend.usd:.2f} at search.prices" if search.prices is not None else ""
    lines = [
        f"Estimated cost: {trials} trials x {epochs} epochs x {estimate.seconds:.3g} s (the cheapest trial's epoch, "
        f"timed here on {estimate.device}) = {spend.gpu_hours:.3g} GPU-h, {spend.cpu_hours:.3g} CPU-h{money}"
    ]
    if search.budget is not None and search.budget.usd is not None and (search.prices is None or search.prices.free):
        lines.append(
            f"search.budget.usd without search.prices: counted at each node's {PRICE_LABEL} label once the sweep "
            "joins its cluster, which must label every node type (a sweep on this machine is refused)"
        )
    elif search.budget is not None:
        over = Budget(search.budget, CostLedger(search.prices), epochs)._beyond(spend)
        verdict = f"the estimate reaches it ({over}): the sweep stops early" if over else "the estimate fits"
        limits = [f"{search.budget.gpu_hours:g} GPU-h"] if search.budget.gpu_hours is not None else []
        limits += [f"${search.budget.usd:g}"] if search.budget.usd is not None else []
        lines.append(f"search.budget {', '.join(limits)}: {verdict}")
    return lines
