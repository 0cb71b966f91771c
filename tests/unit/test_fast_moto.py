"""The local stack's cheaper moto keeps moto's answers: all-or-nothing transactions, the same
query results."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.table import Table

from sandbox.fast_moto import fast_dynamodb
from tests.support.aws import create_billing_table

TABLE = "transactions"


@pytest.fixture
def plain_dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto as it comes."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        create_billing_table(TABLE)
        yield boto3.client("dynamodb")


@pytest.fixture
def dynamodb(plain_dynamodb: Any) -> Iterator[Any]:
    with fast_dynamodb():
        yield plain_dynamodb


def put(pk: str, sk: str, value: str) -> dict[str, Any]:
    item = {"pk": {"S": pk}, "sk": {"S": sk}, "value": {"S": value}}
    return {"Put": {"TableName": TABLE, "Item": item}}


def failing() -> dict[str, Any]:
    """A condition on USER#b's link, which exists."""
    return {
        "ConditionCheck": {
            "TableName": TABLE,
            "Key": {"pk": {"S": "USER#b"}, "sk": {"S": "LINK"}},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }


def table(dynamodb: Any) -> dict[tuple[str, str], str]:
    items = dynamodb.scan(TableName=TABLE)["Items"]
    return {(i["pk"]["S"], i["sk"]["S"]): i["value"]["S"] for i in items}


def test_a_cancelled_transaction_changes_nothing(dynamodb: Any) -> None:
    dynamodb.put_item(TableName=TABLE, Item=put("USER#a", "LINK", "before")["Put"]["Item"])
    dynamodb.put_item(TableName=TABLE, Item=put("USER#b", "LINK", "other")["Put"]["Item"])
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(
            TransactItems=[
                put("USER#a", "LINK", "after"),  # changed, then undone
                put("USER#new", "EVENT", "x"),  # a new item, then removed
                put("USER#a", "SNAPSHOT", "x"),  # a new item in an existing partition
                failing(),
            ]
        )

    assert table(dynamodb) == {("USER#a", "LINK"): "before", ("USER#b", "LINK"): "other"}


def test_a_transaction_that_succeeds_writes_every_item(dynamodb: Any) -> None:
    dynamodb.put_item(TableName=TABLE, Item=put("USER#a", "LINK", "before")["Put"]["Item"])

    dynamodb.transact_write_items(
        TransactItems=[put("USER#a", "LINK", "after"), put("USER#new", "EVENT", "x")]
    )

    assert table(dynamodb) == {("USER#a", "LINK"): "after", ("USER#new", "EVENT"): "x"}


def test_the_table_is_never_copied(dynamodb: Any) -> None:
    dynamodb.put_item(TableName=TABLE, Item=put("USER#b", "LINK", "other")["Put"]["Item"])
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    before = backend.tables[TABLE]

    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(TransactItems=[put("USER#a", "LINK", "x"), failing()])

    # moto's own undo puts a whole copy of the table in place of the original.
    assert backend.tables[TABLE] is before
    assert "__deepcopy__" not in vars(Table)  # nothing left behind for other code


QUERIES: list[dict[str, Any]] = [
    {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": {"S": "USER#a"}}},
    {
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
        "ExpressionAttributeValues": {":pk": {"S": "USER#a"}, ":prefix": {"S": "INVOICE#"}},
        "ScanIndexForward": False,
        "Limit": 3,
    },
    {
        "KeyConditionExpression": "pk = :pk AND sk < :before",
        "ExpressionAttributeValues": {":pk": {"S": "USER#a"}, ":before": {"S": "INVOICE#05"}},
        "ScanIndexForward": False,
        "Limit": 2,
        "ExclusiveStartKey": {"pk": {"S": "USER#a"}, "sk": {"S": "INVOICE#03"}},
    },
    {
        "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
        "FilterExpression": "#v <> :skip",
        "ExpressionAttributeNames": {"#v": "value"},
        "ExpressionAttributeValues": {
            ":pk": {"S": "USER#b"},
            ":low": {"S": "INVOICE#02"},
            ":high": {"S": "INVOICE#07"},
            ":skip": {"S": "b4"},
        },
    },
    {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": {"S": "NOBODY"}}},
]


def test_queries_read_only_their_partition_and_answer_as_moto_does(
    plain_dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for user in "abc":
        for n in range(10):
            item = put(f"USER#{user}", f"INVOICE#{n:02d}", f"{user}{n}")["Put"]["Item"]
            plain_dynamodb.put_item(TableName=TABLE, Item=item)
        plain_dynamodb.put_item(
            TableName=TABLE, Item=put(f"USER#{user}", "LINK", user)["Put"]["Item"]
        )
    whole_table_reads: list[Table] = []
    all_items = Table.all_items

    def counted_all_items(table: Table) -> Any:
        whole_table_reads.append(table)
        return all_items(table)

    monkeypatch.setattr(Table, "all_items", counted_all_items)

    def answers() -> list[dict[str, Any]]:
        found = [plain_dynamodb.query(TableName=TABLE, **query) for query in QUERIES]
        return [{k: v for k, v in answer.items() if k != "ResponseMetadata"} for answer in found]

    by_moto = answers()
    assert len(whole_table_reads) == len(QUERIES)
    with fast_dynamodb():
        fast = answers()
    assert len(whole_table_reads) == len(QUERIES)  # none more

    assert fast == by_moto
    assert [len(answer["Items"]) for answer in fast] == [11, 3, 2, 5, 0]
