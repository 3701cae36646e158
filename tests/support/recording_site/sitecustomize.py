"""Loaded by Python at start-up when this directory is on PYTHONPATH (tests only): a subprocess with
$LANE_CALL_LOG set records its AWS calls (tests/support/call_recording.py) as $LANE_CALL_PRINCIPAL."""

import os

if os.environ.get("LANE_CALL_LOG"):
    import importlib.util
    from pathlib import Path

    _path = Path(__file__).resolve().parent.parent / "call_recording.py"
    _spec = importlib.util.spec_from_file_location("lane_call_recording", _path)
    if _spec and _spec.loader:
        _module = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(_module)
        _module.install()
