"""Capture the environment a benchmark ran in: interpreter, machine, packages, seed, command.

Nothing here imports torch unless it is installed *and* GPU probing is asked for; package
versions come from the installed distributions' metadata, so no heavy module is imported.
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from wbc_classic.io.versions import installed_version

__all__ = ["PACKAGES", "capture_environment", "command_line", "cpu_model", "gpu_info",
           "package_versions", "format_environment"]

#: Report label -> candidate distribution names (first installed one wins).
PACKAGES: dict[str, tuple[str, ...]] = {
    "numpy": ("numpy",),
    "scipy": ("scipy",),
    "skimage": ("scikit-image",),
    "sklearn": ("scikit-learn",),
    "xgboost": ("xgboost", "xgboost-cpu"),
    "cv2": ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless",
            "opencv-contrib-python"),
    "mahotas": ("mahotas",),
    "matplotlib": ("matplotlib",),
    "torch": ("torch",),
    "torchvision": ("torchvision",),
    "wbc-classic": ("wbc-classic", "wbc_classic"),
}

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "CUDA_VISIBLE_DEVICES")


def package_versions(packages: Mapping[str, Sequence[str]] | None = None) -> dict[str, str | None]:
    """Installed versions, without importing the packages.

    Parameters
    ----------
    packages : mapping of str to sequence of str, optional
        Label -> candidate distribution names; default :data:`PACKAGES`.

    Returns
    -------
    dict of str to str or None
        None for a package that is not installed. ``wbc-classic`` falls back to the
        package's ``__version__`` when it runs from a source checkout.
    """
    out: dict[str, str | None] = {}
    for label, dists in (packages or PACKAGES).items():
        version = installed_version(dists)
        if version is None and label == "wbc-classic":
            try:
                import wbc_classic

                version = f"{wbc_classic.__version__} (source)"
            except ImportError:
                version = None
        out[label] = version
    return out


def cpu_model() -> str:
    """CPU model name (``/proc/cpuinfo`` on Linux, ``sysctl`` on macOS, else ``platform``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"],
                                  capture_output=True, text=True, timeout=5,
                                  check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def _usable_cpus() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def _memory_total_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def gpu_info() -> dict[str, Any]:
    """GPU / accelerator seen by torch; torch is imported only if it is installed.

    Returns
    -------
    dict
        ``{"torch": bool, "cuda": bool, "devices": [names], "cuda_version": str|None,
        "mps": bool}``; ``{"torch": False}`` when torch is absent.
    """
    if importlib.util.find_spec("torch") is None:
        return {"torch": False, "cuda": False, "devices": [], "mps": False}
    try:
        import torch
    except Exception as exc:  # a broken install must not break the report
        return {"torch": False, "error": f"{type(exc).__name__}: {exc}", "cuda": False,
                "devices": [], "mps": False}
    info: dict[str, Any] = {"torch": True, "cuda": bool(torch.cuda.is_available()),
                            "devices": [], "cuda_version": torch.version.cuda,
                            "torch_threads": torch.get_num_threads()}
    if info["cuda"]:
        info["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    mps = getattr(getattr(torch, "backends", None), "mps", None)
    info["mps"] = bool(mps is not None and mps.is_available())
    return info


def command_line(argv: Sequence[str] | None = None) -> str:
    """The exact command, shell-quoted.

    Parameters
    ----------
    argv : sequence of str, optional
        Default: ``sys.orig_argv`` (the interpreter's own argv, e.g.
        ``python -m benchmarks.run --seed 1``), else ``sys.argv`` prefixed with ``python``.

    Returns
    -------
    str
    """
    if argv is None:
        orig = getattr(sys, "orig_argv", None)
        if orig:
            argv = [Path(orig[0]).name, *orig[1:]]
        else:
            argv = ["python", *sys.argv]
    return shlex.join(str(a) for a in argv)


def _git_revision(start: Path) -> dict[str, Any] | None:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=start, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=start, capture_output=True, text=True, timeout=5,
                               check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": rev, "dirty": bool(dirty)}


def capture_environment(*, seed: int | None = None, command: str | Sequence[str] | None = None,
                        probe_gpu: bool = True, extra: Mapping[str, Any] | None = None
                        ) -> dict[str, Any]:
    """Everything needed to say where and how a result was produced.

    Parameters
    ----------
    seed : int, optional
    command : str or sequence of str, optional
        Default: :func:`command_line` of the running process.
    probe_gpu : bool, default True
        Import torch (if installed) to look for CUDA/MPS devices.
    extra : mapping, optional
        Merged in last (e.g. ``{"device": "cpu", "n_jobs": 2}``).

    Returns
    -------
    dict
        JSON-ready: ``date_utc, python, implementation, platform, machine, cpu_model,
        cpu_count, cpus_usable, memory_total_bytes, gpu, packages, threads, seed, command,
        git, cwd``.
    """
    if command is None:
        command = command_line()
    elif not isinstance(command, str):
        command = command_line(command)
    env: dict[str, Any] = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": _usable_cpus(),
        "memory_total_bytes": _memory_total_bytes(),
        "gpu": gpu_info() if probe_gpu else {"probed": False},
        "packages": package_versions(),
        "threads": {k: os.environ.get(k) for k in _THREAD_VARS if os.environ.get(k) is not None},
        "seed": seed,
        "command": command,
        "git": _git_revision(Path(__file__).resolve().parent),
        "cwd": os.getcwd(),
    }
    if extra:
        env.update(extra)
    return env


def format_environment(env: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Flatten an environment dict into ``(label, text)`` rows for a report table."""
    rows: list[tuple[str, str]] = []
    gpu = env.get("gpu") or {}
    if gpu.get("cuda"):
        gpu_text = ", ".join(gpu.get("devices") or []) + f" (CUDA {gpu.get('cuda_version')})"
    elif gpu.get("mps"):
        gpu_text = "Apple MPS"
    elif gpu.get("torch"):
        gpu_text = "none (torch on CPU)"
    elif gpu.get("probed") is False:
        gpu_text = "not probed"
    else:
        gpu_text = "none (torch not installed)"
    mem = env.get("memory_total_bytes")
    git = env.get("git") or {}
    basic = [
        ("Date (UTC)", env.get("date_utc")),
        ("Command", env.get("command")),
        ("Seed", env.get("seed")),
        ("Python", f"{env.get('python')} ({env.get('implementation')})"),
        ("Platform", env.get("platform")),
        ("CPU", f"{env.get('cpu_model')}; {env.get('cpus_usable')} usable of "
                f"{env.get('cpu_count')} logical cores"),
        ("Memory", f"{mem / 2**30:.1f} GiB" if mem else None),
        ("GPU", gpu_text),
        ("Threads", ", ".join(f"{k}={v}" for k, v in (env.get("threads") or {}).items())
         or None),
        ("Git", (str(git.get("commit", ""))[:12]
                 + (" (uncommitted changes)" if git.get("dirty") else "")) if git else None),
    ]
    rows.extend((k, str(v)) for k, v in basic if v not in (None, ""))
    pk = env.get("packages") or {}
    rows.append(("Packages", ", ".join(f"{k} {v}" for k, v in pk.items() if v)))
    missing = [k for k, v in pk.items() if not v]
    if missing:
        rows.append(("Not installed", ", ".join(missing)))
    known = {"date_utc", "command", "seed", "python", "implementation", "platform", "machine",
             "cpu_model", "cpu_count", "cpus_usable", "memory_total_bytes", "gpu", "packages",
             "threads", "git", "cwd"}
    for k, v in env.items():
        if k not in known and v is not None:
            rows.append((str(k), str(v)))
    return rows


if __name__ == "__main__":  # pragma: no cover - manual check
    import json

    print(json.dumps(capture_environment(), indent=2))
