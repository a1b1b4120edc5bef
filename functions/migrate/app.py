"""CloudFormation custom resource (``Custom::Migrations``): apply schema migrations on deploy.

Create and Update run ``mintq.migrations.apply``; Delete does nothing (the schema outlives the
stack). A response is always sent: CloudFormation otherwise waits an hour for one. The work
runs in a worker thread so that a hung connection still gets a FAILED answer before the
Lambda timeout.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()

#: seconds kept back from the Lambda timeout to send the response
_RESPONSE_MARGIN_S = 10.0
#: the response's own timeout; never more than the invocation has left (less a little)
_SEND_TIMEOUT_S = 15.0
_SEND_SLACK_S = 0.5
#: CloudFormation rejects response bodies over 4 KiB
_MAX_TEXT = 1000


def _migrate() -> list[str]:
    # Lazy: a broken layer or database driver still yields a FAILED response.
    from mintq import credentials, migrations

    return migrations.apply(credentials.database_url())


def _run_with_deadline(seconds: float) -> list[str]:
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["applied"] = _migrate()
        except Exception as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="migrate", daemon=True)
    worker.start()
    worker.join(max(seconds, 1.0))
    if worker.is_alive():
        raise TimeoutError(f"migrations did not finish within {seconds:.0f} s")
    if "error" in outcome:
        raise outcome["error"]
    applied: list[str] = outcome["applied"]
    return applied


def _send(
    event: dict[str, Any], status: str, physical_id: str, reason: str, data: dict[str, str], *, timeout: float
) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:_MAX_TEXT],
            "PhysicalResourceId": physical_id,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "NoEcho": False,
            "Data": data,
        }
    ).encode()
    # The pre-signed S3 URL is signed without a content type, so send an empty one.
    request = urllib.request.Request(
        event["ResponseURL"],
        data=body,
        method="PUT",
        headers={"Content-Type": "", "Content-Length": str(len(body))},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        logger.info("response sent", extra={"status": status, "http_status": response.status})


@logger.inject_lambda_context(log_event=False)  # the event carries a pre-signed URL
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> None:
    request_type = event.get("RequestType", "")
    physical_id = event.get("PhysicalResourceId") or f"{event['LogicalResourceId']}-{event['StackId']}"
    status, reason, data = "SUCCESS", "", {}
    try:
        if request_type in ("Create", "Update"):
            deadline = context.get_remaining_time_in_millis() / 1000 - _RESPONSE_MARGIN_S
            applied = _run_with_deadline(deadline)
            logger.info("migrations applied", extra={"request_type": request_type, "applied": applied})
            data = {"Applied": ",".join(applied)[:_MAX_TEXT]}
            reason = f"applied {len(applied)} migration(s)"
        else:
            logger.info("nothing to do", extra={"request_type": request_type})
    except Exception as exc:
        logger.exception("migrations failed")
        status, reason = "FAILED", f"{type(exc).__name__}: {exc}"
    # A slow S3 endpoint must not carry the invocation past its timeout: the margin above is
    # what the answer has, whatever the migration took.
    left = context.get_remaining_time_in_millis() / 1000 - _SEND_SLACK_S
    _send(event, status, physical_id, reason, data, timeout=max(0.1, min(_SEND_TIMEOUT_S, left)))
