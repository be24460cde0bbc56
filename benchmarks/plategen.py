"""Generate synthetic CellProfiler plates of any size, fast, for benchmarks and tests.

Two output layouts, both copied from real CellProfiler output:

* ``sqlite``: ExportToDatabase (single-file SQLite), like
  ``NF1_SchwannCell_data/all_cellprofiler.sqlite``: tables ``Per_Cells``, ``Per_Cytoplasm``,
  ``Per_Nuclei``, ``Per_Image`` (+ ``Experiment``, ``Experiment_Properties``,
  ``Per_Experiment``), created in that order with the same DDL style. Columns carry the
  compartment prefix (``Cells_AreaShape_Area``, ``Cytoplasm_Parent_Cells``,
  ``Image_Metadata_Well``), declared types are ``integer``/``float``/``TEXT`` as CellProfiler
  writes them, object tables have ``PRIMARY KEY (ImageNumber, <C>_Number_Object_Number)``
  (so an ``sqlite_autoindex_Per_<C>_1``), ``Per_Image`` has ``PRIMARY KEY (ImageNumber)``.
  NaN measurements are stored as NULL, as CellProfiler does.
* ``csv``: ExportToSpreadsheet, like ``ExampleHuman/``: ``Image.csv``, ``Cells.csv``,
  ``Cytoplasm.csv``, ``Nuclei.csv``, ``Experiment.csv``; unprefixed columns (``ImageNumber``,
  ``ObjectNumber``, ``Number_Object_Number``, ``Parent_Cells``, ``AreaShape_Area``,
  ``Metadata_Well``...). Missing values are written ``nan`` (CellProfiler's default "NaN"
  representation) or, with ``csv_nan="null"``, as empty fields.

Within each table columns are ``ImageNumber``, the object number, then every other column in
code-point order, which is how CellProfiler orders them. Rows are written in ImageNumber order,
objects in ObjectNumber order.

Objects (per image): ``Nuclei`` are the primary objects; a random subset of them (by default
about 95%) grew a cell, so there are slightly more nuclei than cells, as in real data. Cells are
numbered in the order of their parent nucleus (``Cells_Parent_Nuclei`` increases with the cell
number); ``Cytoplasm`` object ``k`` has ``Parent_Cells = k`` and ``Parent_Nuclei`` = the parent
nucleus of cell ``k``. ``orphans=K`` re-points the ``Parent_Cells`` of K cytoplasm rows (spread
over the plate) at cell numbers that do not exist in that image (their ``Parent_Nuclei`` stays
valid), and the cells that lost their cytoplasm get ``Children_Cytoplasm_Count = 0``. So an
inner join cytoplasm -> cells -> nuclei has ``cytoplasm - orphans`` rows
(``PlateStats.joined_rows``).

Features: names from the real files' families (AreaShape, Location, Neighbors, and per channel
Intensity, Granularity, RadialDistribution, Texture ``_<ch>_3_0d_256``, Correlation between
channel pairs), multiplied over the channels DNA, ER, RNA, AGP, Mito (then further Texture
scales 5, 10, 15, ... if more are needed) until exactly ``features`` measurement columns per
compartment (not counting ImageNumber, object numbers, Parent_* and Children_*); below the
~660 of all families over 5 channels they are taken round-robin over the families, so every
family appears even in a small table (SQLite caps a table at 2000 columns: features <= 1996).
Values are
plausible per family: geometry consistent with a per-object centre and area (areas, bounding
boxes and MaxIntensity locations are integers stored as floats; Location in pixels inside the
1080 x 1080 image; Z = 0), intensities in 0..1, correlations in -1..1, positive heavy-tailed
textures/granularities, integer neighbour counts and object numbers. Features share a per-object
latent factor (so they correlate) and a per-well shift (so wells differ). About ``null_rate``
(default 0.1%) of the ordinary measurement values are missing.

Plates are 384-well (A01..P24) with ``sites`` fields per well (default 4; raised if there are
more images than 384 x sites); ``cells_per_image`` varies by +/- ``count_jitter`` (10%) per
image unless that is 0. Table contents are deterministic for a given seed and independent of
``batch_values`` (the SQLite file bytes are identical for identical arguments; a different
``batch_values`` only changes the page layout).

Command line::

    python benchmarks/plategen.py OUT --format sqlite|csv --images N --cells-per-image M \\
        --features F --seed S [--orphans K] [--plates P]

OUT is the .sqlite file (sqlite) or the folder of CSVs (csv); with ``--plates P`` OUT is a
folder that receives ``plate_01.sqlite`` .. or ``plate_01/`` .. subfolders of CSVs, each plate
with its own ``Metadata_Plate``. Prints the stats of each plate as one JSON line.

Module::

    from plategen import generate_plate, generate_plates
    stats = generate_plate("plate.sqlite", fmt="sqlite", images=96, cells_per_image=300,
                           features=600, seed=0)
    stats.cells, stats.joined_rows, stats.columns["Per_Cells"]

Needs numpy; pyarrow for the CSV layout.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import sqlite3
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# ---------------------------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------------------------

CHANNELS: tuple[str, ...] = ("DNA", "ER", "RNA", "AGP", "Mito")
COMPARTMENTS: tuple[str, ...] = ("Cells", "Cytoplasm", "Nuclei")  # creation order in the DB
IMAGE_WIDTH = 1080
IMAGE_HEIGHT = 1080
WELL_ROWS = "ABCDEFGHIJKLMNOP"
WELL_COLS = 24
SQLITE_MAX_COLUMN = 2000  # SQLite's default compile-time limit
CELLPROFILER_VERSION = "4.2.6"
RUN_TIMESTAMP = "2024-01-15T09:30:00.000000"
MODIFICATION_TIMESTAMP = "2024-01-15T11:02:41.512003"

# Value kinds. Generic kinds are computed block-wise from a correlated standard normal z.
LOGN, UNIT, SIGNED, NORM, UNIF = 0, 1, 2, 3, 4
GENERIC_KINDS = (LOGN, UNIT, SIGNED, NORM, UNIF)
# Special kinds are computed per column from the object geometry.
ZERO, AREA, GEOM_LEN, GEOM_AREA, CX, CY, BB, BBAREA, EULER, NNEIGH, OBJREF = range(10, 21)
INT_KINDS = (NNEIGH, OBJREF)  # declared integer by CellProfiler

# Per compartment: (median area px, log-sd) for nuclei; cells = nucleus area x factor.
NUCLEUS_AREA = (380.0, 0.35)
CELL_FACTOR = (4.0, 0.3)

# ---------------------------------------------------------------------------------------------
# Feature catalogue
# ---------------------------------------------------------------------------------------------

Feature = tuple[str, int, float, float]  # unprefixed name, kind, a, b

_AREASHAPE: list[Feature] = [
    ("AreaShape_Area", AREA, 0, 0),
    ("AreaShape_BoundingBoxArea", BBAREA, 0, 0),
    ("AreaShape_BoundingBoxMaximum_X", BB, 1, 0),
    ("AreaShape_BoundingBoxMaximum_Y", BB, 3, 0),
    ("AreaShape_BoundingBoxMinimum_X", BB, 0, 0),
    ("AreaShape_BoundingBoxMinimum_Y", BB, 2, 0),
    ("AreaShape_Center_X", CX, 0, 0),
    ("AreaShape_Center_Y", CY, 0, 0),
    ("AreaShape_Compactness", LOGN, math.log(1.6), 0.25),
    ("AreaShape_ConvexArea", GEOM_AREA, 0.02, 0.08),
    ("AreaShape_Eccentricity", UNIT, 1.2, 0.7),
    ("AreaShape_EquivalentDiameter", GEOM_LEN, math.log(2.0), 0.0),
    ("AreaShape_EulerNumber", EULER, 0, 0),
    ("AreaShape_Extent", UNIT, 0.4, 0.4),
    ("AreaShape_FormFactor", UNIT, 0.2, 0.6),
    ("AreaShape_MajorAxisLength", GEOM_LEN, math.log(2.5), 0.15),
    ("AreaShape_MaxFeretDiameter", GEOM_LEN, math.log(2.7), 0.15),
    ("AreaShape_MaximumRadius", GEOM_LEN, math.log(0.7), 0.15),
    ("AreaShape_MeanRadius", GEOM_LEN, math.log(0.33), 0.15),
    ("AreaShape_MedianRadius", GEOM_LEN, math.log(0.3), 0.15),
    ("AreaShape_MinFeretDiameter", GEOM_LEN, math.log(1.6), 0.15),
    ("AreaShape_MinorAxisLength", GEOM_LEN, math.log(1.6), 0.15),
    ("AreaShape_Orientation", UNIF, -90.0, 90.0),
    ("AreaShape_Perimeter", GEOM_LEN, math.log(2 * math.pi * 1.2), 0.12),
    ("AreaShape_Solidity", UNIT, 1.8, 0.5),
] + [
    (f"AreaShape_Zernike_{n}_{m}", *((UNIT, -0.6, 0.4) if n == 0 else (LOGN, math.log(0.02), 0.7)))
    for n in range(10)
    for m in range(n % 2, n + 1, 2)
]

_NEIGHBORS: list[Feature] = [
    ("Neighbors_AngleBetweenNeighbors_Adjacent", UNIF, 0.0, 180.0),
    ("Neighbors_FirstClosestDistance_Adjacent", GEOM_LEN, math.log(2.4), 0.3),
    ("Neighbors_FirstClosestObjectNumber_Adjacent", OBJREF, 0, 0),
    ("Neighbors_NumberOfNeighbors_Adjacent", NNEIGH, 0, 0),
    ("Neighbors_PercentTouching_Adjacent", UNIF, 0.0, 85.0),
    ("Neighbors_SecondClosestDistance_Adjacent", GEOM_LEN, math.log(3.2), 0.3),
    ("Neighbors_SecondClosestObjectNumber_Adjacent", OBJREF, 0, 0),
]

_INTENSITY: list[tuple[str, int, float, float]] = [
    ("IntegratedIntensityEdge", LOGN, math.log(25.0), 0.5),
    ("IntegratedIntensity", LOGN, math.log(400.0), 0.6),
    ("LowerQuartileIntensity", UNIT, -2.5, 0.4),
    ("MADIntensity", LOGN, math.log(0.008), 0.6),
    ("MassDisplacement", LOGN, math.log(3.0), 0.8),
    ("MaxIntensityEdge", UNIT, -1.8, 0.6),
    ("MaxIntensity", UNIT, 0.8, 1.0),
    ("MeanIntensityEdge", UNIT, -2.4, 0.4),
    ("MeanIntensity", UNIT, -1.6, 0.5),
    ("MedianIntensity", UNIT, -2.3, 0.4),
    ("MinIntensityEdge", UNIT, -2.6, 0.2),
    ("MinIntensity", UNIT, -2.7, 0.2),
    ("StdIntensityEdge", LOGN, math.log(0.01), 0.8),
    ("StdIntensity", UNIT, -1.8, 0.6),
    ("UpperQuartileIntensity", UNIT, -2.0, 0.6),
]

_GRANULARITY_MEDIANS = (40, 0.3, 0.6, 2, 3.5, 7, 14, 14, 7, 3, 1.4, 0.7, 0.45, 0.3, 0.27, 0.24)

_TEXTURE: list[tuple[str, int, float, float]] = [
    ("AngularSecondMoment", UNIT, -2.6, 0.5),
    ("Contrast", LOGN, math.log(60.0), 1.0),
    ("Correlation", UNIT, 3.5, 0.6),
    ("DifferenceEntropy", LOGN, math.log(2.7), 0.15),
    ("DifferenceVariance", LOGN, math.log(0.0013), 0.5),
    ("Entropy", LOGN, math.log(6.1), 0.12),
    ("InfoMeas1", NORM, -0.42, 0.05),
    ("InfoMeas2", UNIT, 3.7, 0.6),
    ("InverseDifferenceMoment", UNIT, 0.3, 0.3),
    ("SumAverage", LOGN, math.log(90.0), 0.3),
    ("SumEntropy", LOGN, math.log(4.7), 0.1),
    ("SumVariance", LOGN, math.log(9000.0), 0.9),
    ("Variance", LOGN, math.log(2500.0), 0.9),
]

# Correlation measures: (name, ordered?, kind, a, b). Unordered pairs are written A_B with A
# before B in CHANNELS order; ordered measures are written both ways.
_CORRELATION: list[tuple[str, bool, int, float, float]] = [
    ("Correlation", False, SIGNED, 0.2, 0.4),
    ("Costes", True, UNIT, 1.5, 1.0),
    ("K", True, LOGN, math.log(0.3), 0.5),
    ("Manders", True, UNIT, 2.5, 1.0),
    ("Overlap", False, UNIT, 0.9, 0.5),
    ("RWC", True, UNIT, -0.4, 0.6),
]


def _texture(channel: str, scale: int) -> list[Feature]:
    return [
        (f"Texture_{name}_{channel}_{scale}_{d:02d}_256", kind, a, b)
        for name, kind, a, b in _TEXTURE
        for d in range(4)
    ]


def _channel_groups(j: int) -> list[list[Feature]]:
    """Per-channel measurement families of the j-th channel (correlations: with earlier ones)."""
    c = CHANNELS[j]
    groups: list[list[Feature]] = [
        [(f"Intensity_{n}_{c}", k, a, b) for n, k, a, b in _INTENSITY],
        [
            (f"Location_CenterMassIntensity_X_{c}", CX, 0.08, 0),
            (f"Location_CenterMassIntensity_Y_{c}", CY, 0.08, 0),
            (f"Location_CenterMassIntensity_Z_{c}", ZERO, 0, 0),
            (f"Location_MaxIntensity_X_{c}", CX, 0.4, 1),
            (f"Location_MaxIntensity_Y_{c}", CY, 0.4, 1),
            (f"Location_MaxIntensity_Z_{c}", ZERO, 0, 0),
        ],
        [
            (f"Granularity_{k + 1}_{c}", LOGN, math.log(m), 0.2 if k == 0 else 0.8)
            for k, m in enumerate(_GRANULARITY_MEDIANS)
        ],
        [
            (f"RadialDistribution_{name}_{c}_{k}of4", kind, a, b)
            for k in range(1, 5)
            for name, kind, a, b in (
                ("FracAtD", UNIT, -3.0 + 0.35 * k, 0.4),
                ("MeanFrac", LOGN, math.log(0.4 + 0.3 * k), 0.3),
                ("RadialCV", LOGN, math.log(0.25), 0.4),
            )
        ],
        _texture(c, 3),
    ]
    corr: list[Feature] = []
    for other in CHANNELS[:j]:
        for name, ordered, kind, a, b in _CORRELATION:
            corr.append((f"Correlation_{name}_{other}_{c}", kind, a, b))
            if ordered:
                corr.append((f"Correlation_{name}_{c}_{other}", kind, a, b))
    if corr:
        groups.append(corr)
    return groups


def _round_robin(groups: list[list[Feature]], n: int) -> list[Feature]:
    """Up to n features taken one from each group in turn (every family is represented)."""
    out: list[Feature] = []
    depth = 0
    while len(out) < n and any(depth < len(g) for g in groups):
        for g in groups:
            if depth < len(g) and len(out) < n:
                out.append(g[depth])
        depth += 1
    return out


def feature_catalogue(compartment: str, features: int) -> list[Feature]:
    """The ``features`` measurements of a compartment (unprefixed name, kind, a, b).

    Tier 0 is every family of the real files over the channels DNA, ER, RNA, AGP, Mito (about
    660-670 measurements); when fewer are asked for, they are taken round-robin over the
    families (each shape/location/neighbour family and each per-channel family), so even a
    small table has some of everything. Beyond tier 0, Texture at scales 5, 10, 15, ... is
    added over all channels. ``Location_Center_X/Y`` and ``AreaShape_Area`` always come first.
    """
    first: list[Feature] = [
        ("Location_Center_X", CX, 0, 0),
        ("Location_Center_Y", CY, 0, 0),
        _AREASHAPE[0],
    ]
    groups: list[list[Feature]] = [_AREASHAPE[1:]]
    if compartment != "Cytoplasm":
        groups += [[("Location_Center_Z", ZERO, 0, 0)], list(_NEIGHBORS)]
    for j in range(len(CHANNELS)):
        groups += _channel_groups(j)
    out = first[:features]
    out += _round_robin(groups, features - len(out))
    scale = 5
    while len(out) < features:
        out += _round_robin([_texture(c, scale) for c in CHANNELS], features - len(out))
        scale += 5
    return out


# Relationship columns per compartment (unprefixed), all integer.
RELATIONS: dict[str, tuple[str, ...]] = {
    "Cells": ("Children_Cytoplasm_Count", "Parent_Nuclei"),
    "Cytoplasm": ("Parent_Cells", "Parent_Nuclei"),
    "Nuclei": ("Children_Cells_Count", "Children_Cytoplasm_Count"),
}


def _crc_uniform(name: str, salt: int) -> float:
    return (zlib.crc32(name.encode(), salt) & 0xFFFFFFFF) / 2**32


@dataclass
class _ObjectSpec:
    """Compiled generator for one compartment's table."""

    compartment: str
    fmt: str
    features: list[Feature]
    columns: list[str] = field(init=False)  # output column names, in order
    int_columns: list[int] = field(init=False)  # indexes of the integer columns

    def __post_init__(self) -> None:
        # Generation order: generic kinds grouped in contiguous blocks, then special columns.
        feats = sorted(
            self.features,
            key=lambda f: (f[1] not in GENERIC_KINDS, f[1], f[0]),
        )
        self.gen = feats
        n = len(feats)
        self.kind = np.array([f[1] for f in feats], dtype=np.int16)
        self.a = np.array([f[2] for f in feats], dtype=np.float64)
        self.b = np.array([f[3] for f in feats], dtype=np.float64)
        u1 = np.array([_crc_uniform(f[0], 1) for f in feats])
        u2 = np.array([_crc_uniform(f[0], 2) for f in feats])
        generic = np.isin(self.kind, GENERIC_KINDS)
        # Per-feature jitter of the location parameter, so members of a family differ a bit.
        self.a = np.where(generic & (self.kind != UNIF), self.a + (u2 - 0.5) * 0.4 * self.b, self.a)
        self.load = np.where(generic, 0.15 + 0.6 * u1, 0.0)  # loading on the per-object factor
        self.resid = np.sqrt(1.0 - self.load**2)
        self.blocks: list[tuple[int, int, int]] = []
        s = 0
        while s < n and generic[s]:
            e = s
            while e < n and self.kind[e] == self.kind[s]:
                e += 1
            self.blocks.append((int(self.kind[s]), s, e))
            s = e
        self.n_generic = s
        self.special = list(range(s, n))
        # Output layout.
        p = self.compartment
        if self.fmt == "sqlite":
            key = ["ImageNumber", f"{p}_Number_Object_Number"]
            rest = [f"{p}_{r}" for r in RELATIONS[p]] + [f"{p}_{f[0]}" for f in feats]
        else:
            key = ["ImageNumber", "ObjectNumber"]
            rest = ["Number_Object_Number", *RELATIONS[p]] + [f[0] for f in feats]
        order = sorted(range(len(rest)), key=lambda i: rest[i])
        self.columns = key + [rest[i] for i in order]
        pos_of_rest = np.empty(len(rest), dtype=np.intp)
        pos_of_rest[np.array(order, dtype=np.intp)] = np.arange(len(rest)) + len(key)
        n_extra = len(rest) - n  # Number_Object_Number (csv) + relations
        self.extra_pos = pos_of_rest[:n_extra]  # positions of the relation/duplicate columns
        self.feat_pos = pos_of_rest[n_extra:]  # positions of generated features (gen order)
        int_feat = np.isin(self.kind, INT_KINDS)
        self.int_columns = sorted(
            [0, 1, *self.extra_pos.tolist(), *self.feat_pos[int_feat].tolist()]
        )

    @property
    def width(self) -> int:
        return len(self.columns)

    def ddl(self) -> str:
        p = self.compartment
        ints = set(self.int_columns)
        lines = [f"CREATE TABLE Per_{p} (", "ImageNumber INTEGER", ","]
        for i, c in enumerate(self.columns[1:], start=1):
            lines.append(f"{c} {'integer' if i in ints else 'float'},")
        lines.append(f"PRIMARY KEY (ImageNumber, {p}_Number_Object_Number) )")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Image table
