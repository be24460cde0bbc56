"""Reading DeepProfiler NPZ files safely: the metadata pickle is data, never code."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from celltable.adapters.npz import describe_npz
from celltable.adapters.npz_checks import MetadataUnpickler, load_metadata
from celltable.adapters.npz_site import read_npz, site_table
from celltable.domain.errors import SourceReadError, UnsafePickleError
from celltable.domain.presets import SourceFormat, get_preset
from celltable.domain.sources import Plate, TableLocation
from tests.conftest import REAL_DATA

DP = get_preset("deepprofiler")
META = {"Metadata_Plate": "P1", "Metadata_Well": "B02", "Metadata_Site": 3, "DNA": "a.png",
        "Concentration": "", "Dose": 0.5, "Control": True, "Note": None,
        "Metadata_Model": "efficientnet"}


def _npy(array: np.ndarray) -> bytes:
    """An .npy file as numpy writes it (object arrays pickled: writing is not reading)."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def _metadata_npy(obj: object) -> bytes:
    return _npy(np.array(obj, dtype=object))


def _write_npz(path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return str(path)


def _site(path, cells=4, features=3, metadata=META, locations=None) -> str:
    rng = np.random.default_rng(0)
    locs = rng.random((cells, 2)) * 1000 if locations is None else locations
    return _write_npz(path, {
        "features.npy": _npy(rng.standard_normal((cells, features)).astype(np.float32)),
        "locations.npy": _npy(locs),
        "metadata.npy": _metadata_npy(metadata),
    })


class _RunsCommand:
    """Pickles as a call of os.system: what a hostile metadata.npy would hold."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# the unpickler ---------------------------------------------------------------------------------


def test_a_metadata_dict_is_read_back_as_it_was_written():
    data = _metadata_npy(META)
    body = data[data.index(b"\n") + 1:]  # after the .npy header
    assert load_metadata(body, "x.npz") == META


@pytest.mark.parametrize("module", [b"numpy.core.multiarray", b"numpy._core.multiarray"])
def test_pickles_of_numpy_1_and_numpy_2_are_both_read(module):
    body = pickle.dumps(np.array({"Metadata_Well": "A01"}, dtype=object), protocol=3)
    for name in (b"numpy.core.multiarray", b"numpy._core.multiarray"):
        body = body.replace(name + b"\n_reconstruct", module + b"\n_reconstruct")
    assert module + b"\n_reconstruct" in body
    assert load_metadata(body, "x.npz") == {"Metadata_Well": "A01"}


@pytest.mark.parametrize("global_", [b"os\nsystem", b"posix\nsystem", b"builtins\neval",
                                     b"subprocess\nPopen", b"numpy\nload",
                                     b"numpy.core.multiarray\nscalar"])
def test_the_unpickler_finds_no_global_but_the_array_rebuilders(global_, tmp_path):
    marker = tmp_path / "ran"
    body = b"c" + global_ + b"\n(S'touch " + str(marker).encode() + b"'\ntR."
    with pytest.raises(pickle.UnpicklingError, match="never needs"):
        MetadataUnpickler(io.BytesIO(body)).load()
    with pytest.raises(UnsafePickleError, match=r"x\.npz"):
        load_metadata(body, "x.npz")
    assert not marker.exists()


def test_a_command_hidden_inside_the_dict_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    body = pickle.dumps(np.array({"Metadata_Well": _RunsCommand(marker)}, dtype=object), protocol=3)
    with pytest.raises(UnsafePickleError, match="refused"):
        load_metadata(body, "x.npz")
    assert not marker.exists()


@pytest.mark.parametrize("value", [[1, 2], {"a": 1}, (1,), b"bytes"])
def test_metadata_values_must_be_text_numbers_booleans_or_none(value):
    body = pickle.dumps(np.array({"Metadata_Well": value}, dtype=object), protocol=3)
    with pytest.raises(UnsafePickleError, match="Metadata_Well"):
        load_metadata(body, "x.npz")


def test_metadata_must_be_a_dict():
    body = pickle.dumps(np.array(["a", "b"], dtype=object), protocol=3)
    with pytest.raises(UnsafePickleError, match="not a dict"):
        load_metadata(body, "x.npz")


# files ------------------------------------------------------------------------------------------


def test_a_crafted_npz_whose_pickle_runs_a_command_fails_naming_the_file_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    bad = _site(tmp_path / "A01_1.npz", metadata=_RunsCommand(marker))
    with pytest.raises(UnsafePickleError, match=r"A01_1\.npz") as e:
        read_npz(bad)
    assert isinstance(e.value, SourceReadError)
    plate = Plate("p", SourceFormat.NPZ, str(tmp_path), (TableLocation("Cells", bad, "A01_1"),))
    with pytest.raises(UnsafePickleError):
        describe_npz(plate, DP)
    assert not marker.exists()
    # the file is live: numpy's own loader, allowed to unpickle, runs the command
    with np.load(bad, allow_pickle=True) as npz:
        npz["metadata"]
    assert marker.exists()


def test_a_site_is_read_into_named_columns(tmp_path):
    path = _site(tmp_path / "B02_3.npz", cells=4, features=3)
    site = read_npz(path)
    table = site_table(site, image_number=7, source="B02_3.npz")
    assert table.column_names == [
        "ImageNumber", "ObjectNumber", "Metadata_NPZSource", "Metadata_Plate", "Metadata_Well",
        "Metadata_Site", "Metadata_DNA", "Metadata_Concentration", "Metadata_Dose",
        "Metadata_Control", "Metadata_Note", "Metadata_Model", "Location_Center_X",
        "Location_Center_Y", "efficientnet_0", "efficientnet_1", "efficientnet_2"]
    assert table.column("ImageNumber").to_pylist() == [7] * 4
    assert table.column("ObjectNumber").to_pylist() == [1, 2, 3, 4]
    assert str(table.schema.field("efficientnet_0").type) == "float"
    np.testing.assert_array_equal(table.column("efficientnet_2").to_numpy(), site.features[:, 2])
    np.testing.assert_array_equal(table.column("Location_Center_Y").to_numpy(), site.locations[:, 1])
    assert table.column("Metadata_Note").to_pylist() == [None] * 4
    assert table.column("Metadata_Control").to_pylist() == [True] * 4


def test_features_of_an_unnamed_model_are_named_dp_and_a_file_without_metadata_reads(tmp_path):
    path = _site(tmp_path / "s.npz", metadata={"Metadata_Well": "A01"})
    assert site_table(read_npz(path), image_number=1, source="s.npz").column_names[-1] == "DP_2"
    rng = np.random.default_rng(1)
    bare = _write_npz(tmp_path / "bare.npz", {"features.npy": _npy(rng.random((2, 2))),
                                              "locations.npy": _npy(rng.random((2, 2)))})
    assert read_npz(bare).metadata == {}


def test_a_damaged_zip_is_a_read_error_naming_the_file(tmp_path):
    good = _site(tmp_path / "good.npz")
    cut = tmp_path / "cut.npz"
    cut.write_bytes(Path(good).read_bytes()[:300])
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    for path in (cut, junk):
        with pytest.raises(SourceReadError, match=path.name):
            read_npz(str(path))


def test_a_missing_member_is_a_read_error_naming_it(tmp_path):
    path = _write_npz(tmp_path / "no_features.npz", {"locations.npy": _npy(np.zeros((2, 2))),
                                                     "metadata.npy": _metadata_npy(META)})
    with pytest.raises(SourceReadError, match=r"no_features\.npz has no features\.npy"):
        read_npz(path)


def test_features_and_locations_must_agree_in_cells(tmp_path):
    path = _site(tmp_path / "mismatch.npz", cells=4, locations=np.zeros((3, 2)))
    with pytest.raises(SourceReadError, match=r"mismatch.npz: locations.npy has shape \(3, 2\)"):
        read_npz(path)
    plate = Plate("p", SourceFormat.NPZ, str(tmp_path),
                      (TableLocation("Cells", path, "mismatch"),))
    with pytest.raises(SourceReadError, match=r"mismatch\.npz"):
        describe_npz(plate, DP)


def test_an_array_whose_header_promises_more_bytes_than_it_holds_is_refused(tmp_path):
    data = _npy(np.zeros((2, 3), dtype=np.float32))
    lying = data.replace(b"(2, 3)", b"(9, 3)")
    path = _write_npz(tmp_path / "lying.npz", {"features.npy": lying,
                                               "locations.npy": _npy(np.zeros((9, 2)))})
    with pytest.raises(SourceReadError, match="damaged"):
        read_npz(path)


def test_object_arrays_are_never_read_as_features(tmp_path):
    marker = tmp_path / "ran"
    path = _write_npz(tmp_path / "obj.npz", {
        "features.npy": _npy(np.array([[_RunsCommand(marker)]], dtype=object)),
        "locations.npy": _npy(np.zeros((1, 2)))})
    with pytest.raises(SourceReadError, match="not numbers"):
        read_npz(path)
    assert not marker.exists()


def test_the_shared_deepprofiler_file_reads_as_numpy_does(tmp_path):
    path = REAL_DATA / "deepprofiler" / "pycytominer_example" / "SQ00014812" / "A01_5.npz"
    site = read_npz(str(path))
    with np.load(path) as npz:  # no pickle: only the numeric members
        np.testing.assert_array_equal(site.features, npz["features"])
        np.testing.assert_array_equal(site.locations, npz["locations"])
    assert site.features.dtype == np.float32
    assert site.metadata["Metadata_Well"] == "A01" and site.metadata["Metadata_Site"] == 5
