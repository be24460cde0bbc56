"""The Iceberg format in the output-format registry, and OME-Arrow crops built from arrays."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from celltable.adapters.ome_arrow import OME_ARROW, crops_array, to_numpy
from celltable.domain.errors import ImageFileError


def test_the_iceberg_format_is_named_or_read_from_a_dot_iceberg_dest():
    from celltable.adapters.formats import FORMATS
    from celltable.domain.formats import PARQUET, choose_format
    from celltable.domain.warehouse import ICEBERG

    assert choose_format("plates.iceberg", None, FORMATS) == ICEBERG
    assert choose_format("warehouse", "iceberg", FORMATS) == ICEBERG
    assert choose_format("warehouse", None, FORMATS) == PARQUET


def test_crops_round_trip_through_ome_arrow_for_8_and_16_bit_images():
    rng = np.random.default_rng(0)
    for dtype in (np.uint8, np.uint16):
        crops = [rng.integers(0, np.iinfo(dtype).max, size=s, dtype=dtype)
                 for s in ((3, 4), (1, 1), (5, 2))]
        array = crops_array(crops, ["a", "b", "c"], "img.tif", "DNA")
        assert array.type == OME_ARROW
        for crop, value in zip(crops, array, strict=True):
            back = to_numpy(value)
            assert back.dtype == dtype
            np.testing.assert_array_equal(back, crop)
            np.testing.assert_array_equal(to_numpy(value.as_py()), crop)


def test_a_row_without_a_crop_is_a_null_struct_and_has_no_pixels():
    crop = np.zeros((2, 2), np.uint16)
    array = crops_array([crop, crop], ["a", "b"], "m.tif", "mask", valid=[True, False])
    assert array.null_count == 1
    with pytest.raises(ValueError, match="not an OME-Arrow struct"):
        to_numpy(array[1])


def test_pixels_outside_16_bits_are_refused():
    with pytest.raises(ImageFileError, match="16-bit"):
        crops_array([np.full((2, 2), 70000, np.int32)], ["a"], "x.tif", "DNA")
    with pytest.raises(ImageFileError, match="16-bit"):
        crops_array([np.full((2, 2), -1, np.int16)], ["a"], "x.tif", "DNA")
    assert isinstance(crops_array([], [], "x.tif", "DNA"), pa.StructArray)


def test_plain_and_ome_tiffs_give_their_one_plane_and_stacks_are_refused(tmp_path):
    import tifffile

    from celltable.adapters.images import read_plane

    pixels = np.arange(6 * 5, dtype=np.uint16).reshape(6, 5)
    tifffile.imwrite(tmp_path / "plain.tif", pixels)
    tifffile.imwrite(tmp_path / "one.ome.tif", pixels[None, None], ome=True,
                     metadata={"axes": "CZYX"})
    for name in ("plain.tif", "one.ome.tif"):
        np.testing.assert_array_equal(read_plane(str(tmp_path / name)), pixels)
    tifffile.imwrite(tmp_path / "stack.ome.tif", np.stack([pixels, pixels]), ome=True,
                     metadata={"axes": "CYX"})
    with pytest.raises(ImageFileError, match="one plane per file"):
        read_plane(str(tmp_path / "stack.ome.tif"))
    with pytest.raises(ImageFileError, match="does not exist"):
        read_plane(str(tmp_path / "missing.tif"))


def test_a_dest_of_dots_names_no_suffix():
    from celltable.adapters.formats import FORMATS
    from celltable.domain.formats import PARQUET, choose_format

    assert choose_format("plates/..", None, FORMATS) == PARQUET
    assert choose_format(".", None, FORMATS) == PARQUET
