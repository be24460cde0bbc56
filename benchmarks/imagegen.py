"""Generate CellProfiler CSV plates with their images, for the image-crop benchmark.

A plate from :mod:`benchmarks.plategen` (CSV layout, five channels named in ``Image.csv``'s
``FileName_*`` columns), plus:

* one TIFF per image and channel (``uint16``, ``size`` x ``size``, smooth noise so it compresses
  like a micrograph would not: stored uncompressed, as CellProfiler's inputs usually are), named
  as ``Image.csv`` names it, in the plate folder, with ``PathName_*`` pointing there;
* bounding boxes in ``Cells.csv`` (``AreaShape_BoundingBox{Minimum,Maximum}_{X,Y}``, added or
  replaced) that lie inside the image: ``cell`` pixels wide and high on average.

Usage::

    python benchmarks/imagegen.py OUT --images 24 --cells-per-image 200 --size 1080
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.plategen import generate_plate

BBOX = ("AreaShape_BoundingBoxMinimum_X", "AreaShape_BoundingBoxMaximum_X",
        "AreaShape_BoundingBoxMinimum_Y", "AreaShape_BoundingBoxMaximum_Y")


def _read(path: Path) -> pa.Table:
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=False))


def _write(table: pa.Table, path: Path) -> None:
    pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="needed"))


def _set(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, values)
    return table.append_column(name, values)


def generate_plate_with_images(out: str | Path, *, images: int = 24, cells_per_image: int = 200,
                               features: int = 60, size: int = 1080, cell: int = 48,
                               channels: int = 3, seed: int = 0) -> dict[str, int]:
    """Write the plate and its images into ``out``; how many images, files and crops."""
    import tifffile

    folder = Path(out)
    stats = generate_plate(folder, "csv", images=images, cells_per_image=cells_per_image,
                           features=features, seed=seed, count_jitter=0.0)
    rng = np.random.default_rng(seed)
    image = _read(folder / "Image.csv")
    names = [c for c in image.column_names if c.startswith("FileName_")][:channels]
    dropped = [c for c in image.column_names if c.startswith(("FileName_", "PathName_"))
               and c.split("_", 1)[1] not in {n.split("_", 1)[1] for n in names}]
    image = image.drop_columns(dropped)
    files = 0
    base = rng.integers(0, 4096, (size // 8 + 1, size // 8 + 1)).astype(np.uint16)
    for col in names:
        channel = col.split("_", 1)[1]
        image = _set(image, f"PathName_{channel}", pa.array([str(folder.absolute())] * len(image)))
        for k, name in enumerate(image.column(col).to_pylist()):
            pixels = np.kron(np.roll(base, k * 7 + files, axis=0), np.ones((8, 8), np.uint16))
            pixels = pixels[:size, :size] + rng.integers(0, 64, (size, size), dtype=np.uint16)
            tifffile.imwrite(folder / name, pixels)
            files += 1
    _write(image, folder / "Image.csv")
    cells = _read(folder / "Cells.csv")
    n = len(cells)
    w = np.clip(rng.normal(cell, cell / 4, n).astype(np.int64), 4, size // 2)
    h = np.clip(rng.normal(cell, cell / 4, n).astype(np.int64), 4, size // 2)
    x0 = (rng.random(n) * (size - w)).astype(np.int64)
    y0 = (rng.random(n) * (size - h)).astype(np.int64)
    for name, values in zip(BBOX, (x0, x0 + w, y0, y0 + h), strict=True):
        cells = _set(cells, name, pa.array(values))
    _write(cells, folder / "Cells.csv")
    return {"images": images, "files": files, "objects": stats.joined_rows,
            "crops": stats.joined_rows * len(names)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="the plate folder to write (CSVs and TIFFs)")
    ap.add_argument("--images", type=int, default=24, help="image sets")
    ap.add_argument("--cells-per-image", type=int, default=200)
    ap.add_argument("--features", type=int, default=60, help="measurements per compartment")
    ap.add_argument("--size", type=int, default=1080, help="image width and height in pixels")
    ap.add_argument("--cell", type=int, default=48, help="mean bounding-box side in pixels")
    ap.add_argument("--channels", type=int, default=3, help="TIFF channels per image (1-5)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    print(generate_plate_with_images(a.out, images=a.images, cells_per_image=a.cells_per_image,
                                     features=a.features, size=a.size, cell=a.cell,
                                     channels=a.channels, seed=a.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
