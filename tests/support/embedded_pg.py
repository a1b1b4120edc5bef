"""The embedded PostgreSQL (pgserver) as tests crash and watch it."""

from __future__ import annotations

from pathlib import Path


def crash_and_restart(pgdata: Path) -> None:
    """``pg_ctl stop -m immediate`` (a crash: no checkpoint, WAL recovery on start), then start."""
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]
    from pgserver.postgres_server import PostgresServer

    handle = PostgresServer._instances[pgdata]
    info = handle.get_postmaster_info()
    pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=handle.pgdata, user=handle.system_user)
    pg_ctl(
        ["-w", "-o", '-h ""', "-o", f"-k {info.socket_dir}", "-l", str(handle.log), "start"],
        pgdata=handle.pgdata,
        user=handle.system_user,
        timeout=30,
    )
    log = Path(handle.log).read_text(errors="replace")
    assert "automatic recovery in progress" in log, "the restart did not go through crash recovery"


def postgres_processes(pgdata: Path) -> list[int]:
    """Pids of the postgres processes serving ``pgdata`` (Linux: read from /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if argv and argv[0].endswith(b"postgres") and str(pgdata).encode() in argv:
            found.append(int(proc.name))
    return found
