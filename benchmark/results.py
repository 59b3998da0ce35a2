"""Typed, versioned run results: what ``metrics.json`` and the fold files hold.

One writer (``benchmark.scoring`` builds them, ``benchmark.rundir`` writes them) and every
reader (leaderboard, compare, check, CLI) share these frozen dataclasses instead of reading
dicts by key. Each file carries ``schema_version``; the loaders migrate older versions, so a
run committed long ago loads as a current one (``tests/historic_results/`` holds one file of
each older shape).

Version history:
    1: no ``schema_version`` key. Run results may lack ``training`` (runs before the
       fold-parallel path existed, all sequential), ``weights`` (before pretrained
       initialisations existed, all from scratch), ``fold_seconds``, ``fixed_companion``,
       ``derived_from``; fold records hold sample *indices* only, and may lack ``training``
       and ``weights_source``.
    2: every field present; fold records also carry each test sample's key, subject,
       database and true label, so pooling needs no dataset re-read.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping, Sequence

from benchmark.core.bootstrap import Interval

SCHEMA_VERSION = 2
METRIC_NAMES = ("uf1", "uar", "accuracy")


class SchemaError(ValueError):
    """A result file that no migration turns into the current schema."""


def _strict(cls, data: Mapping, where: str) -> dict:
    """``data`` as keyword arguments of ``cls``; unknown or missing keys are errors."""
    names = {f.name for f in fields(cls)}
    unknown, missing = sorted(set(data) - names), sorted(n for n in names - set(data) if n != "schema_version")
    if unknown or missing:
        raise SchemaError(f"{where}: {cls.__name__} " + "; ".join(
            part for part in (f"unknown keys {unknown}" if unknown else "",
                              f"missing keys {missing}" if missing else "") if part))
    return dict(data)


def _interval(d: Mapping | None) -> Interval | None:
    return None if d is None else Interval(**d)


def _rows(x) -> tuple:
    return tuple(tuple(r) for r in x)


# ------------------------------------------------------------------ metrics


@dataclass(frozen=True)
class SeedScores:
    """Point metrics of one seed's pooled predictions."""

    uf1: float
    uar: float
    accuracy: float
    per_class_f1: tuple[float, ...]
    confusion: tuple[tuple[int, ...], ...]
    n: int

    @classmethod
    def from_json(cls, d: Mapping) -> SeedScores:
        d = _strict(cls, d, "per_seed")
        return cls(**{**d, "per_class_f1": tuple(d["per_class_f1"]), "confusion": _rows(d["confusion"])})

    def to_json(self) -> dict:
        return {"uf1": self.uf1, "uar": self.uar, "accuracy": self.accuracy,
                "per_class_f1": list(self.per_class_f1), "confusion": [list(r) for r in self.confusion],
                "n": self.n}


@dataclass(frozen=True)
class MetricSummary:
    """One metric over the seeds, with bootstrap CIs of the seed mean; ``ci`` is the protocol's
    unit (``ci_subject`` is None where there is one subject only)."""

    mean: float
    std: float
    min: float
    max: float
    ci_sample: Interval
    ci_subject: Interval | None
    ci: Interval

    @classmethod
    def from_json(cls, d: Mapping) -> MetricSummary:
        d = _strict(cls, d, "metric")
        return cls(**{**d, **{k: _interval(d[k]) for k in ("ci_sample", "ci_subject", "ci")}})

    def to_json(self) -> dict:
        return {"mean": self.mean, "std": self.std, "min": self.min, "max": self.max,
                "ci_sample": self.ci_sample.as_dict(),
                "ci_subject": self.ci_subject.as_dict() if self.ci_subject else None, "ci": self.ci.as_dict()}


