"""Checking a partitioned product partition by partition, reusing the evidence of unchanged partitions.

Every partition the check reads is fed to fresh evaluators of its own, so each rule leaves one mergeable summary
per partition (``rules.Partial``: judged and failing counts, the first failing values or row numbers, extremes,
the newest value) next to the partition's SHA-256 and rows: the ``PartitionEvidence`` of the check receipt. A
rule's result is then always the merge of those summaries in partition order, the same code whether a summary
was just computed or read back from the certification in force, and equal to what one evaluator fed every batch
gives (tests prove it on randomized products).

Which partitions are read (``_decide``), failing closed:

- nothing is reused without prior evidence (``reuse.PriorEvidence``: the PASSed check of the certification in
  force, same contract and checker version), nor when the contract has a rule that does not merge per partition
  (``expect:`` row expressions): then every partition is read, and the receipt says why;
- a partition is reused only with the same name and SHA-256 and a reusable summary of every mergeable rule
  (``max_age`` is re-judged against this check's clock: a partition whose newest value now lies beyond the
  allowed future skew is read again); any other partition is read in full;
- ``unique`` keys cannot be judged per partition, but the reused partitions come from a check that found the key
  free of duplicates, so a duplicate needs a partition that is new or changed. Its keys are read, and with them
  the keys of exactly those reused partitions whose recorded per-column key ranges all overlap a new partition's
  (a key can be shared only where every key column's ranges overlap). The duplicate count, the repeated keys and
  their sample equal a full read's (keys of unread partitions occur once in the whole product); the unread
  partitions' key counts are added to the judged total. A key the certification did not find clean is read in
  every partition.
- after the scan, each reused partition's SHA-256 as the checker hashed it must equal its evidence's: otherwise the
  whole check runs again reading everything (and the caller then sees the bytes differ from those recorded).

The new partitions' key columns are read once more before the scan (their ranges decide which old partitions to
read); every summary itself comes from the one scan.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from batchlane.checking import engine as e
from batchlane.checking import rules as r
from batchlane.checking.arrowtypes import plain, value_type
from batchlane.checking.change import Baseline, change_results
from batchlane.checking.errors import CheckError
from batchlane.checking.filehash import BackgroundHash
from batchlane.checking.footer import FooterCrossCheck, cheapest_leaf, integer_range_hint
from batchlane.checking.outcome import CheckOutcome
from batchlane.checking.reuse import Partitioning, PriorEvidence, evidence_fingerprint
from batchlane.contract import Contract, RuleOptions
from batchlane.receipts import (
    FileDigest,
    KeyRange,
    PartitionCheck,
    PartitionEvidence,
    RuleEvidence,
    RuleResult,
    canonical_json,
)

_LONGEST_RANGE_TEXT = 256  # a string key's extremes longer than this are not kept (the partition then overlaps all)
_SHOWN_PARTITIONS = 10


class _StaleEvidence(Exception):
    """A reused partition's bytes are not the ones its evidence describes: read everything instead."""


# ----------------------------------------------------------------------------- rule identity


def _set_digest(values: pa.Array) -> str:
    """SHA-256 of a value set's Arrow IPC form: the same referenced values give the same digest."""
    sink = pa.BufferOutputStream()
    batch = pa.record_batch([values], names=["v"])
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return hashlib.sha256(sink.getvalue()).hexdigest()


def rule_key(evaluator: r.Evaluator) -> str | None:
    """What a partition's summary of this rule depends on besides the partition's bytes (None: not per partition).
    Bounds that depend on the check's clock are not part of it: ``max_age`` is re-judged at every check."""
    parts: list[Any]
    if isinstance(evaluator, r.NotNull):
        parts = ["not_null", evaluator.column]
    elif isinstance(evaluator, r.Range):
        parts = ["range", evaluator.column, str(evaluator.arrow_type), evaluator.low, evaluator.high]
    elif isinstance(evaluator, r.InSet):
        parts = ["in_set", evaluator.rule, evaluator.column, _set_digest(evaluator.value_set)]
    elif isinstance(evaluator, r.Regex):
        parts = ["regex", evaluator.column, evaluator.pattern]
    elif isinstance(evaluator, r.MaxAge):
        parts = ["max_age", evaluator.column, evaluator.zone]
    elif isinstance(evaluator, r.RowCount):
        parts = ["row_count"]
    elif isinstance(evaluator, r.Unique):
        parts = ["unique", list(evaluator.columns), [str(t) for t in evaluator.keys.types]]
    else:
        return None
    return hashlib.sha256(canonical_json(parts)).hexdigest()[:24]


