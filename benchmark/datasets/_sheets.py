"""Reading annotation sheets (.xlsx) with errors that name file, sheet, row and column.

Columns are found by header name, case-, space- and punctuation-insensitively
(``"Estimated Emotion"`` == ``"estimated_emotion"`` == ``"EstimatedEmotion"``),
and the header row is found by content so that banner lines above it (SAMM)
do not matter. Structural problems (missing file, no header, missing column)
raise :class:`DatasetError`; cell-level problems are left to the reader, which
records a :class:`~benchmark.core.samples.Defect` naming ``row.where(field)``.

Also here: the parsing and sanity rules shared by every reader (frame numbers,
onset <= apex <= offset), so that all databases report the same defect kinds.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from benchmark.core.samples import Defect

HEADER_SEARCH_ROWS = 60

# Defect kinds produced by the shared rules (readers add their own).
MISSING_VALUE = "missing_value"
INVALID_FRAME = "invalid_frame_number"
INVALID_APEX = "invalid_apex"
MISSING_OFFSET = "missing_offset"
FRAME_ORDER = "frame_order"
UNKNOWN_EMOTION = "unknown_emotion"
DUPLICATE_KEY = "duplicate_key"

ORDER_POLICIES = ("fix", "keep", "skip")


def _error(message: str) -> Exception:
    from benchmark.datasets import DatasetError

    return DatasetError(message)


def norm_header(value: Any) -> str:
    """``' Estimated  Emotion '`` -> ``'estimatedemotion'``."""
    if value is None:
        return ""
    return re.sub(r"[^0-9a-z]", "", str(value).lower())


def column_letter(index: int) -> str:
    """0-based column index -> Excel letter (0 -> A)."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


@dataclass
class Row:
    """One data row: values by field name, with its position for messages."""

    number: int  # 1-based row number as Excel shows it
    values: dict[str, Any]
    columns: dict[str, tuple[int, str]]  # field -> (0-based index, header text)
    file: str

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def text(self, name: str) -> str:
        """Cell as a stripped string ('' for empty); floats like 1.0 -> '1'."""
        value = self.values.get(name)
        if value is None:
            return ""
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return str(value).strip()

    def where(self, name: str | None = None) -> str:
        """``"row 17, column 'ApexFrame' (D)"``."""
        if name is None or name not in self.columns:
            return f"{self.file}, row {self.number}"
        index, header = self.columns[name]
        return f"{self.file}, row {self.number}, column {header!r} ({column_letter(index)})"


@dataclass
class Sheet:
    """A parsed sheet: data rows below the header row."""

    path: Path
    name: str
    header_row: int
    columns: dict[str, tuple[int, str]]
    rows: list[Row] = field(default_factory=list)

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


def _match_header(
    cells: Sequence[Any], spec: Mapping[str, Sequence[str]]
) -> dict[str, tuple[int, str]]:
    normed = [norm_header(c) for c in cells]
    found: dict[str, tuple[int, str]] = {}
    for name, aliases in spec.items():
        wanted = [norm_header(a) for a in aliases]
        for alias in wanted:  # alias order is preference order
            if alias in normed:
                i = normed.index(alias)
                found[name] = (i, str(cells[i]).strip())
                break
    return found


