"""The input key and content hash are part of the stored data's meaning: pinned here."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from trenches.patterns import codec
from trenches.patterns import inputs as inp

SALT = bytes.fromhex("00112233445566778899aabbccddeeff")
SCHEMA = inp.InputSchema(
    (
        inp.InputColumn("x", "number"),
        inp.InputColumn("n", "integer"),
        inp.InputColumn("s", "string"),
    )
)


def _encode(xs: list[float], ns: list[int | None], ss: list[str | None]) -> codec.EncodedInputs:
    cols = {
        "x": inp.CoercedColumn(np.array(xs, dtype=float), np.isnan(np.array(xs, dtype=float))),
        "n": inp.CoercedColumn(
            np.array([0 if v is None else v for v in ns], dtype=np.int64),
            np.array([v is None for v in ns]),
        ),
        "s": inp.CoercedColumn(np.array(ss, dtype=object), np.array([v is None for v in ss])),
    }
    return codec.encode(SCHEMA, cols, len(xs), SALT)


def test_input_keys_and_content_hashes_never_change() -> None:
    # If this fails, every stored pattern would move to another split: do not "fix" the
    # expected values; fix the code.
    e = _encode([1.5, -0.0], [3, None], ["Hello  World", None])
    assert [bytes(k).hex() for k in e.keys] == [
        "8195961ae397bdfea71edecd8d756275",
        "dbe0e25f5f8c509a0619e07fd3568e36",
    ]
    content = codec.content_hashes(e.num_words, e.obj, ["a", "b"], "expert", 1767225600000000)
    assert [bytes(c).hex() for c in content] == [
        "909c04a3b01f3b71590e05b2c13c6a73",
        "22b89f4d9eedbf7c0534ccdbdaefb638",
    ]


def test_content_hash_from_stored_blobs_equals_the_one_at_import() -> None:
    e = _encode([1.5, 2.5], [3, 4], ["a", "b"])
    args = (e.obj, ["x", "y"], "crowd", 42)
    assert codec.content_hashes(e.num, *args) == codec.content_hashes(e.num_words, *args)


def test_near_copies_share_a_key_and_real_changes_do_not() -> None:
    e = _encode(
        [0.1 + 0.2, 0.3, 0.3, 0.3000001],
        [7, 7, 7, 7],
        ["Hello World", "hello   world", "Hello World", "Hello World"],
    )
    keys = [bytes(k) for k in e.keys]
    assert keys[0] == keys[1] == keys[2]
    assert keys[3] != keys[0]


@given(st.lists(st.floats(allow_nan=False), min_size=1, max_size=30))
def test_the_key_is_a_function_of_the_inputs_alone(xs: list[float]) -> None:
    one = _encode(xs, [1] * len(xs), ["a"] * len(xs))
    again = _encode(xs[::-1], [1] * len(xs), ["a"] * len(xs))
    assert [bytes(k) for k in one.keys] == [bytes(k) for k in again.keys][::-1]


def test_splits_are_spread_as_the_ratios_say() -> None:
    n = 20_000
    e = _encode(list(np.arange(n, dtype=float)), [0] * n, [None] * n)
    split = codec.splits_of(e.key_head, (0.7, 0.2, 0.1))
    share = np.bincount(split, minlength=3) / n
    assert np.allclose(share, [0.7, 0.2, 0.1], atol=0.015)
    assert (codec.splits_of(e.keys, (0.7, 0.2, 0.1)) == split).all()


def _row_hash_as_defined(words: np.ndarray, seeds: tuple[int, int]) -> np.ndarray:
    """The row hash as first written, a lane and a word at a time (SplitMix64's
    finaliser made afresh at each step): what the faster one must equal, bit for bit."""

    def mix(z: np.ndarray) -> np.ndarray:
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return np.asarray(z ^ (z >> np.uint64(31)))

    n, k = words.shape
    out = np.empty((n, 2), dtype=np.uint64)
    for lane, seed in enumerate(seeds):
        h = np.full(n, np.uint64(seed), dtype=np.uint64)
        for j in range(k):
            offset = np.uint64((0x9E3779B97F4A7C15 * (j + 1)) & (2**64 - 1))
            h = mix(h ^ mix(words[:, j] + offset))
        out[:, lane] = mix(h ^ np.uint64(k))
    return out


@given(
    rows=st.integers(0, 40),
    k=st.integers(1, 25),
    seed=st.integers(0, 2**32 - 1),
    seeds=st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)),
)
def test_the_row_hash_is_the_one_defined_bit_for_bit(
    rows: int, k: int, seed: int, seeds: tuple[int, int]
) -> None:
    words = np.random.default_rng(seed).integers(0, 2**64, size=(rows, k), dtype=np.uint64)
    assert np.array_equal(codec.row_hash(words, seeds), _row_hash_as_defined(words, seeds))


def _numeric_key_words_as_defined(floats: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """The words an input key is made of for numbers, as first written: -0.0 made 0.0,
    a finite value's mantissa rounded to 36 bits, infinities as they are, missing and
    NaN one canonical word."""
    floats = floats.copy()
    floats[floats == 0] = 0.0
    bits = floats.view("<u8")
    finite = np.isfinite(floats)
    bits[finite] = (bits[finite] + np.uint64(1 << 15)) & ~np.uint64((1 << 16) - 1)
    bits[~finite & ~missing] = floats[~finite & ~missing].view("<u8")
    bits[missing | np.isnan(floats)] = np.uint64(0x7FF8_0000_0000_0001)
    return bits


NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e308, -1.7976931348623157e308, 5e-324, 1.0 + 2**-37]),
)


@given(
    xs=st.lists(st.tuples(NUMBERS, st.booleans()), min_size=1, max_size=30),
    salt=st.binary(min_size=16, max_size=16),
)
def test_numbers_are_keyed_as_defined(xs: list[tuple[float, bool]], salt: bytes) -> None:
    values = np.array([x for x, _ in xs], dtype=float)
    missing = np.array([m for _, m in xs]) | np.isnan(values)
    schema = inp.InputSchema((inp.InputColumn("x", "number"),))
    keys = codec.key_hashes(schema, {"x": inp.CoercedColumn(values, missing)}, len(xs), salt)
    words = _numeric_key_words_as_defined(values, missing).reshape(-1, 1)
    seeds = (int.from_bytes(salt[:8], "big"), int.from_bytes(salt[8:16], "big"))
    assert np.array_equal(keys, _row_hash_as_defined(words, seeds))
