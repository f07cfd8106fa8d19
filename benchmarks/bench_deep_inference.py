"""CPU (or CUDA) inference throughput of a deep model at batch 64.

Times ``normalise uint8 batch -> model -> softmax`` under ``torch.inference_mode`` and prints
the median images/s over ``--repeats`` timed batches (after warm-up), and the images per
second of process CPU time (robust to other load on a shared machine).

::

    python benchmarks/bench_deep_inference.py --model wbcnet --img-size 64 --batch 64
    python benchmarks/bench_deep_inference.py --checkpoint runs/wbcnet64/best.pt
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run(model_name: str = "wbcnet", img_size: int = 64, batch: int = 64, repeats: int = 30,
        warmup: int = 5, threads: int | None = None, checkpoint: str | None = None,
        device: str = "cpu", channels_last: bool = False,
        model_kwargs: dict | None = None) -> dict:
    """Measure and return ``{"median_images_per_s", ...}``."""
    import numpy as np
    import torch

    from deep.data import normalize_batch
    from deep.models import get_model

    if threads:
        torch.set_num_threads(threads)
    if checkpoint:
        from deep.checkpoint import load_model

        model, meta = load_model(checkpoint, device=device)
        model_kwargs = meta.get("model_kwargs", {})
        img_size, mean, std, model_name = meta["img_size"], meta["mean"], meta["std"], \
            meta["model"]
    else:
        model = get_model(model_name, num_classes=8, img_size=img_size,
                          **(model_kwargs or {})).to(device)
        mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    model.eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    rng = np.random.default_rng(0)
    xb = torch.from_numpy(rng.integers(0, 256, (batch, img_size, img_size, 3), np.uint8))
    times, cpu_times = [], []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            x = normalize_batch(xb.to(device), mean, std)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            p = torch.softmax(model(x), 1)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            float(p[0, 0])
            if i >= warmup:
                times.append(time.perf_counter() - t0)
                cpu_times.append(time.process_time() - c0)
    rates = [batch / t for t in times]
    return {"model": model_name, "model_kwargs": model_kwargs or {}, "img_size": img_size,
            "batch": batch, "device": device,
            "threads": torch.get_num_threads(), "repeats": repeats,
            "median_images_per_s": statistics.median(rates),
            "min_images_per_s": min(rates), "max_images_per_s": max(rates),
            # images per second of process CPU time: what one dedicated core would do; a
            # guide when the machine is shared (wall-clock rates then understate the speed)
            "images_per_cpu_second": batch / statistics.median(cpu_times)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="wbcnet", help="zoo model name (default wbcnet)")
    p.add_argument("--model-kwargs", default="{}", help='JSON, e.g. \'{"width": 0.75}\'')
    p.add_argument("--checkpoint", default=None, help="time a trained checkpoint instead")
    p.add_argument("--img-size", type=int, default=64, help="input side in pixels (64)")
    p.add_argument("--batch", type=int, default=64, help="images per forward pass (64)")
    p.add_argument("--repeats", type=int, default=30, help="timed batches (30)")
    p.add_argument("--warmup", type=int, default=5, help="untimed batches first (5)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--channels-last", action="store_true",
                   help="use the channels-last memory format")
    a = p.parse_args(argv)
    r = run(a.model, a.img_size, a.batch, a.repeats, a.warmup, a.threads, a.checkpoint,
            a.device, a.channels_last, json.loads(a.model_kwargs))
    print(json.dumps(r))
    print(f"median {r['median_images_per_s']:.0f} images/s ({r['model']}, {r['img_size']} px, "
          f"batch {r['batch']}, {r['threads']} threads, {r['device']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
