"""The embedded default dataset ``synthetic``: drawn faces with micro-expressions.

A deterministic generator that writes, under one data root, the official layouts
of CASME II, SAMM, SMIC-HS and the MEGC2019 composite, so that the real readers
(not a special code path) are exercised end to end::

    <root>/casme2/CASME2-coding-20140508.xlsx          Sheet1 + empty Sheet2/Sheet3
    <root>/casme2/Cropped/subXX/<EPxx_yy>/reg_img<N>.jpg        112x136 RGB
    <root>/samm/SAMM_Micro_FACS_Codes_v2.xlsx          sheet MICRO_ONLY, 13 banner rows
    <root>/samm/<006>/<006_1_2>/<006>_<NNNNN>.jpg               128x128 grayscale
    <root>/smic/smic_apex.xlsx
    <root>/smic/HS/<s01>/micro/<emotion>/<s1_ne_01>/image<NNNNNN>.bmp   128x96 RGB
    <root>/megc2019/combined_3class_gt.csv             no header, CRLF
    <root>/megc2019/combined_3_class2_for_optical_flow.csv
    <root>/megc2019/STSNet_whole_norm_u_v_os/<sub>_<clip> .png   28x28 (strain, v, u) BGR
    <root>/megc2019/combined_datasets_whole/<sub>_<clip>.jpg     224x224 apex frames

Faces are drawn (no photograph is used) with per-subject identity (face shape,
skin tone, hair, eye/brow/nose/mouth geometry, skin texture). An expression is a
sum of Gaussian displacement bumps per FACS action unit (AU4+7 negative, AU6+12
positive, AU1+2(+5/26) surprise...), of micro intensity (about 1.5-2.5 px at
apex), applied with ``cv2.remap``; its amplitude rises onset->apex and decays to
offset over a profile given in seconds and sampled at each database's frame
rate (CASME II and SAMM 200 fps, SMIC-HS 100 fps). Every frame also has small
head motion (translation/rotation), illumination flicker and sensor noise.
Frames are written with a fixed stride (every 2nd frame at 200 fps, every frame
at 100 fps for the default scale) between onset and offset inclusive, and
frame numbers stay the native ones, so ``(n - onset) / fps`` is the time.

Everything derives from ``seed`` through ``numpy.random.SeedSequence``; two
generations with the same seed give identical sheets (byte-identical xlsx and
csv) and identical frames. Nothing here is copied from the real databases: only
their file formats are reproduced.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import math
import os
import re
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from benchmark.core.paths import cache_root

VERSION = 1
MARKER = ".synthetic-complete.json"
DATABASES = ("casme2", "samm", "smic")
CLASSES = ("negative", "positive", "surprise")
CLASS_SHARE = (0.57, 0.25, 0.18)
FPS = {"casme2": 200.0, "samm": 200.0, "smic": 100.0}
FRAME_SIZE = {"casme2": (112, 136), "samm": (128, 128), "smic": (128, 96)}  # (width, height)
APEX_CROP_SIZE = 224
FLOW_SIZE = 28


@dataclass(frozen=True)
class Scale:
    """How much to generate. ``subjects[db] = (in MEGC list, with excluded clips only)``."""

    subjects: dict[str, tuple[int, int]]
    clips: dict[str, int]  # clips in the MEGC2019 list per database
    excluded: dict[str, int]  # extra "others"/"Other" clips, sheet only
    rise_s: tuple[float, float]  # onset -> apex duration range, seconds
    fall_s: tuple[float, float]  # apex -> offset duration range, seconds
    stride: dict[str, int]  # write every ``stride``-th native frame


SCALES = {
    "default": Scale(
        subjects={"casme2": (24, 2), "samm": (28, 1), "smic": (16, 0)},
        clips={"casme2": 84, "samm": 98, "smic": 64},
        excluded={"casme2": 10, "samm": 8, "smic": 0},
        rise_s=(0.06, 0.12),
        fall_s=(0.08, 0.18),
        stride={"casme2": 2, "samm": 2, "smic": 1},
    ),
    "tiny": Scale(
        subjects={"casme2": (6, 0), "samm": (6, 0), "smic": (6, 0)},
        clips={"casme2": 12, "samm": 12, "smic": 12},
        excluded={"casme2": 1, "samm": 1, "smic": 0},
        rise_s=(0.03, 0.04),
        fall_s=(0.04, 0.05),
        stride={"casme2": 4, "samm": 4, "smic": 2},
    ),
}

# Database-native emotion names per 3-class label, with sampling weights.
EMOTIONS = {
    "casme2": {0: {"disgust": 0.7, "repression": 0.3}, 1: {"happiness": 1.0}, 2: {"surprise": 1.0}},
    "samm": {
        0: {"Anger": 0.6, "Contempt": 0.13, "Disgust": 0.1, "Fear": 0.1, "Sadness": 0.07},
        1: {"Happiness": 1.0},
        2: {"Surprise": 1.0},
    },
    "smic": {0: {"negative": 1.0}, 1: {"positive": 1.0}, 2: {"surprise": 1.0}},
}
EXCLUDED_EMOTION = {"casme2": "others", "samm": "Other"}
AU_CHOICES = {
    "disgust": ("4+7", "4+9", "4+L10", "4+7"),
    "repression": ("4+15", "15+17", "14"),
    "anger": ("4+7", "4", "4+7"),
    "contempt": ("R14", "L14"),
    "fear": ("1+4+20", "4+20"),
    "sadness": ("1+15", "1+4+15"),
    "negative": ("4+7", "4", "4+15", "4+7"),
    "happiness": ("6+12", "12", "6+12"),
    "positive": ("6+12", "12", "6+12"),
    "surprise": ("1+2", "1+2+5", "1+2+26", "1+2"),
    "others": ("14", "R12", "17", "7", "L2", "25"),
    "other": ("14", "R12", "17", "7", "L2", "25"),
}
SAMM_OBJECTIVE = {"Happiness": 1, "Surprise": 2, "Anger": 3, "Disgust": 4, "Sadness": 5, "Fear": 6}
SMIC_CODE = {0: "ne", 1: "po", 2: "sur"}


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class ClipPlan:
    """One generated clip: everything needed to write its frames and rows."""

    database: str
    subject: str  # database-native id: casme2 "01", samm "006", smic "1"
    clip: str  # database-native clip name
    emotion: str  # database-native emotion string
    label: int | None  # MEGC2019 class index, None for clips outside the list
    aus: str  # "+"-joined action units as written in the sheets
    onset: int
    apex: int
    offset: int
    stride: int
    inducement: int  # SAMM "Inducement Code" (unused elsewhere)
    seed: tuple[int, ...]  # entropy for this clip's random stream
    identity_seed: tuple[int, ...]  # entropy for the subject's face

    @property
    def fps(self) -> float:
        return FPS[self.database]

    @property
    def frame_numbers(self) -> list[int]:
        return list(range(self.onset, self.offset + 1, self.stride))

    def megc_subject(self) -> str:
        """Subject as the MEGC2019 flow list and file names write it."""
        return {"casme2": f"sub{self.subject}", "samm": self.subject, "smic": f"s{int(self.subject):02d}"}[
            self.database
        ]

    def megc_clip(self) -> str:
        if self.database == "smic":  # s1_ne_01 -> s01_ne_01, as in the official list
            return f"s{int(self.subject):02d}" + self.clip[self.clip.index("_"):]
        return self.clip

    def frame_relpath(self, n: int) -> str:
        """Path of native frame ``n`` relative to the data root."""
        if self.database == "casme2":
            return f"casme2/Cropped/sub{self.subject}/{self.clip}/reg_img{n}.jpg"
        if self.database == "samm":
            return f"samm/{self.subject}/{self.clip}/{self.subject}_{n:05d}.jpg"
        emotion = CLASSES[self.label]
        return f"smic/HS/s{int(self.subject):02d}/micro/{emotion}/{self.clip}/image{n:06d}.bmp"


def _rng(*entropy: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(list(entropy)))


def _split_counts(total: int, parts: int, rng: np.random.Generator, low: int = 2) -> list[int]:
    """``parts`` counts summing to ``total``, near-equal with some spread."""
    base, extra = divmod(total, parts)
    counts = [base + (i < extra) for i in range(parts)]
    rng.shuffle(counts)
    for _ in range(parts // 2):  # move a few clips between subjects
        i, j = rng.choice(parts, 2, replace=False)
        if counts[i] > low:
            counts[i] -= 1
            counts[j] += 1
    return counts


def _class_deck(n: int, rng: np.random.Generator) -> list[int]:
    """Labels with the CDE imbalance (about 57/25/18 %), shuffled."""
    n_pos = max(1, round(n * CLASS_SHARE[1]))
    n_sur = max(1, round(n * CLASS_SHARE[2]))
    deck = [0] * (n - n_pos - n_sur) + [1] * n_pos + [2] * n_sur
    rng.shuffle(deck)
    return deck


def _subject_ids(db: str, n: int, rng: np.random.Generator) -> list[str]:
    """Native-looking subject ids with realistic gaps in the numbering."""
    if db == "casme2":
        return [f"{i:02d}" for i in range(1, n + 1)]
    pool = {"samm": range(6, 6 + n + n // 4 + 2), "smic": range(1, n + n // 4 + 2)}[db]
    picked = sorted(rng.choice(list(pool), n, replace=False).tolist())
    return [f"{i:03d}" for i in picked] if db == "samm" else [str(i) for i in picked]


def _pick(weights: dict[str, float], rng: np.random.Generator) -> str:
    names = list(weights)
    p = np.array([weights[k] for k in names], float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def plan(seed: int = 0, scale: str = "default") -> list[ClipPlan]:
    """All clips of a generation, without rendering anything (cheap)."""
    if scale not in SCALES:
        raise ValueError(f"unknown synthetic scale {scale!r}; choose from {sorted(SCALES)}")
    sc = SCALES[scale]
    clips: list[ClipPlan] = []
    for d, db in enumerate(DATABASES):
        rng = _rng(seed, d, 1)
        n_in, n_only_excluded = sc.subjects[db]
        ids = _subject_ids(db, n_in + n_only_excluded, rng)
        order = rng.permutation(len(ids))
        listed = sorted(order[:n_in].tolist())  # subject indices with MEGC clips
        per_subject = dict(zip(listed, _split_counts(sc.clips[db], n_in, rng)))
        deck = iter(_class_deck(sc.clips[db], rng))
        slots: dict[int, list[int | None]] = {i: [next(deck) for _ in range(per_subject.get(i, 0))] for i in range(len(ids))}
        n_excl = sc.excluded[db]
        only_excl = sorted(order[n_in:].tolist())
        for k in range(n_excl):  # others-only subjects get two each, the rest go anywhere
            i = only_excl[k // 2] if k // 2 < len(only_excl) else int(rng.choice(listed))
            slots[i].append(None)
        for s, sub in enumerate(ids):
            clips.extend(_subject_clips(db, d, s, sub, slots[s], sc, seed, rng))
    return clips


def _subject_clips(db, d, s, sub, labels, sc: Scale, seed, rng) -> list[ClipPlan]:
    out, used = [], set()
    per_emotion: dict[str, int] = {}
    for c, label in enumerate(labels):
        emotion = EXCLUDED_EMOTION[db] if label is None else _pick(EMOTIONS[db][label], rng)
        aus = str(rng.choice(AU_CHOICES[emotion.lower()]))
        inducement = int(rng.integers(1, 8))
        name = _clip_name(db, sub, label, inducement, used, per_emotion, rng)
        used.add(name)
        fps, stride = FPS[db], sc.stride[db]
        rise = max(1, round(rng.uniform(*sc.rise_s) * fps / stride))
        fall = max(1, round(rng.uniform(*sc.fall_s) * fps / stride))
        start = {"casme2": (10, 300), "samm": (1000, 6000), "smic": (100000, 900000)}[db]
        onset = int(rng.integers(*start))
        out.append(
            ClipPlan(db, sub, name, emotion, label, aus, onset, onset + rise * stride,
                     onset + (rise + fall) * stride, stride, inducement,
                     (seed, d, s, c, 7), (seed, d, s, 0xFACE))
        )
    return sorted(out, key=lambda p: p.clip)


def _clip_name(db, sub, label, inducement, used, per_emotion, rng) -> str:
    if db == "smic":
        code = SMIC_CODE[label]
        per_emotion[code] = per_emotion.get(code, 0) + 1
        return f"s{int(sub)}_{code}_{per_emotion[code]:02d}"
    while True:
        if db == "casme2":
            name = f"EP{int(rng.integers(1, 20)):02d}_{int(rng.integers(1, 13)):02d}" + ("f" if rng.random() < 0.4 else "")
            if name.rstrip("f") not in {u.rstrip("f") for u in used}:
                return name
        else:
            k = 1 + sum(1 for u in used if u.startswith(f"{sub}_{inducement}_"))
            return f"{sub}_{inducement}_{k}"


# --------------------------------------------------------------------------- faces

SKIN_LIGHT = np.array([172.0, 198.0, 238.0])  # BGR
SKIN_DARK = np.array([38.0, 56.0, 92.0])
HAIR = (np.array([15.0, 15.0, 20.0]), np.array([25.0, 45.0, 75.0]), np.array([60.0, 120.0, 175.0]),
        np.array([150.0, 150.0, 155.0]), np.array([20.0, 35.0, 110.0]))


def _identity(rng: np.random.Generator) -> dict:
    """Per-subject face parameters (relative units)."""
    tone = rng.beta(1.6, 1.6)
    return {
        "skin": SKIN_DARK + (SKIN_LIGHT - SKIN_DARK) * tone + rng.normal(0, 6, 3),
        "hair": HAIR[int(rng.integers(len(HAIR)))] * rng.uniform(0.7, 1.2),
        "cloth": rng.uniform(20, 220, 3),
        "bg": (rng.uniform(50, 210, 3), rng.uniform(-40, 40, 3)),
        "iris": rng.uniform(15, 90) * rng.uniform(0.5, 1.0, 3),
        "face_w": rng.uniform(0.30, 0.35), "aspect": rng.uniform(1.22, 1.36),
        "eye_y": rng.uniform(0.08, 0.16), "eye_x": rng.uniform(0.38, 0.46),
        "eye_w": rng.uniform(0.19, 0.25), "eye_h": rng.uniform(0.055, 0.085),
        "brow_y": rng.uniform(0.15, 0.21), "brow_t": rng.uniform(0.035, 0.06), "brow_arch": rng.uniform(0.0, 0.04),
        "nose_y": rng.uniform(0.22, 0.30), "nose_w": rng.uniform(0.15, 0.22),
        "mouth_y": rng.uniform(0.50, 0.58), "mouth_w": rng.uniform(0.34, 0.46), "lip_t": rng.uniform(0.045, 0.07),
        "fringe": rng.uniform(0.25, 0.42), "texture": int(rng.integers(2**31)),
    }


def render_base(ident: dict, size: tuple[int, int], supersample: int = 4) -> tuple[np.ndarray, dict]:
    """Neutral face image (float32 BGR, ``size`` = (w, h)) and its landmarks in pixels."""
    import cv2

    W, H = size
    S = supersample
    w, h = W * S, H * S
    bg0, bgd = ident["bg"]
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = np.ascontiguousarray(np.broadcast_to(bg0 * (1 - t) + (bg0 + bgd) * t, (h, w, 3)), np.float32)
    fw = min(w, h * 0.85) * ident["face_w"]
    fh = fw * ident["aspect"]
    cx, cy = w / 2, h * 0.48
    skin, hair = ident["skin"], ident["hair"]

    def ell(center, axes, color, start=0, end=360, target=None):
        cv2.ellipse(img if target is None else target, (int(center[0]), int(center[1])),
                    (max(1, int(axes[0])), max(1, int(axes[1]))), 0, start, end,
                    np.asarray(color, float).tolist(), -1, cv2.LINE_AA)

    ell((cx, cy + fh * 1.6), (fw * 2.1, fh * 0.75), ident["cloth"])  # shoulders
    cv2.rectangle(img, (int(cx - fw * 0.45), int(cy + fh * 0.4)), (int(cx + fw * 0.45), int(cy + fh * 1.1)),
                  (skin * 0.8).tolist(), -1, cv2.LINE_AA)  # neck
    ell((cx, cy - fh * 0.15), (fw * 1.12, fh * 1.05), hair, 180, 360)
    ell((cx, cy - fh * 0.1), (fw * 1.1, fh * 0.7), hair)
    for sgn in (-1, 1):
        ell((cx + sgn * fw * 0.98, cy), (fw * 0.14, fh * 0.2), skin * 0.9)  # ears
    # skin with radial shading and a fixed per-subject texture (gives optical flow something to track)
    mask = np.zeros((h, w), np.float32)
    ell((cx, cy), (fw, fh), 1.0, target=mask)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((xx - cx) / fw) ** 2 + ((yy - cy) / fh) ** 2)
    tex_rng = np.random.default_rng(ident["texture"])
    tex = cv2.GaussianBlur(tex_rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), S * 1.2)
    tex *= 4.5 / (tex.std() + 1e-6)
    face = skin[None, None, :] * (1.0 - 0.35 * np.clip(r, 0, 1) ** 3)[..., None] + tex[..., None]
    img = img * (1 - mask[..., None]) + face * mask[..., None]
    ell((cx, cy - fh * 0.78), (fw * 0.95, fh * ident["fringe"]), hair, 180, 360)  # fringe
    ey = cy - fh * ident["eye_y"]
    ew, eh = fw * ident["eye_w"], fh * ident["eye_h"]
    browy = ey - fh * ident["brow_y"]
    lm = {"center": (cx, cy), "fw": fw, "fh": fh, "eye_y": ey, "eye_w": ew, "eye_h": eh, "brow_y": browy}
    for sgn in (-1, 1):
        x = cx + sgn * fw * ident["eye_x"]
        lm[f"eye{sgn}"] = x
        ell((x, ey), (ew * 1.25, eh * 2.2), skin * 0.8)  # socket shadow
        ell((x, ey), (ew, eh), (235, 235, 235))
        cv2.circle(img, (int(x), int(ey)), int(eh * 0.95), ident["iris"].tolist(), -1, cv2.LINE_AA)
        cv2.circle(img, (int(x), int(ey)), int(eh * 0.45), (10, 10, 10), -1, cv2.LINE_AA)
        cv2.ellipse(img, (int(x), int(ey)), (int(ew), int(eh)), 0, 180, 360, (30, 30, 30), max(2, S), cv2.LINE_AA)
        brow = np.array([[x - sgn * ew * 1.1, browy + fh * 0.02], [x, browy - fh * ident["brow_arch"]],
                         [x + sgn * ew * 1.2, browy + fh * 0.01]], np.int32)
        cv2.polylines(img, [brow], False, (hair * 0.8).tolist(), max(2, int(fh * ident["brow_t"])), cv2.LINE_AA)
    ny, nw = cy + fh * ident["nose_y"], fw * ident["nose_w"]
    cv2.line(img, (int(cx + nw * 0.3), int(ey + eh)), (int(cx + nw * 0.5), int(ny - fh * 0.05)),
             (skin * 0.75).tolist(), S, cv2.LINE_AA)
    ell((cx, ny), (nw, fh * 0.06), skin * 0.85)
    for sgn in (-1, 1):
        ell((cx + sgn * nw * 0.45, ny + fh * 0.02), (nw * 0.25, fh * 0.025), skin * 0.4)  # nostrils
    my, mw, lt = cy + fh * ident["mouth_y"], fw * ident["mouth_w"], fh * ident["lip_t"]
    ell((cx, my), (mw, lt * 1.6), np.clip(skin * np.array([0.7, 0.65, 1.05]), 0, 255))
    cv2.line(img, (int(cx - mw), int(my)), (int(cx + mw), int(my)), (skin * 0.3).tolist(), S, cv2.LINE_AA)
    lm.update(nose_y=ny, nose_w=nw, mouth_y=my, mouth_w=mw, lip_t=lt)
    img = cv2.resize(cv2.GaussianBlur(img, (0, 0), S * 0.6), (W, H), interpolation=cv2.INTER_AREA)
    lm = {k: (tuple(v / S for v in val) if isinstance(val, tuple) else val / S) for k, val in lm.items()}
    return img, lm


# --------------------------------------------------------------------------- action units


def _au_bumps(au: int, side: int, lm: dict) -> list[tuple[float, float, float, float, float]]:
    """Gaussian displacement bumps ``(x, y, sigma, dx, dy)`` (unit amplitude) of one AU.

    ``side`` 0 = both sides; -1/+1 = image-left/right only (unilateral AUs).
    """
    (cx, _), fw, fh = lm["center"], lm["fw"], lm["fh"]
    ey, eh, ew, by = lm["eye_y"], lm["eye_h"], lm["eye_w"], lm["brow_y"]
    my, mw, lt = lm["mouth_y"], lm["mouth_w"], lm["lip_t"]
    out = []
    for sgn in (-1, 1):
        if side and sgn != side:
            continue
        ex = lm[f"eye{sgn}"]
        inner, outer = ex - sgn * ew * 0.8, ex + sgn * ew * 0.9
        table = {
            1: [(inner, by, 0.13 * fw, 0, -1.0)],
            2: [(outer, by, 0.13 * fw, 0, -1.0)],
            4: [(inner, by, 0.14 * fw, -sgn * 0.5, 1.0), (ex, by, 0.14 * fw, 0, 0.5)],
            5: [(ex, ey - eh, 0.07 * fw, 0, -0.6)],
            6: [(ex, ey + 0.28 * fh, 0.16 * fw, 0, -0.7), (ex, ey + eh, 0.07 * fw, 0, -0.3)],
            7: [(ex, ey + eh, 0.07 * fw, 0, -0.8)],
            9: [(cx + sgn * 0.12 * fw, ey + 0.15 * fh, 0.09 * fw, 0, -0.6)],
            10: [(cx + sgn * 0.15 * mw, my - lt, 0.14 * fw, 0, -0.6)],
            12: [(cx + sgn * mw, my, 0.12 * fw, sgn * 0.7, -0.8)],
            14: [(cx + sgn * mw, my, 0.08 * fw, sgn * 0.6, 0)],
            15: [(cx + sgn * mw, my, 0.10 * fw, 0, 0.9)],
            17: [(cx, my + 0.22 * fh, 0.15 * fw, 0, -0.35)],
            20: [(cx + sgn * mw, my, 0.11 * fw, sgn * 0.9, 0.1)],
            25: [(cx, my + lt, 0.10 * fw, 0, 0.35)],
            26: [(cx, my + 0.35 * fh, 0.28 * fw, 0, 0.5), (cx, my + lt, 0.10 * fw, 0, 0.25)],
        }
        for bump in table.get(au, []):
            if bump[0] == cx and sgn == 1 and not side:
                continue  # midline bumps once
            out.append(bump)
    return out


def au_bumps(aus: str, lm: dict) -> list[tuple[float, float, float, float, float]]:
    """Bumps of an AU string such as ``"4+L10"`` (L = subject's left = image right)."""
    bumps = []
    for token in str(aus).split("+"):
        m = re.fullmatch(r"([LRA]?)(\d+)", token.strip())
        if not m:
            continue
        side = {"L": 1, "R": -1}.get(m.group(1), 0)
        bumps.extend(_au_bumps(int(m.group(2)), side, lm))
    return bumps


def _field(bumps, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dx = np.zeros_like(x)
    dy = np.zeros_like(x)
    for bx, by, sigma, vx, vy in bumps:
        g = np.exp(-((x - bx) ** 2 + (y - by) ** 2) / (2 * sigma * sigma))
        dx += vx * g
        dy += vy * g
    return dx, dy


def _intensity(t: float, rise: float, fall: float) -> float:
    """Raised-cosine onset->apex->offset profile (t, rise, fall in seconds)."""
    if t <= 0 or t >= rise + fall:
        return 0.0
    if t <= rise:
        return 0.5 - 0.5 * math.cos(math.pi * t / rise)
    return 0.5 + 0.5 * math.cos(math.pi * (t - rise) / fall)


def render_clip(p: ClipPlan, base: tuple[np.ndarray, dict],
                numbers: Sequence[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_number, uint8 image)`` for ``numbers`` (default: the clip's frames);
    grayscale (2-D) for SAMM."""
    import cv2

    img0, lm = base
    H, W = img0.shape[:2]
    rng = _rng(*p.seed)
    amp = float(rng.uniform(1.5, 2.5) * lm["fw"] / 36.0)  # pixels at apex, scaled to face size
    bumps = au_bumps(p.aus, lm)
    rise, fall = (p.apex - p.onset) / p.fps, (p.offset - p.apex) / p.fps
    # head motion: slow drift + sway (px, degrees), per-clip lighting gradient and flicker
    # (within a clip the face moves < 1 px, like the registered real clips; between clips a few px)
    drift = rng.uniform(-2.0, 2.0, 3)  # px/s, px/s, deg/s
    sway_a, sway_f, sway_p = rng.uniform(0.15, 0.5, 3), rng.uniform(1.0, 4.0, 3), rng.uniform(0, 2 * np.pi, 3)
    offset0, roll0 = rng.uniform(-2.5, 2.5, 2), rng.uniform(-3.0, 3.0)
    light = 1.0 + rng.uniform(-0.12, 0.12) * (np.linspace(-1, 1, W, dtype=np.float32)[None, :])
    flicker_a, flicker_f = rng.uniform(0.005, 0.02), rng.uniform(2.0, 9.0)
    noise_sd = rng.uniform(1.0, 2.5)
    gy, gx = np.mgrid[0:H, 0:W].astype(np.float32)
    cx, cy = lm["center"]
    for n in (p.frame_numbers if numbers is None else numbers):
        t = (n - p.onset) / p.fps
        tx, ty, rot = drift * t + sway_a * np.sin(2 * np.pi * sway_f * t + sway_p)
        tx, ty = tx + offset0[0], ty + offset0[1]
        c, s = math.cos(math.radians(roll0 + rot)), math.sin(math.radians(roll0 + rot))
        # inverse head motion: output pixel -> face coordinates
        ux, uy = gx - cx - tx, gy - cy - ty
        qx, qy = c * ux + s * uy + cx, -s * ux + c * uy + cy
        a = np.float32(amp * _intensity(t, rise, fall))
        dx, dy = _field(bumps, qx, qy)
        mx, my = (qx - a * dx).astype(np.float32), (qy - a * dy).astype(np.float32)
        frame = cv2.remap(img0, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        gain = 1.0 + flicker_a * math.sin(2 * np.pi * flicker_f * t) + rng.normal(0, 0.006)
        frame = frame * (light * gain)[..., None] + rng.normal(0, noise_sd, frame.shape).astype(np.float32)
        frame = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
        if p.database == "samm":
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        yield n, frame


def subject_base(p: ClipPlan) -> tuple[np.ndarray, dict]:
    """Neutral face of ``p``'s subject at ``p``'s database frame size."""
    return render_base(_identity(_rng(*p.identity_seed)), FRAME_SIZE[p.database])


# --------------------------------------------------------------------------- public API for pretraining
# Learned representations draw training pairs from the generator in memory through these three
# functions (with ``plan`` and ``ensure_synthetic``) rather than through its internals.


def action_unit_sets() -> list[str]:
    """Every action-unit combination the generator draws, for expressions off the clip's emotion."""
    return sorted({a for v in AU_CHOICES.values() for a in v})


_BASES: dict = {}


def render_frames(clip: ClipPlan, numbers: Sequence[int], **changes) -> list[np.ndarray]:
    """Frames ``numbers`` of ``clip`` rendered in memory (nothing is written), with any of the
    clip's fields replaced by ``changes`` (``aus``, ``apex``, ``offset``, ``seed``...); the
    subject's neutral face is rendered once per process."""
    key = (clip.identity_seed, clip.database)
    if key not in _BASES:
        _BASES[key] = subject_base(clip)
    return [img for _, img in render_clip(dataclasses.replace(clip, **changes), _BASES[key], numbers)]


# --------------------------------------------------------------------------- sheets


def _save_workbook(wb, path: Path) -> None:
    """Save an openpyxl workbook byte-identically across runs (fixed zip and doc times)."""
    buf = io.BytesIO()
    wb.save(buf)
    with zipfile.ZipFile(buf) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*", rb"\g<1>2000-01-01T00:00:00Z", data)
            zi = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = info.external_attr
            zout.writestr(zi, data)


def _au_cell(aus: str):
    return int(aus) if aus.isdigit() else aus


def _new_workbook(title: str):
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.title = title
    wb.properties.creator = "mer-benchmark synthetic generator"
    return wb


def write_casme2_sheet(clips: list[ClipPlan], path: Path) -> None:
    wb = _new_workbook("Sheet1")
    ws = wb.active
    ws.append(["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"])
    for p in clips:
        ws.append([p.subject, p.clip, p.onset, p.apex, p.offset, _au_cell(p.aus), p.emotion])
    wb.create_sheet("Sheet2")
    wb.create_sheet("Sheet3")
    _save_workbook(wb, path)


SAMM_BANNER = [
    ["SAMM-format coding sheet (SYNTHETIC data from mer-benchmark)", None, None, None,
     "(Generated faces; not the SAMM database. Only the layout of the official sheet is reproduced.)"],
    [],
    ["Emotional and objective classes follow the official column layout.", None, None, None, None, None, None, None,
     "synthetic"],
    [None, None, None, None, "(No real subject appears in this file.)"],
    [],
    ["Symbol Key:"],
    ['"/" = or'],
    ['"?" = unclear offset'],
    [],
    ["AU Help:"],
    ['"L2 or R2" = unilateral AU on the left / right side of the face'],
    ['"A2" = asymmetric AU'],
    [],
]
SAMM_HEADER = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
               "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes"]


def write_samm_sheet(clips: list[ClipPlan], path: Path) -> None:
    wb = _new_workbook("MICRO_ONLY")
    ws = wb.active
    for row in SAMM_BANNER:
        ws.append(row if row else [None])
    ws.append(SAMM_HEADER)
    for p in clips:
        r = ws.max_row + 1
        ws.append([p.subject, p.clip, p.inducement, p.onset, p.apex, p.offset, f"=SUM(F{r}-D{r})+1",
                   "Micro - 1/2", _au_cell(p.aus), p.emotion, SAMM_OBJECTIVE.get(p.emotion, 7), None])
    _save_workbook(wb, path)


def write_smic_sheet(clips: list[ClipPlan], path: Path) -> None:
    wb = _new_workbook("Sheet1")
    ws = wb.active
    ws.append(["data", "subject", "clip", "label", "onset_frame", "apex_frame", "offset_frame",
               "onset_frame_path", "apex_frame_path", "offset_frame_path"])
    for p in clips:
        ws.append(["smic", int(p.subject), p.clip, p.label, p.onset, p.apex, p.offset,
                   *(p.frame_relpath(n) for n in (p.onset, p.apex, p.offset))])
    _save_workbook(wb, path)


def megc_rows(clips: list[ClipPlan]) -> list[ClipPlan]:
    """Clips of the MEGC2019 list, in the official order (CASME II, SMIC, SAMM)."""
    order = {"casme2": 0, "smic": 1, "samm": 2}
    listed = [p for p in clips if p.label is not None]
    return sorted(listed, key=lambda p: (order[p.database], p.megc_subject(), p.megc_clip()))


def flow_name(p: ClipPlan) -> str:
    return f"{p.megc_subject()}_{p.megc_clip()} .png"  # the space is part of the official names


def apex_name(p: ClipPlan) -> str:
    return f"{p.megc_subject()}_{p.clip}.jpg"  # SMIC keeps its native clip name here, as officially


def write_megc_lists(clips: list[ClipPlan], folder: Path) -> None:
    rows = megc_rows(clips)
    with (folder / "combined_3class_gt.csv").open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\r\n")
        for p in rows:
            sub = str(int(p.subject)) if p.database == "samm" else p.megc_subject()
            w.writerow([p.database, sub, p.megc_clip(), p.label])
    with (folder / "combined_3_class2_for_optical_flow.csv").open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["dataset", "sub", "filename_o", "label", "apex", "imagename", "sub_filename"])
        for p in rows:
            w.writerow([p.database, p.megc_subject(), p.megc_clip(), p.label, "", apex_name(p), ""])


# --------------------------------------------------------------------------- flow images


def flow_image(onset: np.ndarray, apex: np.ndarray) -> np.ndarray:
    """28x28 STSTNet input: TV-L1 onset->apex flow + optical strain, (strain, v, u) for cv2.imwrite."""
    import cv2

    gray = [im if im.ndim == 2 else cv2.cvtColor(im, cv2.COLOR_BGR2GRAY) for im in (onset, apex)]
    # 3 scales / 3 warps / eps 0.02: ~4x faster than the defaults, flow correlation ~0.99 with them
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create(nscales=3, warps=3, epsilon=0.02)
    flow = tvl1.calc(gray[0], gray[1], None)
    u, v = flow[..., 0], flow[..., 1]
    uy, ux = np.gradient(u)
    vy, vx = np.gradient(v)
    strain = np.sqrt(ux ** 2 + vy ** 2 + 0.5 * (uy + vx) ** 2)
    chans = []
    for c in (strain, v, u):
        c = cv2.resize(c.astype(np.float32), (FLOW_SIZE, FLOW_SIZE), interpolation=cv2.INTER_AREA)
        lo, hi = float(c.min()), float(c.max())
        chans.append(np.zeros_like(c) if hi - lo < 1e-9 else (c - lo) / (hi - lo) * 255.0)
    return np.clip(np.rint(np.stack(chans, -1)), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- writing


def _generation_workers(workers: int | None, scale: str) -> int:
    """Processes that render the clips: one per core for the default scale (about half a
    minute of rendering and TV-L1 on one core, the largest part of a cold first run), one for
    the small test scales, whose clips take less than a process takes to start."""
    if workers is not None:
        return max(1, int(workers))
    return min(2, os.cpu_count() or 1) if scale == "default" else 1


def _subject_parts(clips: list[ClipPlan], n: int) -> list[list[ClipPlan]]:
    """``clips`` cut into ``n`` runs of whole subjects (each subject's face is rendered once),
    balanced by frame count."""
    if n <= 1:
        return [clips]
    subjects: list[list[ClipPlan]] = []
    for p in clips:
        if subjects and subjects[-1][0].identity_seed == p.identity_seed:
            subjects[-1].append(p)
        else:
            subjects.append([p])
    total = sum(len(q.frame_numbers) for q in clips)
    parts, done = [[] for _ in range(n)], 0
    for group in subjects:
        parts[min(n - 1, int(n * done / max(total, 1)))].extend(group)
        done += sum(len(q.frame_numbers) for q in group)
    return [part for part in parts if part]


def _write_clips(root: Path, clips: Sequence[ClipPlan]) -> int:
    """Render and write ``clips`` (whole subjects, in order) with their flow images and apex
    crops; return the number of frames written."""
    import cv2

    cv2.setNumThreads(1)  # small images: threads cost more than they give on shared cores
    megc = root / "megc2019"
    frames = 0
    bases: dict[tuple, tuple] = {}
    for p in clips:
        if p.identity_seed not in bases:
            bases = {p.identity_seed: subject_base(p)}  # clips are grouped by subject
        folder = root / Path(p.frame_relpath(p.onset)).parent
        folder.mkdir(parents=True)
        keep = {}
        for n, img in render_clip(p, bases[p.identity_seed]):
            path = root / p.frame_relpath(n)
            params = [cv2.IMWRITE_JPEG_QUALITY, 92] if path.suffix == ".jpg" else []
            if not cv2.imwrite(str(path), img, params):
                raise OSError(f"could not write {path}")
            frames += 1
            if n in (p.onset, p.apex):
                keep[n] = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # flow from the stored frames
        if p.label is None:
            continue
        cv2.imwrite(str(megc / "STSNet_whole_norm_u_v_os" / flow_name(p)), flow_image(keep[p.onset], keep[p.apex]))
        apex = keep[p.apex] if keep[p.apex].ndim == 3 else cv2.cvtColor(keep[p.apex], cv2.COLOR_GRAY2BGR)
        apex = cv2.resize(apex, (APEX_CROP_SIZE, APEX_CROP_SIZE), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(megc / "combined_datasets_whole" / apex_name(p)), apex, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return frames


def _write_all(root: Path, seed: int, scale: str, workers: int | None = None) -> dict:
    clips = plan(seed, scale)
    by_db = {db: [p for p in clips if p.database == db] for db in DATABASES}
    for db in (*DATABASES, "megc2019"):
        (root / db).mkdir(parents=True)
    write_casme2_sheet(by_db["casme2"], root / "casme2" / "CASME2-coding-20140508.xlsx")
    write_samm_sheet(by_db["samm"], root / "samm" / "SAMM_Micro_FACS_Codes_v2.xlsx")
    write_smic_sheet(by_db["smic"], root / "smic" / "smic_apex.xlsx")
    megc = root / "megc2019"
    write_megc_lists(clips, megc)
    (megc / "STSNet_whole_norm_u_v_os").mkdir()
    (megc / "combined_datasets_whole").mkdir()
    parts = _subject_parts(clips, _generation_workers(workers, scale))
    if len(parts) == 1:
        frames = _write_clips(root, parts[0])
    else:  # every file depends only on its own clip: the same bytes in any order or process
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(len(parts) - 1, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(_write_clips, root, part) for part in parts[1:]]
            frames = _write_clips(root, parts[0]) + sum(f.result() for f in futures)
    (root / "README.txt").write_text(
        "Synthetic micro-expression data written by benchmark.datasets.synthetic (mer-benchmark).\n"
        "Drawn faces in the official CASME II / SAMM / SMIC-HS / MEGC2019 layouts; no real data.\n"
    )
    return {
        "clips": len(clips),
        "frames": frames,
        "megc2019": len(megc_rows(clips)),
        **{db: len(v) for db, v in by_db.items()},
    }


def _marker(root: Path) -> dict | None:
    try:
        return json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _matches(found: dict | None, want: dict) -> bool:
    return found is not None and all(found.get(k) == v for k, v in want.items())


def _clean_stale_temps(parent: Path, name: str, max_age_s: float = 6 * 3600) -> None:
    for tmp in parent.glob(f".{name}.tmp-*"):
        try:
            if time.time() - tmp.stat().st_mtime > max_age_s:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass


def generate(out_root: Path, seed: int = 0, scale: str = "default") -> Path:
    """Write the synthetic databases under ``out_root`` (a ``--data-root``) and return it.

    Idempotent: returns at once when ``out_root`` holds a completed generation of
    this generator version, seed and scale. Writes into a temporary sibling
    folder renamed into place at the end, so an interrupted run leaves no
    partial dataset. Refuses to replace a non-empty folder it did not write.
    """
    import cv2

    out_root = Path(out_root).expanduser()
    want = {"generator": "benchmark.datasets.synthetic", "version": VERSION, "seed": int(seed), "scale": scale}
    if _matches(_marker(out_root), want):
        return out_root
    if scale not in SCALES:
        raise ValueError(f"unknown synthetic scale {scale!r}; choose from {sorted(SCALES)}")
    if out_root.exists() and any(out_root.iterdir()) and _marker(out_root) is None:
        raise FileExistsError(f"{out_root} is not empty and holds no synthetic-data marker; not overwriting it")
    out_root.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale_temps(out_root.parent, out_root.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_root.name}.tmp-", dir=out_root.parent))
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # small images: threads cost more than they give on shared cores
    try:
        counts = _write_all(tmp, int(seed), scale)
        info = {**want, "counts": counts}  # no timings: reruns stay byte-identical
        (tmp / MARKER).write_text(json.dumps(info, indent=1) + "\n")
        _install(tmp, out_root, want)
    finally:
        cv2.setNumThreads(threads)
        shutil.rmtree(tmp, ignore_errors=True)
    return out_root


def _install(tmp: Path, out_root: Path, want: dict) -> None:
    try:
        os.rename(tmp, out_root)  # atomic; also replaces an empty folder
        return
    except OSError:
        if _matches(_marker(out_root), want):
            return  # a concurrent generation finished first
    trash = out_root.with_name(f".{out_root.name}.tmp-old-{os.getpid()}")
    os.rename(out_root, trash)  # an older generation (other version/seed/scale)
    os.rename(tmp, out_root)
    shutil.rmtree(trash, ignore_errors=True)


def ensure_synthetic(cache_dir: Path | None = None, seed: int = 0, scale: str = "default") -> Path:
    """Data root of the synthetic dataset in the cache (``$MER_BENCHMARK_CACHE`` or
    ``~/.cache/mer-benchmark``), generated on first use."""
    base = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    suffix = "" if scale == "default" else f"-{scale}"
    return generate(base / f"synthetic-v{VERSION}-seed{seed}{suffix}", seed=seed, scale=scale)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Write the synthetic micro-expression dataset.")
    ap.add_argument("out_root", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", choices=sorted(SCALES), default="default")
    args = ap.parse_args(argv)
    root = generate(args.out_root, args.seed, args.scale)
    print(json.dumps(_marker(root), indent=1))


if __name__ == "__main__":
    main()
