"""The ``mintq`` operators' command: migrations, stats, settings, requests, batches, pause and
resume, refunds, retention and signer addresses, against any deployment's database.

Built on Typer (commands, options, ``--help``) and Rich (tables, progress bars). Exit codes:
0 done, 1 refused (the message says which rule), 2 usage. Every command takes ``--json``.
"""
