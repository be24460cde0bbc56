"""Pure logic of celltable: presets, schemas, chunk plans, join specs, errors and ports.

This package imports the standard library only.
"""
