"""The KMS signer keeps the worker's deadline (mintq.deadlines): a Sign that KMS never answers
ends by the invocation's deadline, not after the client's own timeouts and retries (16 s at
worst, more than the invocation's 10 s of safety margin), and none starts past it."""

from __future__ import annotations

import time
from typing import Any

import pytest

from mintq import config, errors, kms_signer
from mintq.deadlines import MIN_CALL_SECONDS, Deadline
from mintq.worker import invocation
from tests.support.kms import KmsServer, kms, kms_server, sample_tx
from tests.support.slow_http import SlowHttp

__all__ = ["kms", "kms_server"]  # fixtures, used by name

TX = sample_tx()


def test_a_sign_kms_never_answers_ends_by_the_deadline_and_none_starts_past_it(kms: KmsServer) -> None:
    deadline = Deadline()
    signer = kms_signer.KmsSigner(kms.create_key(), client=kms_signer.kms_client(), deadline=deadline)
    assert signer.sign(TX).raw
    with SlowHttp(kms.url) as silent:
        # KMS goes quiet (accepts, never answers) while the worker's deadline is 1.5 s away.
        silent.on("/", "hang")
        signer._client = kms_signer.kms_client(endpoint_url=silent.url)
        deadline.set(time.monotonic() + 1.5)
        started = time.monotonic()
        with pytest.raises(errors.SignerUnavailable):
            signer.sign(TX)
        # Unbounded, the client's own timeouts and retry take 10 s here (16 s at worst).
        assert time.monotonic() - started < 2.5, "the Sign outlived the worker's deadline"
        assert silent.arrived["/"] == 1, "one try: no retry fits before the deadline"
        # Past the deadline no Sign is sent at all.
        deadline.set(time.monotonic())
        with pytest.raises(errors.DeadlineReached):
            signer.sign(TX)
        assert silent.arrived["/"] == 1
    # With time to spare, through KMS again, it signs.
    signer._client = kms_signer.kms_client()
    deadline.set(time.monotonic() + 60)
    assert signer.sign(TX).raw


def test_each_deployed_worker_shares_its_deadline_with_its_kms_signer(
    kms: KmsServer, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINTQ_SIGNER_KMS_KEY_IDS", f"{kms.create_key()},{kms.create_key()}")
    monkeypatch.setenv("MINTQ_WORKER_DATABASE_URL", database_url)
    monkeypatch.setenv("MINTQ_RPC_URL", "http://127.0.0.1:9")  # never called: the chain id is given
    monkeypatch.setenv("MINTQ_CHAIN_ID", "31337")
    monkeypatch.setenv("MINTQ_TOKEN_ADDRESS", TX["to"])
    config.reset()
    workers = invocation._build_workers(time.monotonic() + 30)
    try:
        assert len(workers) == 2
        for worker in workers:
            assert isinstance(worker.signer, kms_signer.KmsSigner)
            # The worker moves its chain's deadline every cycle; the signer reads the same one.
            assert worker.signer.deadline is worker.chain.deadline
    finally:
        for worker in workers:
            worker.conn.close()


def test_signs_near_the_deadline_share_one_client_per_budget_each_fitting_the_time_left(
    kms: KmsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [0.0]
    deadline = Deadline(clock=lambda: now[0])
    signer = kms_signer.KmsSigner(kms.create_key(), client=kms_signer.kms_client(), deadline=deadline)
    built: list[Any] = []
    make = kms_signer.kms_client

    def counted(**kwargs: Any) -> Any:
        built.append(make(**kwargs))
        return built[-1]

    monkeypatch.setattr(kms_signer, "kms_client", counted)
    signs, built_per_invocation = 0, []
    for _ in range(3):  # three invocations, each signing every 0.2 s of its last 20 s
        deadline.set(now[0] + 20)
        before = len(built)
        while (left := deadline.remaining() or 0.0) >= MIN_CALL_SECONDS:
            client = signer._client_until_deadline()  # the one the Sign below uses (same instant)
            if left < kms_signer.WORST_CASE_SECONDS:
                config_ = client.meta.config
                assert config_.retries["total_max_attempts"] == 1
                assert config_.connect_timeout + config_.read_timeout <= left  # ends by the deadline
                assert config_.connect_timeout + config_.read_timeout >= 0.8 * left  # and not much less
            else:
                assert client is signer._client
            assert signer.sign(TX).raw
            signs += 1
            now[0] += 0.2
        built_per_invocation.append(len(built) - before)
        with pytest.raises(errors.DeadlineReached):
            signer.sign(TX)
    # One client per budget the first invocation reached, none after: not one per Sign.
    assert signs == 300
    assert built_per_invocation[1:] == [0, 0]
    assert 0 < built_per_invocation[0] <= len(kms_signer.SHORT_BUDGETS)
    assert len({id(c) for c in built}) == len(built)
