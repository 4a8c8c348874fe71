"""Shared capabilities: what more than one stage needs, above the foundation and below the stages.

Each subpackage may import `schemas` (contracts), `streamgate` (foundation) and other `shared` packages,
never a stage or an app (tests/unit/test_layers.py).
"""