# ---------------------------------------------------------------------------------------------

_EXECUTION_MODULES = (
    "01Images", "02Metadata", "03NamesAndTypes", "04Groups", "05IdentifyPrimaryObjects",
    "06IdentifySecondaryObjects", "07IdentifyTertiaryObjects", "08MeasureColocalization",
    "09MeasureGranularity", "10MeasureObjectIntensity", "11MeasureImageIntensity",
    "12MeasureObjectNeighbors", "13MeasureObjectNeighbors",
    "14MeasureObjectIntensityDistribution", "15MeasureObjectSizeShape", "16MeasureTexture",
)  # fmt: skip

_IMAGE_INTENSITY: list[tuple[str, int, float, float]] = [
    ("LowerQuartileIntensity", UNIT, -2.5, 0.3),
    ("MADIntensity", LOGN, math.log(0.006), 0.5),
    ("MaxIntensity", UNIT, 1.5, 0.8),
    ("MeanIntensity", UNIT, -2.2, 0.3),
    ("MedianIntensity", UNIT, -2.4, 0.3),
    ("MinIntensity", UNIT, -3.0, 0.3),
    ("PercentMaximal", LOGN, math.log(0.001), 1.0),
    ("StdIntensity", UNIT, -2.3, 0.3),
    ("TotalIntensity", LOGN, math.log(110000.0), 0.3),
    ("UpperQuartileIntensity", UNIT, -2.0, 0.4),
]


