"""Reconciling x402 payments whose settlement outcome the request never learned.

Runs in the batch worker's cycle (``mintq.worker.loop.Worker(housekeeping=[...])``). A payment is
``settlement_pending`` when the facilitator timed out or answered pending, or still
``settling`` after its request's lease ran out (the request died mid-settle). The chain
decides, through the asset's EIP-3009 state, never a retry of the settlement:

* the settlement transaction is known and mined with the asset's ``AuthorizationUsed``
  event for (payer, nonce) → settled: the payment is marked and its mint queued, once;
* ``authorizationState(payer, nonce)`` is set → find the ``AuthorizationUsed`` log (settled,
  whoever broadcast it) or ``AuthorizationCanceled`` (the payer cancelled: never charged);
* unused and the latest block is past ``validBefore`` → it can never settle: failed, never charged;
* otherwise → look again next cycle.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from aws_lambda_powertools import Logger
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import TransactionNotFound, Web3Exception
from web3.logs import DISCARD

from mintq import config, db, errors, metrics, payments, rpc
from mintq.deadlines import Deadline
from mintq.settings import QueueSettings

logger = Logger(child=True)

_INDEXED_AUTHORIZATION = [
    {"name": "authorizer", "type": "address", "indexed": True},
    {"name": "nonce", "type": "bytes32", "indexed": True},
]
#: What the reconciler reads of an EIP-3009 asset: the nonce's state and the events that
#: decide a payment (web3 builds their topics and decodes their logs from this).
_ASSET_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "authorizationState",
        "stateMutability": "view",
        "inputs": [{"name": "authorizer", "type": "address"}, {"name": "nonce", "type": "bytes32"}],
        "outputs": [{"name": "", "type": "bool"}],
    },
    {"type": "event", "name": "AuthorizationUsed", "anonymous": False, "inputs": _INDEXED_AUTHORIZATION},
    {"type": "event", "name": "AuthorizationCanceled", "anonymous": False, "inputs": _INDEXED_AUTHORIZATION},
    {
        "type": "event",
        "name": "Transfer",
        "anonymous": False,
        "inputs": [
            {"name": "from", "type": "address", "indexed": True},
            {"name": "to", "type": "address", "indexed": True},
            {"name": "value", "type": "uint256", "indexed": False},
        ],
    },
]
#: Blocks before the recorded head that the log search also covers (reorgs, lagging nodes).
LOG_MARGIN_BLOCKS = 10


@dataclass(frozen=True)
class Outcome:
    status: str  #: "settled" or "failed"
    tx_hash: str | None = None
    reason: str | None = None


class Reconciler:
    """Housekeeping hook: ``reconciler(conn, settings)`` settles or fails what the chain has decided."""

    def __init__(
        self,
        rpc_url: str,
        *,
        limit: int = 20,
        min_interval_seconds: float = 3.0,
        timeout: float = rpc.DEFAULT_TIMEOUT,
        deadline: Deadline | None = None,
    ) -> None:
        # Bounded like the worker's own chain calls: each request ends by the invocation's
        # deadline, and web3's five-fold retries are off (a payment is simply looked at again).
        self.w3 = rpc.web3(
            rpc_url, deadline=deadline if deadline is not None else Deadline(), timeout=timeout
        )
        self.limit = limit
        self.min_interval_seconds = min_interval_seconds

    def __call__(self, conn: db.Conn, settings: QueueSettings | None = None) -> None:
        rows = db.rows(
            conn, "unfinished_payments", {"min_interval": self.min_interval_seconds, "limit": self.limit}
        )
        for row in rows:
            try:
                outcome = self.check(row)
            except errors.DeadlineReached:
                return  # the invocation's time is up: the rest wait for the next pass
            except (Web3Exception, httpx.HTTPError, ValueError) as exc:
                # An RPC error, a transport fault, or a reply web3 cannot read: "ask again later".
                # One payment the chain cannot answer for must not hold up the others (or minting):
                # it goes to the back of the line and the pass goes on.
                logger.warning(
                    "payment not reconciled this time",
                    extra={"action": "payment_check_failed", "payment_id": str(row["id"]), "error": str(exc)},
                )
                outcome = None
            self.apply(conn, row, outcome)

    def apply(self, conn: db.Conn, row: dict[str, Any], outcome: Outcome | None) -> None:
        payment_id: uuid.UUID = row["id"]
        if outcome is None:
            db.execute(conn, "touch_payment_check", {"id": payment_id})
            return
        if outcome.status == "settled":
            queued = payments.finish_settled(conn, payment_id, outcome.tx_hash)
            if queued is not None:
                metrics.count("PaymentReconciled", 1)
                logger.info(
                    "pending payment settled on chain; mint queued",
                    extra={
                        "action": "payment_reconciled",
                        "queue_id": queued.queue_id,
                        "tx": outcome.tx_hash,
                    },
                )
            return
        if db.one(conn, "mark_payment_failed", {"id": payment_id, "reason": outcome.reason}) is not None:
            logger.info(
                "pending payment never settled; marked failed",
                extra={"action": "payment_failed", "payment_id": str(payment_id), "reason": outcome.reason},
            )

    def check(self, row: dict[str, Any]) -> Outcome | None:
        """What the chain says of one payment row: settled, failed, or None (ask again later)."""
        asset = Web3.to_checksum_address(row["asset"])
        payer = Web3.to_checksum_address(row["payer_address"])
        nonce = bytes.fromhex(row["auth_nonce"][2:])
        token = self.w3.eth.contract(address=asset, abi=_ASSET_ABI)
        if row["settlement_tx_hash"]:
            outcome = self._settled_by(row, row["settlement_tx_hash"], token)
            if outcome is not None:
                return outcome
        # Every read below is pinned to one block: reading the nonce's state and the clock at
        # different heights could call a payment expired that was settled in between.
        block = self.w3.eth.get_block("latest")
        height = int(block["number"])
        if token.functions.authorizationState(payer, nonce).call(block_identifier=height):
            window = {
                "argument_filters": {"authorizer": payer, "nonce": nonce},
                "from_block": max(0, int(row["from_block"] or 0) - LOG_MARGIN_BLOCKS),
                "to_block": height,
            }
            used = list(token.events.AuthorizationUsed().get_logs(**window))
            if used:
                outcome = self._settled_by(row, _hex(used[0]["transactionHash"]), token)
                # The nonce was used, but not for a transfer of our price to our payTo (the
                # payer signed another authorization with the same nonce): we were not paid.
                return outcome or Outcome("failed", reason="authorization_used_for_another_transfer")
            if list(token.events.AuthorizationCanceled().get_logs(**window)):
                return Outcome("failed", reason="authorization_canceled")
            return None  # used, but the log is not visible yet: look again
        if int(block["timestamp"]) >= int(row["valid_before"]):
            return Outcome("failed", reason="authorization_expired_unsettled")
        return None

    def _settled_by(self, row: dict[str, Any], tx_hash: str, token: Contract) -> Outcome | None:
        """``settled`` only if that transaction used this authorization AND moved exactly
        ``amount`` of the asset from the payer to ``pay_to``."""
        try:
            receipt = self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None
        if receipt is None or receipt["status"] != 1:
            return None
        payer, nonce = str(row["payer_address"]).lower(), bytes.fromhex(row["auth_nonce"][2:])
        # process_receipt decodes every log whose first topic is the event's; the asset's own
        # are those from its address (another contract may emit a look-alike).
        used = any(
            _from(event, token)
            and event["args"]["authorizer"].lower() == payer
            and event["args"]["nonce"] == nonce
            for event in token.events.AuthorizationUsed().process_receipt(receipt, errors=DISCARD)
        )
        paid = any(
            _from(event, token)
            and event["args"]["from"].lower() == payer
            and event["args"]["to"].lower() == str(row["pay_to"]).lower()
            and int(event["args"]["value"]) == int(row["amount"])
            for event in token.events.Transfer().process_receipt(receipt, errors=DISCARD)
        )
        if used and paid:
            return Outcome("settled", tx_hash=_hex(receipt["transactionHash"]))
        return None


def _hex(value: Any) -> str:
    return value if isinstance(value, str) else "0x" + bytes(value).hex()


def _from(event: Any, token: Contract) -> bool:
    return str(event["address"]).lower() == str(token.address).lower()


def reconciler(cfg: config.Config, *, deadline: Deadline | None = None) -> Reconciler:
    if not cfg.rpc_url:
        raise errors.ConfigurationError("reconciling payments needs MINTQ_RPC_URL")
    return Reconciler(cfg.rpc_url, timeout=cfg.rpc_timeout_seconds, deadline=deadline)
