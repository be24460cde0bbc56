"""The expert path: the user's join SQL, run once per plate, the plates' results stacked."""

from __future__ import annotations

from dataclasses import replace

from celltable.application.outputs import JOINED_NAME
from celltable.application.services import Services
from celltable.application.tasks import run_ordered
from celltable.domain.custom_sql import CustomSql
from celltable.domain.join import SelectColumn
from celltable.domain.model import ConversionRequest
from celltable.domain.naming import role_by_name
from celltable.domain.output import plan_output
from celltable.domain.provenance import provenance
from celltable.domain.report import TableReport
from celltable.domain.sources import StagedPlate


def write_custom_join(request: ConversionRequest, services: Services, staged: list[StagedPlate],
                      path: str, custom: CustomSql) -> TableReport:
    """Write the user's SELECT's rows at ``path``. Tables it reads as CytoTable's files
    (``read_parquet('cells.parquet')``) have their columns named as celltable's ``--no-join``
    files name them."""
    plans = [(name, plan_output(request.preset, table, (table,), staged, joined=False))
             for name, table in custom.views]

    def views(plate: str) -> tuple[tuple[str, tuple[SelectColumn, ...]], ...]:
        return tuple((name, tuple(c for c in plan.selects_for(plate) if c.constant is None))
                     for name, plan in plans)

    outputs = list(
        run_ordered(
            services.runner,
            services.engine.read_sql,
            ((f"join SQL on plate {s.plate.key!r}", (s, custom.sql, s.plate.key, views(s.plate.key)))
             for s in staged),
            window=services.capacity.workers,
        )
    )
    found = services.writer.columns_of(outputs[0].data) if outputs else ()
    columns = [replace(c, role=role, compartment=compartment) for c in found
               for role, compartment in [role_by_name(request.preset, c.name)]]
    sink = services.writer.create(path, columns)
    for out in outputs:
        sink.write(out.data)
    rows_out = sum(o.rows_out for o in outputs)
    base = request.preset.base
    rows_in = sum(t.rows for s in staged for t in s.tables if t.table == base)
    report = TableReport(JOINED_NAME, path, rows_in, rows_out, len(columns))
    sink.close(provenance(request, services.producer, services.version, staged, report, 0,
                          columns))
    return report
