"""Adapters: the ports of :mod:`celltable.domain.ports` implemented on real libraries."""
