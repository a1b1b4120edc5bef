"""``make bench``'s table: one row per figure (section, figure, value, target, verdict) from a
run's result, and its plain-text rendering."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from bench import local_api, pgbench

Row = tuple[str, str, str, str, str]  # section, figure, value, target, verdict


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("pass" if ok else "MISS")


def _fmt(value: float | None, spec: str = ",.0f", suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:{spec}}{suffix}"


def table_rows(result: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    s = result["sections"]
    for name, fullness_target in (("drain", 0.97), ("drain_base", 0.90)):
        rows.extend(_drain_rows(name, s.get(name), fullness_target))
    return rows + _other_rows(s)


def _drain_rows(name: str, d: dict[str, Any] | None, fullness_target: float) -> list[Row]:
    rows: list[Row] = []
    section = "drain" if name == "drain" else "drain (Base-sized)"
    if d and "error" not in d:
        partial = " (partial)" if d.get("partial") else ""
        rows.append((section, f"requests confirmed{partial}", f"{d['mints']:,} / {d['requests']:,}", "", ""))
        ratio = d.get("capacity_ratio")
        rows.append((section, "confirmed mints per minute", _fmt(d.get("mints_per_minute")), "", ""))
        rows.append((section, "chain capacity per minute", _fmt(d.get("chain_capacity_per_minute")), "", ""))
        rows.append(
            (
                section,
                "share of chain capacity",
                _fmt(ratio, ".1%"),
                ">= 90%",
                _verdict(None if ratio is None else ratio >= 0.9),
            )
        )
        median_batch = (d.get("batch_size") or {}).get("median")
        gpm = d.get("gas_per_mint")
        rows.append(
            (
                section,
                f"gas per mint (median batch {_fmt(median_batch)})",
                _fmt(gpm, ",.1f"),
                "<= 25,300 at batches >= 200",
                _verdict(None if gpm is None or (median_batch or 0) < 200 else gpm <= 25_300),
            )
        )
        lat = d.get("latency_s") or {}
        rows.append(
            (
                section,
                "enqueue->confirmed p50 / p99",
                f"{_fmt(lat.get('p50'), '.1f')} / {_fmt(lat.get('p99'), '.1f')} s",
                "",
                "",
            )
        )
        full = d.get("block_fullness_saturated")
        rows.append(
            (
                section,
                "blocks full while saturated (gas used / block gas limit)",
                _fmt(full, ".1%"),
                f">= {fullness_target:.0%}",
                _verdict(None if full is None else full >= fullness_target),
            )
        )
    return rows


def _enqueue_rows(e: dict[str, Any]) -> list[Row]:
    """The enqueue handler and its floors at an empty and a deep queue, and their ratios."""
    rows: list[Row] = []
    for level, label in (("empty", "empty queue"), ("deep", f"{e['deep']['pending_before']:,} pending")):
        x = e[level]
        for kind, name in (
            ("handler", "handler"),
            ("plain_insert", "plain INSERT"),
            ("mint_queue_insert", "INSERT into mint_queue"),
        ):
            m = x[kind]
            rows.append(
                (
                    "enqueue",
                    f"{name} req/s, {label}",
                    f"{_fmt(m['per_second'])} (p50 {m['p50_ms']:.2f} / p99 {m['p99_ms']:.2f} ms)",
                    "",
                    "",
                )
            )
        h = x["handler"]
        if "mean_in_database_ms" in h:
            rows.append(
                (
                    "enqueue",
                    f"handler per request: in the database + in Python (means), {label}",
                    f"{h['mean_in_database_ms']:.3f} + {h['mean_in_python_ms']:.3f} ms",
                    "",
                    "",
                )
            )
        ratio = x["handler_vs_plain"]
        rows.append(
            (
                "enqueue",
                f"handler / plain INSERT, {label}",
                _fmt(ratio, ".1%"),
                ">= 60%",
                _verdict(None if ratio is None else ratio >= 0.6),
            )
        )
        rows.append(
            (
                "enqueue",
                f"handler / INSERT into mint_queue, {label}",
                _fmt(x["handler_vs_mint_queue_insert"], ".1%"),
                "",
                "",
            )
        )
    ratio = e["deep_vs_empty_handler"]
    rows.append(
        (
            "enqueue",
            "handler deep / empty",
            _fmt(ratio, ".1%"),
            ">= 90%",
            _verdict(None if ratio is None else ratio >= 0.9),
        )
    )
    return rows


def _status_rows(st: dict[str, Any]) -> list[Row]:
    """Each status endpoint's p50 / p99 at the section's table sizes."""
    rows: list[Row] = []
    size = f"{st['pending_rows']:,} pending, {st['history_rows']:,} history"
    rows.append(("status", "table sizes", size, "", ""))
    for name, m in st["endpoints"].items():
        rows.append(
            (
                "status",
                f"{name} p50 / p99",
                f"{m['p50_ms']:.2f} / {m['p99_ms']:.2f} ms",
                "p99 <= 20 ms",
                _verdict(m["p99_ms"] <= 20),
            )
        )
    return rows


def _coldstart_rows(c: dict[str, Any]) -> list[Row]:
    """Each function's import time and, when sam build ran, its package size."""
    rows: list[Row] = []
    packages = (c.get("packages") or {}).get("functions", {})
    for fn, m in c["imports"].items():
        light = fn in ("enqueue", "status")
        web3 = "with web3" if m["web3_imported"] else "no web3"
        ok = (m["median_s"] <= 0.3 and not m["web3_imported"]) if light else None
        rows.append(
            (
                "cold start",
                f"{fn}: import (median of {m['runs']})",
                f"{m['median_s']:.3f} s, {web3}",
                "<= 0.3 s, no web3" if light else "",
                _verdict(ok),
            )
        )
        if fn in packages:
            rows.append(
                (
                    "cold start",
                    f"{fn}: package + layer (sam build)",
                    f"{packages[fn]['with_layer_mib']:.1f} MiB",
                    "",
                    "",
                )
            )
    if "packages_error" in c:
        rows.append(("cold start", "sam build", "failed (see JSON)", "", ""))
    return rows


def _retention_rows(r: dict[str, Any]) -> list[Row]:
    """Enqueue p99 with a cleanup running against without."""
    rows: list[Row] = []
    ratio = r["p99_ratio"]
    rows.append(
        (
            "retention",
            f"enqueue p99 while a cleanup deletes {r['cleanup_deleted']:,} rows / without",
            f"{r['enqueue_during_cleanup']['p99_ms']:.2f} / {r['enqueue_without_cleanup']['p99_ms']:.2f} ms"
            f" = {ratio:.2f}x",
            "<= 2x",
            _verdict(ratio <= r["target_p99_ratio"]),
        )
    )
    return rows


#: Each section's rows, in the table's order (the drains come first, from ``_drain_rows``).
SECTION_ROWS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "enqueue": _enqueue_rows,
    "status": _status_rows,
    "coldstart": _coldstart_rows,
    "retention": _retention_rows,
    "pgbench": pgbench.table_rows,
    "local_api": local_api.table_rows,
}


def _other_rows(s: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for name, rows_of in SECTION_ROWS.items():
        section = s.get(name)
        if section and "error" not in section:
            rows.extend(rows_of(section))
    for name, sec in s.items():
        if "error" in sec:
            rows.append((name, "ERROR", sec["error"].splitlines()[0][:80], "", ""))
    return rows


def render(rows: list[Row]) -> str:
    header: Row = ("section", "figure", "value", "target", "")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), line]
    last = None
    for r in rows:
        if last is not None and r[0] != last:
            out.append(line)
        out.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
        last = r[0]
    return "\n".join(out)
