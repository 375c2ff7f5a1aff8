"""The DynamoDB lease store (boto3).

Layout: a table whose partition key is ``key`` (type S), one item per entity with the
attributes ``owner`` (S), ``epoch``, ``rvn``, ``lease_ms`` (N), ``committed_token`` and
``holder`` (S, or NULL when absent), and in version 2 records (the queue-like hand-off)
``version``, ``beat``, ``next_ticket``, ``hold_ms`` (N, zeros included) and ``queue`` (S:
the JSON text of the array of tickets, ``[]`` when empty), the layout of every writelane
binding (the Rust, Node and Go adapters write the same items). Reads are ``GetItem`` with ``ConsistentRead``;
``put_if_absent`` is ``PutItem`` with ``attribute_not_exists(#k)``; ``compare_and_swap`` is
``PutItem`` with ``#rvn = :expected``; both ask for
``ReturnValuesOnConditionCheckFailure=ALL_OLD`` to learn the record found when refused
(falling back to a consistent ``GetItem`` if the service does not return it). An item read
back becomes the JSON object of its attributes (S as text, N as a number, NULL as null),
which the core parses and validates. Every request is bounded by the store timeout (the
lane's ``lease.store_timeout_ms``). Expiry never relies on DynamoDB TTL. IAM permissions on the table: ``dynamodb:GetItem`` and
``dynamodb:PutItem`` (plus ``dynamodb:CreateTable`` and ``dynamodb:DescribeTable`` for
:func:`create_table`).
"""

from __future__ import annotations

import importlib
import json
from typing import Any, Dict, Optional

from . import (
    Record,
    StoreCorrupt,
    StoreLost,
    StoreUnavailable,
    BotoClientBound,
    WriteResult,
    check_key,
    check_rvn,
    parse_record,
)

#: Error codes that mean DynamoDB refused the request without carrying it out.
_REFUSED_OUTRIGHT = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "ResourceNotFoundException",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "ValidationException",
    "TransactionConflictException",
}


def _client(endpoint_url: Optional[str], region: Optional[str], timeout_ms: int, **kwargs: Any) -> Any:
    # Loaded by name: boto3 and botocore are optional and ship no type information.
    boto3 = importlib.import_module("boto3")
    config = importlib.import_module("botocore.config").Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=timeout_ms / 1000,
        read_timeout=timeout_ms / 1000,
    )
    return boto3.client("dynamodb", endpoint_url=endpoint_url, region_name=region, config=config, **kwargs)


def create_table(client: Any, table: str, *, wait: bool = True) -> None:
    """Create the lease table ``table`` (partition key ``key`` of type S, on-demand
    capacity) if it does not exist, and wait until it is active."""
    try:
        client.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except Exception as exc:  # noqa: BLE001 - only "already there" is fine
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        if code != "ResourceInUseException":
            raise
    if wait:
        client.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


#: The number attributes of a version 2 record, written even when zero.
_V2_NUMBERS = ("version", "beat", "next_ticket", "hold_ms")


def _queue_text(queue: Any) -> str:
    """The queue as the core's JSON text: compact, each ticket's fields in the order
    ``owner, ticket, beat``."""
    tickets = [
        {**{f: t[f] for f in ("owner", "ticket", "beat") if f in t}, **t} if isinstance(t, dict) else t
        for t in (queue or [])
    ]
    return json.dumps(tickets, separators=(",", ":"), ensure_ascii=False)


def _item(key: str, record: Record) -> Dict[str, Any]:
    """The item of a record: text as S, numbers as N, null as NULL; in a version 2 record
    the counters as N even when zero (the core leaves zeros out of its JSON) and the queue
    as S of its JSON text, as the Rust adapter writes them."""
    item: Dict[str, Any] = {"key": {"S": key}}
    for name, value in record.items():
        if name == "queue":
            continue
        if value is None:
            item[name] = {"NULL": True}
        elif isinstance(value, str):
            item[name] = {"S": value}
        else:
            item[name] = {"N": str(value)}
    version = record.get("version", 1)
    if isinstance(version, int) and not isinstance(version, bool) and version >= 2:
        for name in _V2_NUMBERS:
            item.setdefault(name, {"N": "0"})
        item["queue"] = {"S": _queue_text(record.get("queue"))}
    elif "queue" in record:
        # Not a version 2 record: kept as given, for the core to refuse when read.
        item["queue"] = {"S": _queue_text(record["queue"])}
    return item


