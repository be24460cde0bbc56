"""A user preset's relationships checked as a graph before anything is read: each resolved to its
compartments and column, every compartment reachable from the base, no cycles; and the naming
patterns relating a compartment's name to its parent column's."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from celltable.domain.errors import InvalidPresetError
from celltable.domain.preset_values import RelationshipSpec, _did_you_mean, _listed
from celltable.domain.presets import Compartment, Relationship


def _resolve(spec: RelationshipSpec, comps: Mapping[str, Compartment], column_of: str | None,
             where: str) -> Relationship:
    for role, name in (("child", spec.child), ("parent", spec.parent)):
        if name not in comps:
            raise InvalidPresetError(
                f"{where}relationship {spec.describe()!r} names {name!r} as {role}, which is no "
                f"compartment{_did_you_mean(name, comps)}; the compartments are {_listed(comps)} "
                f"(add it under [compartments.{name}] or with --compartment {name})")
    parent = comps[spec.parent]
    if spec.parent_column and spec.parent_column != parent.object_number:
        raise InvalidPresetError(
            f"{where}relationship {spec.describe()!r}: {spec.parent} objects are numbered by "
            f"{parent.object_number!r}, not {spec.parent_column!r}; write "
            f"\"... -> {spec.parent}\" or set object_number under [compartments.{spec.parent}]")
    column = spec.column or (_apply(column_of, spec.child, spec.parent) if column_of else None)
    if not column:
        raise InvalidPresetError(
            f"{where}relationship {spec.describe()!r} needs the child's column holding the "
            f"parent's object number: write \"{spec.child}.COLUMN -> {spec.parent}\"")
    if spec.child == spec.parent:
        raise InvalidPresetError(
            f"{where}relationship {spec.describe()!r} relates {spec.child} to itself; a "
            "relationship goes from a child compartment to another, its parent")
    return Relationship(spec.child, column, spec.parent)


def _check_graph(base: str, names: Sequence[str], rels: Sequence[Relationship],
                 where: str, column_of: str | None, replaced: Sequence[Relationship] = ()) -> None:
    """Every compartment reached from the base exactly once, walking child -> parent."""
    parents: dict[str, list[Relationship]] = {}
    for r in rels:
        parents.setdefault(r.child, []).append(r)
    cycle = _find_cycle(names, parents)
    if cycle:
        raise InvalidPresetError(
            f"{where}the relationships form a cycle ({' -> '.join(cycle)}); each goes from a "
            "child to its parent, so remove the one pointing back")
    reached = {base: "the base"}
    order = [base]
    for child in order:
        for r in parents.get(child, []):
            if r.parent in reached:
                raise InvalidPresetError(
                    f"{where}{r.parent} is reached twice ({reached[r.parent]} and "
                    f"{r.child}.{r.column} -> {r.parent}); celltable joins each compartment "
                    "once: keep one of the two relationships")
            reached[r.parent] = f"{r.child}.{r.column} -> {r.parent}"
            order.append(r.parent)
    lost = [n for n in names if n not in reached]
    for old in replaced:
        if old.parent in lost:
            new = next(r for r in rels if r.parent == old.parent)
            raise InvalidPresetError(
                f"{where}{old.parent} is no longer joined: {new.child}.{new.column} -> "
                f"{new.parent} replaced the preset's {old.child}.{old.column} -> {old.parent} "
                f"(each compartment is joined through one relationship), and {new.child} is not "
                f"joined itself. A relationship goes from the child holding the reference to "
                f"its parent: write the one that joins {new.child} from the base's side")
    if lost:
        first = lost[0]
        example = _apply(column_of, base, first) if column_of else f"Parent_{first}"
        own = [r for r in rels if r.child == first]
        why = (f" ({own[0].child}.{own[0].column} -> {own[0].parent} joins {own[0].parent} onto "
               f"{first}, not {first} onto the base)" if own else "")
        raise InvalidPresetError(
            f"{where}{_listed(lost)} {'is' if len(lost) == 1 else 'are'} not connected to the "
            f"base {base!r}{why}: joins go from the base to the parents its columns name. Add a "
            f"relationship from a joined compartment, e.g. \"{base}.{example} -> {first}\" "
            f"(CellProfiler's RelateObjects writes such columns), or drop {first}")


def _reached(base: str, rels: Sequence[Relationship]) -> set[str]:
    """The compartments joined from ``base``, walking child -> parent."""
    reached, todo = {base}, [base]
    while todo:
        child = todo.pop()
        for r in rels:
            if r.child == child and r.parent not in reached:
                reached.add(r.parent)
                todo.append(r.parent)
    return reached


def _find_cycle(names: Sequence[str], parents: Mapping[str, list[Relationship]]) -> list[str]:
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> list[str]:
        state[node] = 1
        for r in parents.get(node, []):
            if state.get(r.parent) == 1:  # on the path: a cycle back to it
                return [*path[path.index(r.parent):], node, r.parent]
            if r.parent not in state:
                found = visit(r.parent, [*path, node])
                if found:
                    return found
        state[node] = 2
        return []

    for n in names:
        if n not in state:
            found = visit(n, [])
            if found:
                return found
    return []


def _pattern(pairs: Iterable[tuple[str, str]]) -> str | None:
    """The naming shared by every (value, name) pair, ``{name}`` standing for the name; None
    when they differ or there are none."""
    found = {value.replace(name, "{name}") for value, name in pairs if value != "*"}
    return found.pop() if len(found) == 1 else None


def _reference_pattern(rels: Iterable[Relationship]) -> str | None:
    found = set()
    for r in rels:
        p = r.column.replace(r.child, "{child}").replace(r.parent, "{parent}")
        if _apply(p, r.child, r.parent) != r.column:
            return None
        found.add(p)
    return found.pop() if len(found) == 1 else None


def _apply(pattern: str | None, name: str, parent: str | None = None) -> str:
    if pattern is None:
        return name
    out = pattern.replace("{name}", name).replace("{child}", name)
    return out.replace("{parent}", parent) if parent is not None else out
