"""The validate use case: re-read an output and check it against what was recorded when it was
written (rows, schema, null counts, a digest of the key columns)."""

from __future__ import annotations

import structlog

from celltable.domain.ports import OutputReader
from celltable.domain.validation import (
    ValidationReport,
    compare,
    provenance_of,
    recorded_checksum,
)

log = structlog.get_logger("celltable.validate")


def validate(dest_path: str, reader: OutputReader) -> ValidationReport:
    """Check every file of the output at ``dest_path``.

    A mismatch is a failed check in the report, not an exception.

    Raises:
        SourceNotFoundError: Nothing exists at ``dest_path``.
        SourceReadError: A file is not a readable table.
        ValidationError: A file carries no celltable provenance.
    """
    tables = []
    for path in reader.tables(dest_path):
        first = reader.scan(path, None)
        meta = dict(first.metadata)
        prov = provenance_of(path, meta)
        recorded = recorded_checksum(path, meta)
        scan = reader.scan(path, recorded.key_columns) if recorded is not None else first
        table = compare(scan, prov, recorded)
        log.info("table_validated", path=path, ok=table.ok, rows=table.rows,
                 failed=[c.name for c in table.checks if c.ok is False])
        tables.append(table)
    return ValidationReport(dest_path, tuple(tables))
