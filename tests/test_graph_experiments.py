"""The experiments on static steps (CUDA graphs on CUDA), checked on the CPU and on ``meta``.

Every claim whose experiment trains through ``repro.engine.fit`` / ``gan`` (or ``train_gan``)
asks ``repro.engine.use_graphs(device)``; ``REPRO_GRAPHS=1`` forces that path on the CPU, where
each static step runs eagerly on its static buffers. (a) Its smoke run then gives exactly the
tables of the eager run (static streams, capturable optimisers, tables made before the loop,
device-side noise schedules: same numbers). (b) On ``meta`` (the budget's stand-in for a GPU)
no static step does host work, a host<->device copy or a sync, which a captured graph could not
replay. Left eager, and so not here: saturation and the Arjovsky-Bottou GAN / fresh-D loops
(``EpochSampler`` reshuffles on the host).
"""

from __future__ import annotations

import functools
import warnings

import pandas as pd
import pytest
import torch

from bench.counting import Counting
from bench.smoke_freeze import TIME_COLUMNS
from repro import experiments
from repro.claims import load_all
from repro.engine import graph, use_graphs
from repro.noise import add_instance_noise, noise_on_device, noise_std_at, noise_std_on_device

# the claims whose experiments run their updates as static steps when use_graphs(device); the
# slow ones train through code another case here runs (``make test-slow`` runs them too)
SLOW = pytest.mark.slow
WIRED = [
    "annealed-noise-training",
    "clipping-gradients",
    "critic-tracks-quality",
    # its feature classifier only (the GAN and fresh-D loops stay eager): the same fit on
    # minibatch indices drawn on the device as stacked-digits-modes' classifier
    pytest.param("d-perfect", marks=SLOW),
    pytest.param("fenchel-conjugates", marks=SLOW),  # fit + cosine, as optimal-discriminator
    "fgan-gaussian-fit",
    "js-disjoint-supports",
    pytest.param("kl-covers-reverse-kl-seeks", marks=SLOW),  # family.fdiv_fit, as fgan-gaussian-fit
    "mode-collapse-mixtures",
    pytest.param("mode-rotation", marks=SLOW),  # family.mixtures.train_method, as mode-collapse
    "noise-restores-overlap",
    "optimal-discriminator",
    pytest.param("pacgan-table1", marks=SLOW),  # family.mixtures.train_method, as mode-collapse
    "stacked-digits-modes",
    "wgan-critic-vs-discriminator",
]
# the meta check: one claim per way of using the engine (mode-collapse-mixtures has every
# mixture method; pacgan-table1 and mode-rotation train through the same train_method, and
# d-perfect's classifier is stacked-digits-modes' pattern), at smaller smoke params where the
# run is long on meta (its ops are Python kernels): every static step is still run
META = {
    "annealed-noise-training": {"targets": ["curve"], "eval_every": 20},
    "clipping-gradients": {"clips": [0.01], "depth": 4},
    "critic-tracks-quality": {"eval_every": 10, "n_eval": 100},
    "fenchel-conjugates": {},
    "fgan-gaussian-fit": {},
    "js-disjoint-supports": {},
    "mode-collapse-mixtures": {
        "datasets": ["ring"],  # the methods' steps do not depend on the data set
        "methods": [
            "wgan",
            "wgan-gp",
            "unrolled5",
            "pacgan2",  # the GAN's step, packed
            "minibatch-disc",
            "feature-matching",
            "instance-noise",
        ],
    },
    "noise-restores-overlap": {},
    "optimal-discriminator": {},
    "stacked-digits-modes": {"methods": ["pacgan2", "minibatch"], "eval_samples": 200},
    "wgan-critic-vs-discriminator": {},
}
META_CALLS = 2  # static steps run per StaticStep on meta (then skipped: the counts are per step)


@functools.cache
def _specs():
    return load_all()  # parsing every spec takes ~0.3 s: once per session


def _smoke(claim: str, device: str, **overrides):
    spec = _specs()[claim]
    params = {**spec.params("smoke"), **overrides}
    return experiments.get(spec["experiment"]).run(
        params, spec.seeds("smoke"), torch.device(device)
    )


