"""Load an output's transform (module:function next to the spec) and fingerprint its code."""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from collections.abc import Callable
from functools import lru_cache
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


_SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", "cdk.out"}
_AST_LOCK = threading.Lock()  # the runner fingerprints from several threads


def _project_sources(base: Path) -> list[Path]:
    """Every Python file in the spec's folder tree (hidden folders, virtualenvs and caches left out)."""
    import os

    found: list[Path] = []
    for folder, folders, files in os.walk(base):  # skipped folders are pruned, not walked (a store may live here)
        folders[:] = [name for name in folders if not name.startswith(".") and name not in _SKIP_DIRS]
        found.extend(Path(folder) / name for name in files if name.endswith(".py"))
    return sorted(found)


def _imported_distributions(sources: list[Path]) -> list[str]:
    """name==version of every installed distribution the project's files import (top-level names)."""
    import ast
    import importlib.metadata
    import sys

    modules: set[str] = set()
    for path in sources:
        try:
            with _AST_LOCK:  # CPython 3.11's AST constructor is not thread-safe ("recursion depth mismatch")
                tree = ast.parse(path.read_bytes(), filename=str(path))
        except (SyntaxError, ValueError):
            continue  # the transform fails to import at run time, with its own error
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module.split(".")[0])
    pins = set()
    for module in modules - set(sys.stdlib_module_names):
        try:  # most distributions are named like their module: a cheap lookup first
            pins.add(f"{module}=={importlib.metadata.version(module)}")
            continue
        except importlib.metadata.PackageNotFoundError:
            pass
        for distribution in _module_owners().get(module, []):
            try:
                pins.add(f"{distribution}=={importlib.metadata.version(distribution)}")
            except importlib.metadata.PackageNotFoundError:
                continue
    return sorted(pins)


@lru_cache(maxsize=1)
def _module_owners() -> dict[str, list[str]]:
    import importlib.metadata

    return dict(importlib.metadata.packages_distributions())


@lru_cache(maxsize=64)
def _tree_fingerprint(base: Path, stamp: tuple[tuple[str, int, int], ...]) -> str:
    sources = _project_sources(base)
    digest = hashlib.sha256(f"batchlane {__version__}\n".encode())
    for path in sources:
        digest.update(f"{path.relative_to(base).as_posix()}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    digest.update("\n".join(_imported_distributions(sources)).encode())
    return digest.hexdigest()


def code_fingerprint(spec: LaneSpec, output: str) -> str:
    """SHA-256 over the lane's code: every Python file in the spec's folder tree (so a helper module a
    transform imports counts), the versions of the packages they import, and the core version.
    A change to any of them means a rerun."""
    dotted = spec.outputs[output].transform
    if not dotted:  # a pass-through output runs no lane code
        return hashlib.sha256(f"batchlane {__version__}\npass-through\n".encode()).hexdigest()
    _module_file(spec, dotted)  # a missing module is a clear error here, not at run time
    base = spec.base_dir
    sources = _project_sources(base)
    stamp = tuple((p.as_posix(), p.stat().st_mtime_ns, p.stat().st_size) for p in sources)
    return hashlib.sha256(f"{dotted}\n{_tree_fingerprint(base, stamp)}".encode()).hexdigest()


def load_transform(spec: LaneSpec, output: str) -> Callable[..., pd.DataFrame] | None:
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
