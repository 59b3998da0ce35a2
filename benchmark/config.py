"""One immutable run configuration, resolved as defaults < YAML file < CLI flags."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

SELECTIONS = ("fixed", "inner-val", "oracle", "published-weights")
FOLD_PARALLEL = ("auto", "on", "off")
# Settings that change how a run is computed, not its numbers (beyond floating-point noise).
EXECUTION_KEYS = ("out", "device", "label", "workers", "fold_parallel", "fold_group")
# Fields added after runs were committed: hashed into the run id only when they differ from their
# defaults, so every older run keeps its id (and folder) unchanged.
LATER_FIELDS = ("data_params", "weights", "plugins")

DEVICES = ("auto", "cpu", "cuda")
# The type each field must have, checked before any data is read: YAML gives "100" or "no"
# where a number or a boolean was meant, and a wrong type must not surface after training.
_TYPES = {"rep": str, "model": str, "protocol": str, "data": str, "data_root": (str, None),
          "dataset": (str, None), "epochs": (int, None), "selection": str, "device": str, "out": str,
          "rep_params": dict, "model_params": dict, "n_boot": int, "split_seed": int,
          "allow_contamination": bool, "label": (str, None), "workers": (int, str), "fold_parallel": str,
          "fold_group": int, "data_params": dict, "weights": (str, None)}


class ConfigError(ValueError):
    """Unknown keys or invalid values in a run configuration."""


@dataclass(frozen=True)
class RunConfig:
    rep: str
    model: str
    protocol: str
    data: str = "real"  # "real" (needs data_root) or "synthetic"
    data_root: str | None = None
    dataset: str | None = None  # restrict a composite to one database / choose the LOSO database
    epochs: int | None = None  # None: the model's published default
    seeds: tuple[int, ...] = (0,)
    selection: str = "fixed"
    device: str = "auto"
    out: str = "runs"
    rep_params: dict = field(default_factory=dict)
    model_params: dict = field(default_factory=dict)
    n_boot: int = 1000
    split_seed: int = 0
    allow_contamination: bool = False
    label: str | None = None  # free-text tag shown in the leaderboard (e.g. "CPU schedule")
    workers: int | str = "auto"  # fold processes (1 torch thread each when > 1); auto: benchmark.plan.worker_count
    fold_parallel: str = "auto"  # train a seed's folds as one stacked model: auto (on CUDA) | on | off
    fold_group: int = 0  # folds per stacked model (0: all of a seed's folds, split over the workers)
    data_params: dict = field(default_factory=dict)  # dataset reader options (e.g. which frame folders)
    weights: str | None = None  # folder of published per-fold checkpoints (selection published-weights)
    plugins: tuple[str, ...] = ()  # modules (or .py files) that register user representations/models

    def __post_init__(self):
        _check_types(self)
        if self.selection not in SELECTIONS:
            raise ConfigError(f"selection must be one of {', '.join(SELECTIONS)}, not {self.selection!r}")
        if self.data not in ("real", "synthetic"):
            raise ConfigError(f"data must be 'real' or 'synthetic', not {self.data!r}")
        if self.data == "real" and not self.data_root:
            raise ConfigError("real data needs --data-root DIR (or use --data synthetic)")
        if not self.seeds:
            raise ConfigError("at least one seed is needed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be distinct, not {list(self.seeds)}")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, not {self.epochs}")
        if self.n_boot < 1:
            raise ConfigError(f"n_boot must be >= 1, not {self.n_boot}")
        if self.workers != "auto" and (isinstance(self.workers, str) or self.workers < 1):
            raise ConfigError(f"workers must be 'auto' or an integer >= 1, not {self.workers!r}")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be one of {', '.join(DEVICES)} (or cuda:N), not {self.device!r}")
        if self.fold_parallel not in FOLD_PARALLEL:
            raise ConfigError(f"fold_parallel must be one of {', '.join(FOLD_PARALLEL)}, not {self.fold_parallel!r}")
        if self.fold_group < 0:
            raise ConfigError("fold_group must be >= 0")

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["seeds"] = list(self.seeds)
        d["plugins"] = list(self.plugins)
        return d

    def run_id(self) -> str:
        """Stable id: the same resolved config resumes the same run folder."""
        d = self.as_dict()
        for k in EXECUTION_KEYS:
            d.pop(k)
        defaults = {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
                    for f in dataclasses.fields(self)}
        for k in LATER_FIELDS:
            default = list(defaults[k]) if isinstance(defaults[k], tuple) else defaults[k]
            if d[k] == default:
                d.pop(k)
        digest = hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]
        part = f"-{self.dataset}" if self.dataset else ""
        return f"{self.protocol}{part}_{self.rep}_{self.model}_{self.selection}_{self.data}_{digest}"


def _type_name(t) -> str:
    return {str: "a string", int: "an integer", bool: "true or false", dict: "a mapping", None: "null"}[t]


def _check_types(cfg: RunConfig) -> None:
    for name, want in _TYPES.items():
        value = getattr(cfg, name)
        allowed = want if isinstance(want, tuple) else (want,)
        ok = any(value is None if t is None else
                 (type(value) is bool) == (t is bool) and isinstance(value, t) for t in allowed)
        if not ok:
            raise ConfigError(f"{name} must be {' or '.join(_type_name(t) for t in allowed)}, not {value!r}")
    if not isinstance(cfg.seeds, (tuple, list)) or not all(type(s) is int for s in cfg.seeds):
        raise ConfigError(f"seeds must be a list of integers (e.g. [0, 1, 2]), not {cfg.seeds!r}")


def parse_seeds(text: str) -> list[int]:
    """``--seeds 1,2,3`` -> ``[1, 2, 3]``; anything else is a one-line error naming the flag."""
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: expected comma-separated integers, e.g. 1,2,3") from None


def _seeds(value) -> tuple:
    """YAML / CLI seeds -> a tuple (type checked by RunConfig); a bare number is refused because
    ``seeds: 5`` may mean "five seeds" as well as "seed 5"."""
    if isinstance(value, (list, tuple)):
        return tuple(value)
    raise ConfigError(f"seeds must be a list of integers (e.g. [0, 1, 2]), not {value!r}")


def check_params(cfg: RunConfig) -> None:
    """Representation and model parameters (and ``epochs``) the classes actually take: a typo
    or a setting a model does not have is a one-line error before any data is read."""
    from models import MODELS
    from representations import REPRESENTATIONS

    for what, cls, params, flag in (("representation", REPRESENTATIONS.get(cfg.rep), cfg.rep_params, "--rep-param"),
                                    ("model", MODELS.get(cfg.model), cfg.model_params, "--model-param")):
        known = set(cls._get_param_names())
        unknown = sorted(set(params) - known)
        if unknown:
            raise ConfigError(f"{flag} {unknown[0]}: {what} {getattr(cls, 'registry_name', cls.__name__)!r} has no "
                              f"such parameter (it takes: {', '.join(sorted(known)) or 'none'})")
    if cfg.epochs is not None and "epochs" not in MODELS.get(cfg.model)._get_param_names():
        raise ConfigError(f"--epochs: model {cfg.model!r} is not trained in epochs (drop the setting)")


def resolve(cli: dict, yaml_path: str | Path | None = None) -> RunConfig:
    """Merge a YAML file (if any) under CLI values; unknown keys are errors."""
    values: dict = {}
    if yaml_path:
        loaded = load_yaml(yaml_path) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{yaml_path}: expected a mapping at top level")
        values.update(loaded)
    values.update({k: v for k, v in cli.items() if v is not None})
    if "data" not in values:  # as on the command line: synthetic unless a data root is given
        values["data"] = "real" if values.get("data_root") else "synthetic"
    known = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown config keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    if "seeds" in values:
        values["seeds"] = _seeds(values["seeds"])
    if "plugins" in values:
        values["plugins"] = tuple(str(m) for m in values["plugins"])
    try:
        return RunConfig(**values)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None


def load_yaml(path: str | Path):
    """A YAML file's content; a syntax error is one line naming the file and line."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} YAML syntax error: {getattr(exc, 'problem', None) or exc}") from None


def parse_params(items: list[str]) -> dict:
    """``["K=V", ...]`` from ``--rep-param``/``--model-param``/``--data-param`` -> a dict, each value
    read as YAML (``3`` an int, ``true`` a bool, ``a,b`` a string)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"parameter {item!r} is not K=V")
        out[key.strip()] = yaml.safe_load(value)
    return out
