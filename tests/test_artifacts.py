"""The content-addressed artifact store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trenches.artifacts import ArtifactStore, safe_name
from trenches.errors import ArtifactCorrupted, InvalidInput, NotFound


def test_the_same_bytes_are_stored_once(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "a"))
    first = store.put_bytes(b"weights")
    second = store.put_bytes(b"weights")
    assert first == second
    assert first.sha256 == hashlib.sha256(b"weights").hexdigest()
    files = [p for p in (tmp_path / "a").rglob("*") if p.is_file()]
    assert len(files) == 1


def test_put_file_streams_and_matches_put_bytes(tmp_path: Path) -> None:
    data = bytes(range(256)) * 10_000
    src = tmp_path / "model.bin"
    src.write_bytes(data)
    store = ArtifactStore(str(tmp_path / "a"))
    assert store.put_file(src) == store.put_bytes(data)
    assert store.get_bytes(store.put_file(src).sha256) == data


def test_a_corrupted_file_fails_loudly(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "a"))
    art = store.put_bytes(b"the real model")
    (blob,) = [p for p in (tmp_path / "a").rglob("*") if p.is_file()]
    blob.write_bytes(b"the fake model")
    with pytest.raises(ArtifactCorrupted, match="corrupted"):
        store.get_bytes(art.sha256)


def test_a_missing_blob_is_not_found(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "a"))
    with pytest.raises(NotFound, match="missing"):
        store.get_bytes("0" * 64)


@pytest.mark.parametrize("name", ["../etc/passwd", "/etc/passwd", "a/../../b", "C:/x", "a\\b", ""])
def test_names_cannot_escape_the_root(name: str) -> None:
    with pytest.raises(InvalidInput):
        safe_name(name)


def test_hash_names_cannot_escape_the_root(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "a"))
    with pytest.raises(InvalidInput, match="SHA-256"):
        store.get_bytes("../../../../etc/passwd")


def test_an_fsspec_url_works_as_root() -> None:
    store = ArtifactStore("memory://trenches-test")
    art = store.put_bytes(b"in memory")
    assert store.exists(art.sha256)
    assert store.get_bytes(art.sha256) == b"in memory"


@given(st.binary(max_size=2000))
def test_bytes_round_trip(data: bytes) -> None:
    store = ArtifactStore("memory://trenches-roundtrip")
    assert store.get_bytes(store.put_bytes(data).sha256) == data