def read_sheet(
    path: Path,
    required: Mapping[str, Sequence[str]],
    optional: Mapping[str, Sequence[str]] | None = None,
    sheet: str | None = None,
) -> Sheet:
    """Read an .xlsx sheet whose header row has the ``required`` columns.

    ``required``/``optional`` map a field name to accepted header spellings.
    ``sheet=None`` takes the first worksheet that has all required columns.
    """
    optional = dict(optional or {})
    path = Path(path)
    if not path.is_file():
        raise _error(f"sheet {path} not found")
    if path.suffix.lower() not in {".xlsx", ".xlsm"}:
        raise _error(f"{path}: only .xlsx sheets can be read (save it as .xlsx)")
    try:
        import openpyxl

        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # zipfile.BadZipFile, KeyError, InvalidFileException...
        raise _error(f"{path}: not a readable .xlsx workbook ({type(exc).__name__}: {exc})") from exc
    try:
        if sheet is not None:
            if sheet not in wb.sheetnames:
                raise _error(f"{path}: no worksheet {sheet!r} (found: {', '.join(wb.sheetnames)})")
            candidates = [wb[sheet]]
        else:
            candidates = list(wb.worksheets)
        best: tuple[int, str, int, dict, list] | None = None  # (score, sheet, row, found, cells)
        for ws in candidates:
            rows_iter = ws.iter_rows(values_only=True)
            header_at, header_cols = None, None
            buffered: list[tuple[int, tuple]] = []
            for number, cells in enumerate(rows_iter, start=1):
                if header_at is None:
                    if number > HEADER_SEARCH_ROWS:
                        break
                    found = _match_header(cells, required)
                    if best is None or len(found) > best[0]:
                        best = (len(found), ws.title, number, found, list(cells))
                    if len(found) == len(required):
                        header_at = number
                        header_cols = {**found, **_match_header(cells, optional)}
                    continue
                buffered.append((number, cells))
            if header_at is None:
                continue
            short = path.name
            rows = []
            for number, cells in buffered:
                if cells is None or all(c is None or (isinstance(c, str) and not c.strip()) for c in cells):
                    continue
                values = {
                    name: (cells[i] if i < len(cells) else None) for name, (i, _) in header_cols.items()
                }
                rows.append(Row(number, values, header_cols, short))
            return Sheet(path, ws.title, header_at, header_cols, rows)
    finally:
        wb.close()

    accepted = "; ".join(f"{n}: {' / '.join(map(repr, a))}" for n, a in required.items())
    if best is None or best[0] < 2:
        where = f"worksheet {sheet!r}" if sheet else f"worksheets {', '.join(wb.sheetnames)}"
        raise _error(
            f"{path}: no header row found in the first {HEADER_SEARCH_ROWS} rows of {where} "
            f"(expected columns {accepted})"
        )
    _, title, number, found, cells = best
    missing = [n for n in required if n not in found]
    names = ", ".join(f"{required[n][0]!r}" for n in missing)
    present = ", ".join(repr(str(c).strip()) for c in cells if c is not None)
    raise _error(
        f"{path}: worksheet {title!r}, header row {number}: missing column {names} "
        f"(accepted spellings: {'; '.join(' / '.join(map(repr, required[n])) for n in missing)}); "
        f"columns found: {present}"
    )


def find_sheet(root: Path, patterns: Sequence[str], dataset: str, notes: list[Defect] | None = None) -> Path:
    """The sheet in ``root`` matching ``patterns`` (first pattern wins; among
    several matches the last in name order, i.e. the newest dated version,
    with a ``several_sheets`` note added to ``notes``)."""
    for pattern in patterns:
        hits = sorted(p for p in root.glob(pattern) if p.is_file() and not p.name.startswith("~$"))
        if hits:
            if len(hits) > 1 and notes is not None:
                notes.append(Defect(hits[-1].name, "several_sheets",
                                    f"{len(hits)} sheets match {pattern} in {root}: {', '.join(h.name for h in hits)}",
                                    f"{hits[-1].name} used (pass sheet= to choose)"))
            return hits[-1]
    hint = ""
    sub = root / dataset
    if sub.is_dir():
        hint = f"; did you mean {sub}?"
    raise _error(
        f"{dataset}: no annotation sheet matching {' or '.join(patterns)} in {root} "
        f"(is this the {dataset} folder?){hint}"
    )


# ---------------------------------------------------------------- values


def locate_sheet(root: Path, sheet: str | Path | None, patterns: Sequence[str], dataset: str,
                 defects: list[Defect]) -> Path:
    """The annotation sheet: ``sheet`` as given (relative to ``root`` when not found as is),
    else the first file under ``root`` matching ``patterns``."""
    if sheet is None:
        return find_sheet(root, patterns, dataset, defects)
    path = Path(sheet)
    return root / path if not path.is_absolute() and not path.exists() else path


