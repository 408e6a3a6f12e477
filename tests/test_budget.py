"""bench/budget.py and bench/counting.py: counting a step on the meta device (issue 15, item 6)."""

from __future__ import annotations

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
    assert row["kernels_per_step"] > 10 and row["host_ops_per_step"] > 10
    assert row["syncs_per_step"] == 0
    assert row["predicted_h100_s"] > 0
    assert table.iloc[1]["predicted_h100_s"] == row["predicted_h100_s"]
    assert rc == 0  # no sync, far under the limit


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
