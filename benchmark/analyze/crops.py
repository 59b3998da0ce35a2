"""Raw-video crop and flow agreement with the official CASME II crops:
``python -m benchmark analyze crops --data-root DIR``.

``DIR`` holds ``casme2/`` (the official ``Cropped`` frames and sheet) and
``casme2-raw-sub01/casme2/`` (raw 640x480 frames of some clips, ``CASME2_RAW_selected``
layout). For every clip with raw frames and official crops:

- the official crop's location in each raw frame it was cut from: ``cv2.matchTemplate``
  of the official ``reg_img`` at native scale (axis-aligned, like the issue's figure);
- per preprocessing mode (``raw``, ``face`` with MTCNN and mediapipe, ``aligned`` with
  both): IoU of the axis-aligned bounding box of the mode's crop (found on the onset
  frame, used for every frame) with that location, averaged over the frames both
  copies have; the share of the box outside the frame;
- Pearson correlation of the ``tvl1`` representation's 28x28 (u, v, strain) maps
  computed from that mode's raw frames with the maps computed from the official crops
  (``none``), averaged over the three channels; the ceiling is the raw frames cut at the
  official box of the onset frame;
- ``aligned`` run on the official crops themselves against ``none`` there (it should
  change almost nothing): flow correlation and the IoU of its box with the whole crop.

``--calibrate`` instead measures the official crops' box rule (the constants of
:mod:`representations.align`) on the ``Cropped`` onset frames of every subject but
the excluded ones (default: sub01, whose raw frames are the test).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from benchmark.core.samples import Sample
from benchmark.datasets import read_dataset
from representations import align
from representations.flow import TVL1, minmax, optical_strain, resize_channel
from representations.preprocess import (
    Prep, centre_square, detect_face, expand_box, find_alignment, mesh_points, prepare, to_gray,
)

RAW_DIR = "casme2-raw-sub01"
MODES = (("raw", "raw", None), ("face", "face", "mtcnn"), ("face", "face", "mediapipe"),
         ("aligned", "aligned", "mtcnn"), ("aligned", "aligned", "mediapipe"))
COLOURS = {"official": (0, 200, 0), "raw": (150, 150, 150), "face/mtcnn": (255, 140, 0),
           "face/mediapipe": (230, 0, 230), "aligned/mtcnn": (0, 200, 255), "aligned/mediapipe": (255, 40, 40)}


def _rgb(path) -> np.ndarray:
    from representations.base import read_image

    return cv2.cvtColor(read_image(path), cv2.COLOR_BGR2RGB)


def locate(raw_rgb: np.ndarray, crop_rgb: np.ndarray) -> tuple[list[int], float]:
    """Axis-aligned location [x0, y0, x1, y1] of an official crop in its raw frame (native scale)."""
    r = cv2.matchTemplate(raw_rgb, crop_rgb, cv2.TM_CCOEFF_NORMED)
    _, score, _, (x, y) = cv2.minMaxLoc(r)
    h, w = crop_rgb.shape[:2]
    return [int(x), int(y), int(x + w), int(y + h)], float(score)


def locate_rotated(raw_rgb: np.ndarray, crop_rgb: np.ndarray, span: float = 10.0) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The official crop as a rotated box of the raw frame: (2 x 3 map raw -> crop pixels, its (4, 2)
    corners in raw pixels, angle in degrees (as :class:`representations.align.Alignment`), match score).
    Template matching at native scale on the raw frame turned by each angle (1 degree, then 0.25)."""
    h, w = raw_rgb.shape[:2]
    ch, cw = crop_rgb.shape[:2]
    centre = (w / 2, h / 2)

    def score(a):
        m = cv2.getRotationMatrix2D(centre, a, 1.0)
        r = cv2.matchTemplate(cv2.warpAffine(raw_rgb, m, (w, h)), crop_rgb, cv2.TM_CCOEFF_NORMED)
        _, sc, _, loc = cv2.minMaxLoc(r)
        return sc, loc, m

    best = max((score(a) + (a,) for a in np.arange(-span, span + 0.1, 1.0)), key=lambda t: t[0])
    best = max((score(a) + (a,) for a in np.arange(best[3] - 0.75, best[3] + 0.76, 0.25)), key=lambda t: t[0])
    sc, (x, y), m, a = best
    m = m.copy()
    m[:, 2] -= (x, y)
    inv = cv2.invertAffineTransform(m)
    corners = np.array([[0, 0, 1], [cw, 0, 1], [cw, ch, 1], [0, ch, 1]], float) @ inv.T
    return m, corners, float(a), float(sc)  # cv2 turns by +a where Alignment(angle=a) does


