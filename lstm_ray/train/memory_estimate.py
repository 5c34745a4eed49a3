"""A trial's peak GPU memory, estimated from its config before it runs (for `resources.gpu: auto`).

    need = estimate_trial_memory(cfg, n_inputs=3, steps=24)     # TrialMemory; need.total bytes
    need.total / 2**20                                          # MiB, CUDA context included

The parts: weights, their gradients and the optimiser's state (Adam and AdamW: two copies, SGD and RMSprop
with momentum: one or two), half-precision weight copies under bf16/fp16 autocast, the activations a training
step saves for backward (the recurrent kernel's workspace included), the larger of that and an evaluation
batch, and the CUDA context each trial process holds. Parameter counts are exact: the model is built on torch's
meta device, which allocates nothing.

Calibration: the coefficients below are measured peaks of live tensor bytes on the CPU (oneDNN kernels), per
batch x steps x hidden x directions x layers, of a training step after a warm-up step (so the optimiser's state
exists) and of an evaluation batch. tests/train/test_memory_estimate.py measures a grid of shapes again (a
TorchDispatchMode counts every storage an operation makes until torch frees it) and holds the estimate, CUDA
context aside, within [1.0, 2.0] x the measured bytes + 256 KiB (1.3-2.0 x on that grid: it errs large, as it
sums values that are never all alive at once). cuDNN saves less per step than oneDNN (about 6-8 hidden-sized
values per step for an LSTM against about 19 here), so on a GPU the estimate errs larger still; the allocator's
rounding and cuDNN's workspace are left to the safety margin of `sweep/gpu_packing.py`.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import torch

from lstm_ray.config import ExperimentConfig, ModelConfig
from lstm_ray.train.models import NOT_ARCHITECTURE, SequenceModel, freeze

__all__ = ["CUDA_CONTEXT_BYTES", "EVAL_BATCH", "TrialMemory", "estimate_trial_memory"]

CUDA_CONTEXT_BYTES = 600 * 2**20  # one process's CUDA context with cuBLAS and cuDNN loaded (500-700 MiB)
EVAL_BATCH = 1024  # training.predict's batch size: validation runs in batches this large without gradients
FLOAT = 4  # bytes of an fp32 value
# Bytes saved for backward per (batch x step x hidden x direction x layer), in fp32 values, measured.
TRAIN_UNITS = {"lstm": 20.5, "gru": 12.0, "rnn": 3.5}
UNROLLED_UNITS = {"lstm": 20.0, "gru": 19.0, "rnn": 5.0}  # model.recurrent_dropout runs a step-by-step loop
# bf16/fp16 autocast: share of the fp32 activations left (the kernels keep some state in fp32); unrolled: 0.6
HALF_ACTIVATIONS = {"lstm": 0.72, "gru": 0.55, "rnn": 0.5}
STEP_SCRATCH = 64 * 2**10  # the loss, the gradient norm and other small values of a step
INPUT_UNITS = 3.0  # per batch x step x input column: the input, its dropout and the first layer's input gates
HEAD_UNITS = {"last": 0.0, "mean": 1.5, "attention": 5.0}  # per batch x step x output width
# Evaluation (no gradients, batches of EVAL_BATCH): live values per (batch x step x hidden x direction),
# for the first layer and each further one; and per (batch x hidden x direction x layer): the final states.
EVAL_UNITS = {"lstm": (3.0, 1.5), "gru": (5.5, 2.0), "rnn": (3.5, 1.0)}
EVAL_STATE_UNITS = 8.0
OPTIMIZER_COPIES = {"adam": 2, "adamw": 2}  # state tensors per weight; sgd/rmsprop: see _optimizer_copies


@dataclass(frozen=True)
class TrialMemory:
    """Bytes one trial holds on its GPU at its peak, by part."""

    weights: int  # parameters, fp32
    gradients: int  # one per trained parameter
    optimizer: int  # the optimiser's state
    half_weights: int  # bf16/fp16 autocast's cast copies of the weights
    activations: int  # the larger of a training step's saved values and an evaluation batch's
    context: int  # the process's CUDA context

    @property
    def tensors(self) -> int:
        """Everything but the CUDA context: what the calibration measures."""
        return self.total - self.context

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.half_weights + self.activations + self.context


def estimate_trial_memory(
    cfg: ExperimentConfig,
    *,
    n_inputs: int,
    steps: int,
    n_targets: int = 1,
    n_classes: int = 0,
    context: int = CUDA_CONTEXT_BYTES,
) -> TrialMemory:
    """Peak GPU bytes of one trial of `cfg` (its model, train.batch_size, train.precision, train.optimizer).

    `n_inputs` input columns, `steps` time steps per window (data.lookback; classify: the longest sequence),
    `n_targets` forecast targets, `n_classes` classes (classify); an embedding counts model.vocab_size x
    model.embedding_dim weights (set both from pretrained vectors first). With data.validation: cv every fold's
    model and optimiser live at once. Contract: `tensors` is never below the measured tensor bytes of a CPU
    training step (see the module docstring)."""
    total, trained, recurrent = _parameter_counts(cfg.model, n_inputs, n_targets, cfg.data.horizon, n_classes)
    folds = cfg.data.folds if cfg.data.validation == "cv" else 1
    half = cfg.train.precision != "fp32"
    return TrialMemory(
        weights=folds * total * FLOAT,
        gradients=folds * trained * FLOAT,
        optimizer=folds * trained * FLOAT * _optimizer_copies(cfg),
        half_weights=recurrent * FLOAT // 2 if half else 0,
        activations=max(
            _training_activations(cfg, n_inputs, steps),
            _evaluation_activations(cfg, n_inputs, steps) + total * FLOAT,  # + the kernel's copy of the weights
        ),
        context=context,
    )


def _optimizer_copies(cfg: ExperimentConfig) -> int:
    train = cfg.train
    if train.optimizer in OPTIMIZER_COPIES:
        return OPTIMIZER_COPIES[train.optimizer]
    momentum = 1 if train.momentum > 0 else 0
    return momentum + (1 if train.optimizer == "rmsprop" else 0)  # rmsprop: a running square per weight


def _training_activations(cfg: ExperimentConfig, n_inputs: int, steps: int) -> int:
    model = cfg.model
    directions = 2 if model.bidirectional else 1
    units = UNROLLED_UNITS if model.recurrent_dropout > 0 else TRAIN_UNITS
    recurrent = units[model.cell] * model.hidden_size * directions * model.num_layers
    if cfg.train.precision != "fp32":
        recurrent *= 0.6 if model.recurrent_dropout > 0 else HALF_ACTIVATIONS[model.cell]
    width = (model.proj_size or model.hidden_size) * directions
    per_step = recurrent + INPUT_UNITS * (n_inputs + model.embedding_dim) + HEAD_UNITS[model.head] * width
    return int(cfg.train.batch_size * steps * per_step * FLOAT) + STEP_SCRATCH


def _evaluation_activations(cfg: ExperimentConfig, n_inputs: int, steps: int) -> int:
    model = cfg.model
    first, further = EVAL_UNITS[model.cell]
    width = model.hidden_size * (2 if model.bidirectional else 1)
    layers = first + further * (model.num_layers - 1) + HEAD_UNITS[model.head]
    per_step = layers * width + n_inputs + model.embedding_dim
    per_row = EVAL_STATE_UNITS * width * model.num_layers
    return int(EVAL_BATCH * (steps * per_step + per_row) * FLOAT)


def _parameter_counts(
    model: ModelConfig, n_inputs: int, n_targets: int, horizon: int, n_classes: int
) -> tuple[int, int, int]:
    """(all, trained, recurrent) parameter counts of the model, from a copy built on the meta device."""
    args = {k: v for k, v in asdict(model).items() if k not in NOT_ARCHITECTURE}
    args |= {"init": "default", "forget_bias": None}  # initialisation changes values, not shapes
    if model.highway and not n_classes:  # the highway reads the targets' history: any n_targets inputs will do
        args["target_inputs"] = tuple(range(n_targets))
    frozen = (*model.freeze, *(["embedding"] if model.embedding_freeze else []))
    return _counts(tuple(sorted(args.items())), frozen, n_inputs, n_targets, horizon, n_classes)


@functools.lru_cache(maxsize=256)  # a sweep asks for the same few shapes once per trial
def _counts(
    args: tuple[tuple[str, object], ...],
    frozen: tuple[str, ...],
    n_inputs: int,
    n_targets: int,
    horizon: int,
    n_classes: int,
) -> tuple[int, int, int]:
    with torch.device("meta"):
        network = SequenceModel(n_inputs, n_targets, horizon, n_classes=n_classes, **dict(args))
    freeze(network, list(frozen))
    parameters = list(network.parameters())
    total = sum(p.numel() for p in parameters)
    trained = sum(p.numel() for p in parameters if p.requires_grad)
    return total, trained, sum(p.numel() for p in network.rnn.parameters())
