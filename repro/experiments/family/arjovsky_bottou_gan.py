"""The GAN run behind the Arjovsky & Bottou claims: one batched DCGAN trained for ``g_epochs``
epochs, G kept after each (``family.arjovsky_bottou`` freezes them and trains fresh Ds).

The run is shared: under Snakemake the rule ``arjovsky_bottou_gan`` (rules/shared.smk) trains it
once per scale and per distinct (GAN params, seeds, device setting, code) into
``results/{scale}/_shared/arjovsky-bottou-<digest>.pt`` (``family.shared_runs`` names the file)
and the claims' run jobs load it (``$GAN_CLAIMS_SHARED_GAN``); anywhere else ``train_snapshots``
trains it in-process. Both give the same snapshots bit for bit (the file holds exactly what
``train_in_process`` returned). Command line (what the rule runs):

    python -m repro.experiments.family.arjovsky_bottou_gan claims/d-perfect.yaml --scale smoke \
        --out results/smoke/_shared/arjovsky-bottou-<digest>.pt [--variant V] [--seeds N] \
        [--device auto] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import inspect
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from repro.data import EpochSampler, load_images, require_dataset
from repro.experiments.family.shared_runs import (
    GAN_PARAMS,
    SHARED_GAN_ENV,
    gan_key,
    shared_gan_name,
)
from repro.nets import ConvDiscriminator, ConvGenerator
from repro.train import TrainConfig, epoch_steps, train_gan

log = logging.getLogger(__name__)


def load_split(params: Mapping[str, Any], split: str, device: Any) -> torch.Tensor:
    require_dataset(params["dataset"])
    return load_images(params["dataset"], split).to(device)


def make_generator(params: Mapping[str, Any], seeds: Sequence[int], size: int) -> ConvGenerator:
    p = params
    return ConvGenerator(
        seeds, z_dim=p["z_dim"], channels=p["g_channels"], image_size=size, norm=p["g_norm"]
    )


CHECKPOINT_DIR_ENV = "GAN_CLAIMS_CHECKPOINT_DIR"


def snapshot_checkpoint(params: Mapping[str, Any], seeds: Sequence[int], device: Any):
    """Where the GAN run behind the snapshots is checkpointed, or None (the default).

    With $GAN_CLAIMS_CHECKPOINT_DIR set, ``train_gan`` resumes from / writes
    ``<dir>/gradients-gan-<key>.pt``; the key hashes the GAN settings, the seeds, the device
    type, torch's version and the source of the code that trains the GAN, so the three claims
    and their fresh-D variants (d-bn-off, d-lr-1e-3) share one GAN run per data set and an
    interrupted run resumes; any change to that code or those settings gives a new file.
    """
    root = os.environ.get(CHECKPOINT_DIR_ENV)
    if not root:
        return None
    code = [train_gan, train_in_process, ConvGenerator, ConvDiscriminator, EpochSampler]
    key = {
        "params": {k: params[k] for k in GAN_PARAMS},
        "seeds": [int(s) for s in seeds],
        "device": torch.device(device).type,
        "torch": torch.__version__,
        "code": hashlib.sha256("".join(inspect.getsource(f) for f in code).encode()).hexdigest(),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return os.path.join(root, f"gradients-gan-{digest}.pt")


def train_in_process(
    params: Mapping[str, Any], seeds: Sequence[int], device: Any
) -> list[dict[str, torch.Tensor]]:
    """One batched GAN run on the training split; G's state after each of ``g_epochs`` epochs.

    The GAN is the standard DCGAN (D with batch norm, Adam lr, beta1 0.5, the g_objective cost,
    k = 1). Epoch 0 is G at initialisation. Returns one state_dict (seed dim S) per entry.
    """
    p = params
    real = EpochSampler(load_split(p, "train", device))
    size = real.data.shape[-1]
    G = make_generator(p, seeds, size)
    D = ConvDiscriminator(seeds, channels=p["d_channels"], image_size=size, norm="batch")
    initial = copy.deepcopy(G.state_dict())
    steps = epoch_steps(p["g_epochs"], len(real.data), p["batch_size"])
    snaps: dict[int, dict[str, torch.Tensor]] = {}
    if max(steps) > 0:
        cfg = TrainConfig(
            steps=max(steps),
            batch_size=p["batch_size"],
            objective=p["g_objective"],
            lr_g=p["lr"],
            lr_d=p["lr"],
            log_every=max(1, max(steps) // 10),
            snapshot_steps=tuple(s for s in steps if s > 0),
            checkpoint_every=2000,
        )
        ckpt = snapshot_checkpoint(p, seeds, device)
        # eager (graphs=False): EpochSampler reshuffles on the host, which a replay would skip
        snaps = train_gan(
            G, D, real, cfg, z_dim=p["z_dim"], device=device, checkpoint=ckpt, graphs=False
        ).snapshots
    return [initial if s == 0 else snaps[s] for s in steps]


def train_snapshots(
    params: Mapping[str, Any], seeds: Sequence[int], device: Any
) -> list[dict[str, torch.Tensor]]:
    """G's state after each of ``g_epochs`` epochs: read from the shared run's file when
    ``$GAN_CLAIMS_SHARED_GAN`` names one (a claim job under Snakemake), else trained here
    (``train_in_process``). Same numbers either way."""
    path = os.environ.get(SHARED_GAN_ENV)
    if path:
        return load_shared(path, params, seeds, device)
    return train_in_process(params, seeds, device)


def save_shared(
    path: str | Path, params: Mapping[str, Any], seeds: Sequence[int], device: Any
) -> None:
    """Train the GAN (``train_in_process``) and write its snapshots to ``path`` atomically (a
    temporary file beside it, then a rename), with ``gan_key`` and the device type."""
    snaps = train_in_process(params, seeds, device)
    blob = {
        "key": json.dumps(gan_key(params, seeds), sort_keys=True),
        "device_type": torch.device(device).type,
        "snapshots": snaps,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(blob, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_shared(
    path: str | Path, params: Mapping[str, Any], seeds: Sequence[int], device: Any
) -> list[dict[str, torch.Tensor]]:
    """The snapshots ``save_shared`` wrote, after checking they are this run's: same GAN params,
    seeds, torch version and code (``gan_key``) and the same device type; a ValueError that says
    what differs otherwise (the workflow handed a claim another run's file)."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    want = gan_key(params, seeds)
    have = json.loads(blob["key"])
    if have != want:
        diff = sorted(k for k in want if have.get(k) != want[k])
        raise ValueError(f"shared GAN run {path} was made with other {', '.join(diff)}")
    if blob["device_type"] != torch.device(device).type:
        raise ValueError(
            f"shared GAN run {path} was trained on {blob['device_type']}, this claim runs on "
            f"{torch.device(device).type}"
        )
    log.info("GAN snapshots read from the shared run %s", path)
    return blob["snapshots"]


def main(argv: list[str] | None = None) -> None:
    from repro import provenance
    from repro.claims import load_spec

    ap = argparse.ArgumentParser(prog=f"python -m {__name__}", description=__doc__)
    ap.add_argument("spec", help="a claim spec whose run reads the shared GAN")
    ap.add_argument("--scale", required=True)
    ap.add_argument("--out", required=True, help="the .pt file (written atomically)")
    ap.add_argument("--variant", default=None)
    ap.add_argument("--seeds", type=int, default=None, help="override the spec's number of seeds")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s [arjovsky-bottou-gan] %(levelname)s %(message)s"
    )
    torch.set_num_threads(max(1, args.threads))
    spec = load_spec(args.spec)
    params, seeds = spec.params(args.scale, args.variant), spec.seeds(args.scale, args.seeds)
    name = shared_gan_name(params, seeds, args.device)
    if Path(args.out).name != name:  # the rule and this code disagree on the key
        raise SystemExit(f"{args.out}: this run's file is {name}")
    dev = provenance.pick_device(args.device)
    log.info("GAN run for %s (%s) seeds %s on %s -> %s", spec.id, args.scale, seeds, dev, args.out)
    save_shared(args.out, params, seeds, dev)


if __name__ == "__main__":
    main()