def polygon_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two convex quadrilaterals ((4, 2) corners)."""
    a, b = (np.asarray(p, np.float32).reshape(-1, 1, 2) for p in (a, b))
    inter, _ = cv2.intersectConvexConvex(a, b)
    union = cv2.contourArea(a) + cv2.contourArea(b) - inter
    return float(inter / union) if union > 0 else 0.0


def box_corners(box: Sequence[float]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)


def flow_maps(on: np.ndarray, ap: np.ndarray, rep: TVL1 | None = None) -> np.ndarray:
    """(3, 28, 28) u, v, strain of the tvl1 representation (defaults) from two prepared frames."""
    rep = rep or TVL1()
    f = rep.flow(to_gray(on), to_gray(ap))
    u, v = f[..., 0], f[..., 1]
    out = np.stack([resize_channel(c, rep.size) for c in (u, v, optical_strain(u, v, rep.strain))])
    return minmax(out)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over channels of the Pearson correlation of two (C, H, W) maps."""
    rs = [np.corrcoef(x.ravel(), y.ravel())[0, 1] for x, y in zip(a, b)]
    return float(np.nanmean(rs))


def outside_share(box: Sequence[float], shape) -> float:
    x0, y0, x1, y1 = box
    area = (x1 - x0) * (y1 - y0)
    ix = max(0.0, min(x1, shape[1]) - max(x0, 0))
    iy = max(0.0, min(y1, shape[0]) - max(y0, 0))
    return float(1 - ix * iy / area) if area > 0 else 0.0


def mode_box(rgb: np.ndarray, mode: str, detector: str | None) -> tuple[list[float], list[float], dict]:
    """A mode's crop box on a frame in frame pixels: (the box cut, as ``prepare`` cuts it, i.e.
    clipped to the frame for ``raw``/``face`` and the rotated box's axis-aligned bounds for
    ``aligned``; the box before clipping; details)."""
    if mode == "raw":
        b = list(centre_square(rgb.shape))
        return b, b, {}
    if mode == "face":
        face = detect_face(rgb, detector)
        if face is None:
            b = list(centre_square(rgb.shape))
            return b, b, {"fallback": True}
        m = Prep("face").margin
        x0, y0, x1, y1 = face.box
        return list(expand_box(face.box, m, rgb.shape)), [x0 - m, y0 - m, x1 + m, y1 + m], {}
    al = find_alignment(rgb, detector)
    extra = {}
    if al is None:
        al, extra = align.fallback(rgb.shape), {"fallback": True}
    b = list(al.bounds())
    return b, b, {**extra, "align": al.to_list(), "corners": al.corners().tolist()}


def pairs(raw: Sample, cropped: Sample) -> tuple[int, int]:
    """Onset and apex frames both copies have (the Cropped copy is subsampled: nearest)."""
    on = cropped.frame_path(cropped.onset)[1]
    ap = cropped.frame_path(cropped.apex)[1]
    return on, ap


