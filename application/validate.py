"""The validate use case: re-read an output and check it against what was recorded when it was
written (rows, schema, null counts, a digest of the key columns)."""

from __future__ import annotations

import structlog

from celltable.domain.ports import OutputReader
from celltable.domain.provenance import current_format, provenance_of
from celltable.domain.validation import (
    TableValidation,
    ValidationReport,
    check_folder,
    compare,
    recorded_checksum,
    recorded_columns,
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
    current = False
    for path in reader.tables(dest_path):
        first = reader.scan(path, None)
        meta = dict(first.metadata)
        prov = provenance_of(path, meta)
        current = current or current_format(prov)
        recorded = recorded_checksum(path, meta)
        columns = recorded_columns(path, meta)
        if recorded is None and columns is None:
            scan = first
        else:
            scan = reader.scan(path, recorded.key_columns if recorded else None,
                               columns.group_rows if columns else None)
        table = compare(scan, prov, recorded, columns)
        log.info("table_validated", path=path, ok=table.ok, rows=table.rows,
                 failed=[c.name for c in table.checks if c.ok is False])
        tables.append(table)
    folder = reader.folder(dest_path)
    if folder is not None:  # a folder output: its files against its manifest
        manifest, found = folder
        check = check_folder(dest_path, manifest, found, current)
        log.info("folder_validated", path=dest_path, ok=check.ok is not False)
        first = tables[0] if tables else None
        tables.insert(0, TableValidation(
            dest_path, sum(t.rows for t in tables), len(found),
            first.preset if first else "?", first.producer_version if first else "?",
            (check,)))
    return ValidationReport(dest_path, tuple(tables))
