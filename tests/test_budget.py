"""bench/budget.py and bench/counting.py: counting a step on the meta device (issue 15, item 6)."""

from __future__ import annotations

import os

import pandas as pd
import pytest
import torch

from bench import budget
from bench.counting import Counting


def _steps(n: int, sync: bool) -> Counting:
    w = torch.zeros(4, 3, device="meta", requires_grad=True)
    x_host = torch.randn(4, 8, 4)  # a host-side batch, copied to the device each step
    mode = Counting()
    with mode:
        for _ in range(n):
            x = x_host.to("meta")
            loss = (x @ w).pow(2).sum()
            loss.backward()
            with torch.no_grad():
                w -= 0.1 * w.grad
            if sync:
                loss.item()  # a host read of a device value
    return mode


def test_item_in_a_step_is_a_sync_and_kernels_are_counted():
    quiet, loud = _steps(3, sync=False).counts, _steps(3, sync=True).counts
    assert quiet.syncs == 0
    assert loud.syncs == 3
    assert quiet.copies == 3 and quiet.kernels > 3 * 4
    # per step: the (32, 4) @ (4, 3) forward and the grad of w (x needs none): 2 x 2 * 32 * 4 * 3
    assert quiet.flops == 3 * 2 * (2 * 32 * 4 * 3)


def test_grouped_conv_backward_flops_use_the_groups():
    x = torch.zeros(2, 8, 6, 6, device="meta", requires_grad=True)
    w = torch.zeros(8, 2, 3, 3, device="meta", requires_grad=True)  # groups = 4
    mode = Counting()
    with mode:
        y = torch.nn.functional.conv2d(x, w, groups=4)
        fwd = mode.counts.flops
        y.sum().backward()
    assert fwd == 2 * (2 * 8 * 4 * 4) * (2 * 3 * 3)
    assert mode.counts.flops == 3 * fwd  # grad input and grad weight, each a forward's cost


def test_budget_writes_a_row_per_claim_and_a_total(tmp_path):
    out = tmp_path / "budget.csv"
    rc = budget.main(
        ["--claims", "optimal-discriminator", "--out", str(out), "--host-op-us", "4.5"]
    )
    table = pd.read_csv(out)
    assert list(table.columns[:6]) == [
        "claim",
        "variant",
        "kernels_per_step",
        "host_ops_per_step",
        "syncs_per_step",
        "predicted_h100_s",
    ]
    assert table["claim"].tolist() == ["optimal-discriminator", "total"]
    row = table.iloc[0]
    # its draws are device kernels (repro.engine.streams.Stream): no host op, no sync in a step
    assert row["kernels_per_step"] > 10 and row["host_ops_per_step"] == 0
    assert row["syncs_per_step"] == 0
    assert row["predicted_h100_s"] > 0
    assert table.iloc[1]["predicted_h100_s"] == row["predicted_h100_s"]
    assert rc == 0  # no sync, far under the limit
    # counted as CUDA runs it: the update inside a static step (a graph replay); outside it
    # only the cosine schedule's write of the tensor lr (optim's set_lr, one kernel a step)
    assert row["kernels_per_step"] - row["graph_kernels_per_step"] == 1


def test_budget_counts_the_cuda_path_unless_eager_and_restores_the_switch(tmp_path, monkeypatch):
    from repro.engine import use_graphs

    seen = []

    def fake(spec, variant, host_op_us):
        seen.append(use_graphs("meta"))
        return budget.Row(spec.id, "", 10, 10, 0.0, 1.0)

    monkeypatch.setattr(budget, "budget_claim", fake)
    monkeypatch.setenv("REPRO_GRAPHS", "0")
    args = ["--claims", "noise-bound", "--out", str(tmp_path / "b.csv"), "--host-op-us", "1"]
    budget.main([*args, "--no-variants"])
    budget.main([*args, "--no-variants", "--eager"])
    assert seen == [True, False]
    assert os.environ["REPRO_GRAPHS"] == "0"  # the caller's value, back
    monkeypatch.delenv("REPRO_GRAPHS")
    budget.main([*args, "--no-variants"])
    assert "REPRO_GRAPHS" not in os.environ


