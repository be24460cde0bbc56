from __future__ import annotations

from dataclasses import replace

from structlog.testing import capture_logs

from celltable.application.convert import convert
from celltable.domain.model import ConversionOptions, ConversionRequest, Progress
from tests.unit.test_convert import PRESET, _plate, _services


def _run(plates, **opts):
    seen: list[Progress] = []
    services = replace(_services(plates), progress=seen.append)
    request = ConversionRequest("src", "out.parquet", PRESET, ConversionOptions(**opts))
    with capture_logs() as logs:
        convert(request, services)
    return seen, logs


def test_the_listener_hears_every_plate_staged_and_every_chunk_written():
    seen, _ = _run({"a": _plate(images=3), "b": _plate(images=2)}, chunk_size=3)
    staging = [(p.done, p.total) for p in seen if p.stage == "staging"]
    writing = [(p.done, p.total, p.rows, p.rows_total) for p in seen if p.stage == "joined"]
    assert staging == [(0, 2), (1, 2), (2, 2)]
    assert writing == [(0, 5, 0, 15), (1, 5, 3, 15), (2, 5, 6, 15), (3, 5, 9, 15),
                       (4, 5, 12, 15), (5, 5, 15, 15)]
    assert seen[-1].eta_s == 0.0


def test_chunk_events_carry_the_numbers_of_the_bar():
    _, logs = _run({"p": _plate(images=2)}, chunk_size=3)
    chunks = [e for e in logs if e["event"] == "chunk_written"]
    assert [(e["chunks_done"], e["chunks_total"], e["rows_done"], e["rows_total"]) for e in chunks] == [
        (1, 2, 3, 6), (2, 2, 6, 6)]
    assert all(e["rows_per_s"] >= 0 and "eta_s" in e for e in chunks)
    staged = [e for e in logs if e["event"] == "staging_progress"]
    assert [(e["plates_done"], e["plates_total"]) for e in staged] == [(1, 1)]


def test_rates_and_time_left_follow_rows_when_their_total_is_known():
    p = Progress("joined", 1, 4, 100, 400, 2.0)
    assert p.rows_per_s == 50.0 and p.eta_s == 6.0
    assert Progress("staging", 1, 3, 500, 0, 1.0).eta_s == 2.0  # by plates
    assert Progress("joined", 0, 4, 0, 400, 0.0).eta_s is None
