"""How rsengine evaluates your classifier: eval mode for every module it uses, deterministic mode,
and the logits read out of whatever it returns.

Example:
    >>> import torch
    >>> from rsengine.classifier import eval_mode, logits_of, reachable_modules
    >>> net = torch.nn.Linear(2, 2)
    >>> reachable_modules(lambda b: net(b)) == [net]
    True
    >>> logits_of({"logits": net(torch.zeros(3, 2))}, rows=3).shape
    torch.Size([3, 2])
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import os
import sys
import threading
import warnings
from collections.abc import Mapping

import torch
import torch.distributed as dist
from torch.nn.modules.module import register_module_forward_pre_hook

__all__ = ["deterministic_algorithms", "device_and_dtype", "eval_mode", "logits_of", "reachable_modules"]

_ACCEPTED_OUTPUTS = ("a tensor [batch, classes], a dict with a 'logits' tensor, or an object with a .logits tensor "
                     "(a Hugging Face ModelOutput)")


def logits_of(output, rows: int, num_classes: int | None = None) -> torch.Tensor:
    """The logits [rows, num_classes] in what a classifier returned: every call rsengine makes reads them here.

    A tensor is taken as is; from a Mapping its ``"logits"`` entry, from any other object its
    ``.logits`` attribute (a Hugging Face ModelOutput has both). Anything else (a tuple, a dict
    without "logits", None) is refused by name here, not deep inside the vote kernel or the loss.

    Args:
        output: what the classifier returned for a batch of ``rows`` inputs.
        rows: the batch's rows. num_classes: the expected width; None accepts any.

    Raises:
        TypeError: no logits tensor in ``output`` (its type, and a dict's keys, are named).
        ValueError: the logits are not [rows, num_classes].

    Example:
        >>> logits_of((torch.zeros(2, 3),), rows=2)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: Expected the classifier to return a tensor [batch, classes], ... got a tuple
    """
    logits = output
    if isinstance(output, Mapping):
        logits = output.get("logits")
        if not isinstance(logits, torch.Tensor):
            raise TypeError(f"Expected the classifier to return {_ACCEPTED_OUTPUTS}, got a {type(output).__name__} "
                            f"with keys {list(output)}")
    elif not isinstance(output, torch.Tensor):
        logits = getattr(output, "logits", None)
        if not isinstance(logits, torch.Tensor):
            raise TypeError(f"Expected the classifier to return {_ACCEPTED_OUTPUTS}, got a {type(output).__name__}")
    width = "num_classes" if num_classes is None else num_classes
    if logits.ndim != 2 or logits.shape[0] != rows or num_classes is not None and logits.shape[1] != num_classes:
        raise ValueError(f"Expected the classifier's output to be [batch, num_classes] = [{rows}, {width}], "
                         f"got {list(logits.shape)}")
    return logits


def reachable_modules(classifier) -> list[torch.nn.Module]:
    """The ``nn.Module``s a classifier visibly holds.

    The classifier itself, a bound method's owner (``net.forward``), a ``functools.partial``'s
    function and arguments, and a function's closure cells, defaults and the globals it names
    (``lambda b: net(b)``), followed recursively.

    Example:
        >>> net = torch.nn.Linear(2, 2)
        >>> reachable_modules(lambda b: net(b)) == [net]
        True
    """
    found, todo, seen = [], [classifier], set()
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.nn.Module):
            found.append(obj)
        elif isinstance(obj, functools.partial):
            todo += [obj.func, *obj.args, *obj.keywords.values()]
        elif inspect.ismethod(obj):
            todo.append(obj.__self__)
        elif inspect.isfunction(obj):
            todo += [cell.cell_contents for cell in obj.__closure__ or () if _cell_is_set(cell)]
            todo += list(obj.__defaults__ or ()) + list((obj.__kwdefaults__ or {}).values())
            todo += [obj.__globals__[name] for name in _names(obj.__code__) if name in obj.__globals__]
    return found


def _cell_is_set(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:  # a closure variable not assigned yet
        return False
    return True


def _names(code) -> set[str]:
    # Global names a function's code uses, nested lambdas and comprehensions included.
    names = set(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            names |= _names(const)
    return names


@contextlib.contextmanager
def eval_mode(classifier):
    """Run ``classifier`` with every ``nn.Module`` it uses in eval mode, then restore each one's mode.

    Dropout, or batch norm in training mode, would make f random and its votes depend on the
    other rows of the batch: not the independent samples the bound needs, and certification would
    change the network's running statistics. The modules :func:`reachable_modules` finds are
    switched up front; where the classifier is a plain callable, a forward pre-hook also switches
    any other module it calls (in this thread) before that module runs. Only code that uses no
    ``nn.Module`` (``F.dropout(x, training=True)`` in a function) escapes: rsengine cannot see it.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.BatchNorm1d(2)).train()
        >>> with eval_mode(lambda b: net(b)):
        ...     net[0].training
        False
        >>> net[0].training
        True
    """
    modes: dict[torch.nn.Module, bool] = {}

    def switch(module: torch.nn.Module) -> None:
        for sub in module.modules():
            if sub not in modes:
                modes[sub] = sub.training
                sub.training = False

    for module in reachable_modules(classifier):
        switch(module)
    hook = None
    if not isinstance(classifier, torch.nn.Module):  # a module's own tree is already switched
        thread = threading.get_ident()

        def switch_before_forward(module, args):
            if module not in modes and threading.get_ident() == thread:
                switch(module)

        hook = register_module_forward_pre_hook(switch_before_forward)
    try:
        yield
    finally:
        if hook is not None:
            hook.remove()
        for module, training in modes.items():
            module.training = training


# torch.use_deterministic_algorithms imports torch._inductor, which imports the module named
# below, whose functions bind the default process group as a default argument
# (``group=group.WORLD``) when first imported. Imported after init_process_group, it keeps the group alive past
# destroy_process_group; the group's gloo threads then die in interpreter shutdown, and one still
# freeing a collective's tensors aborts the process ("terminate called without an active
# exception"). Imported here, with rsengine, before a program makes its group, it binds None.
_BINDS_THE_DEFAULT_GROUP = "torch.distributed.nn.functional"
if dist.is_available() and not dist.is_initialized():
    importlib.import_module(_BINDS_THE_DEFAULT_GROUP)


@contextlib.contextmanager
def deterministic_algorithms():
    """PyTorch's deterministic algorithms, cuDNN autotuning off and TF32 off; restored afterwards.

    On CUDA, deterministic cuBLAS needs CUBLAS_WORKSPACE_CONFIG before its first call; it is
    set to ``:4096:8`` here when unset, which takes effect only if cuBLAS has not run yet in the
    process (set it in the environment to be sure).
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if _BINDS_THE_DEFAULT_GROUP not in sys.modules and dist.is_available() and dist.is_initialized():
        warnings.warn("rsengine was imported after init_process_group: deterministic mode now imports "
                      f"{_BINDS_THE_DEFAULT_GROUP}, which keeps the process group alive past "
                      "destroy_process_group, so the process may abort at exit; import rsengine first",
                      RuntimeWarning, stacklevel=3)
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32)
    torch.use_deterministic_algorithms(True)
    cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32 = False, True, False, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32 = saved[2:]


def device_and_dtype(classifier) -> tuple[torch.device, torch.dtype]:
    """Where a classifier's tensors live and its first floating dtype (CPU and float32 if it has none)."""
    tensors = [t for module in reachable_modules(classifier) for t in (*module.parameters(), *module.buffers())]
    floating = [t for t in tensors if t.is_floating_point()]
    device = tensors[0].device if tensors else torch.device("cpu")
    return device, (floating[0].dtype if floating else torch.float32)