@dataclass(frozen=True)
class Block:
    """Metrics of one set of pooled predictions (all samples, or one database's)."""

    per_seed: tuple[SeedScores, ...]
    uf1: MetricSummary
    uar: MetricSummary
    accuracy: MetricSummary
    n: int

    def metric(self, name: str) -> MetricSummary:
        if name not in METRIC_NAMES:
            raise KeyError(f"no metric {name!r} (known: {', '.join(METRIC_NAMES)})")
        return getattr(self, name)

    @classmethod
    def from_json(cls, d: Mapping) -> Block:
        d = _strict(cls, d, "metrics block")
        return cls(tuple(SeedScores.from_json(s) for s in d["per_seed"]),
                   *(MetricSummary.from_json(d[k]) for k in METRIC_NAMES), d["n"])

    def to_json(self) -> dict:
        return {"per_seed": [s.to_json() for s in self.per_seed],
                **{k: self.metric(k).to_json() for k in METRIC_NAMES}, "n": self.n}


@dataclass(frozen=True)
class Metrics:
    overall: Block
    per_database: Mapping[str, Block]  # empty unless the run spans several databases

    @classmethod
    def from_json(cls, d: Mapping) -> Metrics:
        d = _strict(cls, d, "metrics")
        return cls(Block.from_json(d["overall"]), {k: Block.from_json(v) for k, v in d["per_database"].items()})

    def to_json(self) -> dict:
        return {"overall": self.overall.to_json(), "per_database": {k: b.to_json() for k, b in self.per_database.items()}}


# ------------------------------------------------------------------ oracle twin


@dataclass(frozen=True)
class PairedDifference:
    difference: float
    low: float
    high: float
    p_value: float


@dataclass(frozen=True)
class OracleMinusFixed:
    """Paired bootstrap of oracle minus fixed on the same samples and resamples."""

    n: int
    unit: str
    predictions_differing: float
    uf1: PairedDifference
    uar: PairedDifference
    accuracy: PairedDifference

    @classmethod
    def from_json(cls, d: Mapping) -> OracleMinusFixed:
        d = _strict(cls, d, "oracle_minus_fixed")
        return cls(d["n"], d["unit"], d["predictions_differing"],
                   *(PairedDifference(**_strict(PairedDifference, d[k], k)) for k in METRIC_NAMES))

    def to_json(self) -> dict:
        return {"n": self.n, "unit": self.unit, "predictions_differing": self.predictions_differing,
                **{k: getattr(self, k).__dict__.copy() for k in METRIC_NAMES}}


@dataclass(frozen=True)
class FixedCompanion:
    """An oracle run's ``fixed`` twin (``benchmark.twin``): its run id, how many of its folds were
    derived from this training or trained directly, and the paired difference."""

    run_id: str
    derived_folds: int
    direct_folds: int
    direct_predictions_agreeing: str | None = None  # "k/n" over the directly trained folds
    oracle_minus_fixed: OracleMinusFixed | None = None
    error: str | None = None  # why the twin's folder was not written

    @classmethod
    def from_json(cls, d: Mapping) -> FixedCompanion:
        d = _strict(cls, d, "fixed_companion")
        omf = d["oracle_minus_fixed"]
        return cls(**{**d, "oracle_minus_fixed": OracleMinusFixed.from_json(omf) if omf else None})

    def to_json(self) -> dict:
        return {**self.__dict__, "oracle_minus_fixed": self.oracle_minus_fixed.to_json()
                if self.oracle_minus_fixed else None}


# ------------------------------------------------------------------ run result