def _label(evaluator: r.Evaluator) -> str:
    described = evaluator.describe()
    return ", ".join(f"{rule}({column})" if column else rule for rule, column, _ in described)


def _kind(evaluator: r.Evaluator) -> tuple[str, str | None]:
    rule, column, _ = evaluator.describe()[0]
    if isinstance(evaluator, r.Range):
        rule = "range"
    return rule, column


# ----------------------------------------------------------------------------- key ranges


def range_type(arrow_type: pa.DataType) -> str | None:
    """The label under which a key column's extremes are compared; None when they are not kept."""
    kind = value_type(arrow_type)
    if pat.is_string(kind) or pat.is_large_string(kind) or pat.is_string_view(kind):
        return "string"
    if pat.is_integer(kind) or pat.is_boolean(kind) or pat.is_timestamp(kind) or pat.is_date32(kind):
        return str(kind)
    return None


class _KeyRanges:
    """Per key column: min and max of its non-null values; and the rows whose key has no null (what ``unique``
    judges). A column whose extremes cannot be kept gets no range: it overlaps every other partition."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        self.complete = 0
        self.low: list[Any] = [None] * len(columns)
        self.high: list[Any] = [None] * len(columns)
        self.types: list[str | None] = [None] * len(columns)
        self.usable = [True] * len(columns)

    def update(self, batch: pa.RecordBatch) -> None:
        arrays = [batch.column(name) for name in self.columns]
        valid = None
        for array in arrays:
            if array.null_count:
                mask = array.is_valid()
                valid = mask if valid is None else pc.and_(valid, mask)
        self.complete += len(arrays[0]) if valid is None else int(pc.sum(valid).as_py() or 0)
        for position, array in enumerate(arrays):
            if self.usable[position]:
                self._extend(position, array)

    def _extend(self, position: int, array: pa.Array) -> None:
        label = range_type(array.type)
        if label is None or (self.types[position] is not None and self.types[position] != label):
            self.usable[position] = False
            return
        self.types[position] = label
        if len(array) == array.null_count:
            return
        try:
            if pat.is_dictionary(array.type):
                array = array.dictionary.take(pc.unique(array.indices.drop_null()))
            array = plain(array)
            if pat.is_timestamp(array.type):
                array = array.cast(pa.int64())
            elif pat.is_date32(array.type):
                array = array.cast(pa.int32())
            bounds = pc.min_max(array)
            low, high = bounds["min"].as_py(), bounds["max"].as_py()
        except (pa.ArrowException, ValueError, TypeError, UnicodeDecodeError):
            self.usable[position] = False
            return
        if isinstance(low, str) and max(len(low), len(high)) > _LONGEST_RANGE_TEXT:
            self.usable[position] = False
            return
        self.low[position] = low if self.low[position] is None else min(self.low[position], low)
        self.high[position] = high if self.high[position] is None else max(self.high[position], high)

    def ranges(self) -> list[KeyRange | None]:
        found: list[KeyRange | None] = []
        for position in range(len(self.columns)):
            label, low = self.types[position], self.low[position]
            usable = self.usable[position] and label is not None and low is not None
            found.append(KeyRange(type=label, min=low, max=self.high[position]) if usable and label else None)
        return found


def _may_share_a_key(left: list[KeyRange | None], right: list[KeyRange | None]) -> bool:
    """False only when some key column's ranges are comparable and disjoint."""
    if len(left) != len(right):
        return True
    for mine, theirs in zip(left, right, strict=True):
        if mine is None or theirs is None or mine.type != theirs.type:
            continue
        try:
            if mine.max < theirs.min or theirs.max < mine.min:
                return False
        except TypeError:
            continue
    return True


