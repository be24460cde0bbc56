from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from celltable.domain.plan import MAX_CHUNK_ROWS, MIN_CHUNK_ROWS, auto_chunk_size, plan_chunks

counts = st.lists(st.tuples(st.integers(-50, 500), st.integers(0, 40)), max_size=60)


@given(counts, st.integers(1, 120), st.integers(-100, 600))
def test_every_key_falls_in_exactly_one_chunk(rows_by_key, chunk_size, key):
    chunks = plan_chunks("p", rows_by_key, chunk_size)
    if rows_by_key:
        assert sum(c.contains(key) for c in chunks) == 1
    else:
        assert chunks == ()


@given(counts, st.integers(1, 120))
def test_no_row_is_lost_or_counted_twice(rows_by_key, chunk_size):
    chunks = plan_chunks("p", rows_by_key, chunk_size)
    assert sum(c.rows for c in chunks) == sum(n for _, n in rows_by_key)
    for key in {k for k, _ in rows_by_key}:
        assert sum(c.contains(key) for c in chunks) == 1


@given(counts, st.integers(1, 120))
def test_chunks_stay_near_the_chunk_size_without_splitting_images(rows_by_key, chunk_size):
    chunks = plan_chunks("p", rows_by_key, chunk_size)
    totals: dict[int, int] = {}
    for k, n in rows_by_key:
        totals[k] = totals.get(k, 0) + n
    for c in chunks[:-1]:
        biggest = max(n for k, n in totals.items() if c.contains(k))
        assert c.rows < chunk_size + biggest
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_an_empty_input_gives_an_empty_plan():
    assert plan_chunks("p", [], 10) == ()


def test_ranges_are_contiguous_and_open_at_both_ends():
    chunks = plan_chunks("p", [(1, 5), (2, 5), (3, 5), (7, 5)], 10)
    assert [(c.lower, c.upper, c.rows) for c in chunks] == [(None, 3, 10), (3, None, 10)]


def test_a_chunk_size_below_one_is_refused():
    with pytest.raises(ValueError, match="chunk_size"):
        plan_chunks("p", [(1, 1)], 0)


def test_automatic_chunk_size_shrinks_with_columns_and_memory():
    wide = auto_chunk_size(1800, 8 * 2**30)
    narrow = auto_chunk_size(300, 8 * 2**30)
    assert MIN_CHUNK_ROWS <= wide < narrow <= MAX_CHUNK_ROWS
    assert auto_chunk_size(1800, 64 * 2**20) < wide
