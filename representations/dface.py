"""D-FACE facial action tokens (Deng et al.): a C-VQ-VAE turns (onset, apex) into an index map.

Output kind ``tokens``: float32 ``(N, h*w, code_dim)`` (default ``(N, 16, 32)``), the
codebook vectors of the chosen indices (``Z~`` of the paper, flattened row by row).
The classifier embeds them with one learned linear layer: the paper applies the
tokenizer's up-projection ``P`` and then a token embedding ``T``, two linear maps
whose composition is one linear map, so nothing is lost by learning it directly,
and the model needs no side channel to the tokenizer. ``discretize=False`` gives
the continuous motion ``D`` instead (the A.9 ablation), in the same shape.
:meth:`DFace.transform_indices` gives the integer index maps ``(N, h*w)``.
Before tokenizing, the apex frame's brightness is matched to the onset frame's
(``match_gain``, default on; pretraining keeps raw frames): see :func:`match_gain`.

Checkpoints: ``checkpoint=None`` uses the preset's default, trained only on the
synthetic generator (``benchmark.datasets.synthetic``, seed 1: other faces than the
seed-0 default dataset) and built on first use into
``$MER_BENCHMARK_CACHE/dface/`` (or ``~/.cache/mer-benchmark/dface/``); the same
file comes from ``python -m benchmark pretrain dface --frames synthetic --preset
small --out PATH``. Every checkpoint records the datasets and subjects it was
trained on; :meth:`DFace.training_subjects` reports them to the runner's
contamination check, and ``finetune_steps > 0`` adds the fold's training subjects.

``pretrain="crossfit"``: the run's planning (``benchmark/crossfit.py``) splits the subjects into
``crossfit_k`` groups and has :meth:`DFace.crossfit_checkpoints` train one checkpoint per group
(the default checkpoint trained ``crossfit_steps`` more on the clips of the other groups'
subjects); each fold's clone gets the one that excludes its test subject (``checkpoint=``), or,
under folds over samples (the identity probe), each sample the one that excludes its subject.

Encodings of the checkpoint's tokenizer are cached per sample in the recipe-keyed
representation cache (``representations/_cache.py``); a fine-tuned tokenizer is
fold-specific and is not cached.

``dface-pairs`` (:class:`DFacePairs`, kind ``pairs``) stops before the tokenizer: it gives the
prepared, gain-matched (onset, apex) pairs the tokenizer sees, for the ``dface-joint`` model,
which owns a copy of the checkpoint's tokenizer and fine-tunes it with its classifier (the
paper's joint training); the checkpoint settings (default or ``pretrain=crossfit``) are dface's.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from benchmark.core.samples import Sample
from representations import REPRESENTATIONS
from representations._dface_checkpoints import (  # noqa: F401 - pretrain & co. are this module's API
    DEFAULT_RECIPES, cache_dir, crossfit_checkpoints, default_checkpoint, pretrain,
)
from representations._dface_net import CVQVAE, file_sha256, load_checkpoint, to_input, train_tokenizer
from representations._dface_pairs import (  # noqa: F401
    clip_pairs, folder_sequences, onset_apex_pair, pair_frames, prepare_frame,
)
from representations._cache import DiskCache, one_thread
from representations.base import Representation, check_missing

DFACE_CACHE_VERSION = 1  # bump when encoding (frame loading, gain matching) changes a sample's D
PAIRS_CACHE_VERSION = 1  # bump when frame loading or gain matching changes a sample's pair


def match_gain(i2: torch.Tensor, i1: torch.Tensor) -> torch.Tensor:
    """``i2`` rescaled to ``i1``'s per-image mean and standard deviation.

    Lighting flicker (a global gain change between onset and apex) is no facial
    action, but a briefly pretrained tokenizer encodes it as one code repeated
    over the whole map: on synthetic development data (generator seed 2, not
    the default dataset) 99 % of ``D``'s norm was such a sample-wide component
    and a linear probe on the tokens was at chance (UF1 0.36); matching the
    gain before tokenizing cut that share to 39 % and lifted the probe to 0.51.
    Pretraining keeps raw frames (as the paper); identical frames stay identical."""
    dims = tuple(range(1, i1.dim()))
    m1, s1 = i1.mean(dims, keepdim=True), i1.std(dims, keepdim=True)
    m2, s2 = i2.mean(dims, keepdim=True), i2.std(dims, keepdim=True)
    same = (i1 == i2).flatten(1).all(1).view(-1, *([1] * (i1.dim() - 1)))  # exact, not up to rounding
    return torch.where(same, i2, (i2 - m2) * (s1 / s2.clamp_min(1e-6)) + m1)


# --------------------------------------------------------------------------- representation


@REPRESENTATIONS.register()
class DFace(Representation):
    """D-FACE action tokens of the (onset, apex) pair.

    Args:
        preset: ``small`` (64x64 grayscale, 2 CPU cores; default), ``paper``
            (hidden 512, 256x256 RGB; needs a checkpoint you pretrain) or ``tiny`` (tests).
        checkpoint: a file from ``python -m benchmark pretrain dface``; None = the
            preset's synthetic-only default (built on first use).
        discretize: False = continuous ``D = E2 - E1`` instead of codebook vectors (A.9).
        finetune_steps: > 0 fine-tunes the tokenizer per fold, self-supervised (pixel
            MSE), on pairs from the fold's training clips only (then ``learned``).
        finetune_lr, batch_size, seed: fine-tuning and inference settings.
        match_gain: rescale the apex frame to the onset frame's mean and standard
            deviation before tokenizing (default True; see :func:`match_gain`).
        on_missing: ``error`` or ``blank`` for samples without frames: ``blank``
            gives them the "no action" tokens (``D = 0``), noted in the report.
        device: ``cpu``, ``cuda`` or ``auto``.
        pretrain: ``none`` (default) or ``crossfit``: pretrain on the run's own clips, one
            checkpoint per subject group, never on a fold's test subject (see the module).
        crossfit_k: number of subject groups (and checkpoints), 2 .. the run's subjects.
        crossfit_steps: training steps of each cross-fitted checkpoint, from the default
            checkpoint, at ``finetune_lr`` and ``batch_size`` (default 300).
        crossfit_gain: train the cross-fitted checkpoints on the pairs gain-matched as they are
            tokenized (``match_gain``), not on raw pairs (default False, as the paper pretrains).
    """

    kind = "tokens"

    def __init__(self, preset: str = "small", checkpoint: str | None = None, discretize: bool = True,
                 finetune_steps: int = 0, finetune_lr: float = 3e-4, batch_size: int = 64, seed: int = 0,
                 match_gain: bool = True, on_missing: str = "error", device: str = "cpu", pretrain: str = "none",
                 crossfit_k: int = 4, crossfit_steps: int = 300, crossfit_gain: bool = False):
        self.preset = preset
        self.checkpoint = checkpoint
        self.discretize = discretize
        self.finetune_steps = finetune_steps
        self.finetune_lr = finetune_lr
        self.batch_size = batch_size
        self.seed = seed
        self.match_gain = match_gain
        self.on_missing = on_missing
        self.device = device
        self.pretrain = pretrain
        self.crossfit_k = crossfit_k
        self.crossfit_steps = crossfit_steps
        self.crossfit_gain = crossfit_gain

    @property
    def learned(self) -> bool:  # cross-fitted: each fold has its own checkpoint
        return self.finetune_steps > 0 or self.pretrain == "crossfit"

    def crossfit_groups(self) -> int:
        if self.pretrain not in ("none", "crossfit"):
            raise ValueError(f"dface: pretrain must be 'none' or 'crossfit', not {self.pretrain!r}")
        if self.crossfit_gain not in (False, True):
            raise ValueError(f"dface: crossfit_gain must be true or false, not {self.crossfit_gain!r}")
        if self.pretrain == "none":
            if self.crossfit_gain:
                raise ValueError("dface: crossfit_gain=true needs pretrain=crossfit (it says how those checkpoints train)")
            return 0
        for name, low in (("crossfit_k", 2), ("crossfit_steps", 1)):
            value = getattr(self, name)
            if type(value) is not int or value < low:
                raise ValueError(f"dface: {name} must be an integer >= {low}, not {value!r}")
        return self.crossfit_k

    def crossfit_checkpoints(self, samples: Sequence[Sample], groups: Sequence[int]) -> list[dict]:
        """K checkpoints (built once, then read from the cache): the k-th never saw a clip of group k."""
        self.prepare()._pretrained()  # the initial checkpoint, and its preset checked
        return crossfit_checkpoints(samples, groups, self.crossfit_groups(), self.checkpoint_path(), self.preset,
                                    steps=self.crossfit_steps,
                                    pairs=DEFAULT_RECIPES.get(self.preset, DEFAULT_RECIPES["small"])["pairs"],
                                    batch_size=self.batch_size, lr=self.finetune_lr, seed=self.seed,
                                    device=self._device(), match_gain=bool(self.crossfit_gain))

    # ------------------------------------------------------------------ checkpoint

    def prepare(self) -> "DFace":
        """Build the preset's default checkpoint if it is missing (under a file lock): an
        explicit step of planning a run, and of ``fit``/``transform``, never of ``recipe``."""
        if not self.checkpoint:
            default_checkpoint(self.preset, build=True)
        return self

    def checkpoint_path(self) -> Path:
        if self.checkpoint:
            path = Path(self.checkpoint).expanduser()
            if not path.exists():
                raise FileNotFoundError(f"D-FACE checkpoint {path} does not exist")
            return path
        path = default_checkpoint(self.preset, build=False)
        if not path.exists():
            raise FileNotFoundError(f"the default {self.preset} D-FACE tokenizer is not built yet ({path}): "
                                    "call prepare() (planning a run does) or `python -m benchmark pretrain dface`")
        return path

    def _pretrained(self) -> tuple[CVQVAE, dict]:
        """The checkpoint's network (loaded once per instance) and its meta."""
        path = self.checkpoint_path()
        cached = getattr(self, "_loaded", None)
        if cached is None or cached[0] != str(path):
            net, meta = load_checkpoint(path)
            if self.checkpoint and meta.get("recipe", {}).get("preset") not in (None, self.preset):
                raise ValueError(f"checkpoint {path} was trained with preset {meta['recipe']['preset']!r}, "
                                 f"not {self.preset!r}; pass --rep-param preset={meta['recipe']['preset']}")
            meta = {**meta, "path": str(path), "sha256": file_sha256(path)}
            self._loaded = cached = (str(path), net, meta)
        return cached[1], cached[2]

    def _device(self) -> torch.device:
        from benchmark.core.device import resolve_device

        return resolve_device(self.device)

    def _net(self) -> CVQVAE:
        net = getattr(self, "net_", None)
        return net if net is not None else self._pretrained()[0]

    # ------------------------------------------------------------------ estimator API

    def _fold_checkpoint(self) -> tuple[CVQVAE, dict]:
        """The checkpoint's network and meta; under ``pretrain=crossfit`` it must be a cross-fitted one."""
        net, meta = self.prepare()._pretrained()
        if self.pretrain == "crossfit" and meta["recipe"].get("frames") != "crossfit":
            raise ValueError(f"{type(self).registry_name} pretrain=crossfit: the run's plan gives each fold a "
                             f"cross-fitted checkpoint (set_params(checkpoint=...)); {meta['path']} is not one")
        self.checkpoint_meta_ = {k: meta[k] for k in ("path", "sha256", "trained_on", "recipe")}
        return net, meta

    def fit(self, samples: Sequence[Sample], y=None) -> "DFace":
        net, meta = self._fold_checkpoint()
        trained = set(meta["trained_on"]["subjects"])
        if self.finetune_steps > 0:
            net = copy.deepcopy(net)
            cfg = net.cfg
            pairs = clip_pairs(samples, max(4 * len(samples), self.batch_size), cfg.image_size, cfg.channels,
                               seed=self.seed)
            with one_thread():
                train_tokenizer(net, pairs, self.finetune_steps, self.batch_size, self.finetune_lr, self.seed,
                                replace_dead=False, device=self._device())
            net.cpu().eval()
            trained |= {s.subject for s in samples}
        self.net_ = net
        self.trained_on_ = trained
        return self

    def training_subjects(self) -> set[str]:
        if getattr(self, "trained_on_", None) is not None:
            return set(self.trained_on_)
        return set(self._pretrained()[1]["trained_on"]["subjects"])

    def recipe(self) -> dict:
        meta = self._pretrained()[1]
        r = {**super().recipe(), "checkpoint_sha256": meta["sha256"],
             "checkpoint_trained_on": meta["trained_on"]["datasets"]}
        if self.pretrain == "none":  # the recipe (and cache keys) of runs made before cross-fitting existed
            for key in ("pretrain", "crossfit_k", "crossfit_steps"):
                del r[key]
        if not r.get("crossfit_gain"):  # ... and before crossfit_gain existed
            r.pop("crossfit_gain", None)
        return r

    @torch.no_grad()
    def encode(self, samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indices (N, L) int64, quantized vectors (N, L, code), continuous D (N, L, code)).

        With the checkpoint's tokenizer (no per-fold fine-tuning) each sample's D
        is cached on disk by the recipe (checkpoint hash included) and its two
        frames' identity, so a second run only reads it back; a fine-tuned
        tokenizer is fold-specific and encodes afresh.
        """
        check_missing(samples, self.on_missing, "dface", "get the 'no action' tokens")
        net = self.prepare()._net()
        dev = self._device()
        cfg = net.cfg
        cache = DiskCache() if self.finetune_steps == 0 else None
        # D does not depend on ``discretize`` (applied after): one entry serves both settings
        recipe = {**{k: v for k, v in self.recipe().items() if k != "discretize"},
                  "stage": "dface-D", "version": DFACE_CACHE_VERSION}
        events: dict[int, list] = {k: [{"kind": "no_frames_no_action_tokens", "sample": s.key}]
                                   for k, s in enumerate(samples) if not s.frames}
        d = torch.zeros(len(samples), cfg.n_tokens, cfg.code_dim)  # D = 0: "no action" for blanks
        todo = []
        for k, s in enumerate(samples):
            if not s.frames:
                continue
            key = cache.key(recipe, self._pair_paths(s)) if cache else None
            hit = cache.get(key) if cache else None
            if hit is None:
                todo.append((k, s, key))
            else:
                d[k] = torch.from_numpy(hit[0]["d"])
                events[k] = hit[1].get("events", [])
        if todo:
            net.to(dev).eval()
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            for k, _, _ in chunk:
                events[k] = []
            pairs = torch.as_tensor(np.stack([onset_apex_pair(s, cfg.image_size, cfg.channels, events[k])
                                              for k, s, _ in chunk]))
            out = net.tokenize(*self._input(pairs.to(dev)))[1].cpu()
            for (k, _, key), dk in zip(chunk, out):
                d[k] = dk
                if cache:
                    cache.put(key, {"d": dk.numpy()}, {"events": events[k]}, recipe)
        net.cpu()
        self.report_ = [e for k in sorted(events) for e in events[k]]  # the runner writes it to rep_report.json
        self.cache_stats_ = ({"hits": len(samples) - len(todo) - sum(not s.frames for s in samples),
                              "computed": len(todo), "dir": str(cache.root)} if cache else
                             {"disabled": "tokenizer fine-tuned on this fold"})
        indices = net.quant.nearest(d)
        return indices.numpy(), net.quant.codebook.detach()[indices].numpy(), d.numpy()

    @staticmethod
    def _pair_paths(s: Sample) -> list[Path]:
        """The files ``onset_apex_pair`` reads: the cache entry's source identity."""
        return [s.frame_path(want)[0] for _, want in pair_frames(s)]

    def _input(self, pairs_u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i1, i2 = to_input(pairs_u8)
        return (i1, match_gain(i2, i1)) if self.match_gain else (i1, i2)

    def transform(self, samples: Sequence[Sample]) -> np.ndarray:
        indices, quantized, d = self.encode(list(samples))
        return (quantized if self.discretize else d).astype(np.float32)

    def transform_indices(self, samples: Sequence[Sample]) -> np.ndarray:
        return self.encode(list(samples))[0]

    def codebook(self) -> np.ndarray:
        return self._net().quant.codebook.detach().cpu().numpy().copy()

    @torch.no_grad()
    def index_map(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """(h, w) index map of two images (any size, gray or BGR uint8)."""
        net = self._net().eval()
        cfg = net.cfg
        pair = np.stack([prepare_frame(im, cfg.image_size, cfg.channels) for im in (first, second)])
        idx, _ = net.tokenize(*self._input(torch.as_tensor(pair[None])))
        return idx[0].view(cfg.token_h, cfg.token_w).numpy()

    def no_action_map(self, image: np.ndarray) -> np.ndarray:
        """The index map of two identical frames: the "no action" state (section 3.2)."""
        return self.index_map(image, image)

    def __getstate__(self):  # the loaded checkpoint is not part of the estimator's state
        state = dict(self.__dict__)
        state.pop("_loaded", None)
        return state


@REPRESENTATIONS.register()
class DFacePairs(DFace):
    """The (onset, apex) pairs exactly as D-FACE's tokenizer takes them, for ``dface-joint``.

    Output kind ``pairs``: float32 ``(N, 2, C, S, S)`` (``small``: ``(N, 2, 1, 64, 64)``), the
    onset frame and the apex frame after :func:`to_input` (about [-0.5, 0.5]) and, with
    ``match_gain``, :func:`match_gain`: the tensors ``dface`` feeds its frozen tokenizer.
    A sample without frames (``on_missing=blank``) gets two identical mid-grey frames, which
    the tokenizer maps to ``D = 0``, the "no action" tokens ``dface`` gives it.

    The pairs do not depend on the checkpoint's weights, only on its input size and channels:
    the cache entry is keyed by those, ``match_gain``, a code version and the two frames'
    identity, so the K cross-fitted checkpoints of a run share one entry per sample. The
    checkpoint stays a parameter (the default one, or the fold's cross-fitted one that the
    plan sets under ``pretrain=crossfit``): :meth:`tokenizer` hands the model a copy of its
    network, :meth:`training_subjects` reports its pretraining subjects to the runner.

    Args: as :class:`DFace` (``preset``, ``checkpoint``, ``match_gain``, ``on_missing``,
    ``device``, ``pretrain``, ``crossfit_k``, ``crossfit_steps``; ``finetune_lr``,
    ``batch_size`` and ``seed`` set the cross-fitted pretraining only); nothing is fine-tuned
    here: ``dface-joint`` trains the tokenizer.
    """

    kind = "pairs"

    def __init__(self, preset: str = "small", checkpoint: str | None = None, match_gain: bool = True,
                 on_missing: str = "error", device: str = "cpu", pretrain: str = "none", crossfit_k: int = 4,
                 crossfit_steps: int = 300, finetune_lr: float = 3e-4, batch_size: int = 64, seed: int = 0):
        super().__init__(preset=preset, checkpoint=checkpoint, match_gain=match_gain, on_missing=on_missing,
                         device=device, pretrain=pretrain, crossfit_k=crossfit_k, crossfit_steps=crossfit_steps,
                         finetune_lr=finetune_lr, batch_size=batch_size, seed=seed)

    @property
    def learned(self) -> bool:  # only a cross-fitted checkpoint is per fold; the pairs never are
        return self.pretrain == "crossfit"

    def fit(self, samples: Sequence[Sample], y=None) -> "DFacePairs":
        meta = self._fold_checkpoint()[1]
        self.trained_on_ = set(meta["trained_on"]["subjects"])
        return self

    def tokenizer(self) -> tuple[torch.nn.Module, dict]:
        """A copy of the checkpoint's tokenizer (the model trains it) and the checkpoint's
        ``path``, ``sha256``, ``trained_on`` and ``recipe``."""
        net, meta = self._fold_checkpoint()
        return copy.deepcopy(net).cpu().eval(), dict(self.checkpoint_meta_)

    def transform(self, samples: Sequence[Sample]) -> np.ndarray:
        samples = list(samples)
        check_missing(samples, self.on_missing, "dface-pairs", "get two identical mid-grey frames (no action)")
        cfg = self.prepare()._pretrained()[0].cfg
        cache = DiskCache()
        recipe = {"rep": "dface-pairs", "stage": "dface-pairs", "image_size": cfg.image_size,
                  "channels": cfg.channels, "match_gain": self.match_gain, "version": PAIRS_CACHE_VERSION}
        out = np.zeros((len(samples), 2, cfg.channels, cfg.image_size, cfg.image_size), np.float32)
        events, computed = {}, 0
        for k, s in enumerate(samples):
            if not s.frames:
                events[k] = [{"kind": "no_frames_no_action_tokens", "sample": s.key}]
                continue
            key = cache.key(recipe, self._pair_paths(s))
            hit = cache.get(key)
            if hit is not None:
                out[k], events[k] = hit[0]["pair"], hit[1].get("events", [])
                continue
            events[k] = []
            i1, i2 = self._input(torch.as_tensor(onset_apex_pair(s, cfg.image_size, cfg.channels, events[k])[None]))
            out[k] = torch.stack([i1, i2], 1)[0].numpy()
            cache.put(key, {"pair": out[k]}, {"events": events[k]}, recipe)
            computed += 1
        self.report_ = [e for k in sorted(events) for e in events[k]]
        self.cache_stats_ = {"hits": sum(bool(s.frames) for s in samples) - computed, "computed": computed,
                             "dir": str(cache.root)}
        return out
