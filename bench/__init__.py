"""mintq benchmarks: ``make bench`` runs ``bench/run.py``; see bench/README.md."""

from __future__ import annotations