def measure_clip(raw: Sample, cropped: Sample, modes: Sequence[str] | None = None, frames: int | None = None,
                 on_cropped: bool = True) -> dict:
    """Figures of one clip. ``modes``: labels of :data:`MODES` to measure (default all);
    ``frames``: at most this many (evenly spaced) frames for the IoU (default all both copies have)."""
    on, ap = pairs(raw, cropped)
    common = sorted(set(raw.frames) & set(cropped.frames))
    if frames and len(common) > frames:
        common = sorted({common[int(round(i))] for i in np.linspace(0, len(common) - 1, frames)} | {on})
    locs = {n: locate(_rgb(raw.frames[n]), _rgb(cropped.frames[n])) for n in common}
    raw_on, raw_ap = _rgb(raw.frames[on]), _rgb(raw.frames[ap])
    off_on, off_ap = _rgb(cropped.frames[on]), _rgb(cropped.frames[ap])
    reference = flow_maps(off_on, off_ap)
    x0, y0, x1, y1 = locs[on][0]
    ceiling = correlation(flow_maps(raw_on[y0:y1, x0:x1], raw_ap[y0:y1, x0:x1]), reference)
    m, official_corners, official_angle, rot_score = locate_rotated(raw_on, off_on)
    size = (off_on.shape[1], off_on.shape[0])
    rot_ceiling = correlation(flow_maps(*(cv2.warpAffine(f, m, size) for f in (raw_on, raw_ap))), reference)
    row = {"sample": raw.key, "onset": on, "apex": ap, "frames": len(common),
           "official_box_onset": locs[on][0], "match_score_mean": float(np.mean([s for _, s in locs.values()])),
           "official_rotated": {"angle": official_angle, "corners": official_corners.tolist(), "score": rot_score},
           "ceiling_corr": ceiling, "ceiling_rotated_corr": rot_ceiling, "modes": {}}
    for name, mode, det in MODES:
        label = name if det is None else f"{name}/{det}"
        if modes is not None and label not in modes:
            continue
        box, unclipped, extra = mode_box(raw_on, mode, det)
        ious = [align.iou(box, locs[n][0]) for n in common]
        out, _ = prepare([raw_on, raw_ap], Prep(mode, detector=det or "mtcnn"), raw.key)
        corners = np.array(extra["corners"]) if "corners" in extra else box_corners(box)
        row["modes"][label] = {"box": [round(v, 1) for v in box], "iou": float(np.mean(ious)),
                               "iou_rotated": polygon_iou(corners, official_corners),
                               "iou_min": float(np.min(ious)), "outside": outside_share(unclipped, raw_on.shape),
                               "corr": correlation(flow_maps(*out), reference), **extra}
    for det in ("mtcnn", "mediapipe") if on_cropped else ():  # aligned on frames that are already official crops
        out, info = prepare([off_on, off_ap], Prep("aligned", detector=det), cropped.key)
        h, w = off_on.shape[:2]
        row[f"on_cropped/{det}"] = {"corr": correlation(flow_maps(*out), reference),
                                    "iou": align.iou(info["box"], [0, 0, w, h])}
    return row


def on_cropped(data_root: Path, n: int, detectors: Sequence[str] = ("mediapipe", "mtcnn")) -> dict:
    """``aligned`` run on official crops against ``none`` there, on ``n`` evenly spaced clips of the
    whole ``Cropped`` copy (clips whose onset and apex frames are both present): tvl1 flow-map
    correlation and IoU of the aligned box with the crop. The calibration saw these clips' onset
    frames (the rule's constants are medians over them): an in-sample figure."""
    samples = [s for s in read_dataset("casme2", data_root / "casme2", frames="cropped").samples
               if s.frames and s.onset in s.frames and s.apex in s.frames and s.apex != s.onset]
    pick = samples if n >= len(samples) else [samples[int(i)] for i in np.linspace(0, len(samples) - 1, n)]
    res = {d: {"corr": [], "iou": [], "no_face": 0} for d in detectors}
    for s in pick:
        on, ap = _rgb(s.frames[s.onset]), _rgb(s.frames[s.apex])
        reference = flow_maps(on, ap)
        h, w = on.shape[:2]
        for d in detectors:
            out, info = prepare([on, ap], Prep("aligned", detector=d), s.key)
            res[d]["no_face"] += any(e["kind"] == "no_face" for e in info["events"])
            res[d]["corr"].append(correlation(flow_maps(*out), reference))
            res[d]["iou"].append(align.iou(info["box"], [0, 0, w, h]))
    return {"clips": len(pick), **{d: {"corr_mean": float(np.mean(v["corr"])), "corr_median": float(np.median(v["corr"])),
                                       "corr_q25": float(np.percentile(v["corr"], 25)),
                                       "iou_mean": float(np.mean(v["iou"])), "no_face": v["no_face"]}
                                   for d, v in res.items()}}


