"""Sizes of what ``sam build`` produced, zipped as ``sam package`` uploads them."""

from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

BUILD = Path(__file__).resolve().parents[1] / ".aws-sam" / "build"
LAYER = "BillingLayer"


@dataclass(frozen=True)
class Artifact:
    name: str  # the template's logical id
    zipped_bytes: int
    unzipped_bytes: int
    files: int
    pyc_files: int


def measure_artifacts(build: Path = BUILD) -> tuple[Artifact, ...]:
    """Every built layer and function (the layer first), zipped with deflate like SAM."""
    if not (build / "template.yaml").exists():
        raise RuntimeError("no .aws-sam/build: run `make build` first")
    folders = sorted(
        (p for p in build.iterdir() if p.is_dir()), key=lambda p: (p.name != LAYER, p.name)
    )
    return tuple(zipped(folder) for folder in folders)


def zipped(folder: Path) -> Artifact:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    with tempfile.TemporaryFile() as archive:
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zip_file:
            for path in files:
                zip_file.write(path, path.relative_to(folder))
        size = archive.seek(0, os.SEEK_END)
    return Artifact(
        name=folder.name,
        zipped_bytes=size,
        unzipped_bytes=sum(p.stat().st_size for p in files),
        files=len(files),
        pyc_files=sum(p.suffix == ".pyc" for p in files),
    )