def _image_float_features() -> list[Feature]:
    out: list[Feature] = []
    for i, a in enumerate(CHANNELS):
        for bch in CHANNELS[i + 1 :]:
            for name, ordered, kind, p1, p2 in [*_CORRELATION, ("Slope", False, NORM, 0.3, 0.2)]:
                out.append((f"Correlation_{name}_{a}_{bch}", kind, p1, p2))
                if ordered:
                    out.append((f"Correlation_{name}_{bch}_{a}", kind, p1, p2))
    out += [(f"ExecutionTime_{m}", LOGN, math.log(0.5), 1.0) for m in _EXECUTION_MODULES]
    for c in CHANNELS:
        out += [
            (f"Granularity_{k + 1}_{c}", LOGN, math.log(m), 0.3)
            for k, m in enumerate(_GRANULARITY_MEDIANS)
        ]
        out += [(f"Intensity_{n}_{c}", k, a, b) for n, k, a, b in _IMAGE_INTENSITY]
        out += _texture(c, 3)
    for obj in ("Cells", "Nuclei"):
        out += [
            (f"Threshold_FinalThreshold_{obj}", UNIT, -2.0, 0.4),
            (f"Threshold_OrigThreshold_{obj}", UNIT, -2.0, 0.4),
            (f"Threshold_SumOfEntropies_{obj}", NORM, -11.8, 0.3),
            (f"Threshold_WeightedVariance_{obj}", UNIT, -1.5, 0.8),
        ]
    return out