# ----------------------------------------------------------------------------- deciding what to read


@dataclass
class _Decision:
    reused: dict[int, PartitionEvidence] = field(default_factory=dict)   # file -> evidence of its mergeable rules
    feeds: dict[int, set[int] | None] = field(default_factory=dict)      # unique (plan position) -> files fed
    unread_keys: dict[int, int] = field(default_factory=dict)           # unique -> keys in partitions not fed
    reasons: list[str] = field(default_factory=list)
    rules_reused: list[str] = field(default_factory=list)
    source: str | None = None


def _evidence_by_key(entry: PartitionEvidence) -> dict[str, RuleEvidence]:
    return {rule.key: rule for rule in entry.rules}


def _partial(evidence: RuleEvidence) -> r.Partial:
    return r.Partial(evidence.judged, evidence.failing, list(evidence.examples), dict(evidence.state))


def _reusable(evaluator: r.Evaluator, evidence: RuleEvidence | None) -> str | None:
    """Why this partition's summary of the rule cannot be reused (None: it can)."""
    if evidence is None:
        return "no summary recorded"
    if evidence.broken is not None:
        return "the rule could not evaluate it then"
    if isinstance(evaluator, r.Regex) and evidence.state.get("error"):
        return "the pattern failed then"
    if isinstance(evaluator, r.MaxAge) and evaluator.in_future(_partial(evidence)):
        return "its newest value lies beyond the allowed future skew now"
    try:
        evaluator.fresh().absorb(_partial(evidence), 0)
    except (KeyError, ValueError, TypeError) as exc:
        return f"its summary is not readable ({exc})"
    return None


def _full(decision: _Decision, live: list[r.Evaluator], reason: str) -> _Decision:
    decision.reasons.append(reason)
    decision.feeds = {position: None for position, ev in enumerate(live) if isinstance(ev, r.Unique)}
    return decision


def _decide(live: list[r.Evaluator], product: e._Product, partitioning: Partitioning, fingerprint: str,
            keys: dict[int, str | None]) -> _Decision:
    decision = _Decision()
    prior = partitioning.prior
    if prior is None:
        return _full(decision, live, partitioning.no_prior or "no evidence of a certification in force to reuse")
    if prior.fingerprint != fingerprint:
        return _full(decision, live, f"the certification in force ({prior.source}) was checked under another contract "
                                     "or checker version: its evidence is not reused")
    whole = [ev for ev in live if not ev.mergeable and not isinstance(ev, r.Unique)]
    if whole:
        return _full(decision, live, ", ".join(_label(ev) for ev in whole) + ": not partition-wise mergeable, so "
                                     "every partition is read")
    names = list(partitioning.names)
    expected = list(partitioning.expected_sha256 or [None] * len(names))
    matched: dict[int, PartitionEvidence] = {}
    for file, name in enumerate(names):
        entry = prior.partitions.get(name)
        if entry is not None and expected[file] is not None and expected[file] == entry.sha256:
            matched[file] = entry
    new = [file for file in range(len(names)) if file not in matched]
    mergeable = [position for position, ev in enumerate(live) if ev.mergeable]
    read_again: list[str] = []
    for file, entry in matched.items():
        recorded = _evidence_by_key(entry)
        why = next(((live[position], found) for position in mergeable
                    if (found := _reusable(live[position], recorded.get(keys[position] or ""))) is not None), None)
        if why is None:
            decision.reused[file] = entry
        else:
            read_again.append(f"{names[file]} ({_label(why[0])}: {why[1]})")
    if read_again:
        decision.reasons.append(f"{len(read_again)} unchanged partition(s) read again: " + "; ".join(
            read_again[:_SHOWN_PARTITIONS]) + (" ..." if len(read_again) > _SHOWN_PARTITIONS else ""))
    if new:
        shown = ", ".join(names[file] for file in new[:_SHOWN_PARTITIONS])
        decision.reasons.append(f"{len(new)} new or changed partition(s) read: {shown}"
                                + (" ..." if len(new) > _SHOWN_PARTITIONS else ""))
    if decision.reused:
        decision.source = prior.source
        decision.rules_reused = [_label(live[position]) for position in mergeable]
    new_ranges = _new_key_ranges(live, product, new, prior)
    for position, evaluator in enumerate(live):
        if isinstance(evaluator, r.Unique):
            _decide_unique(decision, position, evaluator, keys[position] or "", prior, new,
                           [file for file in range(len(names)) if file not in decision.reused], new_ranges)
    return decision