@pytest.mark.parametrize("claim", WIRED)
def test_static_path_gives_the_eager_smoke_tables(claim, monkeypatch):
    monkeypatch.delenv(graph.GRAPHS_ENV, raising=False)
    calls0 = graph.static_calls
    eager = _smoke(claim, "cpu")
    assert graph.static_calls == calls0  # the CPU's default: no static step
    monkeypatch.setenv(graph.GRAPHS_ENV, "1")
    static = _smoke(claim, "cpu")
    assert graph.static_calls > calls0  # the static path ran
    assert sorted(static) == sorted(eager)
    for name, table in eager.items():
        keep = [c for c in table.columns if c not in TIME_COLUMNS]
        pd.testing.assert_frame_equal(static[name][keep], table[keep], check_exact=True)


@pytest.mark.parametrize("claim", sorted(META))
def test_static_steps_do_no_host_work_on_meta(claim, monkeypatch):
    """The smoke run on meta with REPRO_GRAPHS=1: the first META_CALLS calls of every static
    step are counted (later ones skipped, to keep meta's slow kernels short); a run may end
    in an error after its loops (numpy on meta tensors), as in the budget's count_run."""
    from repro.data import clear_caches
    from repro.metrics import w1_dry_run

    monkeypatch.setenv(graph.GRAPHS_ENV, "1")
    run_step = graph.StaticStep.__call__

    def first_calls(self, **values):
        if self.calls >= META_CALLS:
            self.calls += 1
            return None
        return run_step(self, **values)

    monkeypatch.setattr(graph.StaticStep, "__call__", first_calls)
    clear_caches()  # tables made once per process are made in this run, outside its steps
    with w1_dry_run(), Counting() as mode, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            _smoke(claim, "meta", **META[claim])
        except Exception:  # after the loops: numpy meets meta tensors (counted anyway)
            pass
    c = mode.counts
    assert c.replays > 0 and c.graph_kernels > 0, "no static step ran"
    assert c.graph_host_ops == 0, c.by_op
    assert c.graph_copies == 0, c.by_op
    assert c.graph_syncs == 0, c.by_op


def test_use_graphs_is_cuda_unless_the_environment_says_otherwise(monkeypatch):
    monkeypatch.delenv(graph.GRAPHS_ENV, raising=False)
    assert use_graphs(torch.device("cuda")) and use_graphs("cuda:0")
    assert not use_graphs("cpu") and not use_graphs("meta") and not use_graphs(None)
    monkeypatch.setenv(graph.GRAPHS_ENV, "0")
    assert not use_graphs("cuda")
    monkeypatch.setenv(graph.GRAPHS_ENV, "1")
    assert use_graphs("cpu") and use_graphs("meta")
    monkeypatch.setenv(graph.GRAPHS_ENV, "yes")
    with pytest.raises(ValueError, match="REPRO_GRAPHS must be 0 or 1"):
        use_graphs("cpu")


def test_noise_std_on_device_is_the_host_schedule_bit_for_bit():
    linear = {"kind": "linear", "start_std": 0.2, "end_std": 0.0}
    for total in (3, 7, 1500, 400_000):
        for step in {0, 1, 2, total // 3, total - 1, total, total + 5}:
            t = torch.tensor(float(step), dtype=torch.float64)
            assert float(noise_std_on_device(t, total, linear)) == noise_std_at(step, total, linear)
    assert (
        noise_std_on_device(
            torch.zeros((), dtype=torch.float64), 9, {"kind": "constant", "std": 0.3}
        )
        == 0.3
    )
    geometric = {"kind": "geometric", "start_std": 1.0, "end_std": 0.1}
    with pytest.raises(ValueError, match="not computed on the device"):
        noise_std_on_device(torch.zeros((), dtype=torch.float64), 9, geometric)
    assert noise_on_device(linear, 10, range(10)) and not noise_on_device(linear, 10, range(11))
    assert not noise_on_device(geometric, 10, range(10))


def test_instance_noise_with_a_device_std_equals_the_float_std():
    from repro.engine import Stream

    x = torch.linspace(-1, 1, 2 * 5 * 2).reshape(2, 5, 2)
    std = noise_std_at(3, 7, {"kind": "linear", "start_std": 0.2, "end_std": 0.0})
    a = add_instance_noise(x, std, Stream([0, 1], "data"))
    b = add_instance_noise(x, torch.tensor(std, dtype=torch.float64), Stream([0, 1], "data"))
    assert torch.equal(a, b)
