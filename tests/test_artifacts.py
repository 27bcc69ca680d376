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


# --- a blob appears whole or not at all ----------------------------------------------


def _blob_file(root: Path, sha256: str) -> Path:
    return root / "sha256" / sha256[:2] / sha256[2:4] / sha256


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name.endswith(".tmp")]


@pytest.mark.parametrize("how", ["bytes", "file"])
def test_a_blob_cut_short_is_mended_when_its_bytes_are_stored_again(
    tmp_path: Path, how: str
) -> None:
    data = bytes(range(256)) * 4_000
    src = tmp_path / "model.bin"
    src.write_bytes(data)
    store = ArtifactStore(str(tmp_path / "a"))

    def put() -> str:
        return (store.put_bytes(data) if how == "bytes" else store.put_file(src)).sha256

    sha = put()
    blob = _blob_file(tmp_path / "a", sha)
    # What a copy killed half way used to leave: the name, half the bytes.
    blob.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactCorrupted):
        store.get_bytes(sha)
    assert put() == sha
    assert store.get_bytes(sha) == data
    # The same length but other bytes (a flipped bit) is mended too.
    damaged = bytearray(data)
    damaged[1234] ^= 0x10
    blob.write_bytes(bytes(damaged))
    put()
    assert blob.read_bytes() == data
    assert _leftovers(tmp_path / "a") == []


def test_put_file_with_the_wrong_hash_keeps_nothing(tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(b"the bytes of a model")
    store = ArtifactStore(str(tmp_path / "a"))
    claimed = hashlib.sha256(b"other bytes").hexdigest()
    with pytest.raises(ArtifactCorrupted, match="hashes to"):
        store.put_file(src, sha256=claimed)
    assert not store.exists(claimed)
    assert [p for p in (tmp_path / "a").rglob("*") if p.is_file()] == []


def test_blobs_lists_what_is_stored_and_not_the_leftovers(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "a"))
    shas = {store.put_bytes(b"one").sha256, store.put_bytes(b"two").sha256}
    (tmp_path / "a" / "sha256" / "ab").mkdir(parents=True, exist_ok=True)
    (tmp_path / "a" / "sha256" / "ab" / ".cut-short.tmp").write_bytes(b"half")
    assert set(store.blobs()) == shas
    assert list(ArtifactStore(str(tmp_path / "nothing-yet")).blobs()) == []


def test_copy_to_of_a_damaged_blob_leaves_no_file(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "a"))
    sha = store.put_bytes(b"the real model").sha256
    _blob_file(tmp_path / "a", sha).write_bytes(b"the fake model")
    with pytest.raises(ArtifactCorrupted):
        store.copy_to(sha, tmp_path / "out" / "model.bin")
    assert list((tmp_path / "out").iterdir()) == []
    store.put_bytes(b"the real model")
    assert store.copy_to(sha, tmp_path / "out" / "model.bin").read_bytes() == b"the real model"


def test_a_file_system_that_can_show_half_a_file_is_written_aside(tmp_path: Path) -> None:
    # fsspec's "dir" file system is neither local nor an object store: the generic path.
    store = ArtifactStore(f"dir::file://{tmp_path / 'd'}")
    art = store.put_bytes(b"weights")
    assert store.get_bytes(art.sha256) == b"weights"
    assert set(store.blobs()) == {art.sha256}
    assert _leftovers(tmp_path) == []


def test_an_artifact_onto_a_full_disk_is_a_clear_error_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    from trenches.errors import DiskFull

    from conftest import full_disk

    with full_disk(64) as disk:
        store = ArtifactStore(str(disk / "artifacts"))
        big = tmp_path / "big.bin"
        big.write_bytes(b"\x01" * 200_000)
        with pytest.raises(DiskFull, match="no space left"):
            store.put_file(big)
        with pytest.raises(DiskFull, match="no space left"):
            store.put_bytes(b"\x02" * 200_000)
        assert [p for p in disk.rglob("*") if p.is_file()] == []
        # Something that fits is stored as usual.
        small = store.put_bytes(b"small")
        assert store.get_bytes(small.sha256) == b"small"
