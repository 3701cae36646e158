"""Load an output's transform (module:function next to the spec) and fingerprint its code."""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from batchlane import __version__
from batchlane.spec import LaneSpec

if TYPE_CHECKING:
    import pandas as pd


class TransformError(ValueError):
    pass


def _module_file(spec: LaneSpec, dotted: str) -> Path:
    module = dotted.split(":")[0]
    path = spec.base_dir / (module.replace(".", "/") + ".py")
    if not path.is_file():
        package_init = spec.base_dir / module.replace(".", "/") / "__init__.py"
        if package_init.is_file():
            return package_init
        raise TransformError(f"transform {dotted!r}: module file {path} not found next to the spec")
    return path


def code_fingerprint(spec: LaneSpec, output: str) -> str:
    """SHA-256 over the transform module's source and the core version: a code change means a rerun."""
    dotted = spec.outputs[output].transform
    digest = hashlib.sha256(f"batchlane {__version__}\n{dotted}\n".encode())
    if dotted:
        digest.update(_module_file(spec, dotted).read_bytes())
    return digest.hexdigest()


def load_transform(spec: LaneSpec, output: str) -> Callable[..., "pd.DataFrame"] | None:
    dotted = spec.outputs[output].transform
    if dotted is None:
        return None
    path = _module_file(spec, dotted)
    module_name, function_name = dotted.split(":")
    unique = f"_lane_{spec.lane}_{module_name.replace('.', '_')}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    module_spec = importlib.util.spec_from_file_location(unique, path)
    assert module_spec and module_spec.loader
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        raise TransformError(f"transform {dotted!r}: importing {path} failed: {type(exc).__name__}: {exc}") from exc
    function = getattr(module, function_name, None)
    if not callable(function):
        raise TransformError(f"transform {dotted!r}: {path} has no function {function_name!r}")
    return function
