"""Where batches arrive: the inbox folders, one per family, under one root.

The root is ``Inbox.root`` (``INBOX_DIR``), default ``<data dir>/inbox``; a family's batches land in
``<root>/<family>`` unless its spec names another folder (``source.inbox``, relative to the data
dir, or absolute). One file is one partition, keyed by its file name.

Files still being written are not batches yet: a name with a leading ``.`` or ``~`` or ending in
``.tmp``/``.part``/``.partial``/``.crdownload`` is the producer's temporary name, taken only once it is
renamed (rename is atomic within a folder, so the renamed file is complete).
"""

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import dagster as dg

from .warehouse import data_dir

# the run tag carrying the sha256 of the file the inbox sensor saw complete; the run verifies it
SHA256_TAG = "inbox_sha256"

_TEMPORARY_PREFIXES = (".", "~")
_TEMPORARY_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")


def is_temporary(name: str) -> bool:
    lower = name.lower()
    return lower.startswith(_TEMPORARY_PREFIXES) or lower.endswith(_TEMPORARY_SUFFIXES)


def sha256_of(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@dataclass(frozen=True)
class Listing:
    batches: list[Path]  # oldest name first
    unsupported: list[Path]  # complete files that are not batches (wrong suffix)
    temporary: list[Path]  # still being written under a temporary name


class Inbox(dg.ConfigurableResource):
    """The folders where batch files (CSV or JSONL) arrive."""

    root: str = ""
    # a file is taken once it has not been written to for this long: on the first sensor tick when its
    # mtime is already that old (written elsewhere, then renamed or copied in with its times), else once
    # two ticks saw the same size and mtime this long apart, so a plain `cp` still copying is never read
    # half-written (every write moves the mtime forward)
    settle_seconds: float = 2.0
    # batch files up to this size run their workflow in the run's own process (in-process executor):
    # a process per step costs ~15 s (bench/latency.py), far more than a small batch's work; larger
    # files get the job's parallel executor. 2 MB is ~5,000 records of 360-byte CSV rows. 0: never.
    in_process_max_bytes: int = 2_000_000

    def folder(self, family: str, configured: str | None = None) -> Path:
        if configured:
            p = Path(configured)
            path = p if p.is_absolute() else data_dir() / p
        else:
            path = (Path(self.root) if self.root else data_dir() / "inbox") / family
        path.mkdir(parents=True, exist_ok=True)
        return path

    @staticmethod
    def listing(folder: Path, suffixes: Iterable[str]) -> Listing:
        allowed = {s.lower() for s in suffixes}
        batches, unsupported, temporary = [], [], []
        # scandir knows a regular file without a stat, and names sort faster than Paths: the sensor
        # lists its inbox every few seconds, however many files it holds
        with os.scandir(folder) as entries:
            names = sorted(e.name for e in entries if e.is_file())
        for name in names:
            p = folder / name
            if is_temporary(name):
                temporary.append(p)
            elif p.suffix.lower() in allowed:
                batches.append(p)
            else:
                unsupported.append(p)
        return Listing(batches, unsupported, temporary)

    @staticmethod
    def batch_files(folder: Path, suffixes: Iterable[str]) -> list[Path]:
        """Batch files in ``folder``, oldest name first (names usually carry the batch date)."""
        return Inbox.listing(folder, suffixes).batches

    @staticmethod
    def file_for(folder: Path, partition_key: str, run_tags: Mapping[str, str] | None = None) -> Path:
        """The batch file of a partition; when the run names the content it was launched for, that content."""
        path = folder / partition_key
        if not path.is_file():
            raise FileNotFoundError(
                f"batch file {partition_key!r} is not in the inbox {folder}; "
                "was it moved or deleted after the partition was registered?"
            )
        expected = (run_tags or {}).get(SHA256_TAG)
        if expected and (found := sha256_of(path)) != expected:
            # reading it anyway would materialize content nobody checked was complete
            raise dg.Failure(
                description=f"{path}: file changed since it was registered (sha256 {expected[:12]}…, now "
                            f"{found[:12]}…), so it is not ingested by this run; it will be picked up again, "
                            "as a new version, once it stops changing.",
                metadata={"file": dg.MetadataValue.path(str(path)), "expected_sha256": expected, "found_sha256": found},
            )
        return path

    @staticmethod
    def seed(folder: Path, sample: Path, suffixes: Iterable[str]) -> list[Path]:
        """Copy a family's sample batch files into its inbox (files already there are kept)."""
        allowed = {s.lower() for s in suffixes}
        copied = []
        for f in sorted(sample.iterdir()):
            if f.suffix.lower() in allowed and not (folder / f.name).exists():
                shutil.copy2(f, folder / f.name)
                copied.append(folder / f.name)
        return copied
