"""The torch device of a command, checked before any work: one line instead of a traceback."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(name: str | None) -> torch.device:
    """``name`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``) as a usable device, or the
    default: CUDA when available, else CPU.

    Raises
    ------
    ValueError
        An unknown device string, or a device this machine does not have (one line, e.g.
        ``--device cuda: no CUDA GPU is available on this machine (torch 2.x, CUDA none);
        use --device cpu``).
    """
    if name is None or name == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"--device {name!r} is not a torch device ({type(exc).__name__}); "
                         "use cpu or cuda[:N]") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: no CUDA GPU is available on this machine "
                             f"(torch {torch.__version__}, CUDA {torch.version.cuda or 'none'});"
                             " use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} "
                             "CUDA device(s)")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(f"--device {name}: MPS is not available on this machine; "
                             "use --device cpu")
    elif dev.type != "cpu":
        raise ValueError(f"--device {name}: unsupported device type {dev.type!r}; use cpu or "
                         "cuda[:N]")
    return dev
