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
LATER_FIELDS = ("data_params", "weights")


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
    workers: int = 1  # folds trained in parallel processes (1 torch thread each when > 1)
    fold_parallel: str = "auto"  # train a seed's folds as one stacked model: auto (on CUDA) | on | off
    fold_group: int = 0  # folds per stacked model (0: all of a seed's folds, split over the workers)
    data_params: dict = field(default_factory=dict)  # dataset reader options (e.g. which frame folders)
    weights: str | None = None  # folder of published per-fold checkpoints (selection published-weights)

    def __post_init__(self):
        if self.selection not in SELECTIONS:
            raise ConfigError(f"selection must be one of {', '.join(SELECTIONS)}, not {self.selection!r}")
        if self.data not in ("real", "synthetic"):
            raise ConfigError(f"data must be 'real' or 'synthetic', not {self.data!r}")
        if self.data == "real" and not self.data_root:
            raise ConfigError("real data needs --data-root DIR (or use --data synthetic)")
        if not self.seeds:
            raise ConfigError("at least one seed is needed")
        if self.workers < 1:
            raise ConfigError("workers must be >= 1")
        if self.fold_parallel not in FOLD_PARALLEL:
            raise ConfigError(f"fold_parallel must be one of {', '.join(FOLD_PARALLEL)}, not {self.fold_parallel!r}")
        if self.fold_group < 0:
            raise ConfigError("fold_group must be >= 0")

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["seeds"] = list(self.seeds)
        return d

    def run_id(self) -> str:
        """Stable id: the same resolved config resumes the same run folder."""
        d = self.as_dict()
        for k in EXECUTION_KEYS:
            d.pop(k)
        defaults = {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
                    for f in dataclasses.fields(self)}
        for k in LATER_FIELDS:
            if d[k] == defaults[k]:
                d.pop(k)
        digest = hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]
        part = f"-{self.dataset}" if self.dataset else ""
        return f"{self.protocol}{part}_{self.rep}_{self.model}_{self.selection}_{self.data}_{digest}"


def resolve(cli: dict, yaml_path: str | Path | None = None) -> RunConfig:
    """Merge a YAML file (if any) under CLI values; unknown keys are errors."""
    values: dict = {}
    if yaml_path:
        import yaml

        loaded = yaml.safe_load(Path(yaml_path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{yaml_path}: expected a mapping at top level")
        values.update(loaded)
    values.update({k: v for k, v in cli.items() if v is not None})
    known = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown config keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    if "seeds" in values:
        values["seeds"] = tuple(int(s) for s in values["seeds"])
    try:
        return RunConfig(**values)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None
