"""DFE: Discrete Facial Encoding (Tran et al.): per-frame expression vectors -> RVQ-VAE tokens.

Expression vectors (``source``):

- ``mesh`` (default; EMOCA's licensed FLAME assets cannot be shipped): mediapipe
  FaceMesh (468 3D points) on ``n_frames`` frames evenly spaced from onset to offset
  (the one nearest the apex replaced by the apex), each frame Procrustes-aligned
  (rotation, scale, translation) to a canonical shape, minus the clip's aligned onset
  shape (removes identity, leaves the deformation), projected on an ``n_components``
  PCA expression basis and divided by one scale (RMS of the training coefficients).
  Canonical shape (generalised Procrustes mean of the training onsets), basis and
  scale are fitted on the fold's training samples only.
- ``vectors``: user-supplied per-frame vectors (EMOCA / SMIRK expression codes, ...):
  ``vectors_dir/<sample key>/<frame number>.npy`` (sample key = ``casme2/sub01/EP02_01f``),
  each a 1-D array whose length is divisible by 10; used as given (the paper's input).

Landmarks of the mesh source (``landmarks``):

- ``detect`` (default; the recipe and run ids of every earlier run): the 468-point mesh
  detected on every sampled frame, each frame Procrustes-aligned on all points. On CASME II
  the detector's frame-to-frame jitter is as large as a micro-expression (results/DFE.md).
- ``flow``: the 478-point attention mesh detected once, on the onset frame, and carried to
  every later sampled frame by the onset -> frame optical flow (``flow``: ``farneback``,
  default, or ``tvl1``) sampled at the vertices (bilinear); each frame Procrustes-aligned on
  stable points only (nose bridge, inner eye corners, nose side walls, mandible angles:
  ``representations._dfe_track.STABLE_POINTS``), then minus the aligned onset, as above.

``detect``: a face mesh that finds no face on a frame takes the nearest frame with a face
(event ``no_face``); a clip without any is all-zero displacement (``no_face_clip``).
``flow``: no face on the onset frame gives all-zero displacement (``no_face_onset``).
A sample without frames gets all-zero vectors when ``on_missing=blank`` (``no_frames``).

The RVQ-VAE (``representations._dfe_net``) is trained per fold on the training samples'
frames (``steps`` Adam steps); fitted states are cached on disk under the recipe and the
training sample keys, so an ``svm`` and a ``transformer`` run on the same folds share them.

``output``: ``tokens`` (int64 ``(N, n_frames * L)``; ``svm`` turns them into a bag of
words), ``codes`` (float32 ``(N, n_frames * L, code_dim)``, the codebook vectors, for
``transformer``), ``bow`` (float ``(N, K)`` token frequencies), ``expression`` (float32
``(N, n_frames, in_dim)``, the continuous expression vectors: the no-quantization ablation). ``dfe-bow`` is the same
with kind ``vector`` (for ``logreg`` and the identity probe).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from benchmark.core.samples import Sample
from representations import REPRESENTATIONS
from representations._cache import DiskCache, one_thread, parallel_map
from representations._dfe_net import PRESETS, NetConfig, RVQVAE, from_arrays, state_arrays, train
from representations._dfe_checkpoints import load_checkpoint, save_checkpoint
from representations._dfe_features import displacements, fill_missing, sample_landmarks, used_frames  # noqa: F401
from representations._dfe_track import FLOWS, STABLE, STABLE_POINTS, tracked_displacements, tracked_landmarks  # noqa: F401
from representations._landmarks import procrustes_mean
from representations.base import Representation, RepresentationError

SYNTHETIC_SEED = 1  # pretraining faces; the default synthetic dataset is seed 0
VERSION = 1  # bump when features or training change for the same recipe
SOURCES = ("mesh", "vectors")
LANDMARKS = ("detect", "flow")
OUTPUTS = ("tokens", "codes", "bow", "expression")
RUNTIME_PARAMS = ("n_jobs", "progress", "on_missing")
# CPU-sized encoder; "paper" is the paper's 6 layers x width 128 (hours per LOSO run on 2 busy cores)
NET_PRESETS = {"small": NetConfig(width=64, depth=2, heads=4, ff=128), **PRESETS}


# --------------------------------------------------------------------------- diversity metrics


def normalized_entropy(tokens: np.ndarray, n_codes: int) -> float:
    """Entropy of token usage over ``n_codes`` in bits, divided by log2(K) (the paper's eq. 8
    divides by K, but its reported 0.926 is only reachable with log2 K)."""
    p = np.bincount(np.asarray(tokens).ravel(), minlength=n_codes) / max(np.asarray(tokens).size, 1)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum() / np.log2(n_codes))


def activation_matrix(tokens: np.ndarray, n_codes: int) -> np.ndarray:
    """(N, L) codes per frame -> (N, K) binary activations (code used at any stage)."""
    t = np.asarray(tokens).reshape(len(tokens), -1)
    X = np.zeros((len(t), n_codes), bool)
    X[np.arange(len(t))[:, None], t] = True
    return X


def average_nmi(X: np.ndarray) -> tuple[float, int]:
    """Eq. 9: mean over feature pairs of I(Xi;Xj) / sqrt(H(Xi) H(Xj)) for binary columns.

    Columns that never or always fire have zero entropy and no defined NMI: they are
    left out; the number of columns used is returned with the mean."""
    X = np.asarray(X, bool)
    keep = X.any(0) & ~X.all(0)
    X = X[:, keep].astype(np.float64)
    k, n = X.shape[1], len(X)
    if k < 2:
        return float("nan"), k
    p1 = X.mean(0)
    both = (X.T @ X) / n  # P(i=1, j=1)
    joint = {(1, 1): both, (1, 0): p1[:, None] - both, (0, 1): p1[None, :] - both,
             (0, 0): 1 - p1[:, None] - p1[None, :] + both}
    marg = {1: p1, 0: 1 - p1}
    mi = np.zeros((k, k))
    for (a, b), pj in joint.items():
        denom = marg[a][:, None] * marg[b][None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            mi += np.where(pj > 1e-15, pj * np.log(pj / denom), 0.0)
    h = -(p1 * np.log(p1) + (1 - p1) * np.log(1 - p1))
    nmi = mi / np.sqrt(h[:, None] * h[None, :])
    iu = np.triu_indices(k, 1)
    return float(nmi[iu].mean()), k


def bow_counts(tokens: np.ndarray, n_codes: int) -> np.ndarray:
    """(N, ...) codes -> (N, K) counts; each row sums to the number of tokens of the sample."""
    t = np.asarray(tokens).reshape(len(tokens), -1)
    return np.stack([np.bincount(r, minlength=n_codes) for r in t]) if len(t) else np.zeros((0, n_codes), int)


# --------------------------------------------------------------------------- pretraining


def pretrain(frames: str, out: Path, seed: int = SYNTHETIC_SEED, scale: str = "default", log=print,
             **params) -> dict:
    """Fit canonical shape, basis and RVQ-VAE on every clip of ``frames`` and write ``out``.

    ``frames``: ``synthetic`` (the generator at ``seed``, default 1: other faces than the
    default dataset) or a data root with database folders the readers know; the
    checkpoint records the datasets and subjects (the runner refuses test subjects among them).
    """
    import dataclasses

    from benchmark.datasets import read_dataset
    from benchmark.datasets.synthetic import ensure_synthetic

    root = ensure_synthetic(seed=seed, scale=scale) if frames == "synthetic" else Path(frames)
    samples, names = [], []
    for name in ("casme2", "samm", "smic", "casme3"):
        if (root / name).is_dir():
            got = [s for s in read_dataset(name, root / name).samples if s.frames]
            samples += got
            names += [name] if got else []
    if not samples:
        raise FileNotFoundError(f"no readable database with frames under {root}")
    rep = DFE(**params)
    cfg = rep._check()
    log(f"dfe: fitting on {len(samples)} clips of {', '.join(names)} from {frames}")
    raw, events = rep._raw(samples)
    arrays, fit_meta = rep._fit_arrays(raw, cfg)
    datasets = ([f"synthetic(generator=benchmark.datasets.synthetic, seed={seed}, scale={scale})"] if frames == "synthetic"
                else [f"{n}:{Path(frames).resolve() / n}" for n in names])
    meta = {"trained_on": {"datasets": datasets, "subjects": sorted({s.subject if frames != "synthetic"
                                                                     else f"synthetic-seed{seed}:{s.subject}"
                                                                     for s in samples})},
            "recipe": {"frames": frames if frames == "synthetic" else str(Path(frames).resolve()), "seed": seed,
                       "scale": scale if frames == "synthetic" else None,
                       **{k: v for k, v in rep._recipe_params().items() if k != "checkpoint"},
                       "version": VERSION},
            "net": dataclasses.asdict(rep._net_config(cfg)), "history": fit_meta["history"],
            "fallbacks": len(events), "torch": torch.__version__}
    sha = save_checkpoint(Path(out), arrays, meta)
    return {**meta, "sha256": sha}


# --------------------------------------------------------------------------- representation


@REPRESENTATIONS.register()
class DFE(Representation):
    """DFE expression tokens of the frames onset -> offset.

    Args:
        source: ``mesh`` or ``vectors`` (see module docstring); ``vectors_dir`` for the latter.
        n_frames: frames per clip, evenly spaced onset..offset (apex included).
        n_components: size of the PCA expression basis (mesh source; the paper's 50).
        preset: RVQ-VAE size, ``small`` (CPU default: 2 layers, width 64), ``paper``
            (6 layers, width 128) or ``tiny`` (tests). T=10, L=4 stages, K=64, D=50 in all.
        steps, batch_size, lr, seed: RVQ-VAE training per fold (Adam; the paper's lr is
            1e-4 over 500 epochs of 350K frames; 3e-3 suits the short CPU schedule: chosen on the
            reconstruction loss of one fold's training frames, no labels, no test subject).
        output: ``tokens``, ``codes``, ``bow`` or ``expression``.
        checkpoint: a file from ``python -m benchmark pretrain dfe``: its canonical shape,
            basis and RVQ-VAE are used frozen (no per-fold fitting); ``source``, ``n_frames``
            and ``n_components`` must match the checkpoint's.
        on_missing: ``error`` or ``blank`` for samples without frames.
        landmarks: ``detect`` (the mesh on every frame) or ``flow`` (detected on the onset,
            tracked by optical flow, aligned on stable points); mesh source only.
        flow: the tracker's flow for ``landmarks=flow``: ``farneback`` or ``tvl1``.
        n_jobs, progress: landmark extraction threads and progress bar (not in the recipe).
    """

    kind = "tokens"

    def __init__(self, source: str = "mesh", vectors_dir: str | None = None, n_frames: int = 9,
                 n_components: int = 50, preset: str = "small", steps: int = 300, batch_size: int = 128,
                 lr: float = 3e-3, seed: int = 0, output: str = "tokens", on_missing: str = "error",
                 checkpoint: str | None = None, landmarks: str = "detect", flow: str = "farneback",
                 n_jobs: int | None = None, progress: bool | None = None):
        self.source = source
        self.vectors_dir = vectors_dir
        self.n_frames = n_frames
        self.n_components = n_components
        self.preset = preset
        self.steps = steps
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.output = output
        self.on_missing = on_missing
        self.checkpoint = checkpoint
        self.landmarks = landmarks
        self.flow = flow
        self.n_jobs = n_jobs
        self.progress = progress

    @property
    def learned(self) -> bool:
        """Per-fold fitting, unless a frozen checkpoint gives basis and RVQ-VAE."""
        return self.checkpoint is None

    # ------------------------------------------------------------------ checks and recipe

    def _check(self) -> NetConfig:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {self.source!r}")
        if self.source == "vectors" and not self.vectors_dir:
            raise ValueError("source=vectors needs --rep-param vectors_dir=DIR (DIR/<sample key>/<frame>.npy)")
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, not {self.output!r}")
        if self.on_missing not in ("error", "blank"):
            raise ValueError(f"on_missing must be 'error' or 'blank', not {self.on_missing!r}")
        if self.preset not in NET_PRESETS:
            raise ValueError(f"preset must be one of {', '.join(NET_PRESETS)}, not {self.preset!r}")
        if self.source == "mesh" and self.n_components % NET_PRESETS[self.preset].T:
            raise ValueError(f"n_components must be a multiple of T={NET_PRESETS[self.preset].T} (the encoder's "
                             f"sequence length), not {self.n_components}")
        if self.n_frames < 2:
            raise ValueError("n_frames must be >= 2 (the onset is the neutral reference)")
        if self.landmarks not in LANDMARKS:
            raise ValueError(f"landmarks must be one of {', '.join(LANDMARKS)}, not {self.landmarks!r}")
        if self.flow not in FLOWS:
            raise ValueError(f"flow must be one of {', '.join(FLOWS)}, not {self.flow!r}")
        if self.landmarks == "flow" and self.source != "mesh":
            raise ValueError("landmarks=flow tracks the face mesh: it needs source=mesh")
        return NET_PRESETS[self.preset]

    def _recipe_params(self) -> dict:
        """Parameters that determine the features and the fitted state. ``landmarks`` and
        ``flow`` were added later: left out under ``landmarks=detect``, so the per-frame
        path keeps its recipe (and its cached states) from before they existed."""
        params = {k: v for k, v in self.get_params().items() if k not in RUNTIME_PARAMS}
        if params.get("landmarks", "detect") == "detect":
            params.pop("landmarks", None)
            params.pop("flow", None)
        return params

    def recipe(self) -> dict:
        params = self._recipe_params()
        params.pop("output", None)  # the fitted state does not depend on it
        if params.pop("checkpoint", None) is not None:
            meta = load_checkpoint(self.checkpoint)[1]
            params.update(checkpoint_sha256=meta["sha256"], checkpoint_trained_on=meta["trained_on"]["datasets"])
        return {"rep": "dfe", "version": VERSION, **params, "torch": torch.__version__}

    def needs_frames(self) -> bool:
        return self.source == "mesh"  # source=vectors reads the user's vectors, never a frame

    def training_subjects(self) -> set[str]:
        if self.checkpoint is not None:
            return set(load_checkpoint(self.checkpoint)[1]["trained_on"]["subjects"])
        return super().training_subjects()

    def _load_checkpoint(self) -> None:
        arrays, meta = load_checkpoint(self.checkpoint)
        r = meta["recipe"]
        mine = (self.source, self.n_frames, self.n_components, self.landmarks,
                self.flow if self.landmarks == "flow" else None)
        theirs = (r["source"], r["n_frames"], r["n_components"], r.get("landmarks", "detect"),
                  r.get("flow") if r.get("landmarks", "detect") == "flow" else None)
        if mine != theirs:
            raise ValueError(f"checkpoint {self.checkpoint} was made with source={r['source']}, n_frames="
                             f"{r['n_frames']}, n_components={r['n_components']}, landmarks="
                             f"{r.get('landmarks', 'detect')}" + (f", flow={theirs[4]}" if theirs[4] else "")
                             + ": pass the same --rep-param values")
        self.state_ = {k: v for k, v in arrays.items() if not k.startswith("net.")}
        cfg = NetConfig(**meta["net"])
        self.net_ = from_arrays(cfg, {k: v for k, v in arrays.items() if k.startswith("net.")})
        self.history_ = meta.get("history", [])

    def _missing(self, samples: Sequence[Sample]) -> None:
        missing = [s.key for s in samples if not s.frames and self.source == "mesh"]
        if missing and self.on_missing == "error":
            head = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise RepresentationError(
                f"dfe: {len(missing)} sample(s) have no frames ({head}); on the CDE only CASME II has frames "
                "(use --dataset casme2), or pass --rep-param on_missing=blank for all-zero expression vectors")

    # ------------------------------------------------------------------ expression vectors

    def _raw(self, samples: Sequence[Sample]) -> tuple[list[np.ndarray | None], list[dict]]:
        """Per sample: (F, 468, 3) detected or (F, 478, 3) tracked landmarks (mesh, NaN-free) or
        (F, dim) vectors; None = no frames/face."""
        self._missing(samples)
        cache = DiskCache()

        def one(s: Sample):
            if self.source == "vectors":
                return self._user_vectors(s)
            if not s.frames:
                return None, [{"sample": s.key, "kind": "no_frames", "detail": "no frames: zero expression vectors"}]
            frames, events = used_frames(s, self.n_frames)
            if self.landmarks == "flow":
                lm = tracked_landmarks(s, frames, self.flow, cache)
                if np.isnan(lm).any():
                    return None, events + [{"sample": s.key, "kind": "no_face_onset",
                                            "detail": f"no face on the onset frame {frames[0]}: zero displacement"}]
                return lm, events
            lm, ev = fill_missing(sample_landmarks(s, frames, cache), s.key)
            return lm, events + ev

        out = parallel_map(one, list(samples), self.n_jobs, desc="dfe landmarks", progress=self.progress)
        return [a for a, _ in out], [e for _, ev in out for e in ev]

    def _user_vectors(self, s: Sample) -> tuple[np.ndarray, list[dict]]:
        folder = Path(self.vectors_dir) / s.key
        files = {int(p.stem): p for p in folder.glob("*.npy") if p.stem.lstrip("-").isdigit()}
        if not files:
            raise RepresentationError(f"dfe: no per-frame vectors <frame>.npy in {folder}")
        fake = Sample(s.dataset, s.subject, s.clip, s.emotion, s.onset, s.apex, s.offset, frames=files)
        frames, events = used_frames(fake, self.n_frames)
        vecs = np.stack([np.load(files[i]).astype(np.float32).ravel() for i in frames])
        return vecs, [{**e, "kind": "nearest_vector"} for e in events]

    def _displacements(self, lm: np.ndarray, canonical: np.ndarray) -> np.ndarray:
        """Aligned displacements from the onset: on all points (detect) or the stable ones (flow)."""
        if self.landmarks == "flow":
            return tracked_displacements(lm, canonical)
        return displacements(lm, canonical)

    def _psi(self, raw: list[np.ndarray | None], state: dict) -> np.ndarray:
        """(N, F, in_dim) expression vectors."""
        if self.source == "vectors":
            dim = next(r.shape[1] for r in raw if r is not None)
            return np.stack([r if r is not None else np.zeros((self.n_frames, dim), np.float32) for r in raw])
        comps, mean, scale = state["components"], state["mean"], float(state["scale"])
        out = np.zeros((len(raw), self.n_frames, len(comps)), np.float32)
        for i, lm in enumerate(raw):
            d = np.zeros((self.n_frames, lm.shape[1] * 3 if lm is not None else comps.shape[1]), np.float32)
            if lm is not None:
                d = self._displacements(lm, state["canonical"]).reshape(self.n_frames, -1)
            out[i] = ((d - mean) @ comps.T) / scale
        return out

    # ------------------------------------------------------------------ fit / transform

    def fit(self, samples: Sequence[Sample], y=None) -> "DFE":
        cfg = self._check()
        if self.checkpoint is not None:  # frozen: nothing is learned from the fold
            self._load_checkpoint()
            self.report_ = []
            return self
        samples = list(samples)
        raw, events = self._raw(samples)
        cache = DiskCache()
        # "threads": states fitted before the fit was pinned to one thread are not reused
        recipe = {**self.recipe(), "fit_on": sorted(s.key for s in samples), "threads": 1}
        sources = sorted({str(p) for s in samples for p in s.frames.values()})  # stale if frames change
        arrays, meta = cache.get_or_compute(recipe, sources, lambda: self._fit_arrays(raw, cfg))
        self.state_ = {k: v for k, v in arrays.items() if not k.startswith("net.")}
        self.net_ = from_arrays(self._net_config(cfg), {k: v for k, v in arrays.items() if k.startswith("net.")})
        self.history_ = meta.get("history", [])
        self.trained_on_ = {s.subject for s in samples}
        self.report_ = events
        return self

    def _net_config(self, cfg: NetConfig) -> NetConfig:
        import dataclasses

        dim = self.n_components if self.source == "mesh" else int(self.state_.get("in_dim", 50))
        return dataclasses.replace(cfg, in_dim=dim)

    @one_thread()
    def _fit_arrays(self, raw: list, cfg: NetConfig) -> tuple[dict, dict]:
        import dataclasses

        from sklearn.decomposition import PCA

        state: dict = {}
        if self.source == "mesh":
            have = [r for r in raw if r is not None]
            if not have:
                raise RepresentationError("dfe: no training sample has a face: cannot fit the expression basis")
            state["canonical"] = procrustes_mean(np.stack([r[0] for r in have]))
            disp = np.concatenate([self._displacements(r, state["canonical"]).reshape(len(r), -1) for r in have])
            n = min(self.n_components, *disp.shape)
            pca = PCA(n, random_state=self.seed).fit(disp)
            comps = np.zeros((self.n_components, disp.shape[1]), np.float32)
            comps[:n] = pca.components_  # fewer frames than components: the rest stay zero
            state.update(components=comps, mean=pca.mean_.astype(np.float32))
            coef = (disp - pca.mean_) @ comps.T
            state["scale"] = np.float32(np.sqrt((coef ** 2).mean()) + 1e-12)
            state["explained_variance_ratio"] = np.pad(pca.explained_variance_ratio_, (0, self.n_components - n))
        psi = self._psi(raw, state)
        state["in_dim"] = np.int64(psi.shape[-1])
        self.state_ = state
        torch.manual_seed(self.seed)
        net = RVQVAE(dataclasses.replace(cfg, in_dim=psi.shape[-1]))
        history = train(net, psi.reshape(-1, psi.shape[-1]), self.steps, self.batch_size, self.lr, self.seed,
                        log_every=max(self.steps // 10, 1))
        return {**state, **state_arrays(net)}, {"history": history}

    def encode(self, samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray]:
        """(indices (N, F, L) int64, expression vectors (N, F, in_dim))."""
        if not hasattr(self, "net_") and self.checkpoint is not None:
            self._load_checkpoint()
        if not hasattr(self, "net_"):
            raise RepresentationError("dfe: fit() first (the expression basis and RVQ-VAE are learned per fold)")
        raw, events = self._raw(list(samples))
        self.report_ = getattr(self, "report_", []) + events
        psi = self._psi(raw, self.state_)
        with torch.no_grad():
            idx = self.net_.tokenize(torch.as_tensor(psi.reshape(-1, psi.shape[-1])))
        return idx.numpy().reshape(len(psi), self.n_frames, -1), psi

    def transform(self, samples: Sequence[Sample]) -> np.ndarray:
        self._check()
        idx, psi = self.encode(samples)
        flat = idx.reshape(len(idx), -1)
        if self.output == "tokens":
            return flat.astype(np.int64)
        if self.output == "expression":  # ablation: the continuous vectors before quantization
            return psi.astype(np.float32)
        if self.output == "bow":
            return (bow_counts(flat, self.net_.cfg.codebook_size) / max(flat.shape[1], 1)).astype(np.float32)
        return self.net_.codebook.detach().numpy()[flat].astype(np.float32)

    def token_displacements(self) -> np.ndarray:
        """(K, P, 3) mesh displacement each codebook entry's decoded expression adds (mesh source;
        P = 468 detected or 478 tracked points)."""
        if self.source != "mesh":
            raise RepresentationError("token heatmaps need source=mesh (a user's vectors have no mesh decoder here)")
        with torch.no_grad():
            psi = self.net_.decode_codes(self.net_.codebook).numpy()  # (K, n_components), additive part
        disp = psi * float(self.state_["scale"]) @ self.state_["components"]
        return disp.reshape(len(disp), -1, 3)


@REPRESENTATIONS.register()
class DFEBow(DFE):
    """DFE bag of words as a plain vector (token frequencies, ``(N, 64)``), for ``logreg``."""

    kind = "vector"

    def __init__(self, source: str = "mesh", vectors_dir: str | None = None, n_frames: int = 9,
                 n_components: int = 50, preset: str = "small", steps: int = 300, batch_size: int = 128,
                 lr: float = 3e-3, seed: int = 0, output: str = "bow", on_missing: str = "error",
                 checkpoint: str | None = None, landmarks: str = "detect", flow: str = "farneback",
                 n_jobs: int | None = None, progress: bool | None = None):
        super().__init__(source, vectors_dir, n_frames, n_components, preset, steps, batch_size, lr, seed,
                         output, on_missing, checkpoint, landmarks=landmarks, flow=flow, n_jobs=n_jobs,
                         progress=progress)
