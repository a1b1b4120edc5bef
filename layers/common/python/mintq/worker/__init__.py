"""The batch worker, one module per job (see ``docs/architecture.md``):

* ``batches`` — batch and attempt states, records, transitions and the repository moving them
* ``rules`` — the pure decisions (pause, fees, replacement, shrink, bisection, supply split)
* ``dispatch`` — building and recording one batch
* ``tracker`` — broadcast, receipts, finalising, reconciling, dropping, replacing
* ``loop`` — ``Worker``: the advisory lock, cycles, pacing, backoff, the run summary
* ``telemetry`` — one call per event: log line, metric and run summary
* ``faults`` — the named crash points
* ``invocation`` — the Lambda entry's domain half and the signer pool
"""

from __future__ import annotations