def _new_key_ranges(live: list[r.Evaluator], product: e._Product, new: list[int],
                    prior: PriorEvidence) -> dict[tuple[int, int], tuple[int, list[KeyRange | None]]]:
    """(unique position, file) -> (complete keys, ranges) of each new partition, for keys the certification found
    clean: one read of just those key columns."""
    wanted = [(position, ev) for position, ev in enumerate(live)
              if isinstance(ev, r.Unique) and ",".join(ev.columns) in prior.clean_keys]
    found: dict[tuple[int, int], tuple[int, list[KeyRange | None]]] = {}
    if not wanted:
        return found
    columns = list(dict.fromkeys(name for _, ev in wanted for name in ev.columns))
    for file in new:
        trackers = {position: _KeyRanges(ev.columns) for position, ev in wanted}
        for _, table in e._row_groups(product, file, columns):
            for batch in table.to_batches():
                for tracker in trackers.values():
                    tracker.update(batch)
        for position, tracker in trackers.items():
            found[(position, file)] = (tracker.complete, tracker.ranges())
    return found


def _decide_unique(decision: _Decision, position: int, evaluator: r.Unique, key: str, prior: PriorEvidence,
                   new: list[int], files_read: list[int],
                   new_ranges: dict[tuple[int, int], tuple[int, list[KeyRange | None]]]) -> None:
    label = ",".join(evaluator.columns)
    if label not in prior.clean_keys:
        decision.feeds[position] = None
        if decision.reused:
            decision.reasons.append(f"unique({label}): the certification in force did not find this key free of "
                                    "duplicates, so every partition's keys are read")
        return
    sources = [new_ranges[(position, file)][1] for file in new if new_ranges[(position, file)][0] > 0]
    # every partition read anyway (new, changed, or unchanged without reusable evidence) feeds the key
    feed = set(files_read)
    unread = 0
    for file, entry in decision.reused.items():
        recorded = _evidence_by_key(entry).get(key)
        if recorded is None or recorded.key_ranges is None or recorded.judged is None or recorded.broken:
            feed.add(file)
        elif recorded.judged > 0 and any(_may_share_a_key(recorded.key_ranges, ranges) for ranges in sources):
            feed.add(file)
        else:
            unread += recorded.judged
    decision.feeds[position] = feed
    decision.unread_keys[position] = unread
    if decision.reused and unread:
        decision.rules_reused.append(_label(evaluator))


# ----------------------------------------------------------------------------- the check


def check_partitioned(product: e._Product, hashing: BackgroundHash, contract: Contract, now: dt.datetime | None,
                      reference_values: e.ReferenceResolver | None, footer_hints: bool, started: float,
                      baseline: Baseline | None, sql: e._Sql, partitioning: Partitioning) -> CheckOutcome:
    names = list(partitioning.names)
    if len(names) != len(product.files):
        raise CheckError(f"{len(names)} partition names for {len(product.files)} files")
    if len(set(names)) != len(names):
        raise CheckError("partition names repeat: each file must be one partition")
    expected = partitioning.expected_sha256
    if expected is not None and len(expected) != len(names):
        raise CheckError(f"{len(expected)} expected digests for {len(names)} partitions")
    try:
        return _attempt(product, hashing, contract, now, reference_values, footer_hints, started, baseline, sql,
                        partitioning)
    except _StaleEvidence as exc:
        again = Partitioning(names=names, expected_sha256=expected, prior=None, no_prior=str(exc))
        return _attempt(product, BackgroundHash(product.paths), contract, now, reference_values, footer_hints,
                        started, baseline, sql, again)


