"""The lane's one runtime image (image/Dockerfile): Batch runs it as the materializer, Lambda as the functions.

At synth, CDK only copies the build context into cdk.out (no Docker): the context is a staged copy of the
core, the functions, the lock files and the spec directory, so the image never sees .venv, tests or .git.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

PYTHON_VERSION = "3.13"
IMAGE_ROOT = "/app"
LAMBDA_ENTRYPOINT = ["python", "-m", "awslambdaric"]
# Everything but these is left out of the build context.
BUNDLE_ALWAYS = ("batchlane", "functions", "image", "requirements", "pyproject.toml")
BUNDLE_NEVER = ("__pycache__", "*.pyc", ".pytest_cache", ".lane", "*.egg-info")


def stage_bundle(repo_root: Path, spec_rel_dir: Path, extra: list[str]) -> Path:
    """Copy the repo's core, functions, image and lock files, the spec directory (and extra files) into a fresh
    directory mirroring the repo layout: the image build context, without CDK walking the checkout (.venv)."""
    staged = Path(tempfile.mkdtemp(prefix="batchlane-bundle-"))
    atexit.register(shutil.rmtree, staged, ignore_errors=True)
    keep = list(BUNDLE_ALWAYS) + extra
    if spec_rel_dir.as_posix() not in ("", "."):
        keep.append(spec_rel_dir.as_posix())
    ignore = shutil.ignore_patterns(*BUNDLE_NEVER)
    for rel in sorted(set(keep)):
        source = repo_root / rel
        if source.is_dir():
            shutil.copytree(source, staged / rel, ignore=ignore, dirs_exist_ok=True)
        elif source.is_file():
            (staged / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, staged / rel)
    return staged


class RuntimeImage(Construct):
    """One DockerImageAsset; `container_image` for Batch, `lambda_code(handler)` for container-image Lambdas."""

    def __init__(self, scope: Construct, construct_id: str, *, repo_root: Path, spec_rel: Path, dockerfile: str) -> None:
        super().__init__(scope, construct_id)
        self.spec_rel = spec_rel
        context = stage_bundle(repo_root, spec_rel.parent, [dockerfile, spec_rel.as_posix()])
        self.asset = ecr_assets.DockerImageAsset(
            self, "Asset",
            directory=str(context),
            file=dockerfile,
            platform=ecr_assets.Platform.LINUX_AMD64,
            # image/Dockerfile copies LANE_SPEC_DIR to /app/lane/ and sets LANE_SPEC from LANE_SPEC_FILE.
            build_args={"LANE_SPEC_DIR": spec_rel.parent.as_posix() or ".", "LANE_SPEC_FILE": spec_rel.name},
        )
        self.container_image = ecs.ContainerImage.from_docker_image_asset(self.asset)
        self.spec_path = f"{IMAGE_ROOT}/lane/{spec_rel.name}"

    def lambda_code(self, handler: str) -> lambda_.DockerImageCode:
        return lambda_.DockerImageCode.from_ecr(
            self.asset.repository, tag_or_digest=self.asset.image_tag, entrypoint=LAMBDA_ENTRYPOINT, cmd=[handler])
