"""Custom join SQL written for CytoTable: ``read_parquet('cytoplasm.parquet')`` and the like.

CytoTable runs a join over the Parquet files it wrote for each table, so its users' SQL names
them with ``read_parquet('<table>.parquet')`` and their columns as those files name them
(``Metadata_ImageNumber``, ``Metadata_ObjectNumber``, ``Cytoplasm_AreaShape_Area``,
``Metadata_Cytoplasm_Parent_Cells`` ...). celltable's ``--no-join`` files of a table carry the
same names, so each such reference whose file is named after a table of the preset (``cells``,
``per_cells``, ``image``) is rewritten to that table as its ``--no-join`` file names its columns;
any other file is refused, saying how to write it. Pure: text in, text out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from celltable.domain.errors import InvalidOptionError
from celltable.domain.presets import IMAGE, Preset

_READ = re.compile(r"read_parquet\s*\(\s*(['\"])(?P<path>[^'\"]*)\1\s*\)", re.IGNORECASE)
_OTHER_READ = re.compile(r"\bread_(csv|csv_auto|json|json_auto|ndjson)\s*\(", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class CustomSql:
    """A user's join SQL with its file references rewritten.

    Attributes:
        sql: The SQL, each ``read_parquet(...)`` of a table replaced by the name in ``views``.
        views: ``(name, table)``: the name the SQL now reads, standing for ``table`` with its
            columns named as celltable's ``--no-join`` file of it names them.
    """

    sql: str
    views: tuple[tuple[str, str], ...] = ()


def view_name(table: str) -> str:
    """The name a rewritten reference reads (quoted where used)."""
    return f"{table.lower()}.parquet"


def _table_of(path: str, tables: Sequence[str]) -> str | None:
    stem = path.replace("\\", "/").rsplit("/", 1)[-1]
    if not stem.lower().endswith(".parquet"):
        return None
    stem = stem[: -len(".parquet")].lower()
    for name in (stem, stem.removeprefix("per_")):
        for table in tables:
            if table.lower() == name:
                return table
    return None


def rewrite_cytotable_sql(sql: str, preset: Preset) -> CustomSql:
    """``sql`` with CytoTable-style ``read_parquet('<table>.parquet')`` references made to read
    the preset's tables (see the module's description); ``sql`` itself when it has none.

    Raises:
        InvalidOptionError: A reference names no table of the preset (a glob, another file), or
            the SQL reads files another way (``read_csv``): the message says how to write it.
    """
    tables = [IMAGE, *(c.name for c in preset.compartments)]
    listed = ", ".join(f"read_parquet('{t.lower()}.parquet')" for t in tables)
    other = _OTHER_READ.search(sql)
    if other:
        raise InvalidOptionError(
            f"the join SQL reads files ({other.group(0)}...): celltable runs it over the source's "
            f"tables, named {', '.join(tables)} (source column names), or {listed} (columns named "
            "as celltable's --no-join files, as CytoTable names them); write FROM Cells or "
            "read_parquet('cells.parquet') instead")
    views: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        table = _table_of(match.group("path"), tables)
        if table is None:
            raise InvalidOptionError(
                f"the join SQL reads {match.group(0)}, which names no table of preset "
                f"{preset.name!r}: celltable runs it over the source's tables, so write one of "
                f"{listed} (columns named as celltable's --no-join files, as CytoTable names "
                f"them: Metadata_ImageNumber, Metadata_ObjectNumber, Cells_...), or FROM "
                f"{', '.join(tables)} (source column names); see docs/migrating-from-cytotable.md")
        views[view_name(table)] = table
        return f'"{view_name(table)}"'

    rewritten = _READ.sub(replace, sql)
    return CustomSql(rewritten, tuple(views.items()))
