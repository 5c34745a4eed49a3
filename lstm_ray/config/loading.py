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

from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from lstm_ray.config.rules import check_name, check_search, check_values
from lstm_ray.config.schema import TASK_METRICS, ExperimentConfig
from lstm_ray.config.strict import build
from lstm_ray.errors import ConfigError, one_line, shown

MAX_ALIAS_EXPANSION = 100_000  # values YAML aliases may add to a document beyond those written out
_LARGE = 10**12  # expanded sizes are counted up to this, so a deep bomb's count stays a small number


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
        raise ConfigError(str(path), f"must hold a mapping of sections (name, data, model, ...), got {shown(raw)}")
    for item in overrides or []:
        apply_override(raw, item)
    if raw.get("name") in (None, ""):  # absent or empty; `name: 0` is an error, not the file name
        raw["name"] = path.stem
    return parse_config(raw)


class _RefusedYAML(yaml.MarkedYAMLError):
    """Valid YAML that a config refuses: aliases that repeat too much, or a value that contains itself."""


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader (plain data only: no tags that build Python objects) that also refuses a key given
    twice in one mapping, which YAML would otherwise settle silently by keeping the last value, and an alias bomb:
    anchors and aliases nested so that a few hundred bytes stand for millions of values (the "billion laughs"),
    which every later walk over the config (checks, copies, error messages) would expand. It counts each node's
    expanded size while composing, where an alias costs one step whatever it stands for."""

    def compose_document(self) -> yaml.Node:
        self._sizes: dict[int, int] = {}  # id(node) -> values in it once aliases are expanded
        self._aliases: list[tuple[int, str, yaml.Mark]] = []  # (expanded size, name, where) of each alias used
        node = super().compose_document()
        written = len(self._sizes)
        if self._sizes[id(node)] - written > MAX_ALIAS_EXPANSION:
            biggest = sorted(self._aliases, key=lambda alias: -alias[0])
            names = list(dict.fromkeys(f"*{name}" for _, name, _ in biggest))
            raise _RefusedYAML(
                problem=f"its aliases ({', '.join(names[:4])}{', ...' if len(names) > 4 else ''}) expand it to more "
                f"than {MAX_ALIAS_EXPANSION:,} values beyond those written out; write the values out, or nest "
                "anchors less",
                problem_mark=biggest[0][2],
            )
        return node

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        alias = self.peek_event() if self.check_event(yaml.AliasEvent) else None
        node = super().compose_node(parent, index)
        if alias is None:
            self._sizes[id(node)] = min(_LARGE, 1 + sum(self._sizes[id(child)] for child in _children(node)))
        elif id(node) in self._sizes:
            self._aliases.append((self._sizes[id(node)], alias.anchor, alias.start_mark))
        else:
            raise _RefusedYAML(
                problem=f"the alias *{alias.anchor} lies inside its own anchor &{alias.anchor}, so the value "
                "would contain itself forever; write the value out",
                problem_mark=alias.start_mark,
            )
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden on purpose
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):  # the safe loader refuses it below
                continue
            if key in seen:
                problem = f"key {shown(key)} appears twice"
                raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return node.value if isinstance(node, yaml.SequenceNode) else []


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
    except _RefusedYAML as err:
        raise ConfigError(str(path), _marked_problem(err).lstrip(" :")) from None
    except yaml.MarkedYAMLError as err:
        raise ConfigError(str(path), f"is not valid YAML{_marked_problem(err)}") from None
    except yaml.YAMLError as err:
        raise ConfigError(str(path), f"is not valid YAML: {one_line(err)}") from None
    except RecursionError:
        raise ConfigError(str(path), "nests too deeply to be an experiment file") from None


def _marked_problem(err: yaml.MarkedYAMLError) -> str:
    """` at line L, column C: what is wrong` from a YAML error (`: what is wrong` when it has no position)."""
    mark = err.problem_mark or err.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = err.problem or err.context or ""
    if "constructor for the tag" in problem:
        problem += "; only plain data is read (no Python objects), remove the tag"
    return f"{where}: {one_line(problem)}"


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one `a.b.c=value` override in place; the value is parsed as YAML (numbers, lists, mappings)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError("--set", f"expected KEY=VALUE, got {shown(item)}; e.g. --set train.max_epochs=3")
    if not all(part.strip() for part in key.split(".")):
        raise ConfigError("--set", f"key {shown(key)} has an empty part; write dotted keys such as train.max_epochs")
    try:
        value = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except (yaml.constructor.ConstructorError, _RefusedYAML) as err:  # a key twice, a tag, an alias bomb
        raise ConfigError(key, f"the --set value{_marked_problem(err)}") from None
    except (yaml.YAMLError, RecursionError):  # not YAML: the value is the text itself
        value = text
    if key.startswith("search.space."):
        raw.setdefault("search", {}).setdefault("space", {})[key.removeprefix("search.space.")] = value
        return
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(key, f"{shown(part)} is not a section; check the key")
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
