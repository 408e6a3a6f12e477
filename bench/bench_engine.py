"""Benchmark: the batched engine against a plain one-model-per-seed loop (NOT a test).

Both train the same ring-of-8-Gaussians GAN (MLP G and D, non-saturating loss, Adam, k = 1):

- batched: ``repro.train.train_gan`` on one ``BatchedMLP`` pair holding all S seeds;
- loop: S ordinary ``torch.nn`` MLP pairs, one Adam each, trained one after another by a
  minimal loop (the code a person writes for one seed, run S times).

Reported: model-steps per second = S * steps / wall time (one model-step = one D step and one
G step of one seed; the fastest of ``--repeats`` interleaved timings), for S in {1, 8, 64} on
the CPU and, when present, on CUDA. Targets (issue): on the CPU the batched engine is not
slower per model-step than the loop; on a GPU it is at least 20x faster at S = 64.

    python bench/bench_engine.py                  # CPU (+ CUDA if available), defaults below
    python bench/bench_engine.py --steps 100 --seeds 1 8 64 --devices cpu --threads 1

Writes bench/out/engine.csv and bench/out/engine.png / .pdf.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from repro.data import get_sampler, sample_normal  # noqa: E402
from repro.engine.streams import Stream  # noqa: E402
from repro.losses import get_objective  # noqa: E402
from repro.nets import STREAM_D, STREAM_DATA, BatchedMLP  # noqa: E402
from repro.train import TrainConfig, train_gan  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
RING = get_sampler("ring", radius=1.0, mode_std=0.01)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_batched(n_seeds: int, args, device: torch.device) -> float:
    """Wall seconds of ``args.steps`` steps of the batched engine (after a short warm-up)."""
    seeds = list(range(n_seeds))
    G = BatchedMLP((args.z_dim, args.width, args.width, 2), seeds)
    D = BatchedMLP((2, args.width, args.width, 1), seeds, stream=STREAM_D)
    warm = TrainConfig(steps=args.warmup, batch_size=args.batch, log_every=10**9)
    train_gan(G, D, RING, warm, z_dim=args.z_dim, device=device)
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch, log_every=10**9)
    _sync(device)
    t0 = time.perf_counter()
    train_gan(G, D, RING, cfg, z_dim=args.z_dim, device=device)
    _sync(device)
    return time.perf_counter() - t0


def _plain_mlp(sizes: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _train_one(seed: int, steps: int, args, device: torch.device) -> None:
    """The plain single-model loop: same data stream, losses and optimiser as the engine."""
    torch.manual_seed(seed)
    G = _plain_mlp((args.z_dim, args.width, args.width, 2)).to(device)
    D = _plain_mlp((2, args.width, args.width, 1)).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    obj, gens, b = get_objective("non-saturating"), Stream([seed], STREAM_DATA, device), args.batch
    for _ in range(steps):
        x = RING(gens, b, device=device)[0]
        z = sample_normal(gens, b, args.z_dim, device=device)[0]
        d_loss = obj.d_loss(D(x)[None], D(G(z).detach())[None])
        opt_d.zero_grad(set_to_none=True)
        d_loss.sum().backward()
        opt_d.step()
        z = sample_normal(gens, b, args.z_dim, device=device)[0]
        g_loss = obj.g_loss(D(G(z))[None])
        opt_g.zero_grad(set_to_none=True)
        g_loss.sum().backward()
        opt_g.step()


def time_loop(n_seeds: int, args, device: torch.device) -> float:
    """Wall seconds of S separate ``args.steps``-step runs, one after another."""
    _train_one(0, args.warmup, args, device)
    _sync(device)
    t0 = time.perf_counter()
    for seed in range(n_seeds):
        _train_one(seed, args.steps, args, device)
    _sync(device)
    return time.perf_counter() - t0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(args) -> pd.DataFrame:
    rows = []
    for dev_name in args.devices:
        device = torch.device(dev_name)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
        for s in args.seeds:
            # interleave the repeats so both modes see the same background load; keep the fastest
            walls: dict[str, list[float]] = {"batched": [], "loop": []}
            for _ in range(args.repeats):
                walls["batched"].append(time_batched(s, args, device))
                walls["loop"].append(time_loop(s, args, device))
            for mode, times in walls.items():
                wall = min(times)
                rows.append(
                    {
                        "device": dev_name,
                        "device_name": name,
                        "mode": mode,
                        "n_seeds": s,
                        "steps": args.steps,
                        "batch_size": args.batch,
                        "width": args.width,
                        "threads": torch.get_num_threads(),
                        "repeats": args.repeats,
                        "wall_s": wall,
                        "wall_s_max": max(times),
                        "model_steps_per_s": s * args.steps / wall,
                    }
                )
                print(
                    f"{dev_name:5s} S={s:3d} {mode:8s} {wall:8.2f} s "
                    f"{rows[-1]['model_steps_per_s']:10.1f} model-steps/s",
                    flush=True,
                )
    df = pd.DataFrame(rows)
    rate = df.set_index(["device", "n_seeds", "mode"]).model_steps_per_s.unstack("mode")
    df["speedup"] = [
        rate.loc[(d, s), "batched"] / rate.loc[(d, s), "loop"]
        for d, s in zip(df.device, df.n_seeds, strict=True)
    ]
    df["torch"] = torch.__version__
    return df


def figure(df: pd.DataFrame):
    """Left: model-steps/s vs S per device and mode. Right: batched / loop speed-up vs S."""
    from repro.plots import figure as house_figure

    fig, (ax_rate, ax_speed) = house_figure(2)
    for (dev, mode), g in df.groupby(["device", "mode"]):
        ax_rate.plot(
            g.n_seeds,
            g.model_steps_per_s,
            marker="o",
            ls="-" if mode == "batched" else "--",
            label=f"{dev} {mode}",
        )
    ax_rate.set(
        xscale="log",
        yscale="log",
        xlabel="seeds S",
        ylabel="model-steps / s",
        title="ring-8 MLP GAN, one D + one G step",
    )
    ax_rate.set_xticks(sorted(df.n_seeds.unique()), [str(s) for s in sorted(df.n_seeds.unique())])
    ax_rate.legend()
    for dev, g in df[df["mode"] == "batched"].groupby("device"):
        ax_speed.plot(g.n_seeds, g.speedup, marker="o", label=dev)
    ax_speed.axhline(1.0, color="grey", lw=1, ls=":", label="CPU target: >= 1x")
    ax_speed.axhline(20.0, color="black", lw=1, ls=":", label="GPU target at S=64: >= 20x")
    ax_speed.set(
        xscale="log",
        yscale="log",
        xlabel="seeds S",
        ylabel="batched / loop",
        title="speed-up per model-step",
    )
    ax_speed.set_xticks(sorted(df.n_seeds.unique()), [str(s) for s in sorted(df.n_seeds.unique())])
    ax_speed.legend(loc="upper left")
    return fig


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    cuda = ["cuda"] if torch.cuda.is_available() else []
    head, _, rest = __doc__.partition("\n\n")
    p = argparse.ArgumentParser(
        description=head, epilog=rest, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=100, help="timed steps per run (default 100)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    p.add_argument(
        "--repeats", type=int, default=3, help="timings per setting, fastest kept (default 3)"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 8, 64], help="values of S")
    p.add_argument("--devices", nargs="+", default=["cpu", *cuda], help="default: cpu [cuda]")
    p.add_argument("--batch", type=int, default=64, help="samples per seed per step")
    p.add_argument("--width", type=int, default=128, help="hidden width of G and D (2 layers)")
    p.add_argument("--z-dim", type=int, default=2, dest="z_dim", help="latent dimension")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    p.add_argument(
        "--plot-only", action="store_true", help="redraw the figure from OUT/engine.csv, no timing"
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.plot_only:
        df = pd.read_csv(args.out / "engine.csv")
    else:
        df = run(args)
        _write_csv(df, args.out / "engine.csv")
    fig = figure(df)
    for ext in ("png", "pdf"):
        fig.savefig(args.out / f"engine.{ext}")
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
