"""The batch worker, one module per job (see ``docs/architecture.md``):

* ``batches`` — batch and attempt states, the allowed transitions, the records
* ``repository`` — the only functions that move a batch or its requests; the in-flight read
* ``lookups`` — other reads: recipients, supply in flight, the nonce floor, gas per mint
* ``rules`` — the pure decisions (pause, fees, replacement, shrink, bisection, supply split)
* ``sizing`` — gas budget, how many to claim, the gas limit, the in-flight window
* ``dispatch`` — building and recording one batch
* ``tracker`` / ``recovery`` — broadcast, receipts, finalising; reconciling, dropping, replacing
* ``cycle_work`` — a cycle's work: one batch at a time, or pipelined
* ``signer_state`` — the signer's advisory lock, cycle probe and refusal
* ``context`` — what the parts share (connection, chain, signer, clock, telemetry)
* ``loop`` — ``Worker``: the run, cycles, pacing, backoff, the run summary
* ``telemetry`` — one call per event: log line, metric and run summary
* ``faults`` — the named crash points
* ``invocation`` — the Lambda entry's domain half and the signer pool
"""

from __future__ import annotations
