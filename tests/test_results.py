"""Typed, versioned results: every historic metrics.json shape and every committed run loads."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from benchmark.results import (SCHEMA_VERSION, FoldRecord, RunResult, SchemaError, load_fold_record, load_result,
                               migrate_run)

ROOT = Path(__file__).resolve().parents[1]
HISTORIC = sorted((Path(__file__).parent / "historic_results").glob("*.json"))
COMMITTED = sorted((ROOT / "results" / "runs").glob("*/metrics.json"))


def _contains(new, old) -> bool:
    """Every value of ``old`` is in ``new`` (``new`` may add keys)."""
    if isinstance(old, dict):
        return isinstance(new, dict) and all(k in new and _contains(new[k], v) for k, v in old.items())
    return new == old


def _shape(d: dict) -> tuple:
    """What tells the older shapes apart: optional top-level keys, the companion's keys,
    per-database blocks, nulls and empties where others have values."""
    fc = d.get("fixed_companion") or {}
    return (tuple(k for k in ("training", "weights", "fold_seconds", "derived_from", "fixed_companion") if k in d),
            tuple(sorted(fc)), bool(d["metrics"]["per_database"]), d["best_epochs"] is None,
            bool(d["contaminated"]), d["dataset"] is None)


def test_the_fixture_holds_every_older_shape_of_the_committed_runs():
    assert len(HISTORIC) >= 10
    have = {_shape(json.loads(p.read_text())) for p in HISTORIC}
    older = [p for p in COMMITTED if "schema_version" not in json.loads(p.read_text())]
    missing = sorted({p.parent.name for p in older if _shape(json.loads(p.read_text())) not in have})
    assert not missing, f"copy one metrics.json of each new older shape into tests/historic_results: {missing}"


@pytest.mark.parametrize("path", HISTORIC, ids=lambda p: p.name.split("__")[0])
def test_every_historic_shape_loads_and_round_trips(path):
    old = json.loads(path.read_text())
    r = load_result(path)
    assert r.run_id == path.stem.split("__")[1] and r.schema_version == SCHEMA_VERSION
    assert RunResult.from_json(r.to_json()) == r
    assert _contains(r.to_json(), old)  # migration adds, never changes a value
    assert r.oracle == (r.selection == "oracle") and r.oracle == (r.fixed_companion is not None)
    assert r.training and r.weights and r.fold_seconds >= 0
    o = r.metrics.overall
    assert o.uf1.ci.low <= o.uf1.mean <= o.uf1.ci.high and len(o.per_seed) == len(r.seeds)


def test_migration_fills_what_older_runs_lack():
    d = json.loads(next(p for p in HISTORIC if "no-training-no-weights__" in p.name).read_text())
    d.pop("fold_seconds")
    r = RunResult.from_json(migrate_run(d))
    assert r.training == ("sequential",) and r.weights == ("scratch",) and r.fold_seconds == d["wall_s"]
    assert r.derived_from is None and r.fixed_companion is None
    fc = load_result(next(p for p in HISTORIC if "fixed-companion__" in p.name)).fixed_companion
    assert fc.direct_predictions_agreeing is None and fc.oracle_minus_fixed.uf1.difference > 0


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.parent.name)
def test_every_committed_run_loads(path):
    r = load_result(path.parent)
    assert r.run_id == path.parent.name
    assert set(r.metrics.per_database) <= {"casme2", "samm", "smic", "casme3"}


def test_unknown_keys_and_newer_versions_are_errors():
    d = json.loads(HISTORIC[0].read_text())
    with pytest.raises(SchemaError, match="unknown keys \\['uf2'\\]"):
        RunResult.from_json(migrate_run({**d, "uf2": 1}))
    with pytest.raises(SchemaError, match="newer than this code"):
        migrate_run({**d, "schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(SchemaError, match="contradicts"):
        RunResult.from_json({**load_result(HISTORIC[0]).to_json(), "oracle": True, "selection": "fixed"})


def _sample(subject, clip, dataset="casme2"):
    from benchmark.core.samples import Sample

    return Sample(dataset=dataset, subject=subject, clip=clip, emotion="happiness")


def test_a_version_1_fold_record_takes_its_samples_from_the_run():
    samples = [_sample("casme2/sub01", "EP01"), _sample("samm/006", "006_1_2", "samm"), _sample("casme2/sub02", "EP02")]
    old = {"fold": "casme2/sub02", "seed": 0, "test": [2, 0], "proba": [[0.1, 0.9], [0.8, 0.2]], "pred": [1, 0],
           "best_epoch": None, "missing_train_classes": [], "contaminated_subjects": [], "seconds": 1.5}
    with pytest.raises(SchemaError, match="indices only"):
        load_fold_record(old)
    rec = load_fold_record(old, samples, [0, 1, 1])
    assert rec.keys == ("casme2/sub02/EP02", "casme2/sub01/EP01") and rec.truth == (1, 0)
    assert rec.databases == ("casme2", "casme2") and rec.clips == ("EP02", "EP01")
    assert rec.training == "sequential" and rec.weights_source is None and rec.last_epoch_pred is None
    assert FoldRecord.from_json(rec.to_json()) == rec
    assert load_fold_record(json.loads(json.dumps(rec.to_json()))) == rec  # version 2 needs no samples
    assert replace(rec, pred=(0, 0)) != rec
    with pytest.raises(SchemaError, match="differ in length"):
        replace(rec, truth=(1,))
