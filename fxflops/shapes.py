"""Meta-device stand-ins: shapes and dtypes without data, and without touching the user's model.

Counting runs every graph node on meta tensors. Inputs and parameters are replaced by meta tensors
of the same shape, dtype and stride (no storage is allocated, nothing is copied), and leaf modules
are run as *meta clones*: shallow copies whose parameters and buffers are meta tensors and whose
hooks are empty. The original module object is never mutated.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn
from torch.fx.immutable_collections import immutable_dict, immutable_list
from torch.utils._pytree import tree_leaves, tree_map

_HOOK_ATTRIBUTES = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)


_PLAIN_LEAVES = (int, float, bool, str, type(None), torch.dtype, torch.device, torch.Size, slice, type(Ellipsis))


# torch.fx hands node arguments over in its immutable containers.
_SEQUENCES = (tuple, list, immutable_list)
_MAPPINGS = (dict, immutable_dict)


def tensor_leaves(value: Any) -> list[torch.Tensor]:
    """Every tensor in ``value`` (a pytree), in pytree order.

    Counting asks this of every node's arguments and output, so the containers graphs actually
    carry (tuples, lists, dicts of tensors and Python numbers) are walked directly; anything else
    (a registered pytree node such as a Hugging Face ``ModelOutput``) goes to ``tree_leaves``.
    """
    found: list[torch.Tensor] = []
    _collect_tensors(value, found)
    return found


def needs_grad(args: Any, extra: Any = None) -> bool:
    """Whether autograd would record an op on ``args`` (and a module's parameters): the outputs
    then require grad, which backward counts (count(backward=True)) read."""
    if not torch.is_grad_enabled():
        return False
    if isinstance(extra, nn.Module):
        if any(p.requires_grad for p in extra.parameters()):
            return True
        extra = None
    return any(t.requires_grad for t in tensor_leaves((args, extra)))


def as_autograd_would(output: Any, inputs: Any, module: nn.Module | None = None) -> Any:
    """``output`` made by a rule's ``output=`` function from shapes, marked as autograd would mark
    the real op's: its floating tensors require grad when :func:`needs_grad` says so, so backward
    formulas downstream (``count(backward=True)``) see the gradients."""
    if not needs_grad(inputs, module):
        return output
    for leaf in tensor_leaves(output):
        if leaf.is_floating_point() and not leaf.requires_grad and leaf.is_leaf:
            leaf.requires_grad_(True)
    return output


def _collect_tensors(value: Any, found: list[torch.Tensor]) -> None:
    if isinstance(value, torch.Tensor):
        found.append(value)
    elif isinstance(value, _PLAIN_LEAVES):
        return
    elif type(value) in _SEQUENCES:
        for item in value:
            _collect_tensors(item, found)
    elif type(value) in _MAPPINGS:
        for item in value.values():
            _collect_tensors(item, found)
    else:
        found.extend(leaf for leaf in tree_leaves(value) if isinstance(leaf, torch.Tensor))


def to_meta(value: Any, cache: dict[int, torch.Tensor] | None = None) -> Any:
    """Replace every tensor in ``value`` (a pytree) by a meta tensor of the same shape and dtype.

    ``cache`` maps ``id(tensor)`` to its stand-in, so a tensor met twice maps to one meta tensor.
    """

    def convert(leaf: Any) -> Any:
        if not isinstance(leaf, torch.Tensor):
            return leaf
        if cache is not None and id(leaf) in cache:
            return cache[id(leaf)]
        meta = meta_like(leaf)
        if cache is not None:
            cache[id(leaf)] = meta
        return meta

    return tree_map(convert, value)


def meta_like(tensor: torch.Tensor) -> torch.Tensor:
    """A meta tensor with ``tensor``'s shape, stride, dtype and ``requires_grad``; no data."""
    if tensor.is_nested or tensor.layout != torch.strided:
        meta = torch.empty(tensor.shape, dtype=tensor.dtype, device="meta")
    else:
        meta = torch.empty_strided(tensor.shape, tensor.stride(), dtype=tensor.dtype, device="meta")
    if isinstance(tensor, nn.Parameter):
        return nn.Parameter(meta, requires_grad=tensor.requires_grad)
    if tensor.requires_grad and meta.is_floating_point():
        meta.requires_grad_(True)
    return meta


#: The hooks a run on meta tensors keeps with ``keep_forward_hooks=True``: work done in a user's
#: forward hooks is real work (and transformers collects hidden states with them).
FORWARD_HOOK_ATTRIBUTES = frozenset({"_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
                                     "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs"})


def meta_clone(module: nn.Module, cache: dict[int, torch.Tensor], keep_forward_hooks: bool = False) -> nn.Module:
    """A shallow copy of ``module`` and its submodules with meta parameters and buffers, no hooks
    (forward hooks kept, as copies, with ``keep_forward_hooks``).

    Plain containers in the instance dict (e.g. ``nn.RNNBase._flat_weights``) are copied too, so
    that assigning meta tensors to the clone never reaches the original. Subclasses of ``dict``
    (diffusers' ``FrozenDict`` config, transformers' configs) are shared as they are: copying them
    as plain dicts would lose the attribute access models read them with.

    The clone is made from the instance dict, not with ``copy.copy``: parametrized modules
    (``weight_norm``, ``spectral_norm``, ``register_parametrization``) refuse to be copied or
    pickled, and their parametrizations are ordinary submodules here.
    """
    clone = object.__new__(type(module))
    clone.__dict__.update(vars(module))
    for key, value in list(vars(module).items()):
        if type(value) in (dict, OrderedDict, list):
            setattr_plain(clone, key, type(value)(value))
    for key in _HOOK_ATTRIBUTES:
        if key in vars(clone):
            kept = keep_forward_hooks and key in FORWARD_HOOK_ATTRIBUTES
            # A copy: hooks the run registers on the clone must not reach the user's module.
            setattr_plain(clone, key, OrderedDict(vars(module)[key]) if kept else OrderedDict())
    for name, child in module._modules.items():
        clone._modules[name] = meta_clone(child, cache, keep_forward_hooks) if child is not None else None
    for name, param in module._parameters.items():
        if param is not None:
            # setattr, not a dict write: nn.RNNBase.__setattr__ keeps _flat_weights in sync.
            setattr(clone, name, to_meta(param, cache))
    for name, buffer in module._buffers.items():
        if buffer is not None:
            clone._buffers[name] = to_meta(buffer, cache)
    flat_names = getattr(module, "_flat_weights_names", None)
    if flat_names is not None:
        setattr_plain(clone, "_flat_weights", [getattr(clone, n, None) for n in flat_names])
    return clone


def setattr_plain(obj: object, name: str, value: Any) -> None:
    """Set an instance attribute bypassing ``nn.Module.__setattr__``'s registration logic."""
    object.__setattr__(obj, name, value)