@dataclass
class _Scanned:
    """What one scan found, per file: rows, fresh summaries (or why a rule broke), key ranges."""

    rows: list[int]
    partials: dict[tuple[int, int], r.Partial] = field(default_factory=dict)        # (file, position)
    broken: dict[tuple[int, int], str] = field(default_factory=dict)
    keys: dict[tuple[int, int], _KeyRanges] = field(default_factory=dict)          # (file, unique position)
    read: dict[int, Literal["full", "keys"]] = field(default_factory=dict)
    cross_check: FooterCrossCheck | None = None


def _attempt(product: e._Product, hashing: BackgroundHash, contract: Contract, now: dt.datetime | None,
             reference_values: e.ReferenceResolver | None, footer_hints: bool, started: float,
             baseline: Baseline | None, sql: e._Sql, partitioning: Partitioning) -> CheckOutcome:
    plan = e._plan(product, contract, e._utc(now), reference_values, sql)
    live = [ev for ev in plan if not isinstance(ev, r.Fixed)]
    keys = {position: rule_key(ev) for position, ev in enumerate(live)}
    fingerprint = evidence_fingerprint(contract)
    decision = _decide(live, product, partitioning, fingerprint, keys)
    for position, evaluator in enumerate(live):
        if isinstance(evaluator, r.Unique):
            sized = _sized(evaluator, product, decision.feeds[position], footer_hints)
            sized.unread_non_null = decision.unread_keys.get(position, 0)
            live[position] = sized
    shared = {position: ev for position, ev in enumerate(live) if not ev.mergeable}
    broken_shared: dict[int, str] = {}
    scanned = _scan(product, live, decision, shared, broken_shared)
    results = _results(plan, live, product, decision, scanned, shared, broken_shared)
    total = sum(scanned.rows)
    if contract.change_rules():
        results.extend(e._apply(result, options, None) if options != RuleOptions() else result
                       for result, options in change_results(contract, total, results, baseline))
    try:
        digests = hashing.result()
    except OSError as exc:
        raise CheckError(f"cannot hash product files: {exc}") from exc
    for file, entry in decision.reused.items():
        if digests[file] != (entry.size, entry.sha256):
            raise _StaleEvidence(f"partition {partitioning.names[file]}: its file as hashed now ({digests[file][1]}) "
                                 f"is not the one its evidence describes ({entry.sha256}): every partition is read")
    files = [
        FileDigest(uri=uri, size=size, sha256=sha, rows=rows, schema={f.name: str(f.type) for f in parquet.schema_arrow})
        for uri, parquet, rows, (size, sha) in zip(product.uris, product.files, scanned.rows, digests, strict=True)
    ]
    evidence = _evidence(live, keys, product, partitioning, decision, scanned, digests)
    read = [partitioning.names[file] for file in sorted(scanned.read)]
    summary = PartitionCheck(
        fingerprint=fingerprint, reused_from=decision.source, read=read,
        keys_only=[partitioning.names[file] for file, how in sorted(scanned.read.items()) if how == "keys"],
        reused=[partitioning.names[file] for file in sorted(decision.reused)],
        rules_reused=decision.rules_reused, full_read=decision.reasons)
    verdict: Literal["PASS", "FAIL"] = "PASS" if not any(result.blocking for result in results) else "FAIL"
    return CheckOutcome(verdict=verdict, rules=results, rows=total, files=files, seconds=time.perf_counter() - started,
                        partition_evidence=evidence, partition_check=summary)


def _sized(evaluator: r.Unique, product: e._Product, feed: set[int] | None, footer_hints: bool) -> r.Unique:
    """The unique evaluator for the partitions it is fed: sized (and hinted) by those files' footers."""
    files = range(len(product.files)) if feed is None else sorted(feed)
    chosen = [product.files[file] for file in files]
    sized = r.Unique(evaluator.columns, evaluator.keys.types, sum(f.metadata.num_rows for f in chosen))
    if "options" in vars(evaluator):
        sized.options = evaluator.options
    if footer_hints and len(evaluator.columns) == 1 and chosen:
        types = e._column_types(product, evaluator.columns[0])
        if types and all(pat.is_signed_integer(t) for t in types):
            claimed = integer_range_hint(chosen, evaluator.columns[0])
            if claimed is not None:
                sized.hint_range(*claimed)
    return sized


