"""Build the Lambda dependency layer without Docker: `python -m stacks.build_layer [--target build/layer]`.

pip downloads manylinux x86_64 wheels for the Lambda runtime's Python (never builds from source),
at the exact versions pinned in requirements.txt, into <target>/python; then trims what Lambda never
imports (tests, caches, headers) and fails if the result exceeds Lambda's 250 MiB unzipped limit.
Needs the network (PyPI): it is an explicit step (`make layer`), never part of synth or the tests;
without it, synth falls back to the AWS SDK for pandas managed layer (see cdk.json).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from stacks.lane_stack import LAYER_UNZIPPED_LIMIT, PYTHON_VERSION
from stacks.settings import DEFAULT_LAYER_DIR, REPO_ROOT

# What the handlers import at run time (batchlane core + AWS adapters), and their dependencies.
# boto3/botocore are pinned too: the runtime's bundled SDK may predate S3 conditional writes (IfNoneMatch).
RUNTIME_PACKAGES = (
    "pyarrow", "pandas", "numpy", "python-dateutil", "six", "tzdata",
    "pydantic", "pydantic_core", "annotated-types", "typing_extensions", "typing-inspection",
    "PyYAML", "boto3", "botocore", "s3transfer", "jmespath", "urllib3",
)
TRIM_DIRS = ("tests", "test", "__pycache__", "include", "benchmarks")
TRIM_GLOBS = ("*.pyc", "*.pyx", "*.pxd", "*.pyi", "*.h", "*.hpp", "*.c", "*.cpp")


def pinned(requirements: Path, names: tuple[str, ...]) -> list[str]:
    """`name==version` lines of requirements.txt for names (case and -/_ insensitive)."""
    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    wanted = {norm(name) for name in names}
    pins = []
    for line in requirements.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line.strip())
        if match and norm(match.group(1)) in wanted:
            pins.append(f"{match.group(1)}=={match.group(2)}")
    return pins


def trim(site: Path) -> None:
    for path in sorted(site.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and path.name in TRIM_DIRS:
            shutil.rmtree(path, ignore_errors=True)
    for pattern in TRIM_GLOBS:
        for path in site.rglob(pattern):
            if path.is_file():
                path.unlink()
    for path in site.glob("*.dist-info"):
        for item in path.iterdir():
            if item.name not in ("METADATA", "RECORD", "top_level.txt", "LICENSE", "LICENSE.txt"):
                if item.is_file():
                    item.unlink()


def size_of(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default=str(REPO_ROOT / DEFAULT_LAYER_DIR))
    parser.add_argument("--requirements", default=str(REPO_ROOT / "requirements.txt"))
    args = parser.parse_args(argv)
    target = Path(args.target)
    pins = pinned(Path(args.requirements), RUNTIME_PACKAGES)
    with tempfile.TemporaryDirectory(prefix="batchlane-layer-") as scratch:
        site = Path(scratch) / "python"
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
            "--platform", "manylinux2014_x86_64", "--implementation", "cp",
            "--python-version", PYTHON_VERSION, "--only-binary=:all:",
            "--target", str(site), *pins,
        ]
        print("+", " ".join(command), flush=True)
        try:
            subprocess.run(command, check=True)
        except subprocess.CalledProcessError as exc:
            print(f"pip could not fetch the pinned wheels for Python {PYTHON_VERSION} (exit {exc.returncode}); "
                  "the layer needs PyPI (or a mirror with manylinux wheels)", file=sys.stderr)
            return 1
        trim(site)
        size = size_of(site)
        if size > LAYER_UNZIPPED_LIMIT:
            print(f"layer is {size / 2**20:.0f} MiB unzipped, over Lambda's 250 MiB", file=sys.stderr)
            return 1
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        shutil.move(str(site), str(target / "python"))
    print(f"layer: {target}/python, {size / 2**20:.0f} MiB unzipped, Python {PYTHON_VERSION}, {len(pins)} pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