@dataclass(frozen=True)
class RunResult:
    """A finished run: its identity, how it was trained, and its metrics (``metrics.json``)."""

    run_id: str
    rep: str
    model: str
    protocol: str
    dataset: str | None
    data: str
    selection: str
    seeds: tuple[int, ...]
    epochs: int | None
    label: str | None
    classes: tuple[str, ...]
    bootstrap_unit: str
    contaminated: tuple[str, ...]  # test subjects a learned component had seen
    weights: tuple[str, ...]  # initial weights of the folds' models ("scratch" or a source)
    folds_missing_classes: tuple[str, ...]
    best_epochs: tuple[int | None, ...] | None  # None for fixed selection
    training: tuple[str, ...]  # training paths of the folds ("sequential", "fold-parallel:N"...)
    wall_s: float
    fold_seconds: float  # every fold's training time summed (all seeds and processes)
    finished: str
    metrics: Metrics
    fixed_companion: FixedCompanion | None = None
    derived_from: str | None = None  # the oracle run whose training this fixed run is
    # Hyperparameters chosen by the nested subject-grouped search (inner-val classical heads):
    # {"grid", "cv", "chosen": [{"params", "folds"}]} summed over folds and seeds; None otherwise.
    tuning: Mapping | None = field(default=None, compare=False)
    schema_version: int = SCHEMA_VERSION

    @property
    def oracle(self) -> bool:
        """Epoch chosen on the test fold: a reproduction, never ranked."""
        return self.selection == "oracle"

    @property
    def published_weights(self) -> bool:
        """Published checkpoints re-scored, nothing trained: never ranked with trained runs."""
        return self.selection == "published-weights"

    @classmethod
    def from_json(cls, data: Mapping) -> RunResult:
        """A current-version mapping (see :func:`migrate_run`) -> RunResult; strict on keys."""
        data = dict(data)
        if data.pop("oracle", data.get("selection") == "oracle") != (data.get("selection") == "oracle"):
            raise SchemaError(f"metrics.json: 'oracle' contradicts selection {data.get('selection')!r}")
        d = _strict(cls, {"tuning": None, **data}, "metrics.json")  # absent in untuned runs
        if d.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
            raise SchemaError(f"metrics.json: schema_version {d['schema_version']}, expected {SCHEMA_VERSION}")
        fc = d["fixed_companion"]
        return cls(**{**d, **{k: tuple(d[k]) for k in ("seeds", "classes", "contaminated", "weights",
                                                         "folds_missing_classes", "training")},
                      "best_epochs": None if d["best_epochs"] is None else tuple(d["best_epochs"]),
                      "metrics": Metrics.from_json(d["metrics"]),
                      "fixed_companion": FixedCompanion.from_json(fc) if fc else None})

    def to_json(self) -> dict:
        """Plain JSON types, in the order ``metrics.json`` has always had (``oracle`` kept for
        readers of the file)."""
        out = {"schema_version": self.schema_version}
        for f in fields(self):
            if f.name == "schema_version":
                continue
            v = getattr(self, f.name)
            if f.name == "selection":
                out.update(selection=v, oracle=self.oracle)
                continue
            if f.name == "tuning" and v is None:
                continue  # untuned runs' files stay as they were
            out[f.name] = v.to_json() if hasattr(v, "to_json") else list(v) if isinstance(v, tuple) else v
        return out


def migrate_run(data: Mapping, where: str = "metrics.json") -> dict:
    """An older ``metrics.json`` mapping brought to the current schema (a copy)."""
    d = dict(data)
    version = d.pop("schema_version", 1)
    if version > SCHEMA_VERSION:
        raise SchemaError(f"{where}: schema_version {version} is newer than this code ({SCHEMA_VERSION})")
    if version == 1:
        d = _run_v1_to_v2(d)
    return {**d, "schema_version": SCHEMA_VERSION}


def _run_v1_to_v2(d: dict) -> dict:
    d.pop("oracle", None)  # derived from selection
    d.setdefault("training", ["sequential"])  # only path before fold-parallel training existed
    d.setdefault("weights", ["scratch"])  # no pretrained initialisation existed before the field
    d.setdefault("fold_seconds", d.get("wall_s"))  # one sequential process: wall time was training time
    d.setdefault("derived_from", None)
    fc = d.get("fixed_companion")
    d["fixed_companion"] = None if not fc else {"direct_predictions_agreeing": None, "oracle_minus_fixed": None,
                                                "error": None, **fc}
    return d


def load_result(path: Path) -> RunResult:
    """Read a run folder's ``metrics.json`` (or the file itself), migrating older versions."""
    path = Path(path)
    path = path / "metrics.json" if path.is_dir() else path
    from benchmark.provenance import read_json

    return RunResult.from_json(migrate_run(read_json(path, "rerun or refinalize that run"), str(path)))


# ------------------------------------------------------------------ fold records


