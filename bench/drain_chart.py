"""The drain's chart: queue depth and confirmed mints over time (matplotlib, optional)."""

from __future__ import annotations

from pathlib import Path

from bench.common import log


def chart(samples: list[dict[str, float]], *, title: str, path: Path, sample_every_s: float) -> str | None:
    """Queue depth and cumulative confirmed mints over the drain, drawn to ``path`` (a PNG); None,
    and a note on stderr, without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no drain chart (pip install -r bench/requirements.txt)")
        return None
    t = [s["t"] for s in samples]
    depth = [s["pending"] + s["processing"] for s in samples]
    done = [s["completed"] for s in samples]
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=120)
    ax.plot(t, depth, label="queue depth (pending + in flight)", color="tab:orange", drawstyle="steps-post")
    ax.plot(t, done, label="cumulative confirmed mints", color="tab:blue", drawstyle="steps-post")
    ax.set_xlabel(f"seconds since the worker started (sampled every {sample_every_s} s)")
    ax.set_ylabel("requests")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="center right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return str(path)
