"""The batch Lambda's domain half: the signer pool, built once per execution environment,
and one invocation's run of every signer's worker."""

from __future__ import annotations

import logging
import threading
import time

from mintq import chain as chainlib
from mintq import config, credentials, db, errors, metrics, payment_reconciler, queue, retention
from mintq import signer as signerlib
from mintq.deadlines import Deadline
from mintq.worker.loop import Housekeeping, Worker
from mintq.worker.telemetry import RunSummary, Telemetry

#: The pool, reused across warm invocations like any client (rebuilt when a connection broke).
_workers: list[Worker] = []


def _build_workers(deadline: float) -> list[Worker]:
    """One worker per signer key. Each has its own ``Deadline``, shared by its chain client,
    its housekeeping's and a signer that calls out (KMS: the signer's own), and set before any
    call is made (building may ask the chain id)."""
    cfg = config.load()
    if not cfg.rpc_url or not cfg.token_address:
        raise errors.ConfigurationError("the batch worker needs MINTQ_RPC_URL and MINTQ_TOKEN_ADDRESS")
    signers = signerlib.from_config(deadline)
    chain_id = cfg.chain_id
    if chain_id is None:  # asked once, before any connection is opened that a fault would leak
        chain_id = chainlib.Chain(
            cfg.rpc_url, cfg.token_address, timeout=cfg.rpc_timeout_seconds, deadline=Deadline(deadline)
        ).chain_id
    workers: list[Worker] = []
    for signer in signers:
        own = getattr(signer, "deadline", None)
        bound = own if isinstance(own, Deadline) else Deadline(deadline)
        workers.append(
            Worker(
                db.connect(
                    credentials.worker_database_url(), application_name="mintq-batch", lock_holder=True
                ),
                chainlib.Chain(
                    cfg.rpc_url, cfg.token_address, timeout=cfg.rpc_timeout_seconds, deadline=bound
                ),
                signer,
                chain_id=chain_id,
                housekeeping=_housekeeping(cfg, bound) if not workers else (),
            )
        )
    return workers


def _housekeeping(cfg: config.Config, deadline: Deadline) -> list[Housekeeping]:
    """The first signer's worker also prunes idempotency keys and, with x402, reconciles
    payments whose settlement outcome is still open."""
    tasks: list[Housekeeping] = [queue.IdempotencyKeyPruner()]
    if cfg.retention_in_worker:
        tasks.append(retention.RetentionJob())
    if cfg.x402 is not None:
        tasks.append(payment_reconciler.reconciler(cfg, deadline=deadline))
    return tasks


def run_invocation(remaining_ms: int, *, safety_seconds: float | None = None) -> RunSummary:
    """Run every signer's worker until shortly before the invocation's own timeout; returns
    their summaries added up.

    ``safety_seconds`` (default ``MINTQ_BATCH_SAFETY_SECONDS``, 10) of the ``remaining_ms``
    are kept back: every chain call ends before the rest, so the run can record what it did
    and release its advisory locks in time. One worker per signer key, each on its own
    connection, advisory lock and nonce sequence; SKIP LOCKED hands each request to exactly
    one of them. An exception in any signer's thread is raised once all have stopped;
    ``errors.ConfigurationError`` without an RPC URL, token or signer.
    """
    global _workers  # noqa: PLW0603 - reused across warm invocations like any client
    reserve = config.load().batch_safety_seconds if safety_seconds is None else safety_seconds
    deadline = time.monotonic() + remaining_ms / 1000 - reserve
    if not _workers or any(w.conn.closed or w.conn.broken for w in _workers):
        for worker in _workers:
            worker.conn.close()
        _workers = []
        try:
            _workers = _build_workers(deadline)
        except (errors.ChainError, errors.DeadlineReached) as exc:
            # The chain id could not be read in time: nothing was locked or claimed; next time.
            telemetry = Telemetry()
            telemetry.event(
                "cycle_fault",
                "workers not started: chain fault",
                level=logging.WARNING,  # the next scheduled run tries again
                metric={"WorkerFault": 1},
                summary={"faults": 1},
                error=str(exc),
                code=exc.code,
            )
            metrics.flush()
            return telemetry.summary
    if len(_workers) == 1:
        return _workers[0].run(deadline)
    return _run_threads(_workers, deadline)


def _run_threads(workers: list[Worker], deadline: float) -> RunSummary:
    summaries: list[RunSummary] = [RunSummary() for _ in workers]
    failures: list[BaseException] = []

    def run_one(i: int) -> None:
        try:
            summaries[i] = workers[i].run(deadline)
        except BaseException as exc:  # re-raised below: a thread's exception would vanish
            failures.append(exc)

    threads = [threading.Thread(target=run_one, args=(i,), name=f"signer-{i}") for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    total = RunSummary()
    for summary in summaries:
        total.add(summary)
    return total