def clips(data_root: Path) -> list[tuple[Sample, Sample]]:
    raw = read_dataset("casme2", data_root / RAW_DIR / "casme2", frames="raw")
    off = {s.key: s for s in read_dataset("casme2", data_root / "casme2", frames="cropped").samples if s.frames}
    out = []
    for s in raw.samples:
        if s.frames and s.key in off:
            out.append((s, off[s.key]))
    return out


def summary(rows: list[dict]) -> dict:
    labels = list(rows[0]["modes"])
    mean = lambda xs: float(np.mean(xs))  # noqa: E731
    out = {"clips": len(rows), "frames": int(sum(r["frames"] for r in rows)),
           "ceiling_corr": mean([r["ceiling_corr"] for r in rows]),
           "ceiling_rotated_corr": mean([r["ceiling_rotated_corr"] for r in rows]),
           "official_angle": [round(r["official_rotated"]["angle"], 2) for r in rows], "modes": {}}
    for lab in labels:
        ms = [r["modes"][lab] for r in rows]
        out["modes"][lab] = {"iou": mean([m["iou"] for m in ms]), "iou_min": float(min(m["iou_min"] for m in ms)),
                             "iou_rotated": mean([m["iou_rotated"] for m in ms]),
                             "corr": mean([m["corr"] for m in ms]), "corr_min": float(min(m["corr"] for m in ms)),
                             "outside": mean([m["outside"] for m in ms]),
                             "clipped_clips": int(sum(m["outside"] > 0 for m in ms))}
    for det in ("mtcnn", "mediapipe") if f"on_cropped/mtcnn" in rows[0] else ():
        out[f"on_cropped/{det}"] = {"corr": mean([r[f"on_cropped/{det}"]["corr"] for r in rows]),
                                    "iou": mean([r[f"on_cropped/{det}"]["iou"] for r in rows])}
    return out