def _feeds(decision: _Decision, position: int, file: int) -> bool:
    feed = decision.feeds.get(position)
    return feed is None or file in feed


def _scan(product: e._Product, live: list[r.Evaluator], decision: _Decision, shared: dict[int, r.Evaluator],
          broken_shared: dict[int, str]) -> _Scanned:
    cross_check = FooterCrossCheck(product.uris, product.files)
    scanned = _Scanned(rows=[])
    offset = 0
    for file, parquet in enumerate(product.files):
        full = file not in decision.reused
        fresh = {position: ev.fresh() for position, ev in enumerate(live) if ev.mergeable} if full else {}
        feeding = {position: ev for position, ev in shared.items() if _feeds(decision, position, file)}
        if not fresh and not feeding:
            scanned.rows.append(decision.reused[file].rows)
            offset += decision.reused[file].rows
            continue
        scanned.read[file] = "full" if full else "keys"
        columns = list(dict.fromkeys(c for ev in [*fresh.values(), *feeding.values()] for c in ev.columns))
        counting_leaf = None if columns else cheapest_leaf(parquet)
        trackers = {position: _KeyRanges(ev.columns) for position, ev in feeding.items()
                    if isinstance(ev, r.Unique)}
        rows = 0
        if columns or counting_leaf is not None:
            for group, table in e._row_groups(product, file, columns, counting_leaf):
                cross_check.row_group(file, group, table)
                for batch in table.to_batches():
                    _feed(fresh, batch, rows, scanned.broken, file)
                    for position, ev in feeding.items():
                        if position not in broken_shared:
                            try:
                                ev.update(batch, offset + rows)
                            except e._EVALUATION_ERRORS as exc:
                                types = ", ".join(f"{c}: {batch.schema.field(c).type}" for c in ev.columns)
                                broken_shared[position] = e._Scan._why(types, exc)
                    for tracker in trackers.values():
                        tracker.update(batch)
                    rows += batch.num_rows
            cross_check.file_done(file, rows)
        if not full and rows != decision.reused[file].rows:
            raise _StaleEvidence(f"partition {product.uris[file]}: {rows} rows read, its evidence says "
                                 f"{decision.reused[file].rows}: every partition is read")
        for position, ev in fresh.items():
            if (file, position) not in scanned.broken:
                scanned.partials[(file, position)] = ev.partial()
        for position, tracker in trackers.items():
            scanned.keys[(file, position)] = tracker
        scanned.rows.append(rows)
        offset += rows
    scanned.cross_check = cross_check
    return scanned


def _feed(fresh: dict[int, r.Evaluator], batch: pa.RecordBatch, local_offset: int,
          broken: dict[tuple[int, int], str], file: int) -> None:
    for position, ev in fresh.items():
        if (file, position) in broken:
            continue
        try:
            ev.update(batch, local_offset)
        except e._EVALUATION_ERRORS as exc:
            types = ", ".join(f"{c}: {batch.schema.field(c).type}" for c in ev.columns)
            broken[(file, position)] = e._Scan._why(types, exc)


