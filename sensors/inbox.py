"""The inbox sensor of a family: complete new or changed batch files become partitions and workflow runs.

A file is taken only when it is complete. Names a producer writes under before renaming (see
``resources.sources.is_temporary``) are skipped. Any other batch file is taken once nothing has written
to it for ``Inbox.settle_seconds``: on the first tick that sees it when its mtime is already that old
(written elsewhere and renamed in, the usual drop), else once a second tick finds its size and mtime
unchanged that long after the first, so a plain slow ``cp`` (whose every write moves the mtime) is
safe too, and an mtime in the future (a skewed clock) falls back to the two-tick rule.

A small file (``Inbox.in_process_max_bytes``) runs its workflow in the run's own process when the
job's executor has an in-process mode (Dagster's default executor and the platform's both do): a
process per step costs more than a small batch's whole work. The rest of the job's run config is kept.

The cursor keeps a fingerprint per file (size, mtime_ns, a sha256 prefix; the hash is computed only
when size or mtime changed). A file whose content changes after it was handed over gets a new run of
the same partition, with the new sha256 in its tags; the run refuses the file if it changed again
since (``Inbox.file_for``), and the next ticks take the newer content. Partitions registered by
someone else (the quickstart, a user in the UI, a cursor of the older ``{"seen": [...]}`` format) are
fingerprinted on first sight without a run.
"""

import functools
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
    registered: Callable[[], set[str]]  # partitions already registered, read only when a new file is complete
    now: float
    settle_seconds: float
    # partition key -> the run config of a small file's run (None: the job's default), looked up when due
    in_process_config: Callable[[str], dict | None] = lambda key: None
    in_process_max_bytes: int = 0
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
        since = was[2] if was is not None and tuple(was[:2]) == fp else self.now  # seen unchanged since
        # complete once not written to for settle_seconds: by its own mtime (so a file written elsewhere
        # and renamed in is taken on first sight), or as this sensor saw it (an mtime ahead of our clock)
        if max(self.now - since, self.now - fp[1] / 1e9) < self.settle_seconds:
            self._wait(name, fp, since)
            return
        if self.hashed >= MAX_FILES_PER_TICK:
            self.cursor.pending[name] = [*fp, since]
            self.deferred += 1
            return
        self.hashed += 1
        sha = sha256_of(path)
        if (after := _stat(path)) != fp:  # written to while it was hashed
            if after is not None:
                self._wait(name, after, self.now)
            return
        self.cursor.pending.pop(name, None)
        first_sight = name not in self.cursor.files
        self.cursor.files[name] = [*fp, sha[:_HASH_CHARS]]
        if known is not None:
            if known[2] != sha[:_HASH_CHARS]:  # new content under a known name: a new version of the partition
                # the mtime keeps the key unique when a file goes back to an earlier content
                self._run(name, sha, f"inbox:{self.family.name}:{name}@{sha[:_HASH_CHARS]}.{fp[1]}", fp[0])
        elif first_sight and name not in self.registered():
            self._run(name, sha, f"inbox:{self.family.name}:{name}", fp[0])
        # else: handed over by someone else, or by this sensor before it kept fingerprints: now watched

    def _wait(self, name: str, fp: tuple[int, int], since: float) -> None:
        self.cursor.pending[name] = [*fp, since]
        self.settling.append(name)

    def _run(self, name: str, sha: str, run_key: str, size: int) -> None:
        small = self.in_process_max_bytes > 0 and size <= self.in_process_max_bytes
        config = self.in_process_config(name) if small else None
        self.runs.append(dg.RunRequest(partition_key=name, run_key=run_key, run_config=config,
                                       tags={"inbox_file": name, SHA256_TAG: sha, "family": self.family.name}))


def in_process_config(context: dg.SensorEvaluationContext, job_name: str, partition_key: str) -> dict | None:
    """The job's own run config of a partition with the in-process executor; None if its executor has no such mode."""
    repo = context.repository_def
    if repo is None or not repo.has_job(job_name):
        return None
    job = repo.get_job(job_name)
    modes = getattr(job.executor_def.config_schema.config_type, "fields", {})
    if "in_process" not in modes:  # a custom executor with no such mode: the job runs as it says
        return None
    # a RunRequest's run_config replaces the job's whole default config, so only the executor changes
    return {**job.get_run_config_for_partition_key(partition_key), "execution": {"config": {"in_process": {}}}}


def inbox_sensor(family: Family, clock: Callable[[], float] = time.time) -> dg.SensorDefinition:
    parts = batches(family)
    allowed = suffixes(family.spec.source.formats)

    @dg.sensor(
        name=f"{family.name}__inbox_sensor",
        job_name=family.job_name("workflow"),
        # a tick is a directory listing and a stat per file (15-30 ms, 100-160 ms with 1,000 files known on
        # 2 busy cores: bench/latency.py), and an arriving batch should not wait; the daemon evaluates
        # sensors every 5 s at most anyway
        minimum_interval_seconds=3,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Watches the {family.name} inbox folder; each complete batch file ({', '.join(allowed)}) becomes a "
            "partition and one workflow run. Files under a temporary name (.name, *.tmp, *.part) are skipped until "
            "renamed; other files are taken once not written to for the settle time (by their mtime, or over two "
            "ticks). A file whose content changes later is run again as a new version of its partition. Small "
            "files run in one process (the in-process executor)."
        ),
    )
    def _sensor(context: dg.SensorEvaluationContext, inbox: Inbox):
        cursor = _Cursor.load(context.cursor)
        folder = inbox_folder(family, inbox)
        listing = inbox.listing(folder, allowed)
        # both read only when a file is complete: a tick on a crowded inbox is a listing and a stat per file
        registered = functools.cache(lambda: set(context.instance.get_dynamic_partitions(parts.name)))
        small_run_config = functools.partial(in_process_config, context, family.job_name("workflow"))
        tick = _Tick(family, cursor, registered, clock(), inbox.settle_seconds, small_run_config,
                     inbox.in_process_max_bytes)
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
            new_keys = sorted({r.partition_key for r in tick.runs} - registered())
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
