"""billing.store.attributes against boto3's own TypeSerializer/TypeDeserializer, the oracle.

The layer stopped importing boto3 for cold-start time; these tests keep its converters
byte-for-byte what boto3 would have sent and returned, on generated values of every type
the table holds.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from hypothesis import given
from hypothesis import strategies as st

from billing.store.attributes import from_attribute, from_item, to_attribute

boto3_serializer = TypeSerializer()
boto3_deserializer = TypeDeserializer()

numbers = st.one_of(
    st.integers(min_value=-(10**38) + 1, max_value=10**38 - 1),
    st.decimals(allow_nan=False, allow_infinity=False, places=6).filter(
        lambda d: len(d.as_tuple().digits) <= 38 and abs(d) < Decimal("1e100")
    ),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(), st.binary(min_size=1))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(values)
def test_serializes_like_boto3(value: Any) -> None:
    assert to_attribute(value) == boto3_serializer.serialize(value)


@given(values)
def test_reads_back_what_boto3_reads(value: Any) -> None:
    attribute = boto3_serializer.serialize(value)
    assert from_attribute(attribute) == boto3_deserializer.deserialize(attribute)


def test_an_item_reads_back_with_numbers_as_decimals() -> None:
    item = {"pk": {"S": "USER#u"}, "v": {"N": "17"}, "r": {"M": {"paid": {"BOOL": True}}}}

    assert from_item(item) == {"pk": "USER#u", "v": Decimal(17), "r": {"paid": True}}


@pytest.mark.parametrize(
    "value",
    [1.5, float("nan"), Decimal("NaN"), Decimal("Infinity"), {"a": {1, 2}}, 10**39],
    ids=["float", "float-nan", "decimal-nan", "decimal-infinity", "set", "39-digit-int"],
)
def test_refuses_what_dynamodb_cannot_store_or_the_table_never_holds(value: Any) -> None:
    with pytest.raises((TypeError, ArithmeticError)):
        to_attribute(value)
