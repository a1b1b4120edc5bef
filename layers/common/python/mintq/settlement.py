"""Reconciling x402 payments whose settlement outcome the request never learned.

Runs in the batch worker's cycle (``Batcher(housekeeping=[...])``). A payment is
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

from aws_lambda_powertools import Logger
from eth_hash.auto import keccak
from web3 import Web3
from web3.exceptions import TransactionNotFound

from mintq import config, db, errors, metrics, payments, rpc
from mintq.deadlines import Deadline
from mintq.queue import Conn
from mintq.settings import QueueSettings

logger = Logger(child=True)

AUTHORIZATION_USED = "0x" + keccak(b"AuthorizationUsed(address,bytes32)").hex()
AUTHORIZATION_CANCELED = "0x" + keccak(b"AuthorizationCanceled(address,bytes32)").hex()
TRANSFER = "0x" + keccak(b"Transfer(address,address,uint256)").hex()
_AUTHORIZATION_STATE_ABI = [
    {
        "type": "function",
        "name": "authorizationState",
        "stateMutability": "view",
        "inputs": [{"name": "authorizer", "type": "address"}, {"name": "nonce", "type": "bytes32"}],
        "outputs": [{"name": "", "type": "bool"}],
    }
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

    def __call__(self, conn: Conn, settings: QueueSettings | None = None) -> None:
        rows = db.all(
            conn, "unfinished_payments", {"min_interval": self.min_interval_seconds, "limit": self.limit}
        )
        for row in rows:
            try:
                outcome = self.check(row)
            except errors.DeadlineReached:
                return  # the invocation's time is up: the rest wait for the next pass
            except Exception as exc:  # web3/requests raise many kinds; any of them means "ask again later"
                # One payment the chain cannot answer for must not hold up the others (or minting):
                # it goes to the back of the line and the pass goes on.
                logger.error(
                    "payment not reconciled this time",
                    extra={"action": "payment_check_failed", "payment_id": str(row["id"]), "error": str(exc)},
                )
                outcome = None
            self.apply(conn, row, outcome)

    def apply(self, conn: Conn, row: dict[str, Any], outcome: Outcome | None) -> None:
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
        asset = Web3.to_checksum_address(row["asset"])
        payer = Web3.to_checksum_address(row["payer_address"])
        nonce = bytes.fromhex(row["auth_nonce"][2:])
        topics = ["0x" + bytes(12).hex() + payer[2:].lower(), row["auth_nonce"]]
        if row["settlement_tx_hash"]:
            outcome = self._settled_by(row, row["settlement_tx_hash"], asset, topics)
            if outcome is not None:
                return outcome
        # Every read below is pinned to one block: reading the nonce's state and the clock at
        # different heights could call a payment expired that was settled in between.
        block = self.w3.eth.get_block("latest")
        height = int(block["number"])
        token = self.w3.eth.contract(address=asset, abi=_AUTHORIZATION_STATE_ABI)
        if token.functions.authorizationState(payer, nonce).call(block_identifier=height):
            from_block = max(0, int(row["from_block"] or 0) - LOG_MARGIN_BLOCKS)
            for event in (AUTHORIZATION_USED, AUTHORIZATION_CANCELED):
                logs = self.w3.eth.get_logs(
                    {"address": asset, "topics": [event, *topics], "fromBlock": from_block, "toBlock": height}
                )
                if not logs:
                    continue
                if event == AUTHORIZATION_CANCELED:
                    return Outcome("failed", reason="authorization_canceled")
                outcome = self._settled_by(row, _hex(logs[0]["transactionHash"]), asset, topics)
                # The nonce was used, but not for a transfer of our price to our payTo (the
                # payer signed another authorization with the same nonce): we were not paid.
                return outcome or Outcome("failed", reason="authorization_used_for_another_transfer")
            return None  # used, but the log is not visible yet: look again
        if int(block["timestamp"]) >= int(row["valid_before"]):
            return Outcome("failed", reason="authorization_expired_unsettled")
        return None

    def _settled_by(self, row: dict[str, Any], tx_hash: str, asset: str, topics: list[str]) -> Outcome | None:
        """``settled`` only if that transaction used this authorization AND moved exactly
        ``amount`` of the asset from the payer to ``pay_to``."""
        try:
            receipt = self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None
        if receipt is None or receipt["status"] != 1:
            return None
        used = any(_matches(log, asset, AUTHORIZATION_USED, topics) for log in receipt["logs"])
        transfer_topics = [topics[0], "0x" + bytes(12).hex() + str(row["pay_to"])[2:].lower()]
        paid = any(
            _matches(log, asset, TRANSFER, transfer_topics)
            and int.from_bytes(bytes(log["data"]), "big") == int(row["amount"])
            for log in receipt["logs"]
        )
        if used and paid:
            return Outcome("settled", tx_hash=_hex(receipt["transactionHash"]))
        return None


def _hex(value: Any) -> str:
    return value if isinstance(value, str) else "0x" + bytes(value).hex()


def _matches(log: Any, asset: str, event: str, topics: list[str]) -> bool:
    got = [_hex(t).lower() for t in log["topics"]]
    return str(log["address"]).lower() == asset.lower() and got == [event, *(t.lower() for t in topics)]


def reconciler(cfg: config.Config, *, deadline: Deadline | None = None) -> Reconciler:
    if not cfg.rpc_url:
        raise errors.ConfigurationError("reconciling payments needs MINTQ_RPC_URL")
    return Reconciler(cfg.rpc_url, timeout=cfg.rpc_timeout_seconds, deadline=deadline)
