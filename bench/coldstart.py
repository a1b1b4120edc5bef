"""Cold start: import time of each function's ``app`` module in a fresh interpreter, and the
deployment package size from ``sam build``."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import LAYER, ROOT, log, progress

FUNCTIONS = {"enqueue": "EnqueueFunction", "status": "StatusFunction", "batch": "BatchFunction"}
SAM_VERSION = "1.170.0"

# Runs in a fresh interpreter: the layer is on sys.path as /opt/python is in Lambda, and
# only the import of app.py (module-level code included) is timed.
_PROBE = """
import importlib.util, json, sys, time
layer, fn_dir = sys.argv[1], sys.argv[2]
sys.path[:0] = [fn_dir, layer]
before = set(sys.modules)
t = time.perf_counter()
spec = importlib.util.spec_from_file_location("app", fn_dir + "/app.py")
module = importlib.util.module_from_spec(spec)
sys.modules["app"] = module
spec.loader.exec_module(module)
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "web3": "web3" in sys.modules,
                  "modules": len(set(sys.modules) - before)}))
"""


def import_times(runs: int) -> dict[str, dict[str, Any]]:
    env = {
        **os.environ,
        "POWERTOOLS_SERVICE_NAME": "mintq",
        "POWERTOOLS_METRICS_NAMESPACE": "MintqBench",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("PYTHONPATH", None)
    out: dict[str, dict[str, Any]] = {}
    bar = progress(len(FUNCTIONS) * runs, "cold start: imports", "run")
    for fn in FUNCTIONS:
        samples: list[dict[str, Any]] = []
        for _ in range(runs):
            proc = subprocess.run(
                [sys.executable, "-c", _PROBE, str(LAYER), str(ROOT / "functions" / fn)],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
                check=False,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"importing functions/{fn}/app.py failed:\n{proc.stderr[-2000:]}")
            samples.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            bar.update(1)
        times = sorted(s["seconds"] for s in samples)
        out[fn] = {
            "median_s": round(statistics.median(times), 3),
            "min_s": round(times[0], 3),
            "max_s": round(times[-1], 3),
            "runs": runs,
            "web3_imported": any(s["web3"] for s in samples),
            "modules_imported": samples[-1]["modules"],
        }
    bar.close()
    return out


def _sam_binary() -> Path:
    sam = ROOT / ".venv-sam" / "bin" / "sam"
    if sam.exists():
        return sam
    log(f"installing aws-sam-cli=={SAM_VERSION} into .venv-sam (as `make validate` does)")
    python = shutil.which("python3") or sys.executable
    subprocess.run([python, "-m", "venv", str(ROOT / ".venv-sam")], check=True)
    pip = str(ROOT / ".venv-sam" / "bin" / "pip")
    subprocess.run([pip, "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([pip, "install", "-q", f"aws-sam-cli=={SAM_VERSION}"], check=True)
    (ROOT / ".venv-sam" / ".stamp").touch()
    return sam


def _du_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def package_sizes() -> dict[str, Any]:
    """``sam build`` into a temporary build dir (so a concurrent ``.aws-sam`` is left alone)."""
    sam = _sam_binary()
    with tempfile.TemporaryDirectory(prefix="mintq-bench-sam-") as tmp:
        build_dir = Path(tmp) / "build"
        bar = progress(None, "cold start: sam build", "step")
        env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
        proc = subprocess.run(
            [
                str(sam),
                "build",
                "--template-file",
                str(ROOT / "template.yaml"),
                "--build-dir",
                str(build_dir),
                "--cache-dir",
                str(Path(tmp) / "cache"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=env,
            timeout=1800,
            check=False,
        )
        bar.close()
        if proc.returncode != 0:
            raise RuntimeError(f"sam build failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
        layer = _du_bytes(build_dir / "CommonLayer")
        out: dict[str, Any] = {"sam_version": _sam_version(sam), "layer_bytes": layer, "functions": {}}
        for fn, logical in FUNCTIONS.items():
            code = _du_bytes(build_dir / logical)
            out["functions"][fn] = {
                "function_bytes": code,
                "with_layer_bytes": code + layer,
                "with_layer_mib": round((code + layer) / 2**20, 1),
            }
    return out


def _sam_version(sam: Path) -> str:
    proc = subprocess.run([str(sam), "--version"], capture_output=True, text=True, check=False)
    return proc.stdout.strip() or proc.stderr.strip()