@pytest.mark.parametrize(
    ("syncs", "seconds", "rc"), [(0.0, 100.0, 0), (1.0, 100.0, 1), (0.0, 500.0, 1)]
)
def test_exit_status_fails_on_a_sync_or_over_480_s(tmp_path, monkeypatch, syncs, seconds, rc):
    def fake(spec, variant, host_op_us):
        return budget.Row(spec.id, "", 10, 10, syncs, seconds)

    monkeypatch.setattr(budget, "budget_claim", fake)
    args = ["--claims", "noise-bound", "--out", str(tmp_path / "b.csv"), "--host-op-us", "1"]
    assert budget.main([*args, "--no-variants"]) == rc


def test_markdown_table_from_a_written_csv(tmp_path):
    out = tmp_path / "b.csv"
    pd.DataFrame(
        [
            {"claim": "a", "variant": "", "kernels_per_step": 1.0, "host_ops_per_step": 2.0,
             "syncs_per_step": 0.0, "predicted_h100_s": 3.0, "note": "x"},
            {"claim": "total", "variant": "", "predicted_h100_s": 3.0, "note": "model"},
        ]
    ).to_csv(out, index=False)  # fmt: skip
    text = budget.markdown(out)
    assert text.splitlines()[0].startswith("| claim | variant | kernels")
    assert "| **total** |" in text


# ---------------------------------------------------------------------------------------------
# graph-captured steps and the W1 pool: priced only where the code actually uses them


def test_kernels_of_a_static_step_are_counted_as_graph_kernels():
    from repro.engine.graph import StaticStep

    w = torch.zeros(4, 3, device="meta")
    x = torch.zeros(4, 8, 4, device="meta")

    def fn():
        w.add_((x @ w).sum(1).mul(0.1))  # 3 kernels: bmm, sum, mul; add_ a fourth

    runner = StaticStep(fn, {"x": x})
    eager = Counting()
    with eager:
        for _ in range(3):
            fn()
    static = Counting()
    batches = [torch.zeros(4, 8, 4) for _ in range(3)]
    with static:
        for b in batches:
            runner(x=b)  # a host batch copied in: a copy, outside the graph
    assert eager.counts.graph_kernels == 0 and eager.counts.replays == 0
    assert static.counts.replays == 3 and static.counts.copies == 3
    assert static.counts.graph_kernels == static.counts.kernels == eager.counts.kernels == 12
    per_eager = {k: getattr(eager.counts, k) / 3 for k in budget.COUNTED}
    per_static = {k: getattr(static.counts, k) / 3 for k in budget.COUNTED}
    # eager: 4 launches x 10 us; static: on the host one replay (10 us) and one copy (15 us),
    # on the GPU 4 kernels x 4 us = 16 us: the host bounds it at 25 us
    assert budget.step_seconds(per_eager, 5.0) == (
        pytest.approx(4 * budget.KERNEL_US * 1e-6),
        "host",
    )
    static_s = (budget.REPLAY_US + budget.COPY_US) * 1e-6
    assert budget.step_seconds(per_static, 5.0) == (pytest.approx(static_s), "host")
    per_static["copies"] = 0  # batches drawn on the device: the graph's GPU time bounds it
    gpu_s = 4 * budget.KERNEL_GPU_US * 1e-6 + per_static["flops"] / budget.GPU_FLOPS
    assert budget.step_seconds(per_static, 5.0) == (pytest.approx(gpu_s), "gpu")
    # a compute-heavy step: eager or replayed, each kernel's GPU time adds to the FLOPs' time
    heavy = 3e8  # FLOPs: 10 us at 30 TFLOP/s
    per_eager["flops"] = per_static["flops"] = heavy
    gpu_heavy = heavy / budget.GPU_FLOPS + 4 * budget.KERNEL_GPU_US * 1e-6
    assert budget.step_seconds(per_static, 5.0) == (pytest.approx(gpu_heavy), "gpu")
    assert budget.step_seconds(per_eager, 5.0) == (
        pytest.approx(4 * budget.KERNEL_US * 1e-6),
        "host",
    )
    per_eager["flops"] = 3e9  # 100 us of compute: now the GPU bounds the eager step too
    gpu_eager = 3e9 / budget.GPU_FLOPS + 4 * budget.KERNEL_GPU_US * 1e-6
    assert budget.step_seconds(per_eager, 5.0) == (pytest.approx(gpu_eager), "gpu")


