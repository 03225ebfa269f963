"""Data sets on disk: the Kaggle "Painter by Numbers" layout and one folder per artist."""

from __future__ import annotations

import csv
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from painterid.core.errors import DataError
from painterid.core.io import check_columns

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
KAGGLE_CSVS = ("train_info.csv", "all_data_info.csv")


@dataclass
class Dataset:
    """Paintings with their artists: `files[i]` was painted by `artists[i]`."""

    root: Path
    layout: str
    files: list[Path]
    artists: list[str]
    names: list[str]  # how pair CSVs and reports refer to a painting (Kaggle: the file name)
    sources: list[str] | None = None  # where each image came from (a `sources.csv` beside the data), if known
    dropped: list[str] = field(default_factory=list)  # rows that named missing files

    def __len__(self) -> int:
        return len(self.files)


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def discover(path: str | Path) -> Dataset:
    """Read a data set: a Kaggle-layout folder, a folder per artist, or a flat folder of images."""
    root = Path(path)
    if not root.exists():
        raise DataError(f"{root}: no such data folder")
    if not root.is_dir():
        raise DataError(f"{root}: expected a folder of paintings, got a file")
    for name in KAGGLE_CSVS:
        if (root / name).is_file():
            return _read_kaggle(root, root / name)
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    per_artist = [(d, sorted(f for f in d.rglob("*") if f.is_file() and is_image(f))) for d in subdirs]
    per_artist = [(d, fs) for d, fs in per_artist if fs]
    if per_artist:
        files = [f for _, fs in per_artist for f in fs]
        artists = [d.name for d, fs in per_artist for _ in fs]
        names = [str(f.relative_to(root)) for f in files]
        return Dataset(root, "folders", files, artists, names)
    flat = sorted(f for f in root.iterdir() if f.is_file() and is_image(f))
    if flat:
        return Dataset(root, "flat", flat, [""] * len(flat), [f.name for f in flat])
    raise DataError(
        f"{root}: found no paintings (expected train_info.csv or all_data_info.csv, "
        "one sub-folder per artist, or image files)"
    )


def _read_csv(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of a UTF-8 CSV with the `required` columns (a short row's missing cells read as "")."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh, restval="")
            check_columns(path, reader.fieldnames, required)
            return list(reader)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); save the CSV as UTF-8") from None
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from None


def _inside(file: Path, root: Path) -> bool:
    """Whether a listed file lies inside the data folder (a CSV must not reach /etc/passwd or ../..).

    Lexical check, so images that are symbolic links into another disk still count as inside."""
    f, r = os.path.normpath(os.path.abspath(file)), os.path.normpath(os.path.abspath(root))
    return os.path.commonpath([f, r]) == r


def _read_kaggle(root: Path, info: Path) -> Dataset:
    if info.name == "all_data_info.csv":
        rows = _read_csv(info, ("artist", "new_filename"))
        entries = []
        for r in rows:
            sub = "train" if r.get("in_train", "True").strip().lower() in ("true", "1") else "test"
            entries.append((r["new_filename"], r["artist"], root / sub / r["new_filename"]))
    else:
        rows = _read_csv(info, ("filename", "artist"))
        entries = [(r["filename"], r["artist"], root / "train" / r["filename"]) for r in rows]

    seen: set[str] = set()
    files, artists, names, dropped, outside = [], [], [], [], []
    duplicates = 0
    for name, artist, file in entries:
        if name in seen:
            duplicates += 1
            continue
        seen.add(name)
        if not _inside(file, root):
            outside.append(name)
            continue
        if not file.is_file():
            dropped.append(name)
            continue
        files.append(file)
        artists.append(artist.strip())
        names.append(name)
    if duplicates:
        warnings.warn(f"{info}: dropped {duplicates} duplicate row(s)", stacklevel=2)
    if outside:
        warnings.warn(f"{info}: {len(outside)} file name(s) point outside the data folder, dropped "
                      f"(first: {outside[0]})", stacklevel=2)
    if dropped:
        warnings.warn(
            f"{info}: {len(dropped)} listed file(s) not found, dropped (first: {', '.join(dropped[:3])})",
            stacklevel=2,
        )
    if not files:
        raise DataError(f"{info}: none of the listed images exist under {root}")

    sources = None
    src_csv = root / "sources.csv"
    if src_csv.is_file():
        src_rows = _read_csv(src_csv, ("filename", "source"))
        by_name = {r["filename"]: r["source"] for r in src_rows}
        sources = [by_name.get(n, "") for n in names]
    return Dataset(root, "kaggle", files, artists, names, sources=sources, dropped=dropped)
