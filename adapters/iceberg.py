"""Iceberg warehouses through pyiceberg: an embedded SQL catalog on SQLite, or a user's catalog.

Data files are written as ordinary Parquet (by the Parquet writer and the cropping tasks) into
a staging folder inside the warehouse; :meth:`IcebergWarehouse.commit` moves them into each
table's ``data/`` folder and adds them in one transaction per table (schema evolution by name
for new columns, then ``add_files``), so each conversion is one snapshot per table. The images
table is committed before the profiles table; if the profiles commit fails, the images table is
set back to its previous snapshot (a table this conversion created is dropped from the
catalog): every table is left where it was, and no file another snapshot uses is deleted.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import structlog

from celltable.domain.errors import DestinationError, MissingExtraError, WarehouseError
from celltable.domain.naming import TABLE_NUMBER
from celltable.domain.warehouse import (
    CATALOG_FILE,
    CATALOG_NAME,
    IMAGES,
    PROFILES,
    PROFILES_TABLE,
    TableFiles,
    TableState,
)

log = structlog.get_logger("celltable.iceberg")

STAGING_PREFIX = ".celltable-staging-"


def pyiceberg_catalog() -> Any:
    try:
        from pyiceberg import catalog
    except ImportError:
        raise MissingExtraError(
            "Iceberg warehouses need pyiceberg: pip install 'celltable[iceberg]'"
        ) from None
    return catalog


@contextmanager
def catalog_errors(what: str) -> Iterator[None]:
    """pyiceberg's and SQLAlchemy's failures as one named error."""
    try:
        yield
    except (WarehouseError, MissingExtraError):
        raise
    except Exception as e:  # pyiceberg raises many unrelated types (ValueError, SQL errors ...)
        raise WarehouseError(f"{what}: {type(e).__name__}: {e}") from e


class IcebergWarehouse:
    """One warehouse (see :class:`celltable.domain.ports.Warehouse`).

    Args:
        dest: The warehouse folder (local); table locations are ``dest/<namespace>/<table>``.
        catalog_uri: A user's catalog (``http(s)://`` REST, ``sqlite:///``, ``postgresql://``)
            instead of ``dest/catalog.db``.
        catalog_options: More catalog properties (credentials, ``warehouse`` ...).
    """

    def __init__(self, dest: str, catalog_uri: str | None = None,
                 catalog_options: Mapping[str, str] | None = None) -> None:
        self.dest = str(Path(dest).absolute()) if "://" not in dest else dest.rstrip("/")
        self.catalog_uri = catalog_uri
        self.catalog_options = dict(catalog_options or {})
        self._catalog: Any = None
        self._staging: str | None = None
        self._created = False

    # -- the catalog ------------------------------------------------------------------------

    def exists(self) -> bool:
        if self.catalog_uri:
            return True
        return (Path(self.dest) / CATALOG_FILE).exists()

    def catalog(self, create: bool = False) -> Any:
        if self._catalog is None:
            catalog = pyiceberg_catalog()
            if self.catalog_uri:
                props = {"uri": self.catalog_uri, **self.catalog_options}
                props.setdefault("warehouse", self._location_root())
                with catalog_errors(f"cannot open the catalog at {self.catalog_uri}"):
                    self._catalog = catalog.load_catalog(CATALOG_NAME, **props)
            else:
                if "://" in self.dest:
                    raise WarehouseError(
                        f"a warehouse at {self.dest} needs a catalog of its own: give "
                        "--catalog-uri (a REST catalog, or a SQL database such as "
                        "sqlite:///catalog.db) and its --catalog-option s (s3.endpoint ...); "
                        "the embedded catalog is a local SQLite file")
                if not self.exists() and not create:
                    raise WarehouseError(f"{self.dest} is not a celltable warehouse (no "
                                         f"{CATALOG_FILE}); convert into it with --format iceberg")
                from pyiceberg.catalog.sql import SqlCatalog

                Path(self.dest).mkdir(parents=True, exist_ok=True)
                with catalog_errors(f"cannot open the catalog of {self.dest}"):
                    self._catalog = SqlCatalog(
                        CATALOG_NAME, uri=f"sqlite:///{self.dest}/{CATALOG_FILE}",
                        warehouse=f"file://{self.dest}", **self.catalog_options)
        return self._catalog

    def _location_root(self) -> str:
        return self.dest if "://" in self.dest else f"file://{self.dest}"

    def _table(self, namespace: str, table: str) -> Any | None:
        catalog = self.catalog()
        with catalog_errors(f"cannot read table {namespace}.{table}"):
            if not catalog.table_exists((namespace, table)):
                return None
            return catalog.load_table((namespace, table))

    # -- a conversion -----------------------------------------------------------------------

    def prepare(self, *, append: bool) -> str:
        """A fresh local staging folder for the conversion's data files.

        Raises:
            WarehouseError: The warehouse exists and ``append`` is false (or it does not and
                ``append`` is true).
        """
        if not self.catalog_uri:
            target = Path(self.dest)
            if target.exists() and not target.is_dir():
                raise DestinationError(f"{self.dest} exists and is not a folder; a warehouse "
                                       "is a folder: choose another DEST")
            if self.exists() and not append:
                raise WarehouseError(f"{self.dest} is already a warehouse; add plates to it "
                                     "with --append, or convert into a new DEST")
            if target.exists() and not self.exists() and any(target.iterdir()):
                raise DestinationError(f"{self.dest} exists and is not a warehouse; choose a "
                                       "new or empty folder")
        if append and not self.exists():
            raise WarehouseError(f"{self.dest} is not a warehouse yet: convert without --append "
                                 "first")
        self._created = not self.catalog_uri and not Path(self.dest).exists()
        self.catalog(create=True)
        if self.catalog_uri and not append and self._table(PROFILES, PROFILES_TABLE) is not None:
            raise WarehouseError(f"the catalog at {self.catalog_uri} already holds "
                                 f"{PROFILES}.{PROFILES_TABLE}; add plates to it with --append")
        base = Path(self.dest) if not self.catalog_uri and "://" not in self.dest else None
        if base is None:
            import tempfile

            self._staging = tempfile.mkdtemp(prefix=STAGING_PREFIX)
        else:
            self._staging = str(base / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}")
            Path(self._staging).mkdir(parents=True)
        return self._staging

    def plates(self, namespace: str, table: str) -> tuple[str, ...]:
        """The plates (``Metadata_TableNumber``) a table holds; empty when it does not exist."""
        t = self._table(namespace, table)
        if t is None or t.current_snapshot() is None:
            return ()
        with catalog_errors(f"cannot scan {namespace}.{table}"):
            column = t.scan(selected_fields=(TABLE_NUMBER,)).to_arrow().column(TABLE_NUMBER)
        return tuple(sorted(set(column.unique().to_pylist()) - {None}))

    def commit(self, tables: Sequence[TableFiles],
               properties: Mapping[str, str]) -> tuple[TableState, ...]:
        """Add each table's files (a folder given: its Parquet files) in one transaction per
        table, in the order given; a failure sets the tables committed before it back to their
        previous snapshots.

        Raises:
            WarehouseError: A commit failed; every table is where it was.
        """
        done: list[tuple[TableFiles, int | None, bool]] = []
        states = []
        tables = [replace(tf, files=_data_files(tf.files)) for tf in tables]
        try:
            for tf in tables:
                if not tf.files:
                    continue
                before = self._table(tf.namespace, tf.table)
                previous = before.current_snapshot().snapshot_id if (
                    before is not None and before.current_snapshot() is not None) else None
                schema = _union_schema(tf.files)
                moved: list[str] = []
                try:
                    self._move(tf, before, moved)
                    self._add(tf, before, moved, schema, properties)
                except BaseException:
                    self._unmove(moved)
                    raise
                done.append((tf, previous, before is None))
                states.append(self.state(tf.namespace, tf.table))
        except BaseException:
            for tf, previous, created in reversed(done):
                self._restore(tf, previous, created)
            raise
        return tuple(states)

    def _move(self, tf: TableFiles, table: Any | None, moved: list[str]) -> None:
        """Move the staged files into the table's data folder, adding each one's new path (URI)
        to ``moved`` as soon as it is there."""
        location = table.location() if table is not None else self._new_location(tf)
        for f in tf.files:
            target = f"{location.rstrip('/')}/data/{uuid.uuid4().hex}.parquet"
            if target.startswith("file://"):
                path = Path(target[len("file://"):])
                path.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(f, path)
            else:
                self._upload(f, target)
            moved.append(target)

    def _new_location(self, tf: TableFiles) -> str:
        return f"{self._location_root()}/{tf.namespace}/{tf.table}"

    def _upload(self, local: str, target: str) -> None:
        from pyiceberg.io import load_file_io

        io = load_file_io({**self.catalog().properties}, target)
        with Path(local).open("rb") as src, io.new_output(target).create(overwrite=False) as dst:
            shutil.copyfileobj(src, dst, 8 * 2**20)

    def _unmove(self, moved: Sequence[str]) -> None:
        """Remove files this conversion put in a table's folder that no commit refers to."""
        for target in moved:
            if target.startswith("file://"):
                Path(target[len("file://"):]).unlink(missing_ok=True)
            else:
                from pyiceberg.io import load_file_io

                try:
                    load_file_io({**self.catalog().properties}, target).delete(target)
                except Exception as e:  # the failure being reported matters more
                    log.warning("data_file_not_removed", path=target, reason=str(e))

    def _add(self, tf: TableFiles, table: Any | None, files: list[str], schema: pa.Schema,
             properties: Mapping[str, str]) -> None:
        catalog = self.catalog()
        with catalog_errors(f"cannot commit to {tf.namespace}.{tf.table}"):
            if table is None:
                catalog.create_namespace_if_not_exists(tf.namespace)
                tx = catalog.create_table_transaction(
                    (tf.namespace, tf.table), schema=schema,
                    location=self._new_location(tf), properties=dict(properties))
            else:
                tx = table.transaction()
                with tx.update_schema() as update:
                    update.union_by_name(schema)
            tx.add_files(files, snapshot_properties=dict(properties),
                         check_duplicate_files=False)
            tx.commit_transaction()

    def _restore(self, tf: TableFiles, previous: int | None, created: bool) -> None:
        catalog = self.catalog()
        try:
            if created:
                catalog.drop_table((tf.namespace, tf.table))
            elif previous is not None:
                table = catalog.load_table((tf.namespace, tf.table))
                table.manage_snapshots().set_current_snapshot(previous).commit()
            log.warning("table_restored", table=f"{tf.namespace}.{tf.table}", snapshot=previous)
        except Exception as e:  # the original failure is what the user needs to see
            log.error("table_not_restored", table=f"{tf.namespace}.{tf.table}", reason=str(e))

    def discard(self, failed: bool = False) -> None:
        """Remove the staging folder; after a failure, the warehouse too when this conversion
        created it (a failed run leaves DEST as it was)."""
        if self._staging:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
        if failed and self._created:
            if self._catalog is not None and hasattr(self._catalog, "engine"):
                self._catalog.engine.dispose()  # SQLite's file handles, before removing it
            shutil.rmtree(self.dest, ignore_errors=True)
            self._catalog = None
        self._created = False

    # -- reading back -----------------------------------------------------------------------

    def state(self, namespace: str, table: str) -> TableState:
        t = self._table(namespace, table)
        if t is None:
            raise WarehouseError(f"{self.dest} has no table {namespace}.{table}; "
                                 "`celltable inspect` lists its tables")
        snap = t.current_snapshot()
        rows = int(snap.summary.get("total-records", 0)) if snap and snap.summary else 0
        return TableState(namespace, table, rows, len(t.snapshots()),
                          snap.snapshot_id if snap else None, len(t.schema().fields),
                          t.location())

    def tables(self) -> tuple[TableState, ...]:
        catalog = self.catalog()
        with catalog_errors(f"cannot list the tables of {self.dest}"):
            names = [t for ns in catalog.list_namespaces() for t in catalog.list_tables(ns)]
        return tuple(self.state(ns, name) for ns, name in sorted(names))

    def scan(self, table: str, columns: Sequence[str] | None, row_filter: str | None) -> pa.Table:
        """Rows of ``namespace.table`` (or a bare name in ``profiles`` / ``images``), the
        filter pushed into the scan (pyiceberg prunes files and row groups by it)."""
        namespace, _, name = table.rpartition(".")
        if not namespace:
            namespace = IMAGES if name.startswith("image") else PROFILES
        t = self._table(namespace, name)
        if t is None:
            raise WarehouseError(f"{self.dest} has no table {namespace}.{name}; "
                                 "`celltable inspect` lists its tables")
        with catalog_errors(f"cannot scan {namespace}.{name}"):
            scan = t.scan(row_filter=row_filter or "True",
                          selected_fields=tuple(columns) if columns else ("*",))
            return scan.to_arrow()


def _data_files(paths: Sequence[str]) -> tuple[str, ...]:
    """The data files given: a file as it is, a folder (the plates' files plate tasks wrote)
    as the Parquet files in it."""
    found: list[str] = []
    for p in paths:
        if Path(p).is_dir():
            found += sorted(str(f) for f in Path(p).rglob("*.parquet") if f.is_file())
        else:
            found.append(p)
    return tuple(found)


def _union_schema(files: Sequence[str]) -> pa.Schema:
    """The columns of the data files together, in first-seen order (plates may differ)."""
    fields: dict[str, pa.Field] = {}
    for f in files:
        for field in pq.read_schema(f):
            fields.setdefault(field.name, field)
    return pa.schema(list(fields.values()))