def test_w1_dry_run_records_the_solves_and_solves_nothing():
    import numpy as np

    from repro.metrics import w1_dry_run, w1_pool

    pairs = [(np.zeros((5, 2)), np.zeros((7, 2))), (torch.zeros(3), np.zeros(4))]
    with w1_dry_run() as solves:
        assert w1_pool(pairs) == [0.0, 0.0]
    assert solves == [((5, 2), (7, 2)), ((3, 1), (4, 1))]
    assert budget.pool_wall_seconds(32.0, 1.0, workers=16) == 2.0  # work spread evenly
    assert budget.pool_wall_seconds(32.0, 5.0, workers=16) == 5.0  # the longest solve bounds it
    assert budget.pool_wall_seconds(0.0, 0.0) == 0.0


def test_budget_prices_the_w1_pool_only_where_it_is_called(monkeypatch):
    """A fake experiment that solves one W1 per step plus 3 at the end through w1_pool: at
    6,000 full steps that is 6,003 solves of 0.1 s on 16 workers; without w1_pool, nothing."""
    from bench.counting import Counts
    from repro.claims import load_all

    spec = load_all()["optimal-discriminator"]
    full = int(spec.params("full")["steps"])

    def fake_run(uses_pool):
        def count_run(spec, params, seeds):
            n = int(params["steps"])
            solves = [((100, 2), (100, 2))] * (n + 3) if uses_pool else []
            return Counts(kernels=10 * n, host_ops=0), None, solves

        return count_run

    monkeypatch.setattr(budget, "w1_solve_seconds", lambda shapes: 0.1)
    monkeypatch.setattr(budget, "count_run", fake_run(True))
    with_pool = budget.budget_claim(spec, None, 5.0)
    monkeypatch.setattr(budget, "count_run", fake_run(False))
    without = budget.budget_claim(spec, None, 5.0)
    assert without.w1_pool_s == 0.0
    assert without.predicted_h100_s == pytest.approx(full * 10 * budget.KERNEL_US * 1e-6)
    assert with_pool.w1_pool_s == pytest.approx((full + 3) * 0.1 / budget.POOL_WORKERS)
    assert with_pool.predicted_h100_s == pytest.approx(
        without.predicted_h100_s + with_pool.w1_pool_s
    )


def test_critic_warm_up_is_priced_at_its_own_number_of_steps():
    """critic-tracks-quality's warm-up (100 critic steps for the first 25 G steps and every
    500th, the WGAN authors' schedule) is a loop of its own: 25 + 9 (500, ..., 4,500) = 34 warm
    steps of 5,000; none without a warm-up; the steady loop counts with the warm-up off."""
    from repro.experiments.critic_tracks_quality import critic_steps

    steady, warm = budget.PHASES["critic-tracks-quality"]
    assert steady.param == "steps" and steady.fixed == {"warmup_d_steps": 0}
    assert warm.param == "warmup_g_steps" and warm.fixed["steps"] >= warm.hi
    p = {
        "steps": 5000,
        "warmup_g_steps": 25,
        "warmup_every": 500,
        "warmup_d_steps": 100,
        "d_steps": 5,
        "gan_d_steps": 1,
    }
    n_warm = sum(critic_steps(p, "wgan", t) == 100 for t in range(p["steps"]))
    assert warm.full_steps(p) == n_warm == 34
    assert warm.full_steps({**p, "warmup_d_steps": 0}) == 0
    assert warm.full_steps({**p, "steps": 10}) == 10  # a run shorter than the warm-up
