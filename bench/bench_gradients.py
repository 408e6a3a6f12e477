"""Budget the Arjovsky-Bottou gradient claims at a scale (NOT a test): time their phases briefly
on this machine and extrapolate to the spec's numbers.

Measured, with the scale's own params and seeds (all seeds batched, as the experiments run):

- GAN training: seconds per generator step (one D step + one G step, every seed);
- fresh-D training: seconds per D iteration against the stacked snapshots, with 1 D per G copy
  (d-perfect, vanishing-gradients) and with n_ds Ds per copy (minus-log-d-instability);
- one held-out evaluation (eval_size real and fake, G-gradient norms).

Extrapolated per claim: GAN steps x s/step + D iterations x s/iteration + evaluations x s/eval
(the instability claim adds 2 x tail_batches minibatch-gradient passes, counted as evaluations),
and the total of the three claims with the GAN trained once (GAN_CLAIMS_CHECKPOINT_DIR shares it)
or three times. Estimates, not a run: the fresh-D phase of a real run also pays for data loading.

    python bench/bench_gradients.py --scale full            # on the GPU that will run it
    python bench/bench_gradients.py --scale quick --steps 20 --threads 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml

from repro.data import EpochSampler, image_size
from repro.experiments.family import arjovsky_bottou as ab
from repro.nets import ConvDiscriminator, ConvGenerator
from repro.train import TrainConfig, epoch_steps, train_gan

ROOT = Path(__file__).resolve().parent.parent
CLAIMS = ("d-perfect", "vanishing-gradients", "minus-log-d-instability")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device: torch.device) -> float:
    _sync(device)
    t = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t


def gan_step_seconds(p, seeds, device, steps: int) -> float:
    real = EpochSampler(ab.load_split(p, "train", device))
    size = image_size(p["dataset"])
    G = ab.make_generator(p, seeds, size)
    D = ConvDiscriminator(seeds, channels=p["d_channels"], image_size=size)
    cfg = TrainConfig(steps=steps, batch_size=p["batch_size"], log_every=steps)
    train_gan(
        G,
        D,
        real,
        TrainConfig(steps=2, batch_size=p["batch_size"]),
        z_dim=p["z_dim"],
        device=device,
    )  # warm-up
    return (
        _timed(lambda: train_gan(G, D, real, cfg, z_dim=p["z_dim"], device=device), device) / steps
    )


def fresh_d_seconds(p, seeds, device, iterations: int, n_ds: int) -> tuple[float, float]:
    size = image_size(p["dataset"])
    snaps = [ConvGenerator(seeds, p["z_dim"], p["g_channels"], size).state_dict()] * len(
        p["g_epochs"]
    )
    G = ab.stack_snapshots(p, seeds, snaps, device)
    D = ab.fresh_discriminators(p, G, n_ds, device)
    q = dict(p) | {"d_iterations": 2, "eval_every": 10**9, "eval_early_until": 0}
    ab.run_fresh_d(q, G, D, n_ds, (), device)  # warm-up
    q["d_iterations"] = iterations
    per_it = _timed(lambda: ab.run_fresh_d(q, G, D, n_ds, (), device), device) / iterations
    ev = ab.HeldOutEval(p, G, device)
    x, z = ev.batch()
    per_eval = _timed(lambda: ab.evaluate(G, D, x, z, n_ds, ("minimax",)), device)
    return per_it, per_eval


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", default="full", choices=("quick", "full"))
    ap.add_argument("--steps", type=int, default=50, help="GAN steps and D iterations to time")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    specs = {c: yaml.safe_load((ROOT / "claims" / f"{c}.yaml").read_text()) for c in CLAIMS}
    p0 = specs["vanishing-gradients"]["scales"][args.scale]
    seeds = list(range(p0["seeds"]))
    gan = gan_step_seconds(p0["params"], seeds, device, args.steps)
    n_train = len(ab.load_split(p0["params"], "train", "cpu"))
    gan_steps = max(epoch_steps(p0["params"]["g_epochs"], n_train, p0["params"]["batch_size"]))
    print(
        f"device {device}; {args.scale}: {len(seeds)} seeds; GAN {gan * 1e3:.1f} ms/step x "
        f"{gan_steps} steps = {gan * gan_steps:.0f} s"
    )
    fresh_total = 0.0
    for c in CLAIMS:
        p = specs[c]["scales"][args.scale]["params"]
        n_ds = p.get("n_ds", 1)
        per_it, per_eval = fresh_d_seconds(p, seeds, device, args.steps, n_ds)
        n_eval = len(
            ab.eval_schedule(
                p["d_iterations"], p["eval_every"], p["eval_every_early"], p["eval_early_until"]
            )
        )
        n_eval += 2 * p.get("tail_batches", 0) * p["batch_size"] // p["eval_size"] + 1
        secs = per_it * p["d_iterations"] + per_eval * n_eval
        fresh_total += secs
        print(
            f"  {c}: {n_ds} D(s) per G copy; {per_it * 1e3:.1f} ms/D iteration x "
            f"{p['d_iterations']} + {per_eval * 1e3:.0f} ms/evaluation x {n_eval} = {secs:.0f} s"
        )
    print(
        f"three claims: {fresh_total + gan * gan_steps:.0f} s with one shared GAN run, "
        f"{fresh_total + 3 * gan * gan_steps:.0f} s with three"
    )


if __name__ == "__main__":
    main()