@dataclass
class _ImageSpec:
    fmt: str
    float_features: list[Feature] = field(default_factory=_image_float_features)

    def __post_init__(self) -> None:
        ints = ["Count_Cells", "Count_Cytoplasm", "Count_Nuclei",
                "Group_Index", "Group_Length", "Group_Number"]  # fmt: skip
        texts = ["Metadata_Frame", "Metadata_Plate", "Metadata_Series", "Metadata_Site",
                 "Metadata_Well"]  # fmt: skip
        floats = [f[0] for f in self.float_features]
        for c in CHANNELS:
            ints += [f"Frame_{c}", f"Height_{c}", f"Intensity_TotalArea_{c}", f"Series_{c}",
                     f"Width_{c}"]  # fmt: skip
            texts += [f"FileName_{c}", f"MD5Digest_{c}", f"PathName_{c}", f"URL_{c}"]
            floats.append(f"Scaling_{c}")
        self.types = {**dict.fromkeys(ints, "integer"), **dict.fromkeys(texts, "TEXT"),
                      **dict.fromkeys(floats, "float")}  # fmt: skip
        names = sorted(self.types)
        self.unprefixed = ["ImageNumber", *names]
        pre = "Image_" if self.fmt == "sqlite" else ""
        self.columns = ["ImageNumber", *[pre + n for n in names]]
        self.kind = np.array([f[1] for f in self.float_features], dtype=np.int16)
        self.a = np.array([f[2] for f in self.float_features])
        self.b = np.array([f[3] for f in self.float_features])

    @property
    def width(self) -> int:
        return len(self.columns)

    def ddl(self) -> str:
        lines = ["CREATE TABLE Per_Image (", "ImageNumber INTEGER,"]
        for c, n in zip(self.columns[1:], self.unprefixed[1:], strict=True):
            lines.append(f"{c} {self.types[n]},")
        lines.append("PRIMARY KEY (ImageNumber) )")
        return "\n".join(lines)

    def row(
        self,
        rng: np.random.Generator,
        image_number: int,
        plate: str,
        well: str,
        site: int,
        counts: dict[str, int],
        group_length: int,
    ) -> list[Any]:
        z = rng.standard_normal(len(self.float_features))
        v = _generic(self.kind, self.a, self.b, z)
        vals: dict[str, Any] = dict(
            zip((f[0] for f in self.float_features), v.tolist(), strict=True)
        )
        vals.update(
            Count_Cells=counts["Cells"],
            Count_Cytoplasm=counts["Cytoplasm"],
            Count_Nuclei=counts["Nuclei"],
            Group_Index=image_number,
            Group_Length=group_length,
            Group_Number=1,
            Metadata_Frame="0",
            Metadata_Plate=plate,
            Metadata_Series="0",
            Metadata_Site=str(site),
            Metadata_Well=well,
        )
        path = f"/data/images/{plate}/TimePoint_1"
        for k, c in enumerate(CHANNELS, start=1):
            fname = f"{plate}_{well}_s{site}_w{k}.tif"
            vals[f"FileName_{c}"] = fname
            vals[f"PathName_{c}"] = path
            vals[f"URL_{c}"] = f"file:{path}/{fname}"
            vals[f"MD5Digest_{c}"] = hashlib.md5(fname.encode()).hexdigest()
            vals[f"Frame_{c}"] = 0
            vals[f"Series_{c}"] = 0
            vals[f"Height_{c}"] = IMAGE_HEIGHT
            vals[f"Width_{c}"] = IMAGE_WIDTH
            vals[f"Intensity_TotalArea_{c}"] = IMAGE_HEIGHT * IMAGE_WIDTH
            vals[f"Scaling_{c}"] = 65535.0
        return [image_number, *[vals[n] for n in self.unprefixed[1:]]]


