"""Which runs are shared between claims, and the file each one is kept in (no torch here: the
Snakemake rules import this at parse time).

One shared run today: the DCGAN that the three Arjovsky & Bottou claims (d-perfect,
vanishing-gradients, minus-log-d-instability, and their variants) freeze and analyse. Under
Snakemake it is the output of the rule ``arjovsky_bottou_gan`` (rules/shared.smk),

    results/{scale}/_shared/arjovsky-bottou-<16 hex digits>.pt

one file per scale and per distinct (GAN params, seeds, device setting, torch version, code of the
GAN run): a variant that changes only the fresh-D settings (d_norm, d_lr, ...) reads the same
file; any change to a GAN param, the seeds or the code that trains the GAN names another file.
The rule's file is an input of those claims' ``run_claim`` jobs, which read it through
``$GAN_CLAIMS_SHARED_GAN`` (set by the rule's shell command, only for those jobs); called outside
Snakemake (tests, ``bench/``, a Python session) the claim trains the GAN in-process, with the same
numbers (``family.arjovsky_bottou_gan.train_snapshots``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

# the experiments (spec field ``experiment:``) whose runs read the shared Arjovsky-Bottou GAN
ARJOVSKY_BOTTOU_USERS = ("d_perfect", "vanishing_gradients", "minus_log_d_instability")

# the module that trains it: its source and every repro module it imports key the file
ARJOVSKY_BOTTOU_MODULE = "repro.experiments.family.arjovsky_bottou_gan"

# GAN settings that determine the snapshots (the fresh-D settings d_norm, d_lr, ... do not)
GAN_PARAMS = (
    "dataset",
    "g_epochs",
    "batch_size",
    "z_dim",
    "g_channels",
    "d_channels",
    "g_norm",
    "g_objective",
    "lr",
)

# the file a claim job loads instead of training the GAN (set by rules/claims.smk's run_claim)
SHARED_GAN_ENV = "GAN_CLAIMS_SHARED_GAN"

SHARED_DIR = "_shared"  # under results/{scale}/


def gan_code_hash() -> str:
    """``repro.provenance`` hash of the GAN run's code: its module and the repro modules it
    imports, transitively (read with ``ast``, nothing imported)."""
    from repro.provenance import code_files, hash_files

    return hash_files(code_files(ARJOVSKY_BOTTOU_MODULE))


def gan_key(params: Mapping[str, Any], seeds: Sequence[int]) -> dict[str, Any]:
    """What the snapshots depend on besides the device: the GAN params, the seeds, torch's
    version and the code. Stored in the file and checked by the claim job that loads it."""
    return {
        "params": {k: params[k] for k in GAN_PARAMS},
        "seeds": [int(s) for s in seeds],
        "torch": metadata.version("torch"),
        "code": gan_code_hash(),
    }


def shared_gan_name(params: Mapping[str, Any], seeds: Sequence[int], device: str) -> str:
    """``arjovsky-bottou-<digest>.pt``: 16 hex digits of SHA-256 over ``gan_key`` and the
    device setting (``auto`` / ``cpu`` / ``cuda``, as the config names it)."""
    key = {**gan_key(params, seeds), "device": str(device)}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return f"arjovsky-bottou-{digest}.pt"
