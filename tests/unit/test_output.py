from __future__ import annotations

from celltable.domain.join import derive_join
from celltable.domain.output import plan_output
from celltable.domain.presets import IMAGE, SourceFormat, get_preset
from celltable.domain.schema import Column, DataType, TableSchema, unify_types
from celltable.domain.sources import Plate, StagedPlate, StagedTable

PRESET = get_preset("cellprofiler_csv")


def _unit(key, cells_cols):
    def table(name, cols):
        return StagedTable(name, TableSchema(name, tuple(Column(c, t) for c, t in cols)), 0, ())
    keys = [("ImageNumber", DataType.INT64), ("ObjectNumber", DataType.INT64)]
    return StagedPlate(Plate(key, SourceFormat.CSV, key, ()), key, (
        table(IMAGE, [("ImageNumber", DataType.INT64)]),
        table("Cytoplasm", [*keys, ("Parent_Cells", DataType.INT64), ("Parent_Nuclei", DataType.INT64)]),
        table("Cells", keys + cells_cols),
        table("Nuclei", keys),
    ))


def test_plates_with_different_columns_give_their_union_with_widened_types():
    a = _unit("a", [("AreaShape_Area", DataType.INT64), ("Only_A", DataType.STRING)])
    b = _unit("b", [("AreaShape_Area", DataType.FLOAT64)])
    plan = plan_output(PRESET, "joined", (IMAGE, *derive_join(PRESET).tables), [a, b], joined=True)
    types = {c.name: c.type for c in plan.columns}
    assert types["Cells_AreaShape_Area"] is DataType.FLOAT64
    assert types["Cells_Only_A"] is DataType.STRING
    b_only = {s.output: s for s in plan.selects_for("b")}["Cells_Only_A"]
    assert b_only.source is None  # NULL for the plate without the column


def test_type_rules():
    assert unify_types([DataType.INT64, DataType.FLOAT64]) is DataType.FLOAT64
    assert unify_types([DataType.BOOL, DataType.INT64]) is DataType.INT64
    assert unify_types([DataType.INT64, DataType.STRING]) is DataType.STRING
    assert unify_types([DataType.NULL, DataType.INT64]) is DataType.INT64
    assert unify_types([]) is DataType.NULL


def test_float32_widens_beside_integers_and_float64_and_stays_beside_bool():
    f32, f64 = DataType.FLOAT32, DataType.FLOAT64
    assert unify_types([f32, f32]) is f32
    assert unify_types([f32, DataType.BOOL, DataType.NULL]) is f32
    assert unify_types([f32, f64]) is f64
    assert unify_types([f32, DataType.INT64]) is f64  # float32 holds integers up to 2**24 only
    assert unify_types([f32, DataType.STRING]) is DataType.STRING


def test_float32_option_stores_float64_features_as_float32_and_leaves_keys_and_metadata():
    plate = _unit("a", [("AreaShape_Area", DataType.FLOAT64), ("Count", DataType.INT64),
                       ("Metadata_Dose", DataType.FLOAT64), ("Parent_Nuclei", DataType.FLOAT64)])
    tables = (IMAGE, *derive_join(PRESET).tables)
    wide = {c.name: c.type for c in plan_output(PRESET, "j", tables, [plate], joined=True).columns}
    plan = plan_output(PRESET, "j", tables, [plate], joined=True, float32=True)
    narrow = {c.name: c.type for c in plan.columns}
    assert wide["Cells_AreaShape_Area"] is DataType.FLOAT64
    assert narrow["Cells_AreaShape_Area"] is DataType.FLOAT32
    assert {s.output: s.type for s in plan.selects_for("a")}["Cells_AreaShape_Area"] is DataType.FLOAT32
    changed = {n for n in wide if wide[n] is not narrow[n]}
    assert changed == {"Cells_AreaShape_Area"}  # ints, metadata, parent references kept
