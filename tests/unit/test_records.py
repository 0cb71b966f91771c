"""Records go into the table and come back equal, and the snapshot's JSON is pydantic's.

Records and snapshot views are stdlib dataclasses so that ``GET /billing`` loads no
pydantic. What pydantic used to do for them is held here: reading back through the
table's own conversions (numbers come back as ``Decimal``, fields a newer release wrote
are ignored, missing ones default), and the response body, against pydantic's own
serialization of the same dataclasses as the oracle.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from billing.api.http import ErrorDetail, ErrorResponse, error_response
from billing.projection.records import (
    CustomerRecord,
    InvoiceRecord,
    PaymentMethodRecord,
    PriceRecord,
    ProductRecord,
    Record,
    SubscriptionRecord,
)
from billing.read.snapshot import BillingSnapshot, InvoicePage, to_json
from billing.store.attributes import from_attribute, to_attribute

RECORDS = (
    CustomerRecord,
    SubscriptionRecord,
    PaymentMethodRecord,
    InvoiceRecord,
    PriceRecord,
    ProductRecord,
)
EPOCHS = st.integers(min_value=0, max_value=4_102_444_800)  # up to 2100


def instances(cls: type[Any]) -> st.SearchStrategy[Any]:
    """Any instance of a dataclass, from its field types (ints as amounts or epochs)."""
    hints = typing.get_type_hints(cls)
    return st.builds(cls, **{f.name: values_of(hints[f.name]) for f in dataclasses.fields(cls)})


def values_of(hint: Any) -> st.SearchStrategy[Any]:
    if isinstance(hint, types.UnionType):
        return st.one_of(*(values_of(arm) for arm in typing.get_args(hint)))
    if typing.get_origin(hint) is tuple:
        return st.lists(values_of(typing.get_args(hint)[0]), max_size=3).map(tuple)
    if typing.get_origin(hint) is list:
        return st.lists(values_of(typing.get_args(hint)[0]), max_size=3)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return instances(hint)
    simple: dict[Any, st.SearchStrategy[Any]] = {
        type(None): st.none(),
        bool: st.booleans(),
        int: EPOCHS,
        str: st.text(max_size=20),
        datetime: EPOCHS.map(lambda epoch: datetime.fromtimestamp(epoch, tz=UTC)),
    }
    return simple[hint]


def through_the_table(record: Record) -> dict[str, Any]:
    """What a read returns for a stored record: the attribute map, deserialized."""
    stored: dict[str, Any] = from_attribute(to_attribute(record.stored()))
    return stored


@given(st.one_of(*(instances(cls) for cls in RECORDS)))
def test_a_record_reads_back_equal_through_the_table(record: Record) -> None:
    assert type(record).from_stored(through_the_table(record)) == record


@given(instances(SubscriptionRecord))
def test_numbers_read_back_as_ints_not_decimals(record: SubscriptionRecord) -> None:
    read = SubscriptionRecord.from_stored(through_the_table(record))
    numbers = [read.created, *(i.current_period_end for i in read.items)]
    assert all(type(n) is int for n in numbers if n is not None)


@pytest.mark.parametrize(
    "stored",
    [
        {"customer": "cus_1", "status": "active", "created": Decimal("5.5"), "items": []},
        {"customer": "cus_1", "status": "active", "created": 5},  # no items
    ],
    ids=["fractional-number", "missing-required-field"],
)
def test_a_record_the_code_never_wrote_is_refused(stored: dict[str, Any]) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        SubscriptionRecord.from_stored(stored)


def test_unknown_fields_are_ignored_and_missing_ones_default() -> None:
    stored = {"email": "a@example.com", "written_by_a_newer_release": Decimal(3)}
    assert CustomerRecord.from_stored(stored) == CustomerRecord(email="a@example.com")
    item = {"id": "si_1", "price": "price_1", "product": "prod_1", "currency": "usd", "x": 1}
    subscription = SubscriptionRecord.from_stored(
        {"customer": "cus_1", "status": "active", "created": Decimal(5), "items": [item]}
    )
    assert subscription.items[0].currency == "usd"
    assert subscription.created == 5
    assert subscription.cancel_at is None


@given(st.one_of(*(instances(cls) for cls in RECORDS)))
def test_the_stored_shape_is_what_pydantic_wrote(record: Record) -> None:
    # Deployed tables hold records the pydantic models' model_dump() wrote.
    assert record.stored() == TypeAdapter(type(record)).dump_python(record)


# Byte for byte, not just equal once parsed: the ETag is a hash of the body, so a
# difference would turn every client's next 304 into a 200 after a deploy.
@given(instances(BillingSnapshot))
def test_the_snapshot_body_is_what_pydantic_would_send(snapshot: BillingSnapshot) -> None:
    assert to_json(snapshot).encode() == TypeAdapter(BillingSnapshot).dump_json(snapshot)


@given(instances(InvoicePage))
def test_the_invoice_page_body_is_what_pydantic_would_send(page: InvoicePage) -> None:
    assert to_json(page).encode() == TypeAdapter(InvoicePage).dump_json(page)


@given(st.text(), st.text())
def test_the_error_body_is_what_pydantic_would_send(code: str, message: str) -> None:
    body = error_response(409, code, message).body
    oracle = TypeAdapter(ErrorResponse).dump_json(ErrorResponse(ErrorDetail(code, message)))
    assert isinstance(body, str)
    assert body.encode() == oracle