def parse_frame(value: Any) -> int | None:
    """A non-negative frame number from an int/float/str cell, else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if value.is_integer() and value >= 0 else None
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.0+)?", text):
        return int(float(text))
    return None


@dataclass
class Frames3:
    """Checked onset/apex/offset of one row (or None: the row must be skipped)."""

    onset: int
    apex: int | None
    offset: int | None


def check_annotation(
    key: str,
    row: Row,
    defects: list[Defect],
    order: str = "fix",
    offset_zero_is_missing: bool = True,
) -> Frames3 | None:
    """Parse onset/apex/offset of ``row`` and apply the shared rules.

    - onset missing or not a number: ``invalid_frame_number``, sample skipped;
    - offset missing / not a number / 0 after a later onset: ``missing_offset``,
      offset left None (readers may fill it from the clip folder);
    - apex missing or not a number (e.g. CASME II's ``/``): ``invalid_apex``,
      apex = middle of onset..offset (None when the offset is unknown too);
    - not onset <= apex <= offset: ``frame_order``; with ``order="fix"`` an apex
      outside a valid onset..offset is replaced by the middle frame, an onset
      after the offset cannot be repaired and is kept as annotated; ``"keep"``
      keeps every such row as annotated; ``"skip"`` drops it.
    """
    if order not in ORDER_POLICIES:
        raise ValueError(f"order must be one of {ORDER_POLICIES}, not {order!r}")
    onset = parse_frame(row.get("onset"))
    if onset is None:
        raw = row.text("onset")
        kind = MISSING_VALUE if raw == "" else INVALID_FRAME
        defects.append(Defect(key, kind, f"{row.where('onset')}: onset {raw!r} is not a frame number", "sample skipped"))
        return None
    offset = parse_frame(row.get("offset"))
    raw_off = row.text("offset")
    if offset is not None and offset == 0 and onset > 0 and offset_zero_is_missing:
        offset = None
    if offset is None and "offset" in row.columns:
        why = ("0 before the onset (placeholder)" if raw_off in {"0", "0.0"}
               else "cell is empty" if raw_off == "" else f"{raw_off!r} is not a frame number")
        defects.append(Defect(key, MISSING_OFFSET, f"{row.where('offset')}: offset {why}", "offset unknown"))
    apex = parse_frame(row.get("apex"))
    if apex is None and "apex" in row.columns:
        raw = row.text("apex")
        why = "cell is empty" if raw == "" else f"{raw!r} is not a frame number"
        if offset is not None and onset <= offset:
            apex = (onset + offset) // 2
            action = f"apex set to {apex}, the middle of onset {onset}..offset {offset}"
        else:
            action = "apex unknown"
        defects.append(Defect(key, INVALID_APEX, f"{row.where('apex')}: apex {why}", action))

    bad = []
    if apex is not None and onset > apex:
        bad.append(f"onset {onset} > apex {apex}")
    if apex is not None and offset is not None and apex > offset:
        bad.append(f"apex {apex} > offset {offset}")
    if offset is not None and onset > offset:
        bad.append(f"onset {onset} > offset {offset}")
    if not bad:
        return Frames3(onset, apex, offset)
    detail = f"{row.where()}: " + ", ".join(bad) + " (onset <= apex <= offset expected)"
    if order == "skip":
        defects.append(Defect(key, FRAME_ORDER, detail, "sample skipped"))
        return None
    if order == "fix" and offset is not None and onset <= offset:
        new_apex = (onset + offset) // 2
        defects.append(Defect(key, FRAME_ORDER, detail,
                              f"apex {apex} replaced by {new_apex}, the middle of onset {onset}..offset {offset}"))
        return Frames3(onset, new_apex, offset)
    if order == "fix" and offset is None:  # onset > apex, no offset to repair with
        defects.append(Defect(key, FRAME_ORDER, detail, "cannot be repaired: kept as annotated (order='skip' drops it)"))
        return Frames3(onset, apex, offset)
    if order == "fix":
        defects.append(Defect(key, FRAME_ORDER, detail,
                              "onset after offset cannot be repaired: kept as annotated (order='skip' drops it)"))
        return Frames3(onset, apex, offset)
    defects.append(Defect(key, FRAME_ORDER, detail, "kept as annotated"))
    return Frames3(onset, apex, offset)


def check_emotion(
    key: str, row: Row, known: Sequence[str], defects: list[Defect], aliases: Mapping[str, str] | None = None,
    column: str = "emotion",
) -> str | None:
    """Lower-cased emotion; unknown ones are kept and reported, empty ones skip the row."""
    raw = row.text(column)
    emotion = raw.lower()
    emotion = (aliases or {}).get(emotion, emotion)
    if not emotion:
        defects.append(Defect(key, MISSING_VALUE, f"{row.where(column)}: no emotion", "sample skipped"))
        return None
    if emotion not in known:
        defects.append(
            Defect(key, UNKNOWN_EMOTION, f"{row.where(column)}: emotion {raw!r} is not one of {', '.join(known)}",
                   f"kept as {emotion!r} (label sets that do not map it exclude the sample)")
        )
    return emotion


def check_duplicate(key: str, row: Row, seen: dict[str, int], defects: list[Defect]) -> bool:
    """True (and a defect) when ``key`` was already read from an earlier row."""
    if key in seen:
        defects.append(Defect(key, DUPLICATE_KEY, f"{row.where()} repeats row {seen[key]}", "later row skipped"))
        return True
    seen[key] = row.number
    return False