def _record(item: Any, key: str) -> Record:
    """The record of an item: its attributes as a JSON object, parsed by the core."""
    if not isinstance(item, dict):
        raise StoreCorrupt(f"item {key!r}: not a map of attributes")
    out: Dict[str, Any] = {}
    for name, value in item.items():
        if name == "key":
            continue
        if not isinstance(value, dict) or len(value) != 1:
            raise StoreCorrupt(f"item {key!r}: attribute {name} is not one typed value")
        ((kind, data),) = value.items()
        if kind == "N":
            try:
                data = int(data)
            except (TypeError, ValueError):
                pass  # the core refuses it, naming the field
        elif kind == "NULL":
            data = None
        out[name] = data
    return parse_record(out, key)


class DynamoDBStore(BotoClientBound):
    """A lease store in the DynamoDB table ``table``.

    Pass ``endpoint_url``/``region`` (and any other ``boto3.client`` arguments): the
    adapter builds a client that makes one attempt per request, with connect and read
    timeouts of the store timeout (``timeout_ms``: the core's default until a lane hands
    over its policy's ``lease.store_timeout_ms``). Or pass your own ``client``; configure
    it without retries (``Config(retries={"total_max_attempts": 1})``) and with timeouts
    no longer than the lane's store timeout.
    """

    def __init__(
        self,
        table: str,
        *,
        client: Any = None,
        endpoint_url: Optional[str] = None,
        region: Optional[str] = None,
        **client_args: Any,
    ) -> None:
        exceptions = importlib.import_module("botocore.exceptions")
        self.table = table
        self._init_client(client, _client, endpoint_url, region, client_args)
        self._exc = exceptions
        if client is None:
            self._build()  # fail early on bad client arguments

    def create_table(self) -> None:
        """Create the table if it does not exist (see :func:`create_table`)."""
        create_table(self.client, self.table)

    def _fail(self, exc: BaseException, wrote: bool) -> Exception:
        e = self._exc
        if isinstance(exc, e.ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in _REFUSED_OUTRIGHT or (400 <= int(status or 0) < 500) or not wrote:
                return StoreUnavailable(f"{code}: {exc}")
            return StoreLost(f"{code}: {exc}")  # 5xx: may have been carried out
        if isinstance(exc, (e.EndpointConnectionError, e.ConnectTimeoutError)):
            return StoreUnavailable(str(exc))
        if isinstance(exc, (e.ReadTimeoutError, e.ConnectionClosedError)) and wrote:
            return StoreLost(str(exc))
        if isinstance(exc, e.BotoCoreError) and not wrote:
            return StoreUnavailable(str(exc))
        return StoreLost(str(exc)) if wrote else StoreUnavailable(str(exc))

    def get(self, key: str) -> Optional[Record]:
        """The record at ``key``, or ``None`` (a strongly consistent read)."""
        check_key(key)
        try:
            reply = self.client.get_item(TableName=self.table, Key={"key": {"S": key}}, ConsistentRead=True)
        except Exception as exc:  # noqa: BLE001 - mapped to unavailable
            raise self._fail(exc, False) from exc
        item = reply.get("Item")
        return None if item is None else _record(item, key)

    def _put(self, key: str, record: Record, condition: str, names: Dict[str, str], values: Optional[Dict[str, Any]]) -> WriteResult:
        args: Dict[str, Any] = {
            "TableName": self.table,
            "Item": _item(key, record),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if values:
            args["ExpressionAttributeValues"] = values
        try:
            self.client.put_item(**args)
        except self._exc.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise self._fail(exc, True) from exc
            item = exc.response.get("Item")
            if item is not None:
                return False, _record(item, key)
            # The service did not return the record found: read it, consistently.
            return False, self.get(key)
        except Exception as exc:  # noqa: BLE001 - mapped to lost/unavailable
            raise self._fail(exc, True) from exc
        return True, None

    def put_if_absent(self, key: str, record: Record) -> WriteResult:
        """Create the record if there is none; refused with the record found."""
        check_key(key)
        return self._put(key, record, "attribute_not_exists(#k)", {"#k": "key"}, None)

    def compare_and_swap(self, key: str, expected_rvn: int, record: Record) -> WriteResult:
        """Replace the record if its ``rvn`` is ``expected_rvn``; refused with the record
        found (``None`` if there is none)."""
        check_key(key)
        check_rvn(expected_rvn)
        return self._put(key, record, "#rvn = :expected", {"#rvn": "rvn"}, {":expected": {"N": str(expected_rvn)}})

    def __repr__(self) -> str:
        return f"DynamoDBStore({self.table!r})"
