"""moto's DynamoDB at the cost of the items a request touches, not of the whole table.

Two of moto 5's DynamoDB operations cost O(table) where DynamoDB's cost O(items
read or written), and the local stack's tables grow to thousands of items (the
load test, the bench's fan-out), so they would measure moto, not the product.
:func:`fast_dynamodb` keeps both operations' results and changes their cost:

**Transactions.** Before running a transaction, moto deep-copies every table the
transaction names, once per item, so that it can restore the copy if the
transaction is cancelled. Every webhook delivery is one transaction: 2,400
deliveries took 12 minutes against about a minute without the copies, and the
counted bench's 101-subscriber fan-out 30 s against 9 s. Here a transaction
saves and restores only the items it names, which are the only items it can
change: still all or nothing.

**Queries.** A query on a table's own key reads every item of the table, sorted,
and keeps those of its partition (a ``GET /billing`` against 4,000 items: about
70 ms). Here it reads only its partition. Queries on an index are left as they are.

Both assume what every user of this module guarantees: moto serves one request
at a time (``sandbox.dev``'s ``_OneAtATime``, the tests' ``aws`` fixture), so no
other request touches a table meanwhile, and the table has no secondary index or
stream to restore. Hand-written because moto has no option for it; the results
it keeps are pinned by ``tests/unit/test_fast_moto.py``.
"""

from __future__ import annotations

import copy
import inspect
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table

# What the patches set on moto's classes and tables is seen by every thread: one
# patched operation at a time.
_one_at_a_time = threading.RLock()


@contextmanager
def fast_dynamodb() -> Iterator[None]:
    """Inside the block, moto's transactions and queries cost what they touch."""
    with _transactions_copy_only_their_items(), _queries_read_only_their_partition():
        yield


@contextmanager
def _transactions_copy_only_their_items() -> Iterator[None]:
    original = DynamoDBBackend.transact_write_items

    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        with _one_at_a_time:
            saved = [_saved_item(self, entry) for entry in transact_items]
            outermost = "__deepcopy__" not in vars(Table)
            if outermost:
                Table.__deepcopy__ = _same_table  # type: ignore[attr-defined]
            try:
                original(self, transact_items)
            except Exception:
                for table, hash_key, range_key, item in reversed(saved):
                    _restore(table, hash_key, range_key, item)
                raise
            finally:
                if outermost:
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


@contextmanager
def _queries_read_only_their_partition() -> Iterator[None]:
    original = Table.query
    parameters = inspect.signature(original)

    def query(self: Table, *args: Any, **kwargs: Any) -> Any:
        arguments = parameters.bind(self, *args, **kwargs).arguments
        hash_key = arguments.get("hash_key")
        if arguments.get("index_name") or hash_key is None:
            return original(self, *args, **kwargs)
        with _one_at_a_time:
            # moto's base-table branch keeps the items of all_items() with this hash
            # key, then sorts them: its partition alone gives the same answer.
            self.all_items = lambda: _partition(self, hash_key)  # type: ignore[method-assign]
            try:
                return original(self, *args, **kwargs)
            finally:
                del self.all_items

    Table.query = query  # type: ignore[method-assign]
    try:
        yield
    finally:
        Table.query = original  # type: ignore[method-assign]


def _partition(table: Table, hash_key: DynamoType) -> list[Any]:
    if hash_key not in table.items:  # a lookup would add the key to the defaultdict
        return []
    if not table.range_key_attr:
        return [table.items[hash_key]]
    return sorted(table.items[hash_key].values(), key=lambda item: item.range_key)
