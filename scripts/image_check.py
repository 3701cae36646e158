"""Prove the runtime image's lock resolves as linux cp313 wheels for the target architecture: `make image-check`.

    python scripts/image_check.py [--lock requirements/image.txt] [--arch x86_64]

pip downloads every pin of the lock (with --no-deps: the lock is complete; a missing transitive pin fails the
import check the image runs, and pip would not notice) as binary wheels only, for CPython 3.13 on manylinux
x86_64 (what image/Dockerfile installs on python:3.13-slim), into a temporary directory; each wheel is
unpacked, and the script prints every wheel with its unpacked size and the total. It fails when any pin has
no such wheel, or when a wheel declares a dependency the lock does not pin. Needs PyPI (or a mirror), not Docker.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import zipfile
from email.parser import Parser
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON_VERSION = "3.13"
PLATFORMS = {
    "x86_64": ("manylinux_2_28_x86_64", "manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux1_x86_64"),
    "aarch64": ("manylinux_2_28_aarch64", "manylinux2014_aarch64", "manylinux_2_17_aarch64"),
}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """name -> version of every `name==version` line, following `-r other.txt` includes."""
    pins: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            pins.update(read_lock(path.parent / line[3:].strip()))
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==(\S+)", line)
        if not match:
            raise SystemExit(f"{path}: {raw!r} is not an exact pin (name==version)")
        pins[norm(match.group(1))] = match.group(3)
    return pins


def undeclared_dependencies(wheel: Path, pins: dict[str, str]) -> list[str]:
    """Requires-Dist entries (for no extra, on linux cp313) that the lock does not pin."""
    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(name).decode())
    environment = {"python_version": PYTHON_VERSION, "python_full_version": f"{PYTHON_VERSION}.0",
                   "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
                   "implementation_name": "cpython", "platform_python_implementation": "CPython",
                   "platform_machine": "x86_64", "extra": ""}
    missing = []
    for requirement in metadata.get_all("Requires-Dist") or []:
        parsed = Requirement(requirement)
        if parsed.marker and not parsed.marker.evaluate(environment):
            continue
        if norm(parsed.name) not in pins:
            missing.append(f"{metadata['Name']} needs {parsed}")
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lock", default=str(REPO / "requirements" / "image.txt"))
    parser.add_argument("--arch", choices=sorted(PLATFORMS), default="x86_64")
    args = parser.parse_args(argv)
    lock = Path(args.lock)
    pins = read_lock(lock)
    with tempfile.TemporaryDirectory(prefix="batchlane-image-check-") as scratch:
        wheels_dir = Path(scratch) / "wheels"
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                   "--only-binary=:all:", "--implementation", "cp", "--python-version", PYTHON_VERSION,
                   *[arg for platform in PLATFORMS[args.arch] for arg in ("--platform", platform)],
                   "--dest", str(wheels_dir), *[f"{name}=={version}" for name, version in sorted(pins.items())]]
        print(f"resolving {len(pins)} pins of {lock.relative_to(REPO) if lock.is_relative_to(REPO) else lock} "
              f"as cp{PYTHON_VERSION.replace('.', '')} {args.arch} wheels", flush=True)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            print(result.stdout + result.stderr, file=sys.stderr)
            print(f"image-check FAILED: a pin has no CPython {PYTHON_VERSION} linux {args.arch} wheel (above)",
                  file=sys.stderr)
            return 1
        wheels = sorted(wheels_dir.glob("*.whl"))
        found = {norm(wheel.name.split("-")[0]) for wheel in wheels}
        absent = sorted(set(pins) - found)
        problems = [f"no wheel downloaded for {name}=={pins[name]}" for name in absent]
        total = 0
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                size = sum(info.file_size for info in archive.infolist())
            total += size
            print(f"  {size / 2**20:9.1f} MiB  {wheel.name}")
            problems += undeclared_dependencies(wheel, pins)
        print(f"{len(wheels)} wheels, {total / 2**20:.1f} MiB unpacked (the image adds python:{PYTHON_VERSION}-slim)")
        if problems:
            print("image-check FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
            return 1
    print("image-check OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
