"""The trainer: batched == separate runs, determinism, resuming, snapshots, logging."""

from __future__ import annotations

import logging

import pytest
import torch

from repro.data import EpochSampler, get_sampler, load_digits_images
from repro.nets import STREAM_D, BatchedMLP, ConvDiscriminator, ConvGenerator
from repro.train import (
    TrainConfig,
    epoch_steps,
    load_checkpoint,
    train_gan,
)

RING = get_sampler("ring", mode_std=0.05)


def _mlp_pair(seeds, dtype=torch.float64):
    G = BatchedMLP((3, 16, 2), seeds).to(dtype)
    D = BatchedMLP((2, 16, 1), seeds, stream=STREAM_D).to(dtype)
    return G, D


def _dcgan_pair(seeds, dtype=torch.float64):
    G = ConvGenerator(seeds, 4, 4, 8, "none", init="default", out_kernel=3).to(dtype)
    D = ConvDiscriminator(seeds, 4, 8, "none", init="default").to(dtype)
    return G, D


def _digits(dtype=torch.float64):
    return EpochSampler(load_digits_images(dtype)[:40])  # 40 images, batch 8: 5 steps per epoch


def _assert_same_state(batched, single, i):
    for (name, pb), (_, ps) in zip(
        batched.state_dict().items(), single.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(pb[i], ps[0], rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize(
    "kind, cfg",
    [
        ("mlp", TrainConfig(steps=6, batch_size=16, d_steps=2, log_every=2)),
        (
            "mlp",
            TrainConfig(steps=4, batch_size=8, objective="wgan-gp", log_every=2, betas=(0.0, 0.9)),
        ),
        (
            "mlp",
            TrainConfig(steps=4, batch_size=8, objective="wgan", optimizer="rmsprop", lr_d=1e-3),
        ),
        ("dcgan", TrainConfig(steps=7, batch_size=8, objective="minimax", log_every=3)),
    ],
)
def test_batched_seeds_equal_separate_runs(kind, cfg):
    """S seeds trained as one model (sum of per-seed losses) == S single-seed runs."""
    seeds = [0, 5, 2]
    pair, real, z_dim = (_mlp_pair, RING, 3) if kind == "mlp" else (_dcgan_pair, None, 4)
    G, D = pair(seeds)
    res = train_gan(G, D, real or _digits(), cfg, z_dim=z_dim)
    for i, s in enumerate(seeds):
        g1, d1 = pair([s])
        one = train_gan(g1, d1, real or _digits(), cfg, z_dim=z_dim)
        _assert_same_state(G, g1, i)
        _assert_same_state(D, d1, i)
        mine = res.history[res.history.seed == s].reset_index(drop=True)
        torch.testing.assert_close(
            torch.tensor(mine[["d_loss", "g_loss"]].values),
            torch.tensor(one.history[["d_loss", "g_loss"]].values),
            rtol=1e-10,
            atol=1e-12,
        )


def test_two_runs_are_identical_on_cpu():
    cfg = TrainConfig(steps=5, batch_size=8, log_every=1)
    runs = []
    for _ in range(2):
        G, D = _dcgan_pair([1, 2], torch.float32)
        runs.append((train_gan(G, D, _digits(torch.float32), cfg, z_dim=4), G))
    assert runs[0][0].history.equals(runs[1][0].history)
    for a, b in zip(runs[0][1].parameters(), runs[1][1].parameters(), strict=True):
        assert torch.equal(a, b)


class Interrupt(RuntimeError):
    pass


class InterruptingSampler:
    """Wraps a sampler and raises on its n-th call, like a job killed mid-run."""

    def __init__(self, inner, fail_on_call):
        self.inner, self.fail_on_call, self.calls = inner, fail_on_call, 0

    def __call__(self, gens, batch, device=None):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise Interrupt
        return self.inner(gens, batch, device=device)

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state):
        self.inner.load_state_dict(state)


def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path):
    cfg = TrainConfig(
        steps=12, batch_size=8, log_every=3, checkpoint_every=4, snapshot_steps=(2, 5, 12)
    )
    G, D = _dcgan_pair([3, 4], torch.float32)
    full = train_gan(G, D, _digits(torch.float32), cfg, z_dim=4)

    path = tmp_path / "ckpt" / "run.pt"
    g1, d1 = _dcgan_pair([3, 4], torch.float32)
    with pytest.raises(Interrupt):  # dies in step 11, after the checkpoint at step 8
        train_gan(
            g1, d1, InterruptingSampler(_digits(torch.float32), 11), cfg, z_dim=4, checkpoint=path
        )
    assert load_checkpoint(path)["step"] == 8
    g2, d2 = _dcgan_pair([3, 4], torch.float32)  # a new process: fresh models, same arguments
    resumed = train_gan(g2, d2, _digits(torch.float32), cfg, z_dim=4, checkpoint=path)

    assert resumed.history.equals(full.history)
    for net_a, net_b in [(G, g2), (D, d2)]:
        for a, b in zip(net_a.state_dict().values(), net_b.state_dict().values(), strict=True):
            assert torch.equal(a, b)
    assert sorted(resumed.snapshots) == [2, 5, 12]
    for step in (2, 5, 12):
        for k, v in full.snapshots[step].items():
            assert torch.equal(v, resumed.snapshots[step][k])
    assert [p.name for p in path.parent.iterdir()] == ["run.pt"]  # no temp file left behind


def test_checkpoint_for_other_seeds_is_refused(tmp_path):
    cfg = TrainConfig(steps=2, batch_size=4)
    path = tmp_path / "run.pt"
    train_gan(*_mlp_pair([0]), RING, cfg, z_dim=3, checkpoint=path)
    with pytest.raises(ValueError, match="seeds"):
        train_gan(*_mlp_pair([1]), RING, cfg, z_dim=3, checkpoint=path)


def test_snapshot_equals_a_run_that_stops_there():
    G, D = _mlp_pair([0, 1])
    res = train_gan(G, D, RING, TrainConfig(steps=6, batch_size=8, snapshot_steps=(3,)), z_dim=3)
    g3, d3 = _mlp_pair([0, 1])
    train_gan(g3, d3, RING, TrainConfig(steps=3, batch_size=8), z_dim=3)
    for k, v in g3.state_dict().items():
        assert torch.equal(res.snapshots[3][k], v)


def test_wgan_clips_the_critic():
    G, D = _mlp_pair([0, 1])
    cfg = TrainConfig(steps=3, batch_size=8, objective="wgan", optimizer="rmsprop", lr_d=0.1)
    train_gan(G, D, RING, cfg, z_dim=3)
    assert max(p.abs().max().item() for p in D.parameters()) <= 0.01


def test_epoch_steps_for_digits():
    assert epoch_steps((1, 10, 25), 1797, 64) == (28, 280, 700)
    assert epoch_steps((1, 2), 1797, 64, d_steps=5) == (6, 12)


def test_one_log_line_per_interval(caplog):
    with caplog.at_level(logging.INFO, logger="repro.train"):
        res = train_gan(
            *_mlp_pair([0]), RING, TrainConfig(steps=6, batch_size=4, log_every=2), z_dim=3
        )
    assert len([r for r in caplog.records if r.getMessage().startswith("step ")]) == 3
    assert res.history.step.tolist() == [2, 4, 6]
