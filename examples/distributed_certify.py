"""Certify a data set over the ranks of your own torch.distributed program with one call.

``certify_dataset`` splits the inputs over the ranks in chunks, rank 0 gathers the rows, and every
rank gets the same results table. Because input i always uses noise stream i, the table is the
same for any number of ranks (bit for bit with ``deterministic=True``): one process and
``torchrun --nproc-per-node=4`` print the same lines. Pass ``out="certify.tsv"`` to keep a results
file that a killed job resumes.

Run: python examples/distributed_certify.py
     torchrun --nproc-per-node=2 examples/distributed_certify.py
"""
import torch.distributed as dist

from rsengine import Smooth, certify_dataset  # before init_process_group (see docs/scale-out.md)
from rsengine.checkpoints import bundled_checkpoint, load_checkpoint
from rsengine.data import load_dataset
from rsengine.distributed import launched_by_torchrun
from rsengine.questions import Certify

if launched_by_torchrun():
    dist.init_process_group("gloo")  # "nccl" for CUDA tensors; the results travel as Python objects
checkpoint = load_checkpoint(bundled_checkpoint())
smooth = Smooth(checkpoint.model.eval(), checkpoint.num_classes, sigma=0.25, mean=checkpoint.mean,
                std=checkpoint.std, seed=0, deterministic=True)
dataset = load_dataset("mnist", "test")

results = certify_dataset(smooth, dataset, Certify(n0=100, n=1000, alpha=0.001), indices=range(0, 1000, 100),
                          quiet=True)

if not dist.is_initialized() or dist.get_rank() == 0:
    for row in results.rows():  # also results.acr, results.certified_accuracy([0.0, 0.5])
        print(f"{row['idx']}\t{row['label']}\t{row['predict']}\t{row['radius']}")
if dist.is_initialized():
    dist.destroy_process_group()
