"""Planning a conversion, before any data moves: the join to make, the plates to convert (bad
files named now), where the output is staged, and the source files' versions to check later."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from celltable.application.run_report import report_path
from celltable.application.services import Services
from celltable.domain.custom_sql import CustomSql, rewrite_cytotable_sql
from celltable.domain.errors import SourceChangedError
from celltable.domain.join import JoinSpec, derive_join
from celltable.domain.model import ConversionRequest
from celltable.domain.ports import StagingPaths
from celltable.domain.sources import SourceLayout, screened

log = structlog.get_logger("celltable.convert")


@dataclass(frozen=True, slots=True)
class ConversionPlan:
    """What a conversion will do.

    Attributes:
        spec: The join derived from the preset; None without ``join``.
        custom: The user's join SQL, rewritten for celltable's tables; None without it.
        layout: The plates found, bad files named (or, skipping them, set aside).
    """

    spec: JoinSpec | None
    custom: CustomSql | None
    layout: SourceLayout


def plan_conversion(request: ConversionRequest, services: Services) -> ConversionPlan:
    """Find the plates and decide the join.

    Raises:
        CelltableError: No plate is found, a file is bad (unless skipped), or the join SQL or
            preset cannot be used.
    """
    preset, opts = request.preset, request.options
    spec = derive_join(preset) if opts.join else None
    custom = rewrite_cytotable_sql(opts.join_sql, preset) if opts.join_sql else None
    found = services.locator.discover(request.source_path, preset)
    layout = screened(found, opts.skip_bad_files)  # before any data moves
    log.info("source_found", source=layout.root, preset=preset.name, plates=len(layout.plates),
             skipped=len(layout.skipped))
    return ConversionPlan(spec, custom, layout)


def prepare_destination(request: ConversionRequest, services: Services,
                        layout: SourceLayout) -> StagingPaths:
    """Where the output is staged until it is published (a folder, unless one file is asked
    for in a format that writes a file).

    Raises:
        DestinationError: The destination exists (without ``overwrite``), lies in the source,
            or cannot be written.
    """
    opts = request.options
    return services.destination.prepare(
        request.dest_path,
        folder=not opts.join or bool(opts.partition_by) or services.output_format.folder,
        overwrite=opts.overwrite, resume=opts.resume, sources=layout.source_paths(),
        guarded=guarded(request),
    )


def guarded(request: ConversionRequest) -> list[tuple[str, str]]:
    """The paths the options name that the conversion writes, besides DEST and its staging:
    the run report and the cloud download cache."""
    opts = request.options
    found = []
    if opts.report_path != "-":
        found.append(("--report", report_path(request)))
    if opts.local_cache_dir:
        found.append(("--local-cache-dir", opts.local_cache_dir))
    return found


def source_versions(services: Services, layout: SourceLayout) -> dict[str, str]:
    """Each source file's version (size, modification time) as the conversion begins; empty
    when the services cannot tell."""
    files = sorted({t.path for u in layout.plates for t in u.tables})
    return services.versions(files) if services.versions else {}


def check_unchanged(services: Services, before: dict[str, str]) -> None:
    """Check, before publishing, that no source file changed since the conversion began.

    Raises:
        SourceChangedError: One did (its size or modification time differ).
    """
    if not services.versions or not before:
        return
    after = services.versions(list(before))
    changed = [f for f, v in before.items() if after.get(f) != v]
    if changed:
        raise SourceChangedError(
            f"{changed[0]} changed while it was converted (size or modification time"
            f"{f'; {len(changed) - 1} other file(s) too' if len(changed) > 1 else ''}); nothing "
            "was written: run again once nothing writes to the source"
        )
