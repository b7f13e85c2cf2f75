"""The inbox sensor of a family: complete new or changed batch files become partitions and workflow runs.

A file is taken only when it is complete. Names a producer writes under before renaming (see
``resources.sources.is_temporary``) are skipped; any other batch file waits until its size and mtime
have stayed the same over two ticks for ``Inbox.settle_seconds``, so a plain slow ``cp`` is safe too.

The cursor keeps a fingerprint per file (size, mtime_ns, a sha256 prefix; the hash is computed only
when size or mtime changed). A file whose content changes after it was handed over gets a new run of
the same partition, with the new sha256 in its tags; the run refuses the file if it changed again
since (``Inbox.file_for``), and the next ticks take the newer content. Partitions registered by
someone else (the quickstart, a user in the UI, a cursor of the older ``{"seen": [...]}`` format) are
fingerprinted on first sight without a run.
"""

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import dagster as dg

from orchestration_assets.family import Family
from orchestration_assets.ingestion import inbox_folder
from orchestration_assets.core.records import suffixes
from orchestration_assets.partitions import batches
from resources.sources import SHA256_TAG, Inbox, sha256_of

MAX_FILES_PER_TICK = 25  # files hashed (so runs requested) per tick: a tick stays well inside its timeout
_HASH_CHARS = 16  # of the sha256 kept in the cursor: plenty to tell versions of one file apart
_NAMED = 5  # file names spelled out in one message


@dataclass
class _Cursor:
    # name -> [size, mtime_ns, sha256 prefix]; None: known by name only (a cursor of the older format)
    files: dict[str, list | None] = field(default_factory=dict)
    # name -> [size, mtime_ns, sensor time it was first seen so]: a file not yet known to be complete
    pending: dict[str, list] = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)  # already reported (pruned when gone)

    @classmethod
    def load(cls, raw: str | None) -> "_Cursor":
        try:
            data = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            data = {}
        if not isinstance(data, dict):
            return cls()
        files = {name: None for name in data.get("seen", [])}
        files.update(data.get("files", {}))
        return cls(files, dict(data.get("pending", {})), list(data.get("unsupported", [])))

    def dump(self) -> str:
        return json.dumps({"files": self.files, "pending": self.pending, "unsupported": self.unsupported},
                          sort_keys=True, separators=(",", ":"))


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:  # moved away between the listing and now
        return None
    return st.st_size, st.st_mtime_ns


def _names(paths) -> str:
    names = [getattr(p, "name", p) for p in paths]
    more = f" and {len(names) - _NAMED} more" if len(names) > _NAMED else ""
    return ", ".join(names[:_NAMED]) + more


@dataclass
class _Tick:
    """One evaluation: what to run, and what to tell the operator when there is nothing to run."""

    family: Family
    cursor: _Cursor
    registered: set[str]
    now: float
    settle_seconds: float
    runs: list[dg.RunRequest] = field(default_factory=list)
    settling: list[str] = field(default_factory=list)
    deferred: int = 0  # complete, but over this tick's hashing budget
    hashed: int = 0

    def consider(self, path: Path) -> None:
        name, fp = path.name, _stat(path)
        known = self.cursor.files.get(name)
        if fp is None or (known is not None and tuple(known[:2]) == fp):
            return
        was = self.cursor.pending.get(name)
        if was is None or tuple(was[:2]) != fp:
            self._wait(name, fp, self.now)
            return
        if self.now - was[2] < self.settle_seconds:
            self._wait(name, fp, was[2])
            return
        if self.hashed >= MAX_FILES_PER_TICK:
            self.cursor.pending[name] = was
            self.deferred += 1
            return
        self.hashed += 1
        sha = sha256_of(path)
        if (after := _stat(path)) != fp:  # written to while it was hashed
            if after is not None:
                self._wait(name, after, self.now)
            return
        del self.cursor.pending[name]
        first_sight = name not in self.cursor.files
        self.cursor.files[name] = [*fp, sha[:_HASH_CHARS]]
        if known is not None:
            if known[2] != sha[:_HASH_CHARS]:  # new content under a known name: a new version of the partition
                # the mtime keeps the key unique when a file goes back to an earlier content
                self._run(name, sha, f"inbox:{self.family.name}:{name}@{sha[:_HASH_CHARS]}.{fp[1]}")
        elif first_sight and name not in self.registered:
            self._run(name, sha, f"inbox:{self.family.name}:{name}")
        # else: handed over by someone else, or by this sensor before it kept fingerprints: now watched

    def _wait(self, name: str, fp: tuple[int, int], since: float) -> None:
        self.cursor.pending[name] = [*fp, since]
        self.settling.append(name)

    def _run(self, name: str, sha: str, run_key: str) -> None:
        self.runs.append(dg.RunRequest(partition_key=name, run_key=run_key,
                                       tags={"inbox_file": name, SHA256_TAG: sha, "family": self.family.name}))


def inbox_sensor(family: Family, clock: Callable[[], float] = time.time) -> dg.SensorDefinition:
    parts = batches(family)
    allowed = suffixes(family.spec.source.formats)

    @dg.sensor(
        name=f"{family.name}__inbox_sensor",
        job_name=family.job_name("workflow"),
        minimum_interval_seconds=10,  # a directory listing: cheap, and an arriving batch should not wait
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Watches the {family.name} inbox folder; each complete batch file ({', '.join(allowed)}) becomes a "
            "partition and one workflow run. Files under a temporary name (.name, *.tmp, *.part) are skipped until "
            "renamed; other files wait until their size and mtime stop changing. A file whose content changes "
            "later is run again as a new version of its partition."
        ),
    )
    def _sensor(context: dg.SensorEvaluationContext, inbox: Inbox):
        cursor = _Cursor.load(context.cursor)
        folder = inbox_folder(family, inbox)
        listing = inbox.listing(folder, allowed)
        tick = _Tick(family, cursor, set(context.instance.get_dynamic_partitions(parts.name)), clock(),
                     inbox.settle_seconds)
        present = {p.name for p in listing.batches}
        cursor.pending = {k: v for k, v in cursor.pending.items() if k in present}
        for path in listing.batches:
            tick.consider(path)

        unsupported = [p.name for p in listing.unsupported]
        new_junk = [n for n in unsupported if n not in set(cursor.unsupported)]
        cursor.unsupported = unsupported
        junk = ""
        if new_junk:  # once per file, not on every tick
            junk = f"ignoring {_names(new_junk)}: not a batch file (expected {', '.join(allowed)})"
            context.log.warning(f"{folder}: {junk}")
        elif unsupported:
            junk = f"{len(unsupported)} unsupported file(s) ignored"

        if tick.runs:
            new_keys = sorted({r.partition_key for r in tick.runs} - tick.registered)
            return dg.SensorResult(
                run_requests=tick.runs,
                dynamic_partitions_requests=[parts.build_add_request(new_keys)] if new_keys else [],
                cursor=cursor.dump(),
            )
        notes = [f"waiting for {_names(tick.settling)} to settle (taken once size and mtime stop changing)"
                 ] if tick.settling else []
        if tick.deferred:
            notes.append(f"{tick.deferred} more file(s) next tick")
        if listing.temporary:
            notes.append(f"{len(listing.temporary)} file(s) under a temporary name, taken once renamed")
        if junk:
            notes.append(junk)
        lead = "no new batch files ready" if tick.settling else "no new batch files"
        return dg.SensorResult(skip_reason=dg.SkipReason("; ".join([f"{lead} in {folder}", *notes])),
                               cursor=cursor.dump())

    return _sensor
