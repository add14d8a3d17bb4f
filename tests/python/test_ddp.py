"""DDP on two gloo processes (CPU, localhost) for every family: no unused parameters (DDP is built without
find_unused_parameters), the ranks' parameters agree exactly after training, and they match one process trained on
the same global batches (BatchNorm on running statistics, so the shards of a batch give the batch's gradient)."""
import os
import socket

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import leanconv
from leanconv.train import checkpoint as checkpoints
from leanconv.families import FAMILIES

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model(family):
    torch.manual_seed(0)
    return leanconv.models.resnet20(num_classes=10, conv=family, **FAMILIES[family].sample_options)


def _train_steps(model, batches, shard=None, lr=0.01):
    """SGD steps; BatchNorm on running statistics, so shards of a batch give the batch's gradient. lr is small by
    default: a ring's gradient sums all its uses."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for x, y in batches:
        if shard is not None:
            x, y = x[shard[0]::shard[1]], y[shard[0]::shard[1]]
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


def _worker(rank, world, port, family, state, batches, out_dir):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    model = _model(family)
    model.load_state_dict(state)
    _train_steps(DistributedDataParallel(model), batches, (rank, world))
    torch.save(model.state_dict(), f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_ddp_on_two_gloo_processes_matches_one_process(tmp_path, family):
    model = _model(family)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(1)
    batches = [(torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))) for _ in range(2)]
    torch.multiprocessing.spawn(_worker, args=(2, _free_port(), family, state, batches, str(tmp_path)), nprocs=2)
    _train_steps(model, batches)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    trained = 0
    for key, value in model.state_dict().items():
        assert torch.equal(ranks[0][key], ranks[1][key]), key
        torch.testing.assert_close(ranks[0][key], value, rtol=1e-5, atol=1e-6)
        trained += not torch.equal(ranks[0][key], state[key])
    assert trained > 0


def test_the_training_command_line_under_torchrun(tmp_path):
    # Two gloo processes through torchrun: rank 0 alone prints the table, logs and checkpoints; the global batch of
    # 16 is two shards of 8.
    import subprocess
    import sys
    from pathlib import Path

    from test_datasets import _write_fashion

    repo = Path(__file__).resolve().parents[2]
    data = tmp_path / "data"
    _write_fashion(data, count=64)
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
         "-m", "leanconv.train", "--dataset", "fashion-mnist", "--data", str(data), "--model", "resnet20", "--conv",
         "lowrank", "--epochs", "1", "--batch-size", "16", "--workers", "0", "--log-csv", str(tmp_path / "run.csv"),
         "--checkpoint", str(tmp_path / "run.pt")],
        cwd=repo, env={**os.environ, "PYTHONPATH": str(repo / "python"), "OMP_NUM_THREADS": "1"},
        capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("| resnet20-lowrank |") == 1
    assert len((tmp_path / "run.csv").read_text().strip().splitlines()) == 2  # the header and one epoch
    assert checkpoints.load(tmp_path / "run.pt")["epoch"] == 1
