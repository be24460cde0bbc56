"""The provenance an output file carries in its key/value metadata: where its rows came from and
how they were converted. :func:`provenance` builds it when a file is written;
:func:`provenance_of` reads it back when the file is validated (``celltable.domain.validation``).
Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict

from celltable.domain.errors import ValidationError
from celltable.domain.model import ConversionRequest
from celltable.domain.naming import OBJECT_NUMBER, image_number
from celltable.domain.report import TableReport, experiments_of
from celltable.domain.schema import Column
from celltable.domain.sources import StagedPlate

PROVENANCE_KEY = "celltable.provenance"
PRODUCER_KEY = "data-producer"
PRODUCER_VERSION_KEY = "data-producer-version"
FORMAT = 2
"""The provenance's ``format``: files of format 2 on carry every record (schema, checksum,
column digests), so one missing is damage, not an older celltable."""


def provenance(
    request: ConversionRequest,
    producer: str,
    version: str,
    staged: Sequence[StagedPlate],
    report: TableReport,
    chunk_size: int,
    columns: Sequence[Column],
) -> dict[str, str]:
    """The key/value metadata an output file carries: who wrote it, and (as JSON under
    :data:`PROVENANCE_KEY`) the plates it holds, the options, its counts and its schema."""
    sources = [
        {"plate": s.plate.key, "path": s.plate.path,
         "tables": {t.table: {"rows": t.rows, "columns": len(t.schema.columns)} for t in s.tables}}
        for s in staged
    ]
    prov = {
        "format": FORMAT,
        "preset": request.preset.name,
        # the whole layout: a user's preset (file or flags) is known by its definition only
        "preset_definition": asdict(request.preset),
        "source_path": request.source_path,
        "sources": sources,
        "join": request.options.join,
        "join_sql": request.options.join_sql,
        "chunk_size": chunk_size,
        "table": report.name,
        "rows_in": report.rows_in,
        "rows_out": report.rows_out,
        "rows_dropped": report.dropped,
        "null_object_numbers": report.null_objects,
        "missing_partners": dict(report.missing),
        "keys": [image_number(request.preset), OBJECT_NUMBER],
        "experiments": list(experiments_of(staged)),
        "schema": [[c.name, c.type.value] for c in columns],
    }
    return {
        PRODUCER_KEY: producer,
        PRODUCER_VERSION_KEY: version,
        PROVENANCE_KEY: json.dumps(prov, sort_keys=True, default=str),
    }


def provenance_of(path: str, metadata: Mapping[str, str]) -> dict[str, object]:
    """The provenance recorded in a file's metadata.

    Raises:
        ValidationError: The file carries no celltable provenance, or it cannot be parsed.
    """
    text = metadata.get(PROVENANCE_KEY)
    if text is None:
        raise ValidationError(
            f"{path} has no {PROVENANCE_KEY} metadata: it was not written by celltable (or was "
            "rewritten by another tool); validate the file celltable wrote"
        )
    try:
        prov = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValidationError(f"{path}: its {PROVENANCE_KEY} metadata is not JSON ({e})") from e
    if not isinstance(prov, dict) or "rows_out" not in prov:
        raise ValidationError(f"{path}: its {PROVENANCE_KEY} metadata lacks rows_out")
    return prov


def current_format(prov: Mapping[str, object]) -> bool:
    """Whether the provenance is of a format that always records every record (schema,
    checksum, column digests, a folder's manifest): then one missing is damage."""
    return int(prov.get("format", 1) or 1) >= FORMAT  # type: ignore[call-overload]
