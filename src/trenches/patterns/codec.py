"""How a pattern's checked inputs are stored and keyed.

Storage, per pattern: the numeric columns (number, integer, boolean) are packed
as 8-byte little-endian slots followed by a missing-value bitmap (one bit a slot,
set when missing) in ``patterns.num``; the string and text columns are a JSON
array in ``patterns.obj``. Both encode and decode a whole column block at a time
with NumPy, which is what makes imports and training-data reads fast.

The *input key* is a salted 128-bit hash of the normalised inputs: text is NFKC
normalised, case-folded and its white space collapsed; numbers are rounded to 36
bits of mantissa (about 11 significant digits) and -0.0 becomes 0.0. The split of
a pattern is a pure function of its input key, so exact and near-exact duplicates
always land in the same split. This normalisation and the hash (:func:`row_hash`)
are part of the stored data's meaning and must never change.

The row hash works on 64-bit words, column by column over a whole chunk with NumPy:
two lanes with different seeds, each folding every word in with the SplitMix64
finaliser. Strings enter as their 64-bit BLAKE2b digests. It is built to spread
accidental differences, not to resist an adversary.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd

from trenches.patterns.inputs import CoercedColumn, InputColumn, InputSchema

_KEY_MANTISSA_BITS_DROPPED = 52 - 36
_CANONICAL_MISSING = np.uint64(0x7FF8_0000_0000_0001)

# --- encoding -----------------------------------------------------------------


@dataclass(frozen=True)
class Coded:
    """Texts as a code a row into a list of the distinct ones (an import's labels):
    each distinct text is hashed once, and no Python string is made a row."""

    codes: np.ndarray  # int32, into ``values``
    values: list[str]

    def __len__(self) -> int:
        return len(self.codes)

    def slice(self, start: int, stop: int) -> Coded:
        return Coded(self.codes[start:stop], self.values)

    def take(self, rows: np.ndarray) -> Coded:
        return Coded(self.codes[rows], self.values)

    def texts(self) -> list[str]:
        return list(np.asarray(self.values, dtype=object)[self.codes])


@dataclass(frozen=True)
class Words:
    """64-bit words of each row kept column by column (each (n,) uint64): made and
    hashed without a 2-D array, whose columns would have to be copied out again."""

    columns: list[np.ndarray]

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        """The words of ``rows``, as (len(rows), k)."""
        return np.column_stack([c[rows] for c in self.columns])


@dataclass
class EncodedInputs:
    """Inputs of a chunk of patterns, ready to store and key."""

    num: list[bytearray] | None
    obj: list[str] | None
    keys: list[bytearray]
    #: The first 64 bits of each key, which decide the split.
    key_head: np.ndarray
    #: ``num`` as 64-bit words, for the content hash.
    num_words: np.ndarray | None


def _rows_as_bytes(block: np.ndarray) -> list[bytes]:
    """Each row of a 2-D uint8 array as one bytes object."""
    block = np.ascontiguousarray(block)
    rows = block.view(np.dtype((np.void, block.shape[1]))).ravel().tolist()
    return rows  # type: ignore[return-value]


def _normalise_text(s: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", s).casefold().split())


_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN_INT = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1
#: Seeds of the two lanes of the content hash (the input key takes its from the salt).
_CONTENT_SEEDS = (0x74726E6368657331, 0x74726E6368657332)


_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def _mix(z: np.ndarray, spare: np.ndarray) -> None:
    """SplitMix64's finaliser, element-wise on uint64 (wrapping arithmetic), in place
    (``spare``: an array of the same size to work in)."""
    np.right_shift(z, _S30, out=spare)
    np.bitwise_xor(z, spare, out=z)
    np.multiply(z, _M1, out=z)
    np.right_shift(z, _S27, out=spare)
    np.bitwise_xor(z, spare, out=z)
    np.multiply(z, _M2, out=z)
    np.right_shift(z, _S31, out=spare)
    np.bitwise_xor(z, spare, out=z)


def row_hash(words: np.ndarray | Sequence[np.ndarray], seeds: tuple[int, int]) -> np.ndarray:
    """A 128-bit hash of each row of ``words`` (n, k) uint64, or of its k columns
    (each (n,) uint64), as (n, 2) uint64.

    Each lane starts at its seed and takes in the words one by one:
    ``h = mix(h ^ mix(word_j + (golden * (j + 1))))``, then ``mix(h ^ k)``. The mixed
    word is the same for both lanes, so it is mixed once; the work is done in place on
    one column at a time (a 2-D array's columns made contiguous first).
    """
    if isinstance(words, np.ndarray):
        n, k = words.shape
        columns: Sequence[np.ndarray] = list(np.ascontiguousarray(words.T, dtype=np.uint64))
    else:
        columns = words
        n, k = len(words[0]), len(words)
    lanes = np.empty((2, n), dtype=np.uint64)
    for lane, seed in enumerate(seeds):
        lanes[lane] = np.uint64(seed)
    word = np.empty(n, dtype=np.uint64)
    spare = np.empty(n, dtype=np.uint64)
    for j in range(k):
        np.add(columns[j], np.uint64((_GOLDEN_INT * (j + 1)) & _MASK64), out=word)
        _mix(word, spare)
        for h in lanes:
            np.bitwise_xor(h, word, out=h)
            _mix(h, spare)
    out = np.empty((n, 2), dtype=np.uint64)
    for lane, h in enumerate(lanes):
        np.bitwise_xor(h, np.uint64(k), out=h)
        _mix(h, spare)
        out[:, lane] = h
    return out


def _text_word(text: str | None) -> int:
    """A string as one 64-bit word (its BLAKE2b digest); a missing one as 0."""
    if text is None:
        return 0
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _as_words(block: np.ndarray) -> np.ndarray:
    """Rows of a (n, w) uint8 array as (n, ceil(w / 8)) little-endian uint64 words."""
    n, w = block.shape
    pad = (-w) % 8
    if pad:
        block = np.concatenate([block, np.zeros((n, pad), dtype=np.uint8)], axis=1)
    return np.ascontiguousarray(block).view("<u8").reshape(n, (w + pad) // 8)


def hash_block(hashes: np.ndarray) -> np.ndarray:
    """(n, 2) uint64 hashes as an (n, 16) uint8 block of 16-byte big-endian keys."""
    return np.ascontiguousarray(hashes.astype(">u8")).view(np.uint8).reshape(len(hashes), 16)


def _hash_bytes(hashes: np.ndarray) -> list[bytearray]:
    """(n, 2) uint64 hashes as 16-byte big-endian keys; bytearray binds fastest."""
    return list(map(bytearray, _rows_as_bytes(hash_block(hashes))))


def _numeric_block(schema: InputSchema, cols: dict[str, CoercedColumn], n: int) -> np.ndarray:
    """(n, k) little-endian 8-byte slots as uint64, and missing slots zeroed."""
    numeric = schema.numeric
    block = np.zeros((n, len(numeric)), dtype="<u8")
    for j, col in enumerate(numeric):
        c = cols[col.name]
        if col.type == "number":
            block[:, j] = np.ascontiguousarray(c.values, dtype="<f8").view("<u8")
        else:
            block[:, j] = np.ascontiguousarray(c.values, dtype="<i8").view("<u8")
        block[c.missing, j] = 0
    return block


def encode(
    schema: InputSchema,
    cols: dict[str, CoercedColumn],
    n: int,
    salt: bytes,
    *,
    blobs: bool = True,
) -> EncodedInputs:
    """Encode a chunk of coerced columns and compute each pattern's input key.
    ``blobs=False``: ``num`` is left None (a columnar dataset keeps its numbers in its
    table, not as a blob a pattern); ``num_words`` is made still."""
    num: list[bytearray] | None = None
    stored = _numeric_bytes(schema, cols, n)
    # bytearray, not bytes: Python's sqlite3 binds a bytearray without looking for an
    # adapter, which is a third of the cost of a row on the bulk path.
    if blobs and stored is not None:
        num = list(map(bytearray, _rows_as_bytes(stored)))
    hashes = key_hashes(schema, cols, n, salt)
    return EncodedInputs(
        num,
        string_rows(schema, cols),
        _hash_bytes(hashes),
        hashes[:, 0],
        None if stored is None else _as_words(stored),
    )


def _numeric_bytes(
    schema: InputSchema, cols: dict[str, CoercedColumn], n: int
) -> np.ndarray | None:
    """The numeric inputs of each row as stored: 8 bytes a column, then a bitmap of the
    missing ones; (n, w) uint8, or None without numeric columns."""
    numeric = schema.numeric
    if not numeric:
        return None
    block = _numeric_block(schema, cols, n)
    missing = np.column_stack([cols[c.name].missing for c in numeric])
    bitmap = np.packbits(missing, axis=1, bitorder="little")
    return np.concatenate([block.view(np.uint8).reshape(n, 8 * len(numeric)), bitmap], axis=1)


def numeric_words(schema: InputSchema, cols: dict[str, CoercedColumn], n: int) -> Words | None:
    """The numeric inputs of each row as the 64-bit words the content hash takes: the
    words of their stored bytes (:func:`_numeric_bytes`), made column by column. A
    value's 8 bytes are one word (0 when missing); the bitmap of the missing ones
    follows, 64 columns a word, column ``j``'s bit at ``j % 64`` (little-endian bits and
    bytes)."""
    numeric = schema.numeric
    if not numeric:
        return None
    columns = []
    for col in numeric:
        c = cols[col.name]
        word = np.array(c.values, dtype="<f8" if col.type == "number" else "<i8").view("<u8")
        word[c.missing] = 0
        columns.append(word)
    for first in range(0, len(numeric), 64):
        bitmap = np.zeros(n, dtype="<u8")
        for bit, col in enumerate(numeric[first : first + 64]):
            bitmap |= cols[col.name].missing.astype("<u8") << np.uint64(bit)
        columns.append(bitmap)
    return Words(columns)


def string_rows(schema: InputSchema, cols: dict[str, CoercedColumn]) -> list[str] | None:
    """The string inputs of each row as JSON text (None without string columns)."""
    if not schema.strings:
        return None
    columns = [cols[c.name].values for c in schema.strings]
    dumps = orjson.dumps
    return [dumps(list(row)).decode() for row in zip(*columns, strict=True)]


def key_hashes(
    schema: InputSchema, cols: dict[str, CoercedColumn], n: int, salt: bytes
) -> np.ndarray:
    """The input key of each of ``n`` patterns, as (n, 2) uint64."""
    key_words: list[np.ndarray] = []
    half = np.uint64(1 << (_KEY_MANTISSA_BITS_DROPPED - 1))
    mask = ~np.uint64((1 << _KEY_MANTISSA_BITS_DROPPED) - 1)
    rounded = np.empty(n, dtype="<u8")
    for col in schema.numeric:
        # Every slot as float64, mantissa rounded, missing canonical.
        c = cols[col.name]
        floats = np.array(c.values, dtype="<f8")
        floats += 0.0  # -0.0 -> 0.0 (IEEE: -0 + 0 is +0), every other value as it was
        bits = floats.view("<u8")
        finite = np.isfinite(floats)
        np.add(bits, half, out=rounded)
        np.bitwise_and(rounded, mask, out=rounded)
        np.copyto(bits, rounded, where=finite)  # infinities and NaN keep their bits
        bits[c.missing | np.isnan(floats)] = _CANONICAL_MISSING
        key_words.append(bits)
    for col in schema.strings:
        key_words.append(_text_words(cols[col.name].values, n, normalise=True))
    assert key_words, "a dataset has at least one input column"
    return row_hash(key_words, (int.from_bytes(salt[:8], "big"), int.from_bytes(salt[8:16], "big")))


def splits_of(
    keys: Sequence[bytes | bytearray] | np.ndarray, ratios: tuple[float, float, float]
) -> np.ndarray:
    """0 train, 1 validation, 2 test: a pure function of each key and the ratios.

    ``keys`` are 16-byte keys or their first 64 bits (``EncodedInputs.key_head``).
    """
    if isinstance(keys, np.ndarray):
        head = keys.astype(np.uint64)
    elif not keys:
        return np.zeros(0, dtype=np.int8)
    else:
        head = np.frombuffer(b"".join(bytes(k[:8]) for k in keys), dtype=">u8")
    u = head.astype(np.float64) / 2.0**64
    train, validation, _ = ratios
    return np.where(u < train, 0, np.where(u < train + validation, 1, 2)).astype(np.int8)


# --- decoding -----------------------------------------------------------------


def _stored_slots(
    schema: InputSchema, num: Sequence[bytes | None]
) -> tuple[np.ndarray, np.ndarray]:
    """The numeric columns of stored patterns: (n, k) uint64 slots and the missing mask."""
    n, k = len(num), len(schema.numeric)
    raw = np.frombuffer(b"".join(num), dtype=np.uint8).reshape(n, schema.num_width)  # type: ignore[arg-type]
    slots = np.ascontiguousarray(raw[:, : 8 * k]).view("<u8").reshape(n, k)
    missing = np.unpackbits(raw[:, 8 * k :], axis=1, bitorder="little", count=k).astype(bool)
    return slots, missing


def _stored_strings(schema: InputSchema, obj: Sequence[str | None]) -> list[np.ndarray]:
    """The string columns of stored patterns, each an object array (``None``: missing)."""
    # One parse for the whole block: a JSON array of the rows' arrays.
    rows = orjson.loads("[" + ",".join(obj) + "]")  # type: ignore[arg-type]
    if len(rows) != len(obj) or not all(isinstance(r, list) for r in rows):
        raise ValueError("a stored row of string inputs is not one JSON array")
    cols = list(zip(*rows, strict=True)) if rows else [() for _ in schema.strings]
    if len(cols) != len(schema.strings):
        raise ValueError(f"{len(cols)} string columns stored, {len(schema.strings)} expected")
    return [np.array(values, dtype=object) for values in cols]


def _stored_numbers(
    schema: InputSchema, num: Sequence[bytes | None]
) -> Iterator[tuple[InputColumn, np.ndarray, np.ndarray]]:
    """Each numeric input column of many stored patterns, in schema order: the column,
    its values as stored (views of the slots: float64, int64 or bool) and which are
    missing."""
    if not schema.numeric:
        return
    slots, missing = _stored_slots(schema, num)
    for j, col in enumerate(schema.numeric):
        slot = slots[:, j]
        if col.type == "number":
            values = slot.view("<f8")
        elif col.type == "integer":
            values = slot.view("<i8")
        else:
            values = slot.astype(bool)
        yield col, values, missing[:, j]


def decode(
    schema: InputSchema, num: Sequence[bytes | None], obj: Sequence[str | None]
) -> pd.DataFrame:
    """Rebuild the input columns of many patterns, in schema order."""
    out: dict[str, Any] = {}
    for col, values, m in _stored_numbers(schema, num):
        if col.type == "number":
            v = values.copy()
            v[m] = np.nan
            out[col.name] = v
        elif col.type == "integer":
            ints = values.copy()
            out[col.name] = pd.arrays.IntegerArray(ints, m) if m.any() else ints
        else:
            out[col.name] = pd.arrays.BooleanArray(values, m) if m.any() else values
    if schema.strings:
        for col, strings in zip(schema.strings, _stored_strings(schema, obj), strict=True):
            out[col.name] = strings
    return pd.DataFrame({c: out[c] for c in schema.names}, copy=False)


def recode(
    schema: InputSchema, num: Sequence[bytes | None], obj: Sequence[str | None], salt: bytes
) -> EncodedInputs:
    """The input keys of stored inputs, worked out again as their import did (only
    ``keys`` and ``key_head`` are set): a snapshot's ``verify`` compares them with the
    stored ones. Raises ``ValueError`` or ``TypeError`` for inputs no import could have
    stored."""
    cols = coerced_of(schema, num, obj)
    hashes = key_hashes(schema, cols, len(num) if schema.numeric else len(obj), salt)
    return EncodedInputs(None, None, _hash_bytes(hashes), hashes[:, 0], None)


def coerced_of(
    schema: InputSchema, num: Sequence[bytes | None], obj: Sequence[str | None]
) -> dict[str, CoercedColumn]:
    """Stored inputs as the checked columns an import encodes them from. Raises
    ``ValueError`` or ``TypeError`` for inputs no import could have stored."""
    cols = {
        col.name: CoercedColumn(values, missing)
        for col, values, missing in _stored_numbers(schema, num)
    }
    if schema.strings:
        for col, values in zip(schema.strings, _stored_strings(schema, obj), strict=True):
            if values.ndim != 1 or not all(v is None or isinstance(v, str) for v in values):
                raise TypeError(f"stored column {col.name!r} holds something else than text")
            cols[col.name] = CoercedColumn(values, np.array([v is None for v in values]))
    return cols


def content_hashes(
    num: Sequence[bytes | bytearray | None] | np.ndarray | Words | None,
    obj: Sequence[str | None] | None,
    labels: Sequence[str] | np.ndarray | Coded,
    source: str | Sequence[str] | np.ndarray,
    created_at: int | np.ndarray,
) -> list[bytearray]:
    """A 128-bit hash of what a training run sees of each pattern: its exact stored
    inputs, label, source and time.

    ``num`` is the stored numeric blobs, or the same as 64-bit words (n, w); ``obj`` the
    stored JSON of the string columns. Either may be ``None`` when the dataset has no
    such columns. ``source`` and ``created_at`` are one value for every pattern (an
    import) or one per pattern (stored rows checked again).
    """
    block = content_block(num, obj, labels, source, created_at)
    return list(map(bytearray, _rows_as_bytes(block)))


def content_block(
    num: Sequence[bytes | bytearray | None] | np.ndarray | Words | None,
    obj: Sequence[str | None] | None,
    labels: Sequence[str] | np.ndarray | Coded,
    source: str | Sequence[str] | np.ndarray,
    created_at: int | np.ndarray,
) -> np.ndarray:
    """:func:`content_hashes` as an (n, 16) uint8 block, one hash a row."""
    n = len(labels)
    parts: list[np.ndarray] = []
    if isinstance(num, Words):
        parts.extend(num.columns)
    elif isinstance(num, np.ndarray):
        parts.extend(np.ascontiguousarray(num.T))
    elif num is not None:
        block = np.frombuffer(b"".join(bytes(b or b"") for b in num), dtype=np.uint8)
        parts.extend(np.ascontiguousarray(_as_words(block.reshape(n, -1)).T))
    if obj is not None:
        parts.append(_text_words(obj, n))
    parts.append(_text_words(labels, n))
    parts.append(_text_words(source, n))
    if isinstance(created_at, np.ndarray):
        parts.append(created_at.astype(np.int64).view(np.uint64))
    else:
        # A time before 1970 is negative: hashed as its 64-bit two's complement.
        parts.append(np.full(n, np.uint64(created_at % 2**64), dtype=np.uint64))
    return hash_block(row_hash(parts, _CONTENT_SEEDS))


def _text_words(
    texts: str | Sequence[str | None] | np.ndarray | Coded, n: int, *, normalise: bool = False
) -> np.ndarray:
    """:func:`_text_word` of one text for ``n`` rows, or of each of ``n`` texts (missing:
    0), each distinct text hashed once; ``normalise``: of the normalised texts."""

    def word(text: str) -> int:
        return _text_word(_normalise_text(text) if normalise else text)

    if isinstance(texts, str):
        return np.full(n, word(texts), dtype=np.uint64)
    if isinstance(texts, Coded):
        return np.asarray(np.array([word(v) for v in texts.values], dtype=np.uint64)[texts.codes])
    codes, uniques = pd.factorize(np.asarray(texts, dtype=object))
    # A missing text has code -1: the 0 appended last.
    words = np.array([*(word(str(u)) for u in uniques), 0], dtype=np.uint64)
    return np.asarray(words[codes])
