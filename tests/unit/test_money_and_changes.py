"""Currency conversion and the change-log value encoding."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from closewise.domain.changes import TRACKED_FIELDS, decode, encode
from closewise.domain.enums import ChangeField
from closewise.domain.money import CurrencyConverter
from closewise.errors import InvalidInput


def test_dated_rates_apply_from_their_start_and_fall_back_to_static() -> None:
    converter = CurrencyConverter(corporate="USD", static={"EUR": 0.9})
    converter.add_dated("EUR", date(2024, 1, 1), 0.8)
    converter.add_dated("EUR", date(2024, 7, 1), 0.95)
    # 100 EUR at 0.8 EUR per USD is 125 USD.
    assert converter.to_corporate(100, "EUR", date(2024, 3, 1)) == pytest.approx(125.0)
    assert converter.to_corporate(95, "eur", date(2024, 7, 1)) == pytest.approx(100.0)
    # Before the first dated rate the static rate holds.
    assert converter.to_corporate(90, "EUR", date(2023, 6, 1)) == pytest.approx(100.0)
    assert converter.to_corporate(42, "USD") == 42


def test_unknown_currency_is_named() -> None:
    with pytest.raises(InvalidInput, match="'XYZ'"):
        CurrencyConverter().to_corporate(1, "XYZ")


values = {
    ChangeField.STAGE: st.text(min_size=1),
    ChangeField.STATUS: st.sampled_from(["open", "won", "lost", "no_decision"]),
    ChangeField.AMOUNT: st.floats(allow_nan=False, allow_infinity=False, width=64),
    ChangeField.CLOSE_DATE: st.dates(),
    ChangeField.FORECAST_CATEGORY: st.sampled_from(["pipeline", "commit"]),
    ChangeField.OWNER: st.integers(1, 2**53),
    ChangeField.PROBABILITY: st.floats(0, 100),
    ChangeField.NEXT_STEP: st.text(min_size=1),
}


@given(data=st.data(), field=st.sampled_from(TRACKED_FIELDS))
def test_encode_then_decode_is_identity(data: st.DataObject, field: ChangeField) -> None:
    value = data.draw(values[field])
    assert decode(field, encode(field, value)) == value
    assert encode(field, None) is None and decode(field, None) is None
