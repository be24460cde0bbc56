"""Output formats as the conversion sees them: a name, the suffix of its files, and whether one
output table is a file or a folder. Which adapter writes and reads each format is the
composition root's business (:mod:`celltable.adapters.formats` lists them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from celltable.domain.errors import OutputFormatError


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """An output format.

    Attributes:
        name: What ``--format`` calls it: ``parquet``, ``h5ad``, ``zarr``.
        suffix: The suffix of its files (``.parquet``), given to each file of a folder output
            and recognised on DEST.
        folder: One table is a folder (a Zarr store), not a file.
        aliases: Other names accepted for it (CytoTable's ``dest_datatype`` names).
        extra: The optional dependency set it needs (``pip install "celltable[extra]"``), or "".
        warehouse: DEST is a warehouse whose tables grow by commits (Iceberg): the profiles are
            written as one data file by this format's writer, then committed with the image
            crops (``celltable.application.warehouse``), instead of published as DEST.
    """

    name: str
    suffix: str
    folder: bool = False
    aliases: tuple[str, ...] = ()
    extra: str = ""
    warehouse: bool = False


PARQUET = OutputFormat("parquet", ".parquet")
"""The default format, written when DEST has no suffix and no format is given."""


def choose_format(dest_path: str, given: str | None,
                  formats: Sequence[OutputFormat]) -> OutputFormat:
    """The format to write ``dest_path`` in: ``given`` (a name or alias), else the one DEST's
    suffix names, else Parquet when DEST has no suffix (a folder name, or a file named
    without one).

    Raises:
        OutputFormatError: ``given`` names no format, DEST's suffix names none and no format is
            given, or DEST's suffix names another format than ``given``.
    """
    names = ", ".join(f.name for f in formats)
    by_suffix = {f.suffix.lower(): f for f in formats}
    leaf = dest_path.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = leaf.rpartition(".")
    suffix = f".{ext.lower()}" if dot and stem.strip(".") and ext else ""
    from_suffix = by_suffix.get(suffix)
    if given is not None:
        chosen = next((f for f in formats if given.lower() in (f.name, *f.aliases)), None)
        if chosen is None:
            raise OutputFormatError(f"format {given!r} is not one celltable writes; use one of "
                                    f"{names}")
        if from_suffix is not None and from_suffix != chosen:
            raise OutputFormatError(
                f"destination {leaf} names the {from_suffix.name} format but the format asked "
                f"for is {chosen.name}; end DEST with {chosen.suffix} or drop the format option"
            )
        return chosen
    if from_suffix is not None:
        return from_suffix
    if suffix:
        suffixes = ", ".join(f.suffix for f in formats)
        raise OutputFormatError(
            f"destination {leaf} ends with {suffix}, which names no output format; end it with "
            f"one of {suffixes}, or say which format with --format ({names})"
        )
    return next((f for f in formats if f.name == PARQUET.name), PARQUET)
