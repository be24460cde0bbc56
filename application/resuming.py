"""Resuming: each chunk saved as it is written, and the chunks an earlier, interrupted run
saved reused instead of converted again, when nothing they depend on changed."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import structlog

from celltable.application.services import Services
from celltable.domain.errors import ConfigurationError
from celltable.domain.join import ChunkQuery
from celltable.domain.model import ConversionRequest
from celltable.domain.output import OutputPlan
from celltable.domain.ports import ChunkStore, StagingPaths
from celltable.domain.resume import SavedChunk, chunk_key, run_identity
from celltable.domain.sources import ChunkOutput, StagedPlate

log = structlog.get_logger("celltable.convert")


def open_store(services: Services, paths: StagingPaths) -> ChunkStore | None:
    """The store of the resume folder, when resuming was asked for.

    Raises:
        ConfigurationError: Resuming was asked for, but no chunk store is configured.
    """
    if paths.resume is None:
        return None
    if services.chunk_store is None:
        raise ConfigurationError("resuming needs a chunk store; none is configured")
    return services.chunk_store(paths.resume)


@dataclass(slots=True)
class Resumed:
    """The chunks of one output table: which an earlier run saved, and where each is saved.

    Without a store nothing is saved or reused.
    """

    store: ChunkStore | None
    keys: list[str]
    saved: list[SavedChunk | None]

    @classmethod
    def check(cls, store: ChunkStore | None, request: ConversionRequest, plan: OutputPlan,
              staged: Sequence[StagedPlate], queries: Sequence[ChunkQuery]) -> Resumed:
        """The saves of ``queries`` in ``store`` that are still good (the sources, options and
        columns they were made from are unchanged)."""
        if store is None:
            return cls(None, [], [None] * len(queries))
        files = sorted({p for s in staged for p in (s.plate.path, *(t.path for t in s.plate.tables))})
        run = run_identity(request, plan.name, plan.columns, store.versions(files))
        keys = [chunk_key(run, q) for q in queries]
        saved = [store.saved(k) for k in keys]
        log.info("resume_checked", table=plan.name, chunks=len(queries),
                 reused=sum(s is not None for s in saved))
        return cls(store, keys, saved)

    def todo(self, queries: Sequence[ChunkQuery]) -> list[ChunkQuery]:
        """The queries no save answers: they are run."""
        return [q for q, s in zip(queries, self.saved, strict=True) if s is None]

    def output(self, i: int, query: ChunkQuery, computed: Iterator[ChunkOutput]) -> ChunkOutput:
        """The output of the ``i``-th query: its save, else the next one computed (then saved)."""
        saved = self.saved[i]
        if self.store is not None and saved is not None:
            return ChunkOutput(query.chunk, self.store.load(saved), saved.rows_out,
                               saved.rows_in, saved.dropped, saved.missing, saved.null_objects)
        out = next(computed)
        if self.store is not None:
            self.store.save(self.keys[i], out)
        return out
