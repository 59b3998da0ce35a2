"""``python -m benchmark pretrain dface``: train a D-FACE tokenizer checkpoint
(``pretrain dfe``: a frozen DFE basis + RVQ-VAE, see :func:`cmd_dfe`).

    python -m benchmark pretrain dface --frames synthetic --out dface-small.pt
    python -m benchmark pretrain dface --frames DATA_ROOT --preset small --steps 5000 --out ckpt.pt
    python -m benchmark pretrain dface --frames FOLDER --fps 25 --out ckpt.pt
    python -m benchmark pretrain dface --frames DATA_ROOT --datasets samm,smic,casme3 \
        --frames voxceleb2/dev/mp4 --out not-casme2.pt

``--frames`` (repeatable: the sources share ``--pairs`` evenly) is ``synthetic`` (pairs
rendered in memory by ``benchmark.datasets.synthetic``, seed 1 by default: not the faces of
the default dataset), a data root with database folders the readers know (``casme2/``,
``samm/``, ``smic/``, ``casme3/``, only those of ``--datasets`` when given; each at its own
frame rate, subjects recorded with the readers' ids so the runner refuses folds whose test
subject was seen), or any folder of frame sequences and face videos: one leaf folder per
sequence (frames ordered by the last number in the file name, at ``--fps``), and any video
OpenCV opens (``.mp4``, ``.avi``...; at the container's frame rate, ``--fps`` when it states
none), the subject being the first folder level (VoxCeleb's ``id/video/clip.mp4``: the
speaker). Pairs are two frames 0.25-0.5 s apart inside one clip.

Cross-database pretraining: a checkpoint from the databases a run does not test on (and any
face videos) is the starting point of ``--rep-param pretrain=crossfit --rep-param
checkpoint=FILE``, whose checkpoints then add the run's own clips of the other subject
groups; every checkpoint lists all the subjects it saw, and planning refuses a starting
checkpoint that saw a subject of the run.

The training state is saved every ``--save-every`` steps next to ``--out``; the same command
resumes from it after an interruption and writes the checkpoint an uninterrupted run writes.
``--out``'s ``.json`` side file records the cost (seconds over all sessions, steps, pairs).

Without ``--steps``/``--pairs``/``--lr``/``--batch-size`` the preset's default
recipe is used; ``--frames synthetic`` with all defaults reproduces the
checkpoint the ``dface`` representation builds on first use.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("pretrain", help="pretrain a tokenizer checkpoint (D-FACE C-VQ-VAE)")
    p.add_argument("what", choices=["dface", "dfe"], help="what to pretrain (dfe: basis + RVQ-VAE, see cmd_dfe)")
    p.add_argument("--frames", required=True, action="append",
                   help="'synthetic', a data root, or a folder of frame sequences and videos (repeatable)")
    p.add_argument("--datasets", help="comma-separated databases to read from a data root (default: all)")
    p.add_argument("--out", help="checkpoint file to write (default: the preset's default checkpoint in the cache)")
    p.add_argument("--preset", default="small", help="network size: small (CPU), paper (GPU), tiny (tests)")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--pairs", type=int, help="number of frame pairs drawn once and sampled from")
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int, help="pair sampling / synthetic faces / initialisation seed")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate of a plain folder of sequences")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--save-every", type=int, default=100, help="steps between resumable training states (0: none)")


def cmd_dfe(args) -> int:
    """``pretrain dfe``: canonical face, expression basis and RVQ-VAE on every clip of
    ``--frames`` (``synthetic``: the generator at ``--seed``, default 1), frozen afterwards
    with ``--rep-param checkpoint=FILE``. ``--steps/--lr/--batch-size/--preset`` as for the
    representation (its defaults when omitted)."""
    from representations import dfe

    if not args.out:
        raise ValueError("pretrain dfe needs --out FILE")
    if len(args.frames) != 1 or args.datasets:
        raise ValueError("pretrain dfe takes one --frames source and no --datasets")
    params = {k: getattr(args, k) for k in ("steps", "lr", "batch_size") if getattr(args, k) is not None}
    meta = dfe.pretrain(args.frames[0], Path(args.out), seed=dfe.SYNTHETIC_SEED if args.seed is None else args.seed,
                        preset=args.preset, **params)
    print(json.dumps({"checkpoint": args.out, "sha256": meta["sha256"], "bytes": Path(args.out).stat().st_size,
                      "trained_on": meta["trained_on"]["datasets"], "subjects": len(meta["trained_on"]["subjects"]),
                      "final": meta["history"][-1] if meta["history"] else {}}, indent=1))
    return 0


def cmd(args) -> int:
    if args.what == "dfe":
        return cmd_dfe(args)
    from benchmark.core.device import resolve_device
    from representations import dface

    recipe = dict(dface.DEFAULT_RECIPES.get(args.preset, dface.DEFAULT_RECIPES["small"]))
    for key in ("steps", "batch_size", "pairs", "lr", "seed"):
        if getattr(args, key) is not None:
            recipe[key] = getattr(args, key)
    if args.save_every < 0:
        raise ValueError(f"--save-every must be >= 0, not {args.save_every}")
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()] if args.datasets else None
    frames = args.frames[0] if len(args.frames) == 1 else args.frames
    if args.out:
        out = Path(args.out)
    elif frames == "synthetic" and recipe == dface.DEFAULT_RECIPES.get(args.preset) and not datasets:
        out = dface.default_checkpoint(args.preset, build=False)
    else:
        raise ValueError("--out is required unless the default synthetic recipe is trained")
    try:
        meta = dface.pretrain(frames, out, preset=args.preset, fps=args.fps, log_every=args.log_every,
                              device=resolve_device(args.device), datasets=datasets, save_every=args.save_every,
                              **recipe)
    except KeyboardInterrupt:
        print("interrupted: " + (f"the training state of the last multiple of {args.save_every} steps stays next to "
                                 f"{out}; the same command resumes from it" if args.save_every else
                                 "nothing was kept (--save-every 0)"), file=sys.stderr)
        return 130
    last = meta["history"][-1] if meta["history"] else {}
    print(json.dumps({"checkpoint": str(out), "sha256": meta["sha256"], "bytes": out.stat().st_size,
                      "seconds": meta["seconds"], "cost": str(out.with_suffix(".json")),
                      "trained_on": meta["trained_on"]["datasets"], "subjects": len(meta["trained_on"]["subjects"]),
                      "sources": meta.get("sources", []), "final": last}, indent=1))
    return 0
