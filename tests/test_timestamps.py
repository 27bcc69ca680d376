"""Times a user types: every one is a time a datetime can show, or a clear refusal."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trenches import InvalidInput, timestamps

from conftest import run_cli


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.builds(
            lambda n, unit: f"{n}{unit}",
            st.one_of(st.integers(0, 10**30), st.sampled_from(["9" * 400, "1.5", "0.0"])),
            st.sampled_from("smhdw"),
        ),
        st.integers(-(2**70), 2**70),
    )
)
def test_a_parsed_time_is_one_a_datetime_can_show_or_invalid_input(value: str | int) -> None:
    try:
        us = timestamps.parse(value)
    except InvalidInput as e:
        assert str(value) in str(e)
        return
    assert us is not None and timestamps.EARLIEST_US <= us <= timestamps.LATEST_US
    timestamps.iso(us)


@pytest.mark.parametrize("until", ["99999999999h", "9" * 400 + "d"])
def test_a_relative_time_before_the_year_1_exits_2(until: str) -> None:
    assert run_cli("init")[0] == 0
    code, _, err = run_cli("requests", "list", "--until", until)
    assert code == 2 and "before the year 1" in err
