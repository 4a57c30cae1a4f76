"""Certify inputs over the ranks of your own torch.distributed program; every rank gets all results.

Each rank takes its share of the inputs (``shard``), certifies them with their data set indices
as noise streams, and ``gather_by_index`` merges the ranks' results in index order. Because input
i always uses stream i, the table is the same for any number of ranks (bit for bit with
``deterministic=True``): one process and ``torchrun --nproc-per-node=4`` print the same lines.

Run: python examples/distributed_certify.py
     torchrun --nproc-per-node=2 examples/distributed_certify.py
"""
import torch.distributed as dist

from rsengine import Smooth
from rsengine.checkpoints import bundled_checkpoint, load_checkpoint
from rsengine.data import load_dataset
from rsengine.distributed import gather_by_index, launched_by_torchrun, shard

if launched_by_torchrun():
    dist.init_process_group("gloo")  # "nccl" for CUDA tensors; the results travel as Python objects
checkpoint = load_checkpoint(bundled_checkpoint())
smooth = Smooth(checkpoint.model.eval(), checkpoint.num_classes, sigma=0.25, mean=checkpoint.mean,
                std=checkpoint.std, seed=0, deterministic=True)
dataset = load_dataset("mnist", "test")

mine = shard(range(0, 1000, 100))  # this rank's data set indices
xs = [dataset[i][0] for i in mine]
labels, radii = smooth.certify_batch(xs, n0=100, n=1000, alpha=0.001, streams=mine) if mine else ([], [])
results = gather_by_index(mine, [(int(label), float(radius)) for label, radius in zip(labels, radii)])

if not dist.is_initialized() or dist.get_rank() == 0:
    for i, (label, radius) in results.items():
        print(f"{i}\t{dataset[i][1]}\t{label}\t{radius:.4f}")
if dist.is_initialized():
    dist.destroy_process_group()
