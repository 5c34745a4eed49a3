"""Plain data into an `ExperimentConfig` and back: strict YAML (no Python objects, no key given twice),
`--set key=value` overrides, the typed build with every check, and the dotted `section.key` paths that
overrides, trials and logged params share.

    cfg = load_config("configs/quickstart.yaml", overrides=["train.max_epochs=3"])
    cfg = parse_config({"name": "co2", "data": {"source": "builtin:co2", "target": "co2"}})
    trial = apply_params(cfg, {"model.hidden_size": 64, "train.lr": 0.01})  # one trial's config
    dotted_keys(trial.to_dict())["model.hidden_size"]  # 64: the same dotted paths, read back

Every user mistake raises `ConfigError` naming the key (or the file), the bad value and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lstm_ray.config.rules import check_name, check_search, check_values
from lstm_ray.config.schema import TASK_METRICS, ExperimentConfig
from lstm_ray.config.strict import build
from lstm_ray.errors import ConfigError, one_line


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML experiment file, apply `key=value` overrides and validate everything."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(str(path), "is a folder; pass the path to an experiment .yaml file")
    if not path.is_file():
        raise ConfigError(str(path), "config file not found; pass the path to an experiment .yaml file")
    raw = _read_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(str(path), f"must hold a mapping of sections (name, data, model, ...), got {raw!r:.80}")
    for item in overrides or []:
        apply_override(raw, item)
    if raw.get("name") in (None, ""):  # absent or empty; `name: 0` is an error, not the file name
        raw["name"] = path.stem
    return parse_config(raw)


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader (plain data only: no tags that build Python objects) that also refuses a key given
    twice in one mapping, which YAML would otherwise settle silently by keeping the last value."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = []
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden on purpose
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice", key_node.start_mark)
            seen.append(key)
        return super().construct_mapping(node, deep)


def _read_yaml(path: Path) -> Any:
    """The plain data in the YAML file `path`. Raises ConfigError, keyed by the path, for unreadable text or
    invalid YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(str(path), f"is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    except OSError as err:
        raise ConfigError(str(path), f"cannot be read: {err.strerror or err}") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = err.problem or err.context or ""
        if "constructor for the tag" in problem:
            problem += "; only plain data is read (no Python objects), remove the tag"
        raise ConfigError(str(path), f"is not valid YAML{where}: {one_line(problem)}") from None
    except yaml.YAMLError as err:
        raise ConfigError(str(path), f"is not valid YAML: {one_line(err)}") from None
    except RecursionError:
        raise ConfigError(str(path), "nests too deeply to be an experiment file") from None


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one `a.b.c=value` override in place; the value is parsed as YAML (numbers, lists, mappings)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError("--set", f"expected KEY=VALUE, got {item!r}; e.g. --set train.max_epochs=3")
    if not all(part.strip() for part in key.split(".")):
        raise ConfigError("--set", f"key {key!r} has an empty part; write dotted keys such as train.max_epochs")
    try:
        value = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):
        value = text
    if key.startswith("search.space."):
        raw.setdefault("search", {}).setdefault("space", {})[key.removeprefix("search.space.")] = value
        return
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(key, f"{part!r} is not a section; check the key")
        node = child
    node[leaf] = value


def parse_config(raw: dict[str, Any]) -> ExperimentConfig:
    """Build and validate an `ExperimentConfig` from plain data (a parsed YAML mapping)."""
    cfg = build(ExperimentConfig, _task_defaults(raw), "")
    check_name(cfg.name)
    check_values(cfg)
    check_search(cfg)
    return cfg


def _task_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """`raw` with the search metric and mode a user left out chosen by the task: a classify sweep maximises
    val_accuracy, a forecast one minimises val_rmse; a metric given without a mode gets the metric's own."""
    search = raw.get("search")
    if not isinstance(raw.get("data"), dict) or not isinstance(search, dict | None):
        return raw  # the builder names what is wrong
    search = dict(search or {})
    task = raw["data"].get("task", "forecast")
    if task not in ("forecast", "classify"):
        return raw
    search.setdefault("metric", "val_accuracy" if task == "classify" else "val_rmse")
    mode = TASK_METRICS[task].get(search["metric"]) if isinstance(search["metric"], str) else None
    if mode and "mode" not in search:
        search["mode"] = mode
    return raw | {"search": search}


def dotted_keys(config: dict[str, Any]) -> dict[str, Any]:
    """A config as plain data (`ExperimentConfig.to_dict()`) keyed `section.key`, one level deep, so lists and the
    search space stay whole values; top-level values such as `name` keep their key.

    >>> dotted_keys({"name": "co2", "train": {"lr": 0.01, "max_epochs": 20}})
    {'name': 'co2', 'train.lr': 0.01, 'train.max_epochs': 20}
    """
    flat: dict[str, Any] = {}
    for section, values in config.items():
        if isinstance(values, dict):
            flat |= {f"{section}.{key}": value for key, value in values.items()}
        else:
            flat[section] = values
    return flat


def apply_params(cfg: ExperimentConfig, params: dict[str, Any]) -> ExperimentConfig:
    """A copy of `cfg` with dotted-path values (one trial's hyperparameters) set.

    Raises ConfigError when the combination is invalid (e.g. model.proj_size >= model.hidden_size). The search
    space is not checked again: it was checked against the base config, and each of its values checked
    against this trial's other values would fail a valid trial.
    """
    raw = cfg.to_dict()
    for path, value in params.items():
        section, _, key = path.partition(".")
        raw[section][key] = value.item() if hasattr(value, "item") else value
    trial = build(ExperimentConfig, raw, "")
    check_values(trial)
    return trial