@dataclass(frozen=True)
class FoldRecord:
    """One trained fold's test predictions (a ``folds/seed*/<fold>.json`` file).

    ``test`` are positions in the protocol's sample list (pooling orders on them);
    ``keys``, ``subjects``, ``databases`` and ``truth`` (class index) describe those samples,
    so a run is scored from its fold files alone.
    """

    fold: str
    seed: int
    test: tuple[int, ...]
    keys: tuple[str, ...]
    subjects: tuple[str, ...]
    databases: tuple[str, ...]
    truth: tuple[int, ...]
    proba: tuple[tuple[float, ...], ...]
    pred: tuple[int, ...]
    best_epoch: int | None
    missing_train_classes: tuple[str, ...]
    contaminated_subjects: tuple[str, ...]
    weights_source: str | None
    seconds: float
    training: str
    # Oracle runs only: the test fold's last-epoch predictions, i.e. the fixed run's (benchmark.twin).
    last_epoch_proba: tuple[tuple[float, ...], ...] | None = None
    last_epoch_pred: tuple[int, ...] | None = None
    # Heads that choose hyperparameters under inner-val (models/tuning.py): {"grid", "chosen",
    # "cv_uf1", "cv"}. None otherwise, and then absent from the file, so older files load as they are.
    tuning: Mapping | None = field(default=None, hash=False)  # a dict: kept out of the hash
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self):
        per_sample = ("test", "keys", "subjects", "databases", "truth", "proba", "pred")
        lengths = {k: len(getattr(self, k)) for k in per_sample}
        if self.last_epoch_pred is not None:
            lengths.update(last_epoch_pred=len(self.last_epoch_pred), last_epoch_proba=len(self.last_epoch_proba))
        if len(set(lengths.values())) > 1:
            raise SchemaError(f"fold {self.fold!r} seed {self.seed}: per-sample fields differ in length {lengths}")

    @property
    def clips(self) -> tuple[str, ...]:
        return tuple(k[len(s) + 1:] for k, s in zip(self.keys, self.subjects))  # key = subject/clip

    @classmethod
    def from_json(cls, data: Mapping) -> FoldRecord:
        d = _strict(cls, {"tuning": None, **data}, f"fold {data.get('fold')!r}")
        tuples = ("test", "keys", "subjects", "databases", "truth", "pred", "missing_train_classes",
                  "contaminated_subjects")
        d.update({k: tuple(d[k]) for k in tuples}, proba=_rows(d["proba"]))
        if d.get("last_epoch_pred") is not None:
            d.update(last_epoch_pred=tuple(d["last_epoch_pred"]), last_epoch_proba=_rows(d["last_epoch_proba"]))
        return cls(**d)

    def to_json(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for k in ("proba", "last_epoch_proba"):
            out[k] = None if out[k] is None else [list(r) for r in out[k]]
        if out["tuning"] is None:
            del out["tuning"]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def migrate_fold(data: Mapping, samples: Sequence | None = None, y: Sequence | None = None) -> dict:
    """An older fold record brought to the current schema (a copy). Version 1 holds sample
    indices only: ``samples`` and ``y`` (the protocol's samples and labels, as planned for the
    run) supply their keys, subjects, databases and labels."""
    d = dict(data)
    version = d.pop("schema_version", 1)
    where = f"fold {d.get('fold')!r} seed {d.get('seed')!r}"
    if version > SCHEMA_VERSION:
        raise SchemaError(f"{where}: schema_version {version} is newer than this code ({SCHEMA_VERSION})")
    if version == 1:
        if samples is None or y is None:
            raise SchemaError(f"{where}: a version-1 fold record holds sample indices only; "
                              "its run's samples are needed to read it")
        picked = [samples[i] for i in d["test"]]
        d.update(keys=[s.key for s in picked], subjects=[s.subject for s in picked],
                 databases=[s.dataset for s in picked], truth=[int(y[i]) for i in d["test"]])
        d.setdefault("training", "sequential")
        d.setdefault("weights_source", None)
        d.setdefault("last_epoch_proba", None)
        d.setdefault("last_epoch_pred", None)
    return {**d, "schema_version": SCHEMA_VERSION}


def load_fold_record(data: Mapping, samples: Sequence | None = None, y: Sequence | None = None) -> FoldRecord:
    return FoldRecord.from_json(migrate_fold(data, samples, y))
