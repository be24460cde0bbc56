"""Executors on the command line: local threads, local worker processes (HTEX), a config file."""

from __future__ import annotations

import pyarrow.parquet as pq
from typer.testing import CliRunner

import celltable
from celltable.cli import app

runner = CliRunner()


def test_two_plates_on_htex_with_two_workers_give_the_same_files_as_threads(tmp_path, two_nf1_plates):
    threads = tmp_path / "threads"
    celltable.convert(two_nf1_plates, threads, preset="cellprofiler_sqlite", chunk_size=121,
                      options=celltable.ConversionOptions(executor="threads", workers=2,
                                                          partition_by="plate"))
    htex = tmp_path / "htex"
    result = runner.invoke(app, ["convert", str(two_nf1_plates), str(htex), "--preset",
                                 "cellprofiler_sqlite", "--chunk-size", "121", "--executor", "htex",
                                 "--workers", "2", "--partition-by", "plate"])
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in htex.glob("*.parquet"))
    assert files == ["plate_1.sqlite.parquet", "plate_2.sqlite.parquet"]
    for name in files:
        table = pq.read_table(htex / name)
        assert table.num_rows == 242
        assert set(table.column("Metadata_TableNumber").to_pylist()) == {name.removesuffix(".parquet")}
        assert table.equals(pq.read_table(threads / name))


def test_htex_refuses_one_output_file_and_says_to_partition_by_plate(tmp_path, two_nf1_plates):
    dest = tmp_path / "one.parquet"
    result = runner.invoke(app, ["convert", str(two_nf1_plates), str(dest), "--preset",
                                 "cellprofiler_sqlite", "--executor", "htex", "--workers", "1"])
    assert result.exit_code == 1
    assert "add --partition-by plate" in result.output
    assert not dest.exists()


def test_a_parsl_config_file_runs_the_conversion(tmp_path, example_human):
    config = tmp_path / "my_parsl.py"
    config.write_text(
        "from parsl.config import Config\n"
        "from parsl.executors import ThreadPoolExecutor\n"
        f"config = Config(executors=[ThreadPoolExecutor(max_threads=2)], run_dir={str(tmp_path / 'run')!r})\n"
    )
    dest = tmp_path / "o.parquet"
    result = runner.invoke(app, ["convert", str(example_human), str(dest), "--preset",
                                 "cellprofiler_csv", "--parsl-config", str(config)])
    assert result.exit_code == 0, result.output
    assert pq.read_metadata(dest).num_rows == 289


def test_a_config_file_without_config_and_an_unknown_executor_are_refused(tmp_path, example_human):
    bad = tmp_path / "bad.py"
    bad.write_text("cfg = None\n")
    for args, message in ((["--parsl-config", str(bad)], "must define `config"),
                          (["--executor", "mpi"], "--executor must be one of threads, htex")):
        result = runner.invoke(app, ["convert", str(example_human), str(tmp_path / "o.parquet"),
                                     *args])
        assert result.exit_code == 1
        assert message in result.output
    assert not (tmp_path / "o.parquet").exists()
