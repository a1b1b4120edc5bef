"""mintq: a PostgreSQL-backed mint queue with an exactly-once batch worker."""

from __future__ import annotations

__version__ = "0.1.0"
