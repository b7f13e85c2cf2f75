"""Where batches arrive: the inbox folders, one per family, under one root.

The root is ``Inbox.root`` (``INBOX_DIR``), default ``<data dir>/inbox``; a family's batches land in
``<root>/<family>`` unless its spec names another folder (``source.inbox``, relative to the data
dir, or absolute). One file is one partition, keyed by its file name.
"""

import shutil
from pathlib import Path
from typing import Iterable

import dagster as dg

from .warehouse import data_dir


class Inbox(dg.ConfigurableResource):
    """The folders where batch files (CSV or JSONL) arrive."""

    root: str = ""

    def folder(self, family: str, configured: str | None = None) -> Path:
        if configured:
            p = Path(configured)
            path = p if p.is_absolute() else data_dir() / p
        else:
            path = (Path(self.root) if self.root else data_dir() / "inbox") / family
        path.mkdir(parents=True, exist_ok=True)
        return path

    @staticmethod
    def batch_files(folder: Path, suffixes: Iterable[str]) -> list[Path]:
        """Batch files in ``folder``, oldest name first (names usually carry the batch date)."""
        allowed = {s.lower() for s in suffixes}
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in allowed)

    @staticmethod
    def file_for(folder: Path, partition_key: str) -> Path:
        path = folder / partition_key
        if not path.is_file():
            raise FileNotFoundError(
                f"batch file {partition_key!r} is not in the inbox {folder}; "
                "was it moved or deleted after the partition was registered?"
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