def table(s: dict) -> str:
    lines = ["| mode | paper mode | IoU, axis-aligned box vs official location (mean, min) "
             "| IoU, rotated boxes | box past the frame edge (clips) "
             "| tvl1 28x28 flow corr. with official (mean, min) |",
             "|---|---|---|---|---|---|"]
    paper = {"raw": "M1", "face/mtcnn": "M2", "face/mediapipe": "M2", "aligned/mtcnn": "databases' crop",
             "aligned/mediapipe": "databases' crop"}
    for lab, m in s["modes"].items():
        lines.append(f"| `{lab}` | {paper.get(lab, '')} | {m['iou']:.3f} ({m['iou_min']:.3f}) | {m['iou_rotated']:.3f} | "
                     f"{100 * m['outside']:.1f} % ({m['clipped_clips']}/{s['clips']}) | "
                     f"{m['corr']:.3f} ({m['corr_min']:.3f}) |")
    lines.append(f"| raw frames cut at the official axis-aligned location (the issue's ceiling) | | 1 | | | "
                 f"{s['ceiling_corr']:.3f} |")
    lines.append(f"| raw frames cut at the official rotated box | | | 1 | | {s['ceiling_rotated_corr']:.3f} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- figure
def figure(raw: Sample, cropped: Sample, row: dict, path: Path, width: int = 1000) -> Path:
    """Raw onset frame with every mode's box, then the crops side by side (same height)."""
    on = row["onset"]
    img = _rgb(raw.frames[on]).copy()
    for lab, m in row["modes"].items():
        col = COLOURS[lab]
        if "corners" in m:
            cv2.polylines(img, [np.round(np.array(m["corners"])).astype(np.int32)], True, col, 2, cv2.LINE_AA)
        else:
            b = [int(round(v)) for v in m["box"]]
            cv2.rectangle(img, (b[0], b[1]), (b[2] - 1, b[3] - 1), col, 2)
    x0, y0, x1, y1 = row["official_box_onset"]  # on top: the axis-aligned location the IoU is measured against
    cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), COLOURS["official"], 2)
    crops = [("official", _rgb(cropped.frames[on]))]
    raw_on = _rgb(raw.frames[on])
    for lab in ("aligned/mediapipe", "aligned/mtcnn", "face/mediapipe", "face/mtcnn", "raw"):
        mode, _, det = lab.partition("/")
        out, _ = prepare([raw_on], Prep(mode, detector=det or "mtcnn"))
        crops.append((lab, out[0] if out[0].ndim == 3 else np.dstack([out[0]] * 3)))
    h = img.shape[0]
    tiles = []
    for lab, c in crops:
        t = cv2.resize(c, (int(round(c.shape[1] * 240 / c.shape[0])), 240), interpolation=cv2.INTER_AREA)
        t = cv2.copyMakeBorder(t, 34, 6, 4, 4, cv2.BORDER_CONSTANT, value=(255, 255, 255))
        cv2.rectangle(t, (4, 34), (t.shape[1] - 5, t.shape[0] - 7), COLOURS[lab], 3)
        cv2.putText(t, lab, (6, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 2, cv2.LINE_AA)
        tiles.append(t)
    strip = np.hstack(tiles)
    legend = np.full((h, 230, 3), 255, np.uint8)
    y = 30
    for lab, col in COLOURS.items():
        m = row["modes"].get(lab)
        cv2.rectangle(legend, (8, y - 14), (30, y + 2), col, -1)
        cv2.putText(legend, lab + (" (template match)" if lab == "official" else ""), (38, y),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        if m is not None:
            cv2.putText(legend, f"IoU {m['iou']:.2f}  r {m['corr']:.2f}", (38, y + 20), cv2.FONT_HERSHEY_SIMPLEX,
                        0.5, (60, 60, 60), 1, cv2.LINE_AA)
        y += 52
    for i, text in enumerate(("IoU: box (axis-aligned) vs the", "official crop's location;", "r: tvl1 28x28 flow corr.",
                              "with the official crops", "", f"{raw.key.split('/', 1)[1]}, frame {on}")):
        cv2.putText(legend, text, (8, y + 10 + 20 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    top = np.hstack([img, legend])
    W = max(top.shape[1], strip.shape[1])
    pad = lambda a: cv2.copyMakeBorder(a, 0, 0, 0, W - a.shape[1], cv2.BORDER_CONSTANT, value=(255, 255, 255))  # noqa
    full = np.vstack([pad(top), pad(strip)])
    if full.shape[1] > width:
        full = cv2.resize(full, (width, int(round(full.shape[0] * width / full.shape[1]))), interpolation=cv2.INTER_AREA)
    path.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    # 256 colours keep the PNG small (well under 300 KB) and the boxes and text sharp
    Image.fromarray(full).quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path


# ---------------------------------------------------------------- calibration
def _eye_frame(eyes: np.ndarray, corners: np.ndarray) -> tuple[float, float, float, float, float]:
    """Official box (the crop's corners) in the eye-levelled frame of two eye points, in units of
    their distance: (centre dx, centre dy from the eye midpoint, height, width / height, angle)."""
    ang, piv = align.eye_angle(eyes[0], eyes[1]), (eyes[0] + eyes[1]) / 2
    iod = float(np.linalg.norm(eyes[1] - eyes[0]))
    c = align.level(corners, ang, piv)
    h, w = c[:, 1].max() - c[:, 1].min(), c[:, 0].max() - c[:, 0].min()
    return ((c[:, 0].mean() - piv[0]) / iod, (c[:, 1].mean() - piv[1]) / iod, h / iod, w / h, ang)


def calibrate(data_root: Path, exclude: Sequence[str] = ("sub01",), limit: int | None = None) -> dict:
    """Box-rule constants measured on official crops (there the box is the whole crop).

    Per onset frame of every clip but the excluded subjects': the crop's centre (from the
    point between the eyes) and height in units of the eye distance, in the eye-levelled
    frame, for the mesh's eye centres and for MTCNN's eye points; the crop's aspect. The
    medians are the constants of :mod:`representations.align`. Also reported: how steadily
    the crop height follows candidate scales (coefficient of variation of height / scale,
    and the correlation): the eye distance, and the mesh's brow-top-to-mouth height."""
    samples = [s for s in read_dataset("casme2", data_root / "casme2", frames="cropped").samples
               if s.frames and s.subject.split("/")[-1] not in set(exclude)]
    samples = samples[:limit] if limit else samples
    vals: dict[str, list] = {"mediapipe": [], "mtcnn": []}
    scales, aspects = [], []
    for s in samples:
        path, _ = s.frame_path(s.onset)
        rgb = _rgb(path)
        h, w = rgb.shape[:2]
        aspects.append(w / h)
        corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], float)
        pts = mesh_points(rgb)
        if pts is not None:
            eyes = np.array([pts[list(e)].mean(0) for e in align.MESH_EYES])
            vals["mediapipe"].append(_eye_frame(eyes, corners))
            q = align.level(pts, align.eye_angle(*eyes), eyes.mean(0))
            brow_mouth = q[list(align.MESH_MOUTH), 1].mean() - q[list(align.MESH_BROWS), 1].min()
            scales.append((h, float(np.linalg.norm(eyes[1] - eyes[0])), brow_mouth))
        face = detect_face(rgb, "mtcnn")
        if face is not None:
            vals["mtcnn"].append(_eye_frame(face.points[:2].astype(float), corners))

    def q3(x):
        x = np.asarray(x, float)
        return {"median": round(float(np.median(x)), 4), "q25": round(float(np.percentile(x, 25)), 4),
                "q75": round(float(np.percentile(x, 75)), 4)}

    out = {"clips": len(samples), "excluded_subjects": list(exclude), "aspect": q3(aspects)}
    for det, v in vals.items():
        a = np.array(v, float)
        out[det] = {"found": len(v), **{n: q3(a[:, i]) for i, n in
                                        enumerate(("dx", "dy", "height", "aspect", "residual_angle"))}}
    sc = np.array(scales, float)
    out["height_follows"] = {
        name: {"cv_of_ratio": round(float(np.std(sc[:, 0] / sc[:, i]) / np.mean(sc[:, 0] / sc[:, i])), 4),
               "corr": round(float(np.corrcoef(sc[:, 0], sc[:, i])[0, 1]), 3)}
        for name, i in (("eye_distance", 1), ("brow_to_mouth", 2))}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmark analyze crops",
                                 description="raw-video crop and flow agreement with the official CASME II crops")
    ap.add_argument("--data-root", required=True, help="folder holding casme2/ and casme2-raw-sub01/")
    ap.add_argument("--figure", help="write the side-by-side picture (PNG) here")
    ap.add_argument("--figure-clip", help="clip of the figure (default: the first)")
    ap.add_argument("--json", help="write per-clip rows and the summary here")
    ap.add_argument("--calibrate", action="store_true", help="measure the box rule on the official crops instead")
    ap.add_argument("--exclude", default="sub01", help="subjects left out of --calibrate (comma-separated)")
    ap.add_argument("--limit", type=int, help="--calibrate: at most this many clips")
    ap.add_argument("--on-cropped", type=int, metavar="N",
                    help="instead: aligned vs none on N clips of the whole Cropped copy")
    args = ap.parse_args(argv)
    root = Path(args.data_root)
    if args.calibrate:
        res = calibrate(root, [e for e in args.exclude.split(",") if e], args.limit)
        print(json.dumps(res, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=1))
        return 0
    if args.on_cropped:
        res = on_cropped(root, args.on_cropped)
        print(json.dumps(res, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=1))
        return 0
    pairs_ = clips(root)
    if not pairs_:
        raise SystemExit(f"error: no clip has both raw frames under {root / RAW_DIR} and official crops under "
                         f"{root / 'casme2'}")
    rows = []
    for raw, off in pairs_:
        rows.append(measure_clip(raw, off))
        r = rows[-1]
        print(f"{raw.key}: ceiling {r['ceiling_corr']:.3f}; " + "; ".join(
            f"{k} IoU {m['iou']:.3f} r {m['corr']:.3f}" for k, m in r["modes"].items()), flush=True)
    s = summary(rows)
    print(table(s))
    for det in ("mtcnn", "mediapipe"):
        c = s[f"on_cropped/{det}"]
        print(f"aligned/{det} on the official crops vs none: flow corr. {c['corr']:.3f}, IoU with the crop {c['iou']:.3f}")
    if args.figure:
        i = next((k for k, (r, _) in enumerate(pairs_) if args.figure_clip and r.clip == args.figure_clip), 0)
        print(f"wrote {figure(pairs_[i][0], pairs_[i][1], rows[i], Path(args.figure))}")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": s, "rows": rows}, indent=1))
    return 0