def _results(plan: list[r.Evaluator], live: list[r.Evaluator], product: e._Product, decision: _Decision,
             scanned: _Scanned, shared: dict[int, r.Evaluator], broken_shared: dict[int, str]) -> list[RuleResult]:
    def rescan_all(wanted: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
        return (batch for batch, _ in e._batches(product, wanted))

    def rescan_for(position: int):
        feed = decision.feeds.get(position)
        if feed is None:
            return rescan_all

        def rescan(wanted: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
            for file in sorted(feed):
                for _, table in e._row_groups(product, file, wanted):
                    yield from table.to_batches()
        return rescan

    offsets = [sum(scanned.rows[:file]) for file in range(len(scanned.rows))]
    live_position = {id(ev): position for position, ev in enumerate(plan_live(plan))}
    results: list[RuleResult] = []
    for planned in plan:
        if isinstance(planned, r.Fixed):
            results.extend(e._judge(planned, planned.finish(rescan_all), usable=False))
            continue
        position = live_position[id(planned)]
        evaluator = live[position]
        if evaluator.mergeable:
            results.extend(_merged(position, evaluator, decision, scanned, offsets))
        elif position in broken_shared:
            results.extend(e._judge(evaluator, evaluator.failed(broken_shared[position]), usable=False))
        else:
            try:
                results.extend(e._judge(evaluator, evaluator.finish(rescan_for(position)), usable=True))
            except e._EVALUATION_ERRORS as exc:
                why = e._Scan._why(", ".join(evaluator.columns), exc)
                results.extend(e._judge(evaluator, evaluator.failed(why), usable=False))
    if scanned.cross_check is not None:
        results.extend(scanned.cross_check.results())
    return results


def plan_live(plan: list[r.Evaluator]) -> list[r.Evaluator]:
    return [ev for ev in plan if not isinstance(ev, r.Fixed)]


def _merged(position: int, template: r.Evaluator, decision: _Decision, scanned: _Scanned,
            offsets: list[int]) -> list[RuleResult]:
    """The rule's result: every partition's summary absorbed in partition order."""
    merged = template.fresh()
    key = rule_key(template) or ""
    for file, offset in enumerate(offsets):
        if (file, position) in scanned.broken:
            return e._judge(template, template.failed(scanned.broken[(file, position)]), usable=False)
        partial = scanned.partials.get((file, position))
        if partial is None:
            recorded = _evidence_by_key(decision.reused[file])[key]
            partial = _partial(recorded)
            if isinstance(template, r.MaxAge):  # re-judged now: not in the future (else it was read)
                partial = r.Partial(partial.judged, 0, [], partial.state)
        merged.absorb(partial, offset)
    return e._judge(merged, merged.finish(lambda wanted: iter(())), usable=True)


def _evidence(live: list[r.Evaluator], keys: dict[int, str | None], product: e._Product, partitioning: Partitioning,
              decision: _Decision, scanned: _Scanned, digests: list[tuple[int, str]]) -> list[PartitionEvidence]:
    found = []
    for file, name in enumerate(partitioning.names):
        size, sha = digests[file]
        if file in decision.reused:
            recorded = _evidence_by_key(decision.reused[file])
            rules = []
            for position, ev in enumerate(live):
                key = keys[position]
                if key is None:
                    continue
                tracker = scanned.keys.get((file, position))
                if tracker is not None:
                    rules.append(_unique_evidence(ev, key, tracker))
                elif key in recorded:
                    rules.append(recorded[key])
        else:
            rules = []
            for position, ev in enumerate(live):
                key = keys[position]
                if key is None:
                    continue
                if ev.mergeable:
                    rule, column = _kind(ev)
                    broken = scanned.broken.get((file, position))
                    if broken is not None:
                        rules.append(RuleEvidence(key=key, rule=rule, column=column, broken=broken))
                    else:
                        partial = scanned.partials[(file, position)]
                        rules.append(RuleEvidence(key=key, rule=rule, column=column, judged=partial.judged,
                                                  failing=partial.failing, examples=partial.examples,
                                                  state=partial.state))
                elif (tracker := scanned.keys.get((file, position))) is not None:
                    rules.append(_unique_evidence(ev, key, tracker))
        found.append(PartitionEvidence(name=name, uri=product.uris[file], sha256=sha, size=size,
                                       rows=scanned.rows[file], read=file in scanned.read, rules=rules))
    return found


def _unique_evidence(evaluator: r.Evaluator, key: str, tracker: _KeyRanges) -> RuleEvidence:
    return RuleEvidence(key=key, rule="unique", column=",".join(evaluator.columns), judged=tracker.complete,
                        key_ranges=tracker.ranges())


__all__ = ["check_partitioned", "range_type", "rule_key"]
