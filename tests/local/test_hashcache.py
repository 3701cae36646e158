"""The planning digest cache (batchlane/hashcache.py): a hit only when nothing about the file changed, and never for
a file written just before it was hashed (a change within the same clock tick could keep every stat field)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from batchlane import hashcache
from batchlane.backends import local_backend
from batchlane.hashcache import HashCache


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file the cache actually reads."""
    seen: list[Path] = []
    real = hashcache.hash_file

    def counting(path: Path) -> tuple[int, str]:
        seen.append(Path(path))
        return real(path)

    monkeypatch.setattr(hashcache, "hash_file", counting)
    return seen


def test_an_unchanged_file_is_not_read_again(tmp_path, reads):
    cache = HashCache(tmp_path / "cache.sqlite", settle_seconds=0)
    data = tmp_path / "day-1.csv"
    data.write_bytes(b"id,value\n1,2\n")
    assert cache.sha256(data) == (13, sha(b"id,value\n1,2\n"))
    assert cache.sha256(data) == (13, sha(b"id,value\n1,2\n"))
    assert len(reads) == 1 and (cache.hits, cache.misses) == (1, 1)
    again = HashCache(tmp_path / "cache.sqlite", settle_seconds=0)  # another process, the same store
    assert again.sha256(data)[1] == sha(b"id,value\n1,2\n") and len(reads) == 1


def test_same_size_rewrite_with_the_old_mtime_is_a_miss(tmp_path, reads):
    """The canary: what a careless upstream (or a copy preserving times) does. ctime still moves."""
    cache = HashCache(tmp_path / "cache.sqlite", settle_seconds=0)
    data = tmp_path / "day-1.csv"
    data.write_bytes(b"id,value\n1,2\n")
    old = data.stat()
    assert cache.sha256(data)[1] == sha(b"id,value\n1,2\n")
    time.sleep(0.05)  # past the kernel's timestamp tick
    data.write_bytes(b"id,value\n1,9\n")
    os.utime(data, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert data.stat().st_size == old.st_size and data.stat().st_mtime_ns == old.st_mtime_ns
    assert cache.sha256(data)[1] == sha(b"id,value\n1,9\n")
    assert len(reads) == 2


def test_a_replaced_file_is_a_miss(tmp_path, reads):
    cache = HashCache(tmp_path / "cache.sqlite", settle_seconds=0)
    data = tmp_path / "day-1.csv"
    data.write_bytes(b"aaaa")
    cache.sha256(data)
    replacement = tmp_path / "new.csv"
    replacement.write_bytes(b"bbbb")
    os.replace(replacement, data)  # a new inode at the same path
    assert cache.sha256(data) == (4, sha(b"bbbb"))


def test_a_file_written_just_before_it_was_hashed_is_not_remembered(tmp_path, reads):
    cache = HashCache(tmp_path / "cache.sqlite")  # the default settle time
    data = tmp_path / "day-1.csv"
    data.write_bytes(b"fresh")
    cache.sha256(data)
    cache.sha256(data)
    assert len(reads) == 2 and cache.hits == 0


def test_a_broken_cache_falls_back_to_hashing(tmp_path, reads):
    (tmp_path / "cache.sqlite").write_bytes(b"not a database at all, but long enough to look like one" * 20)
    cache = HashCache(tmp_path / "cache.sqlite", settle_seconds=0)
    data = tmp_path / "x.csv"
    data.write_bytes(b"abc")
    assert cache.sha256(data) == (3, sha(b"abc")) and cache.sha256(data) == (3, sha(b"abc"))
    assert len(reads) == 2


def test_the_local_store_uses_it_for_planning_and_it_can_be_switched_off(tmp_path, monkeypatch):
    store = local_backend(tmp_path / "home").store
    assert isinstance(store.hash_cache, HashCache)
    assert store.hash_cache.database == (tmp_path / "home" / "cache" / "hashes.sqlite").resolve()
    monkeypatch.setenv(hashcache.SWITCH, "0")
    assert local_backend(tmp_path / "home").store.hash_cache is None


def test_a_lane_run_plans_from_the_cache_and_still_sees_a_changed_input(tmp_path, monkeypatch, lane_home,
                                                                          lane_json):
    """Through the CLI: the second plan reads no unchanged input; a changed input is still a new memo key."""
    lane = tmp_path / "lane"
    lane.mkdir()
    (lane / "rows.csv").write_text("id,value\n1,1.5\n2,2.5\n")
    old = time.time() - 60
    os.utime(lane / "rows.csv", (old, old))
    (lane / "lane.yaml").write_text(
        "lane: cached\noutputs:\n  rows:\n    inputs: {rows: rows.csv}\n"
        "    contract: {columns: {id: {type: int64, unique: true}}}\n")
    monkeypatch.setattr(hashcache, "SETTLE_SECONDS", 0.0)
    code, first = lane_json("run", lane / "lane.yaml")
    assert code == 0, first
    opened: list[str] = []
    real = hashcache.hash_file

    def counting(path: Path) -> tuple[int, str]:
        opened.append(str(path))
        return real(path)

    import batchlane.inputs

    monkeypatch.setattr(hashcache, "hash_file", counting)  # the cache's own reads
    monkeypatch.setattr(batchlane.inputs, "hash_file", counting)  # and planning without a cache
    code, memoized = lane_json("run", lane / "lane.yaml")
    assert code == 0 and memoized["outputs"]["rows"]["state"] == "memoized"
    assert not [path for path in opened if path.endswith("rows.csv")]  # planned from the cache
    monkeypatch.setenv(hashcache.SWITCH, "0")  # the canary: without the cache the same plan reads it
    code, _ = lane_json("run", lane / "lane.yaml")
    assert code == 0 and [path for path in opened if path.endswith("rows.csv")]
    monkeypatch.delenv(hashcache.SWITCH)
    time.sleep(0.05)
    (lane / "rows.csv").write_text("id,value\n1,1.5\n2,9.5\n")  # same size, new bytes
    code, changed = lane_json("run", lane / "lane.yaml")
    assert code == 0 and changed["outputs"]["rows"]["state"] == "certified", changed


def test_a_cache_closed_later_leaves_its_file_byte_for_byte(tmp_path):
    """Commands that must not write the store (`lane plan`, `lane lineage`) compare its bytes: a connection left
    open by an earlier command in the same process must not rewrite the cache when it is collected."""
    import gc

    data = tmp_path / "x.csv"
    data.write_bytes(b"abc")
    cache = HashCache(tmp_path / "home" / "cache" / "hashes.sqlite", settle_seconds=0)
    cache.sha256(data)
    folder = tmp_path / "home" / "cache"
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    assert list(before) == ["hashes.sqlite"]  # nothing beside it between writes
    del cache
    gc.collect()
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before
