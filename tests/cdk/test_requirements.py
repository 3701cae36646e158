"""The pins by role: locks in requirements/, one dev entry (requirements.txt), pyproject's dependencies and extras."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib

import pytest

from .conftest import REPO

ROLES = ("runtime", "aws", "image", "dev", "cdk", "bench")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock(name: str) -> dict[str, str]:
    import sys

    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from image_check import read_lock
    finally:
        sys.path.remove(str(REPO / "scripts"))
    return read_lock(REPO / "requirements" / f"{name}.txt")


def test_every_lock_line_is_an_exact_pin():
    for role in ROLES:
        assert _lock(role), role     # read_lock refuses anything but name==version and -r includes


def test_the_dev_entry_installs_every_role_but_the_image_only_one():
    entry = (REPO / "requirements.txt").read_text()
    includes = re.findall(r"^-r (\S+)$", entry, flags=re.M)
    assert includes == ["requirements/dev.txt", "requirements/cdk.txt", "requirements/bench.txt"]
    dev = {**_lock("dev"), **_lock("cdk"), **_lock("bench")}
    for role in ("runtime", "aws"):
        assert _lock(role).items() <= dev.items(), role
    only_image = set(_lock("image")) - set(dev)
    assert only_image == {"awslambdaric", "simplejson", "snapshot-restore-py"}


def test_locks_agree_on_shared_pins_and_match_the_installed_environment():
    """`make setup` on a fresh clone installs exactly what this suite runs with."""
    seen: dict[str, str] = {}
    for role in ("runtime", "aws", "dev", "cdk", "bench"):
        for name, version in _lock(role).items():
            assert seen.setdefault(name, version) == version, (role, name)
    installed = {_norm(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    wrong = {name: (version, installed.get(name)) for name, version in seen.items() if installed.get(name) != version}
    assert wrong == {}


@pytest.mark.parametrize("extra, role", [(None, "runtime"), ("aws", "aws"), ("lambda", "image"), ("dev", "dev"),
                                         ("cdk", "cdk"), ("bench", "bench")])
def test_pyproject_pins_are_the_locked_versions(extra, role):
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    lock = {**_lock(role), **(_lock("runtime") if role != "runtime" else {})}
    for requirement in declared:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==(\S+)", requirement)
        assert match, requirement
        assert lock.get(_norm(match.group(1))) == match.group(3), (extra, requirement)


def _image_check():
    import importlib.util

    module_spec = importlib.util.spec_from_file_location("image_check", REPO / "scripts" / "image_check.py")
    assert module_spec and module_spec.loader
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_image_check_refuses_loose_pins_and_unpinned_dependencies(tmp_path):
    """Offline parts of `make image-check` (the download itself needs PyPI and runs only from make)."""
    import zipfile

    image_check = _image_check()
    loose = tmp_path / "loose.txt"
    loose.write_text("pyarrow>=20\n")
    with pytest.raises(SystemExit, match="is not an exact pin"):
        image_check.read_lock(loose)
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("demo-1.0.dist-info/METADATA",
                         "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nRequires-Dist: pinned-dep\n"
                         "Requires-Dist: missing-dep>=1\nRequires-Dist: win-only; sys_platform == 'win32'\n"
                         "Requires-Dist: extra-only; extra == 'docs'\n")
    problems = image_check.undeclared_dependencies(wheel, {"pinned-dep": "1.0"})
    assert problems == ["demo needs missing-dep>=1"]
