"""DynamoDB attribute values to and from Python values, without boto3.

boto3's ``TypeSerializer``/``TypeDeserializer`` live in ``boto3.dynamodb.types``, and
importing that runs ``boto3/__init__``, which imports s3transfer, for two small
converters. Without it, cold starts to the first response are 13 ms (snapshot) and 28 ms
(portal session) shorter in CPU time, imports 34 and 46 ms (``bench.first_response``,
before and after, medians). The functions use botocore directly instead (what boto3 wraps):

- reading uses Powertools' port of boto3's deserializer (``aws_lambda_powertools.shared``,
  in the layer already; the same conversions, numbers as ``Decimal``);
- writing uses ``to_attribute`` below: boto3's serializer for the types the table holds
  (None, bool, int, Decimal, str, bytes, mappings, lists). Floats are refused, as boto3
  refuses them, and so are sets, which boto3 would accept but nothing here stores.

``tests/unit/test_attributes.py`` holds both to boto3's own classes on generated values.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.shared.dynamodb_deserializer import DYNAMODB_CONTEXT, TypeDeserializer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

_deserializer = TypeDeserializer()


def to_attribute(value: Any) -> AttributeValueTypeDef:  # noqa: PLR0911 - one per type
    """``value`` as a DynamoDB attribute value, exactly as boto3's ``TypeSerializer``."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | Decimal):
        return {"N": _number(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes | bytearray):
        return {"B": bytes(value)}
    if isinstance(value, Mapping):
        return {"M": {str(name): to_attribute(inner) for name, inner in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [to_attribute(inner) for inner in value]}
    if isinstance(value, float):
        raise TypeError("Float types are not supported. Use Decimal types instead.")
    raise TypeError(f"Unsupported type {type(value).__name__} for value {value!r}")


def from_attribute(value: Mapping[str, Any]) -> Any:
    """A DynamoDB attribute value as a Python value (numbers as ``Decimal``)."""
    return _deserializer.deserialize(dict(value))


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: from_attribute(value) for name, value in item.items()}


def _number(value: int | Decimal) -> str:
    # The 38-digit context traps rounding, so an unstorable number fails here, not later.
    number = DYNAMODB_CONTEXT.create_decimal(value)
    if not number.is_finite():
        raise TypeError("Infinity and NaN not supported")
    return str(number)