# ---------------------------------------------------------------------------------------------
# Value generation
# ---------------------------------------------------------------------------------------------


def _generic(kind: np.ndarray, a: np.ndarray, b: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Generic kinds for a 1-D vector (image rows)."""
    out = np.empty_like(z)
    for k in GENERIC_KINDS:
        m = kind == k
        if m.any():
            out[m] = _transform(k, a[m], b[m], z[m])
    return out


def _transform(k: int, a: np.ndarray, b: np.ndarray, z: np.ndarray) -> np.ndarray:
    if k == LOGN:
        return np.exp(a + b * z)
    if k == UNIT:
        return 1.0 / (1.0 + np.exp(-(a + b * z)))
    if k == SIGNED:
        return np.tanh(a + b * z)
    if k == NORM:
        return a + b * z
    if k == UNIF:  # logistic(1.702 z) ~ Phi(z): about uniform on [a, b]
        return a + (b - a) / (1.0 + np.exp(-1.702 * z))
    raise ValueError(k)


@dataclass
class _Geometry:
    n: int
    cx: np.ndarray
    cy: np.ndarray
    area: np.ndarray  # integral float64

    def __post_init__(self) -> None:
        self.r = np.sqrt(self.area / math.pi)
        half = np.ceil(self.r * 1.15)
        self.bbox = (
            np.clip(np.floor(self.cx) - half, 0, IMAGE_WIDTH - 1),
            np.clip(np.floor(self.cx) + half + 1, 1, IMAGE_WIDTH),
            np.clip(np.floor(self.cy) - half, 0, IMAGE_HEIGHT - 1),
            np.clip(np.floor(self.cy) + half + 1, 1, IMAGE_HEIGHT),
        )


def _features(
    spec: _ObjectSpec,
    rng: np.random.Generator,
    geo: _Geometry,
    shift: np.ndarray,
    null_rate: float,
) -> np.ndarray:
    """The (n, features) matrix of one compartment in one image, in spec generation order."""
    n, f = geo.n, len(spec.gen)
    z = rng.standard_normal((n, f))
    latent = rng.standard_normal((n, 1))
    z *= spec.resid
    z += latent * spec.load
    z += shift
    g = np.empty((n, f))
    for k, s, e in spec.blocks:
        g[:, s:e] = _transform(k, spec.a[s:e], spec.b[s:e], z[:, s:e])
    obj = np.arange(1, n + 1, dtype=np.float64)
    for j in spec.special:
        k, a, b, zj = int(spec.kind[j]), spec.a[j], spec.b[j], z[:, j]
        if k == ZERO:
            col = np.zeros(n)
        elif k == AREA:
            col = geo.area
        elif k == GEOM_LEN:
            col = geo.r * np.exp(a + b * zj)
        elif k == GEOM_AREA:
            col = np.rint(geo.area * np.exp(a + b * np.abs(zj)))
        elif k in (CX, CY):
            base, lim = (geo.cx, IMAGE_WIDTH) if k == CX else (geo.cy, IMAGE_HEIGHT)
            col = base + a * geo.r * zj if a else base
            if b:
                col = np.clip(np.floor(col), 0, lim - 1)
            elif a:
                col = np.clip(col, 0, lim - 1)
        elif k == BB:
            col = geo.bbox[int(a)]
        elif k == BBAREA:
            col = (geo.bbox[1] - geo.bbox[0]) * (geo.bbox[3] - geo.bbox[2])
        elif k == EULER:
            col = (zj > -1.9).astype(np.float64)
        elif k == NNEIGH:
            col = np.clip(np.rint(3.0 + 1.6 * zj), 0, max(n - 1, 0))
        elif k == OBJREF:
            if n > 1:
                step = np.floor((n - 1) / (1.0 + np.exp(-1.702 * zj)))
                col = np.mod(obj - 1 + 1 + np.minimum(step, n - 2), n) + 1
            else:
                col = np.zeros(n)
        else:  # pragma: no cover
            raise ValueError(k)
        g[:, j] = col
    if null_rate > 0 and n and spec.n_generic:
        cells = n * spec.n_generic
        k = int(rng.binomial(cells, null_rate))
        if k:
            flat = rng.integers(0, cells, k)
            g[flat // spec.n_generic, flat % spec.n_generic] = np.nan
    return g


# ---------------------------------------------------------------------------------------------
# Plate plan and per-image generation
# ---------------------------------------------------------------------------------------------


def well_name(index: int) -> str:
    """384-well name of a 0-based well index, row-major: 0 -> A01, 23 -> A24, 24 -> B01."""
    return f"{WELL_ROWS[index // WELL_COLS]}{index % WELL_COLS + 1:02d}"


@dataclass
class _Plan:
    """Everything decided before any row is generated (so stats are known up front)."""

    images: int
    sites: int
    n_cells: np.ndarray
    n_nuclei: np.ndarray
    n_orphans: np.ndarray

    @classmethod
    def make(
        cls,
        rng: np.random.Generator,
        images: int,
        cells_per_image: int,
        sites: int,
        orphans: int,
        count_jitter: float,
        extra_nuclei: float,
    ) -> _Plan:
        sites = max(sites, math.ceil(images / (len(WELL_ROWS) * WELL_COLS)))
        if count_jitter > 0:
            f = rng.uniform(1 - count_jitter, 1 + count_jitter, images)
            n_cells = np.maximum(np.rint(cells_per_image * f), 0).astype(np.int64)
        else:
            n_cells = np.full(images, cells_per_image, dtype=np.int64)
        n_nuclei = n_cells + rng.binomial(n_cells, extra_nuclei)
        total = int(n_cells.sum())
        if orphans > total:
            raise ValueError(f"orphans={orphans} exceeds the {total} cytoplasm rows")
        n_orphans = np.zeros(images, dtype=np.int64)
        if orphans:
            picks = rng.choice(total, size=orphans, replace=False)
            img = np.searchsorted(np.cumsum(n_cells), picks, side="right")
            n_orphans = np.bincount(img, minlength=images).astype(np.int64)
        return cls(images, sites, n_cells, n_nuclei, n_orphans)


@dataclass
class _Ctx:
    """Per-plate generation context ."""

    fmt: str
    seed: int
    plate_index: int
    plate: str
    plan: _Plan
    features: int
    null_rate: float
    well_effect: float
    specs: dict[str, _ObjectSpec] = field(init=False)
    image_spec: _ImageSpec = field(init=False)

    def __post_init__(self) -> None:
        self.specs = {
            c: _ObjectSpec(c, self.fmt, feature_catalogue(c, self.features)) for c in COMPARTMENTS
        }
        self.image_spec = _ImageSpec(self.fmt)
        self._shift_cache: dict[tuple[int, str], np.ndarray] = {}

    def shift(self, well: int, compartment: str) -> np.ndarray:
        key = (well, compartment)
        s = self._shift_cache.get(key)
        if s is None:
            ci = COMPARTMENTS.index(compartment)
            r = np.random.default_rng([self.seed, self.plate_index, 2, well, ci])
            s = self.well_effect * r.standard_normal(len(self.specs[compartment].gen))
            self._shift_cache[key] = s
        return s


def _object_tables(ctx: _Ctx, i: int) -> tuple[list[Any], dict[str, np.ndarray]]:
    """Generate image i (0-based): its Image row and one full-width matrix per compartment."""
    plan = ctx.plan
    image_number = i + 1
    rng = np.random.default_rng([ctx.seed, ctx.plate_index, 1, image_number])
    nc, nn, no = int(plan.n_cells[i]), int(plan.n_nuclei[i]), int(plan.n_orphans[i])
    well_idx, site = divmod(i, plan.sites)
    # Nuclei: primary objects spread over the field.
    mu, sd = NUCLEUS_AREA
    nuc_area = np.maximum(np.rint(np.exp(math.log(mu) + sd * rng.standard_normal(nn))), 30.0)
    nuc_r = np.sqrt(nuc_area / math.pi)
    nuc_cx = nuc_r + rng.random(nn) * (IMAGE_WIDTH - 2 * nuc_r)
    nuc_cy = nuc_r + rng.random(nn) * (IMAGE_HEIGHT - 2 * nuc_r)
    # Cells: grown from a sorted random subset of nuclei.
    parent = np.sort(rng.choice(nn, size=nc, replace=False)) if nc else np.zeros(0, np.int64)
    mu, sd = CELL_FACTOR
    cell_area = np.rint(nuc_area[parent] * np.exp(math.log(mu) + sd * rng.standard_normal(nc)))
    cell_area = np.maximum(cell_area, nuc_area[parent] + 20.0)
    jit = nuc_r[parent] * 0.3
    cell_cx = np.clip(nuc_cx[parent] + jit * rng.standard_normal(nc), 0, IMAGE_WIDTH - 1)
    cell_cy = np.clip(nuc_cy[parent] + jit * rng.standard_normal(nc), 0, IMAGE_HEIGHT - 1)
    cyto_area = cell_area - nuc_area[parent]
    jit = np.sqrt(cell_area / math.pi) * 0.1
    cyto_cx = np.clip(cell_cx + jit * rng.standard_normal(nc), 0, IMAGE_WIDTH - 1)
    cyto_cy = np.clip(cell_cy + jit * rng.standard_normal(nc), 0, IMAGE_HEIGHT - 1)
    geos = {
        "Nuclei": _Geometry(nn, nuc_cx, nuc_cy, nuc_area),
        "Cells": _Geometry(nc, cell_cx, cell_cy, cell_area),
        "Cytoplasm": _Geometry(nc, cyto_cx, cyto_cy, cyto_area),
    }
    # Relationships.
    cell_obj = np.arange(1, nc + 1, dtype=np.float64)
    parent_nuclei = parent.astype(np.float64) + 1
    cyto_parent_cells = cell_obj.copy()
    cell_children = np.ones(nc)
    if no:
        lost = np.sort(rng.choice(nc, size=no, replace=False))
        cyto_parent_cells[lost] = nc + 1 + np.arange(no)  # cell numbers that do not exist
        cell_children[lost] = 0
    has_cell = np.zeros(nn)
    has_cell[parent] = 1
    relations = {
        "Cells": (cell_children, parent_nuclei),
        "Cytoplasm": (cyto_parent_cells, parent_nuclei),
        "Nuclei": (has_cell, has_cell),
    }
    tables: dict[str, np.ndarray] = {}
    for comp in COMPARTMENTS:
        spec = ctx.specs[comp]
        geo = geos[comp]
        g = _features(spec, rng, geo, ctx.shift(well_idx, comp), ctx.null_rate)
        out = np.empty((geo.n, spec.width), order="F" if ctx.fmt == "csv" else "C")
        out[:, 0] = image_number
        out[:, 1] = np.arange(1, geo.n + 1)
        extra = relations[comp]
        if ctx.fmt == "csv":
            extra = (out[:, 1], *extra)  # Number_Object_Number duplicates ObjectNumber
        for pos, col in zip(spec.extra_pos, extra, strict=True):
            out[:, pos] = col
        out[:, spec.feat_pos] = g
        tables[comp] = out
    image_row = ctx.image_spec.row(
        rng,
        image_number,
        ctx.plate,
        well_name(well_idx),
        site + 1,
        {"Cells": nc, "Cytoplasm": nc, "Nuclei": nn},
        plan.images,
    )
    return image_row, tables


def _iter_batches(
    ctx: _Ctx, batch_values: int
) -> Iterator[tuple[list[list[Any]], dict[str, list[np.ndarray]]]]:
    """Yield batches of consecutive images: (Image rows, per-compartment matrices)."""
    plan = ctx.plan
    per_image = max(1.0, float((plan.n_cells.mean() * 2 + plan.n_nuclei.mean()) * ctx.features))
    step = max(1, int(batch_values // per_image))
    for start in range(0, plan.images, step):
        res = [_object_tables(ctx, i) for i in range(start, min(start + step, plan.images))]
        yield [r for r, _ in res], {c: [t[c] for _, t in res] for c in COMPARTMENTS}


# ---------------------------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------------------------

_PIPELINE = (
    "CellProfiler Pipeline: http://www.cellprofiler.org\nVersion:5\nDateRevision:426\n"
    "GitHash:\nModuleCount:16\nHasImagePlaneDetails:False\n\n"
    "Images:[module_num:1|svn_version:'Unknown'|variable_revision_number:2|show_window:False|"
    "notes:['Synthetic plate written by celltable benchmarks/plategen.py']|batch_state:array"
    "([], dtype=uint8)|enabled:True|wants_pause:False]\n"
)


def _write_sqlite(ctx: _Ctx, path: Path, batch_values: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA locking_mode=EXCLUSIVE")
        con.execute("PRAGMA cache_size=-131072")  # 128 MiB
        con.execute("BEGIN")
        for comp in COMPARTMENTS:
            con.execute(ctx.specs[comp].ddl())
        con.execute(ctx.image_spec.ddl())
        con.execute(
            "CREATE TABLE Experiment (\n    experiment_id integer primary key AUTOINCREMENT,\n"
            "    name text)"
        )
        con.execute(
            "CREATE TABLE Experiment_Properties (\n    experiment_id integer not null,\n"
            "    object_name text not null,\n    field text not null,\n    value longtext,\n"
            "    constraint Experiment_Properties_pk primary key "
            "(experiment_id, object_name, field))"
        )
        con.execute(
            "CREATE TABLE Per_Experiment (\nPipeline_Pipeline longblob,\n"
            "CellProfiler_Version TEXT,\nRun_Timestamp TEXT,\nModification_Timestamp TEXT)"
        )
        con.execute("INSERT INTO Experiment (name) VALUES (?)", (ctx.plate,))
        con.execute(
            "INSERT INTO Per_Experiment VALUES (?, ?, ?, ?)",
            (_PIPELINE.encode(), CELLPROFILER_VERSION, RUN_TIMESTAMP, MODIFICATION_TIMESTAMP),
        )
        img_sql = f"INSERT INTO Per_Image VALUES ({','.join('?' * ctx.image_spec.width)})"
        obj_sql = {
            c: f"INSERT INTO Per_{c} VALUES ({','.join('?' * s.width)})"
            for c, s in ctx.specs.items()
        }
        for rows, mats in _iter_batches(ctx, batch_values):
            con.executemany(img_sql, rows)
            for comp in ("Nuclei", "Cells", "Cytoplasm"):
                m = mats[comp]
                block = m[0] if len(m) == 1 else np.concatenate(m)
                # NaN binds as NULL in SQLite; integer-valued floats in "integer" columns are
                # stored as integers by column affinity.
                con.executemany(obj_sql[comp], block.tolist())
                del block
        con.execute("COMMIT")
    finally:
        con.close()
    path.unlink(missing_ok=True)
    tmp.rename(path)


def _csv_writer_schema(names: Sequence[str], kinds: Sequence[str]) -> Any:
    import pyarrow as pa

    t = {"integer": pa.int64(), "float": pa.float64(), "TEXT": pa.string()}
    return pa.schema([pa.field(n, t[k]) for n, k in zip(names, kinds, strict=True)])


def _write_csv(ctx: _Ctx, folder: Path, batch_values: int, csv_nan: str) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    folder.mkdir(parents=True, exist_ok=True)
    # CellProfiler writes neither the header nor the values in quotes; none of ours need them.
    opts = pacsv.WriteOptions(include_header=False, quoting_style="none")

    def open_writer(stack: contextlib.ExitStack, name: str, schema: Any) -> Any:
        sink = stack.enter_context(pa.OSFile(str(folder / f"{name}.csv"), "wb"))
        sink.write((",".join(schema.names) + "\n").encode())
        return stack.enter_context(pacsv.CSVWriter(sink, schema, write_options=opts))

    ispec = ctx.image_spec
    ischema = _csv_writer_schema(
        ispec.columns, ["integer", *[ispec.types[n] for n in ispec.unprefixed[1:]]]
    )
    schemas = {}
    for comp, spec in ctx.specs.items():
        ints = set(spec.int_columns)
        schemas[comp] = _csv_writer_schema(
            spec.columns, ["integer" if i in ints else "float" for i in range(spec.width)]
        )
    null_floats = csv_nan == "null"
    with contextlib.ExitStack() as stack:
        writers = {"Image": open_writer(stack, "Image", ischema)}
        for comp in COMPARTMENTS:
            writers[comp] = open_writer(stack, comp, schemas[comp])
        for rows, mats in _iter_batches(ctx, batch_values):
            cols = list(zip(*rows, strict=True))
            writers["Image"].write_batch(
                pa.record_batch(
                    [pa.array(c, type=f.type) for c, f in zip(cols, ischema, strict=True)],
                    schema=ischema,
                )
            )
            for comp in COMPARTMENTS:
                m = mats[comp]
                block = m[0] if len(m) == 1 else np.concatenate(m, axis=0)
                block = np.asfortranarray(block)
                arrays = []
                for j, f in enumerate(schemas[comp]):
                    col = block[:, j]
                    if f.type == pa.int64():
                        arrays.append(pa.array(col.astype(np.int64)))
                    else:
                        arrays.append(pa.array(col, from_pandas=null_floats))
                writers[comp].write_batch(pa.record_batch(arrays, schema=schemas[comp]))
    _write_experiment_csv(folder, ctx)


def _write_experiment_csv(folder: Path, ctx: _Ctx) -> None:
    import csv

    with (folder / "Experiment.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Key", "Value"])
        w.writerow(["CellProfiler_Version", CELLPROFILER_VERSION])
        for c in CHANNELS:
            w.writerow([f"ChannelType_{c}", "Grayscale"])
        w.writerow(["Metadata_GroupingTags", "[]"])
        w.writerow(["Metadata_Tags", '["ImageNumber"]'])
        w.writerow(["Modification_Timestamp", MODIFICATION_TIMESTAMP])
        w.writerow(["Pipeline_Pipeline", _PIPELINE])
        w.writerow(["Run_Timestamp", RUN_TIMESTAMP])


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlateStats:
    """What one generated plate contains.

    ``columns`` maps each written table (``Per_Image``/``Per_Cells``/... for SQLite,
    ``Image``/``Cells``/... for CSV, i.e. the file stem) to its number of columns.
    ``joined_rows`` is the row count of the inner join cytoplasm -> cells (Parent_Cells) ->
    nuclei (Parent_Nuclei) within each image: ``cytoplasm - orphans``.
    ``features`` is the number of measurement columns per compartment.
    """

    path: str
    fmt: str
    plate: str
    seed: int
    images: int
    wells: int
    sites_per_well: int
    cells: int
    cytoplasm: int
    nuclei: int
    orphans: int
    joined_rows: int
    features: int
    columns: dict[str, int]
    bytes: int
    seconds: float

    @property
    def objects(self) -> dict[str, int]:
        return {"Cells": self.cells, "Cytoplasm": self.cytoplasm, "Nuclei": self.nuclei}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    names = ["Image.csv", *(f"{c}.csv" for c in COMPARTMENTS), "Experiment.csv"]
    return sum((path / n).stat().st_size for n in names if (path / n).exists())


def generate_plate(
    out_path: str | os.PathLike[str],
    fmt: str = "sqlite",
    *,
    images: int = 96,
    cells_per_image: int = 300,
    features: int = 600,
    seed: int = 0,
    orphans: int = 0,
    sites: int = 4,
    plate: str | None = None,
    plate_index: int = 1,
    null_rate: float = 0.001,
    count_jitter: float = 0.1,
    extra_nuclei: float = 0.05,
    well_effect: float = 0.25,
    csv_nan: str = "nan",
    batch_values: int = 2_000_000,
) -> PlateStats:
    """Write one synthetic CellProfiler plate and return what it contains.

    out_path: the .sqlite file (fmt="sqlite", replaced if it exists) or the folder of CSVs
        (fmt="csv"; Image/Cells/Cytoplasm/Nuclei/Experiment.csv in it are replaced).
    images: number of image sets (fields); cells_per_image: mean cells per image, varied by
        +/- ``count_jitter`` (0 gives exactly this many in every image); nuclei are
        cells + Binomial(cells, ``extra_nuclei``).
    features: measurement columns per compartment (>= 1).
    orphans: cytoplasm rows whose Parent_Cells points at a missing cell.
    plate / plate_index: Metadata_Plate value (default ``BR%08d`` % plate_index); the index is
        also mixed into the random stream so plates of one seed differ.
    null_rate: fraction of ordinary measurement values left missing.
    csv_nan: "nan" (CellProfiler default) or "null" (empty field) for missing CSV values.
    batch_values: about how many values are generated and written per batch of images
        (bounds memory; the output does not depend on it).
    """
    if fmt not in ("sqlite", "csv"):
        raise ValueError(f"fmt must be 'sqlite' or 'csv', not {fmt!r}")
    if images < 1 or cells_per_image < 0 or features < 1 or orphans < 0 or sites < 1:
        raise ValueError("need images >= 1, cells_per_image >= 0, features >= 1, sites >= 1")
    if fmt == "sqlite" and features + 4 > SQLITE_MAX_COLUMN:
        raise ValueError(
            f"SQLite tables hold at most {SQLITE_MAX_COLUMN} columns: features <= 1996"
        )
    if csv_nan not in ("nan", "null"):
        raise ValueError("csv_nan must be 'nan' or 'null'")
    t0 = time.perf_counter()
    out = Path(out_path)
    plate_name = plate if plate is not None else f"BR{plate_index:08d}"
    rng = np.random.default_rng([seed, plate_index, 0])
    plan = _Plan.make(rng, images, cells_per_image, sites, orphans, count_jitter, extra_nuclei)
    ctx = _Ctx(fmt, seed, plate_index, plate_name, plan, features, null_rate, well_effect)
    if fmt == "sqlite":
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_sqlite(ctx, out, batch_values)
        names = {f"Per_{c}": s.width for c, s in ctx.specs.items()}
        names["Per_Image"] = ctx.image_spec.width
    else:
        _write_csv(ctx, out, batch_values, csv_nan)
        names = {c: s.width for c, s in ctx.specs.items()}
        names["Image"] = ctx.image_spec.width
    cells = int(plan.n_cells.sum())
    return PlateStats(
        path=str(out.resolve()),
        fmt=fmt,
        plate=plate_name,
        seed=seed,
        images=images,
        wells=math.ceil(images / plan.sites),
        sites_per_well=plan.sites,
        cells=cells,
        cytoplasm=cells,
        nuclei=int(plan.n_nuclei.sum()),
        orphans=orphans,
        joined_rows=cells - orphans,
        features=features,
        columns=names,
        bytes=_size(out),
        seconds=round(time.perf_counter() - t0, 3),
    )


def generate_plates(
    out_dir: str | os.PathLike[str], fmt: str = "sqlite", *, plates: int = 1, **kwargs: Any
) -> tuple[PlateStats, ...]:
    """Write ``plates`` plates into ``out_dir``: ``plate_01.sqlite``... or ``plate_01/``...

    Plate k gets Metadata_Plate ``BR%08d`` % k and its own random stream; ``orphans`` (and
    every other keyword of :func:`generate_plate`) applies to each plate.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stats = []
    for k in range(1, plates + 1):
        target = out / (f"plate_{k:02d}.sqlite" if fmt == "sqlite" else f"plate_{k:02d}")
        stats.append(generate_plate(target, fmt, plate_index=k, **kwargs))
    return tuple(stats)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("out", help="the .sqlite file or CSV folder; with --plates, a folder")
    ap.add_argument("--format", choices=["sqlite", "csv"], default="sqlite", help="layout")
    ap.add_argument("--images", type=int, default=96, help="image sets (fields)")
    ap.add_argument("--cells-per-image", type=int, default=300, help="mean cells per image")
    ap.add_argument("--features", type=int, default=600, help="measurements per compartment")
    ap.add_argument("--seed", type=int, default=0, help="random seed")
    ap.add_argument("--orphans", type=int, default=0, help="cytoplasm rows with no parent cell")
    ap.add_argument("--plates", type=int, default=None, help="write P plates into OUT")
    ap.add_argument("--sites", type=int, default=4, help="fields per well")
    ap.add_argument("--null-rate", type=float, default=0.001, help="fraction of missing values")
    ap.add_argument("--count-jitter", type=float, default=0.1, help="0: exact counts per image")
    ap.add_argument(
        "--csv-nan", choices=["nan", "null"], default="nan", help="missing values in CSV"
    )
    a = ap.parse_args(argv)
    kw: dict[str, Any] = {
        "images": a.images,
        "cells_per_image": a.cells_per_image,
        "features": a.features,
        "seed": a.seed,
        "orphans": a.orphans,
        "sites": a.sites,
        "null_rate": a.null_rate,
        "count_jitter": a.count_jitter,
        "csv_nan": a.csv_nan,
    }
    if a.plates is None:
        stats: Sequence[PlateStats] = (generate_plate(a.out, a.format, **kw),)
    else:
        stats = generate_plates(a.out, a.format, plates=a.plates, **kw)
    for s in stats:
        print(json.dumps(s.to_dict()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
