"""Deterministic synthetic data sets, for tests and for checking that a model can learn at all.

    >>> from lstm_ray.data.synthetic import noisy_seasonal
    >>> noisy_seasonal(n_rows=48).column_names
    ['t', 'y', 'x']

Every generator returns a `pyarrow.Table` in the same layouts as the shipped real sets (see
`lstm_ray.data.builtin`): wide with a timestamp column for forecasting, long (`sequence_id`, `step`, ...)
for sequence tasks. The same arguments give the same table (numpy's PCG64 stream is stable across versions).
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

__all__ = ["adding_problem", "noisy_seasonal", "sequence_classes", "trend_seasonal"]

START = np.datetime64("2020-01-01T00:00:00", "s")  # first timestamp of `noisy_seasonal`
LEAD = 6  # steps by which `x` runs ahead of the irregular part of `y` in `noisy_seasonal`
DRIVER_MEMORY = 0.9  # AR(1)-like persistence of that irregular part: smooth, but not predictable from y alone
DRIVER_SCALE = 0.5  # its standard deviation, against a seasonal amplitude of 1
MAX_CLASSES = 10  # beyond this the class frequencies of `sequence_classes` crowd together
CLASS_NOISE = 0.3  # noise std of `sequence_classes`, against an amplitude of about 1


def noisy_seasonal(
    n_rows: int = 2000, period: int = 24, trend: float = 0.01, noise: float = 0.1, seed: int = 0
) -> pa.Table:
    """Hourly series with a seasonal cycle, a trend, and a second feature that leads the target.

    Columns: `t` (timestamp[s], hourly from 2020-01-01), `y` and `x` (float64), `n_rows` rows, no nulls.
    `y[i] = sin(2 pi i / period) + trend * i / period + d[i] + noise * e[i]`, where `d` is a smooth random
    driver (std 0.5) and `e` white noise; `trend` is thus the rise of the level over one period.
    `x[i] = d[i + 6] + noise * e'[i]`: `x` shows now what the irregular part of `y` does 6 steps later,
    so a multivariate model can beat a univariate one on this set.
    Raises ValueError for `n_rows` < 1, `period` < 2, a non-finite `trend`, a negative or non-finite
    `noise`, or a negative `seed`.
    """
    _check_int("n_rows", n_rows, 1)
    _check_int("period", period, 2)
    _check_float("trend", trend)
    _check_float("noise", noise, minimum=0.0)
    _check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    steps = np.arange(n_rows)
    driver = _smooth_noise(rng, n_rows + LEAD)
    y = np.sin(2 * np.pi * steps / period) + trend * steps / period + driver[:n_rows]
    y += noise * rng.standard_normal(n_rows)
    x = driver[LEAD:] + noise * rng.standard_normal(n_rows)
    times = START + steps.astype("timedelta64[h]").astype("timedelta64[s]")
    return pa.table({"t": pa.array(times, pa.timestamp("s")), "y": y, "x": x})


def trend_seasonal(
    n_rows: int = 1500, period: int = 24, slope: float = 0.02, amplitude: float = 2.0, noise: float = 0.3, seed: int = 0
) -> pa.Table:
    """Hourly series of a linear trend, a seasonal cycle and white noise of known variance: a forecasting
    problem with a known floor, since the best possible forecast errs by the noise alone (RMSE = `noise`).

    Columns: `t` (timestamp[s], hourly from 2020-01-01) and `y = 10 + slope * i + amplitude * sin(2 pi i / period)
    + noise * e[i]`. Raises ValueError for `n_rows` < 1, `period` < 2, a non-finite `slope` or `amplitude`, a
    negative or non-finite `noise`, or a negative `seed`.
    """
    _check_int("n_rows", n_rows, 1)
    _check_int("period", period, 2)
    _check_float("slope", slope)
    _check_float("amplitude", amplitude)
    _check_float("noise", noise, minimum=0.0)
    _check_int("seed", seed, 0)
    steps = np.arange(n_rows)
    y = 10 + slope * steps + amplitude * np.sin(2 * np.pi * steps / period)
    y += noise * np.random.default_rng(seed).standard_normal(n_rows)
    times = START + steps.astype("timedelta64[h]").astype("timedelta64[s]")
    return pa.table({"t": pa.array(times, pa.timestamp("s")), "y": y})


def adding_problem(n_sequences: int = 1000, length: int = 50, seed: int = 0, variable_length: bool = False) -> pa.Table:
    """The adding problem (Hochreiter & Schmidhuber, 1997) in long format: one row per (sequence, step).

    Columns: `sequence_id` and `step` (int64, steps 0..n-1 in order), `value` (float64, uniform in [0, 1)),
    `marker` (float64, 1.0 on exactly two steps of each sequence, else 0.0), `target` (float64, the sum of
    the two marked values, repeated on every row of the sequence). One marked step lies in the first half
    of the sequence, the other in the second half, so the model must remember across the gap.
    Sequences have `length` steps, or with `variable_length` a length drawn uniformly from
    [length // 2, length].
    Raises ValueError for `n_sequences` < 1, `length` < 2 (< 4 with `variable_length`), or a negative `seed`.
    """
    _check_int("n_sequences", n_sequences, 1)
    _check_int("length", length, 4 if variable_length else 2)
    _check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    lengths = _lengths(rng, n_sequences, length, variable_length)
    values = rng.random((n_sequences, length))
    half = lengths // 2
    first = np.floor(rng.random(n_sequences) * half).astype(np.int64)
    second = half + np.floor(rng.random(n_sequences) * (lengths - half)).astype(np.int64)
    rows = np.arange(n_sequences)
    markers = np.zeros((n_sequences, length))
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    target = values[rows, first] + values[rows, second]
    sequence_id, step = _long_index(lengths, length)
    return pa.table(
        {
            "sequence_id": sequence_id,
            "step": step,
            "value": values[sequence_id, step],
            "marker": markers[sequence_id, step],
            "target": target[sequence_id],
        }
    )


def sequence_classes(
    n_sequences: int = 300, length: int = 40, n_classes: int = 3, seed: int = 0, variable_length: bool = False
) -> pa.Table:
    """A learnable sequence-classification set in long format: noisy sinusoids whose frequency is the class.

    Columns: `sequence_id` and `step` (int64, steps 0..n-1 in order), `value` (float64), `label` (int64 in
    0..n_classes-1, constant within a sequence). Class k has frequency 0.25 * (k + 1) / n_classes cycles
    per step, with a random phase, an amplitude in [0.8, 1.2] and Gaussian noise of std 0.3; classes are
    balanced to within one sequence. Sequences have `length` steps, or with `variable_length` a length drawn
    uniformly from [length // 2, length].
    Raises ValueError for `n_sequences` < 1, `length` < 4, `n_classes` outside [2, 10], or a negative `seed`.
    """
    _check_int("n_sequences", n_sequences, 1)
    _check_int("length", length, 4)
    _check_int("n_classes", n_classes, 2)
    if n_classes > MAX_CLASSES:
        raise ValueError(f"`n_classes` must be <= {MAX_CLASSES}, got {n_classes!r}")
    _check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    lengths = _lengths(rng, n_sequences, length, variable_length)
    labels = rng.permutation(np.arange(n_sequences) % n_classes)
    frequency = 0.25 * (labels + 1) / n_classes
    phase = rng.uniform(0, 2 * np.pi, n_sequences)
    amplitude = rng.uniform(0.8, 1.2, n_sequences)
    steps = np.arange(length)
    values = amplitude[:, None] * np.sin(2 * np.pi * frequency[:, None] * steps + phase[:, None])
    values += CLASS_NOISE * rng.standard_normal((n_sequences, length))
    sequence_id, step = _long_index(lengths, length)
    return pa.table(
        {
            "sequence_id": sequence_id,
            "step": step,
            "value": values[sequence_id, step],
            "label": labels[sequence_id],
        }
    )


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}")


def _check_float(name: str, value: object, minimum: float | None = None) -> None:
    ok = False
    if isinstance(value, (int, float, np.floating)) and not isinstance(value, bool):
        ok = math.isfinite(value) and (minimum is None or value >= minimum)
    if not ok:
        bound = "" if minimum is None else f" >= {minimum:g}"
        raise ValueError(f"`{name}` must be a finite number{bound}, got {value!r}")


def _smooth_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """AR(1)-like noise of std DRIVER_SCALE: white noise through a truncated exponential kernel."""
    kernel = DRIVER_MEMORY ** np.arange(64)
    white = rng.standard_normal(n + len(kernel) - 1)
    smooth = np.convolve(white, kernel, mode="valid")
    return DRIVER_SCALE * smooth / np.sqrt(np.sum(kernel**2))


def _lengths(rng: np.random.Generator, n_sequences: int, length: int, variable_length: bool) -> np.ndarray:
    if not variable_length:
        return np.full(n_sequences, length, dtype=np.int64)
    return rng.integers(length // 2, length, size=n_sequences, endpoint=True).astype(np.int64)


def _long_index(lengths: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of every kept cell of an (n_sequences, length) grid, sequence by sequence."""
    kept = np.arange(length)[None, :] < lengths[:, None]
    sequence_id, step = np.nonzero(kept)
    return sequence_id.astype(np.int64), step.astype(np.int64)
