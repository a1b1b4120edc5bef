"""Example bodies for the OpenAPI document (``mintq.api_docs``): requests and successful answers.

Each must fit its schema in ``mintq.api_models``; tests/unit/test_openapi.py checks them all.
Schemathesis' examples phase sends the request examples to the running API.
"""

from __future__ import annotations

from typing import Any

PAYER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
QUEUE_ID = "3f1c9a52-8d0e-4a57-9a3b-2f61d1c0b7e4"
_TX = "0x5c504ed432cb51138bcf09aa5e8a410dd4a1e204ef84bfed1be16dfba1b22060"
_SETTLEMENT_TX = "0x8f3ad0e1c0a4a3f2b7c6d5e4f30211a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4"

MINT_REQUEST: dict[str, Any] = {"payer": PAYER}

MINT_ACCEPTED: dict[str, Any] = {
    "success": True,
    "message": "Mint request added to queue",
    "queueId": QUEUE_ID,
    "queuePosition": 1,
    "payer": PAYER,
    "estimatedWaitSeconds": 10,
    "paymentType": "free",
}

PAYMENT_REQUIRED: dict[str, Any] = {
    "success": False,
    "error": "payment_required",
    "message": "this API is paid with x402",
    "x402Version": 1,
    "accepts": [{"scheme": "exact", "network": "base", "maxAmountRequired": "10000"}],
}

QUEUE_STATUS: dict[str, Any] = {
    "stats": {
        "pending_count": 3,
        "processing_count": 2,
        "completed_count": 1250,
        "failed_count": 1,
        "oldest_pending": "2026-01-15T12:00:03.120000Z",
        "unique_payers_pending": 3,
    },
    "recentBatches": [
        {
            "id": "9b2e7c14-5a3f-4d8e-b1c0-6f7a8e9d0c1b",
            "batch_tx_hash": _TX,
            "mint_count": 2,
            "status": "confirmed",
            "nonce": 41,
            "created_at": "2026-01-15T12:00:00.500000Z",
            "sent_at": "2026-01-15T12:00:00.600000Z",
            "confirmed_at": "2026-01-15T12:00:02.100000Z",
            "block_number": 18_203_577,
            "gas_used": 97_412,
            "error_message": None,
        }
    ],
    "batchInterval": 5,
    "maxBatchSize": 50,
    "worker": {"state": "ok", "reason": None, "since": None, "signers": []},
    "paused": False,
    "apiClosed": False,
    "replicaLagSeconds": 0,
    "throughput": {
        "mintsPerSecond": 8.5,
        "confirmSeconds": 2.1,
        "mintsPerBatch": 50,
        "batchPeriodSeconds": 5.9,
        "windowSeconds": 300,
    },
    "estimatedWaitSeconds": 5,
}

PAYER_PAGE: dict[str, Any] = {
    "payer": PAYER,
    "requests": [
        {
            "id": QUEUE_ID,
            "status": "completed",
            "created_at": "2026-01-15T12:00:00.010000Z",
            "processed_at": "2026-01-15T12:00:02.100000Z",
            "mint_tx_hash": _TX,
            "error_message": None,
            "queue_position": 1,
            "payment_status": "settled",
            "settlement_tx_hash": _SETTLEMENT_TX,
            "refund_due": False,
        }
    ],
    "nextCursor": None,
}

QUEUE_ITEM: dict[str, Any] = {
    "id": QUEUE_ID,
    "payer_address": PAYER,
    "status": "pending",
    "created_at": "2026-01-15T12:00:00.010000Z",
    "updated_at": "2026-01-15T12:00:00.010000Z",
    "processed_at": None,
    "mint_tx_hash": None,
    "error_message": None,
    "retry_count": 0,
    "payment_type": "free",
    "queue_position": 4,
    "waiting_reason": None,
    "estimatedWaitSeconds": 8,
}
