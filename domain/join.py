"""Join specifications derived from a preset's relationships, and the queries built from them.

The domain says *what* to join and select; only the query adapter renders SQL.
"""

from __future__ import annotations

from dataclasses import dataclass

from celltable.domain.errors import InvalidPresetError
from celltable.domain.plan import Chunk
from celltable.domain.presets import Preset
from celltable.domain.schema import DataType


@dataclass(frozen=True, slots=True)
class JoinStep:
    """Join ``parent`` where ``parent.object_number = child.column`` (within the same image)."""

    child: str
    column: str
    parent: str
    parent_object_number: str

    def describe(self) -> str:
        return f"{self.child}.{self.column} -> {self.parent}"


@dataclass(frozen=True, slots=True)
class JoinSpec:
    """Rows of ``base`` with each parent joined in order, and the image table joined on."""

    base: str
    image_key: str
    steps: tuple[JoinStep, ...]
    with_image: bool = True

    @property
    def tables(self) -> tuple[str, ...]:
        return (self.base, *(s.parent for s in self.steps))


def derive_join(preset: Preset) -> JoinSpec:
    """The join of every compartment, walking relationships outward from the base.

    Raises:
        InvalidPresetError: A compartment is not reachable from the base by relationships.
    """
    joined = [preset.base]
    steps: list[JoinStep] = []
    pending = list(preset.relationships)
    progress = True
    while pending and progress:
        progress = False
        for rel in list(pending):
            if rel.child in joined and rel.parent not in joined:
                parent = preset.compartment(rel.parent)
                steps.append(JoinStep(rel.child, rel.column, rel.parent, parent.object_number))
                joined.append(rel.parent)
                pending.remove(rel)
                progress = True
            elif rel.parent in joined and rel.child in joined:
                pending.remove(rel)
    unreachable = [c.name for c in preset.compartments if c.name not in joined]
    if unreachable:
        raise InvalidPresetError(
            f"preset {preset.name!r}: compartments {unreachable} are not related to the base "
            f"{preset.base!r}; add a relationship for them or leave them out"
        )
    return JoinSpec(preset.base, preset.image_key, tuple(steps), with_image=bool(preset.image_table))


@dataclass(frozen=True, slots=True)
class SelectColumn:
    """One output column: ``table.source`` cast to ``type``, or NULL when ``source`` is None,
    or the text ``constant`` when given."""

    output: str
    type: DataType
    table: str | None = None
    source: str | None = None
    constant: str | None = None


@dataclass(frozen=True, slots=True)
class ChunkQuery:
    """What one task reads: the columns of a join (or of one table when ``join`` is None)
    for the images of ``chunk``, ordered by the output columns ``order_by``."""

    chunk: Chunk
    columns: tuple[SelectColumn, ...]
    table: str
    image_key: str
    join: JoinSpec | None = None
    order_by: tuple[str, ...] = ()
