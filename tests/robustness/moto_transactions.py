"""Make moto's ``TransactWriteItems`` cost O(items written) instead of O(table).

Before running a transaction, moto 5 deep-copies every table the transaction
names, once per item, so that it can restore the copy if the transaction is
cancelled. Each webhook delivery is one transaction, so a load of 2,400
deliveries into a table that grows to thousands of items spends nearly all its
time copying (12 minutes measured here, against about a minute without the
copies): it would measure moto, not the product.

:func:`transactions_copy_only_their_items` keeps moto's behaviour (all or
nothing) but saves and restores only the items the transaction names, which
are the only items a transaction can change. It assumes what the local
deployment guarantees: moto's server runs one request at a time
(``sandbox.dev``'s ``_OneAtATime``), so no other request touches a table while
a transaction runs, and the table has no secondary index or stream to restore.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table


@contextmanager
def transactions_copy_only_their_items() -> Iterator[None]:
    """Inside the block, a cancelled transaction is undone item by item."""
    original = DynamoDBBackend.transact_write_items

    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        saved = [_saved_item(self, entry) for entry in transact_items]
        Table.__deepcopy__ = _same_table  # type: ignore[attr-defined]
        try:
            original(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(saved):
                _restore(table, hash_key, range_key, item)
            raise
        finally:
            del Table.__deepcopy__  # type: ignore[attr-defined]

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    try:
        yield
    finally:
        DynamoDBBackend.transact_write_items = original  # type: ignore[method-assign]


def _same_table(table: Table, memo: dict[int, Any]) -> Table:
    # moto "restores" this reference on cancellation: a no-op; _restore does the work.
    return table


def _saved_item(
    backend: DynamoDBBackend, entry: dict[str, Any]
) -> tuple[Table, DynamoType, DynamoType | None, Any]:
    ((operation, request),) = entry.items()
    table = backend.get_table(request["TableName"])
    key = request["Item"] if operation == "Put" else request["Key"]
    hash_key = DynamoType(key[table.hash_key_attr])
    range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
    return table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))


def _restore(table: Table, hash_key: DynamoType, range_key: DynamoType | None, item: Any) -> None:
    if range_key is None:
        if item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item
        return
    if item is None:
        table.items[hash_key].pop(range_key, None)
    else:
        table.items[hash_key][range_key] = item
