"""Ops that cost 0 FLOPs by definition: they view, move, index, copy, cast or create data.

Also here: dropout (a mask, not arithmetic, and an identity in eval), embedding lookups (a gather),
and the assertions torch.fx inserts for concrete arguments.
"""

from __future__ import annotations

import builtins
import operator

import torch
import torch.fx._symbolic_trace as fx_trace
import torch.nn.functional as F
from torch import nn

from fxflops.registry import zero

# -- modules ---------------------------------------------------------------------------------
zero(
    nn.Identity, nn.Flatten, nn.Unflatten, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
    nn.AlphaDropout, nn.FeatureAlphaDropout, nn.Embedding, nn.PixelShuffle, nn.PixelUnshuffle,
    nn.ChannelShuffle, nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d,
    nn.ConstantPad3d, nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReflectionPad3d,
    nn.ReplicationPad1d, nn.ReplicationPad2d, nn.ReplicationPad3d, nn.CircularPad1d,
    nn.CircularPad2d, nn.CircularPad3d, nn.Fold, nn.Unfold,
)

# -- Python-level access and indexing ---------------------------------------------------------
zero(operator.getitem, operator.setitem, builtins.getattr, builtins.len, builtins.isinstance,
     fx_trace._assert_is_none, torch._assert, operator.eq, operator.ne, operator.not_,
     operator.is_, operator.is_not, operator.contains)

# -- torch functions that create, view, copy, index or combine tensors ------------------------
zero(
    torch.cat, torch.concat, torch.concatenate, torch.stack, torch.hstack, torch.vstack, torch.dstack,
    torch.flatten, torch.reshape, torch.permute, torch.transpose, torch.swapaxes, torch.swapdims,
    torch.movedim, torch.moveaxis, torch.squeeze, torch.unsqueeze, torch.split, torch.chunk,
    torch.tensor_split, torch.unbind, torch.narrow, torch.select, torch.index_select, torch.gather,
    torch.take, torch.take_along_dim, torch.masked_select, torch.scatter, torch.index_put,
    torch.roll, torch.flip, torch.fliplr, torch.flipud, torch.rot90, torch.tril, torch.triu,
    torch.where, torch.masked_fill, torch.repeat_interleave, torch.tile, torch.broadcast_to,
    torch.broadcast_tensors, torch.meshgrid, torch.t, torch.diagonal, torch.diag_embed,
    torch.zeros, torch.ones, torch.empty, torch.full, torch.arange, torch.linspace,
    torch.logspace, torch.eye, torch.zeros_like, torch.ones_like, torch.empty_like, torch.full_like,
    torch.rand, torch.randn, torch.randint, torch.rand_like, torch.randn_like, torch.randint_like,
    torch.randperm, torch.bernoulli, torch.multinomial, torch.normal, torch.tensor, torch.as_tensor,
    torch.from_numpy, torch.clone, torch.detach, torch.nonzero, torch.argwhere, torch.atleast_1d,
    torch.atleast_2d, torch.atleast_3d, torch.view_as_real, torch.view_as_complex,
    torch.unflatten, torch.is_tensor, torch.is_floating_point, torch.numel, torch.result_type,
    torch.promote_types, torch.get_default_dtype,
    torch.is_grad_enabled, torch.is_autocast_enabled, torch.searchsorted, torch.bucketize,
    torch.unique, torch.unique_consecutive, torch.sort, torch.argsort, torch.topk, torch.kthvalue,
    torch.real, torch.imag,
)
# Padding a list of sequences into one batch (Qwen2.5-Omni's audio chunks): a copy.
zero(nn.utils.rnn.pad_sequence, torch._C._nn.pad_sequence)
# Weight initializers a forward calls (BigBird-Pegasus re-initializes in forward): random fills,
# like the random factories above.
zero(*(getattr(nn.init, name) for name in sorted(vars(nn.init))
       if name.endswith("_") and not name.startswith("_") and callable(getattr(nn.init, name))))
zero(F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout,
     F.embedding, F.one_hot, F.pad, F.pixel_shuffle, F.pixel_unshuffle, F.unfold, F.fold,
     F.channel_shuffle, F.native_channel_shuffle)

# -- Tensor methods -----------------------------------------------------------------------------
zero(
    "view", "view_as", "reshape", "reshape_as", "permute", "transpose", "transpose_", "t", "T", "mT",
    "swapaxes", "swapdims", "movedim", "moveaxis", "flatten", "unflatten", "squeeze", "squeeze_",
    "unsqueeze", "unsqueeze_", "expand", "expand_as", "broadcast_to", "repeat", "repeat_interleave", "tile",
    "contiguous", "clone", "detach", "detach_", "requires_grad_", "size", "dim", "ndimension",
    "numel", "nelement", "element_size", "stride", "storage_offset", "is_contiguous",
    "is_floating_point", "is_complex", "data_ptr", "get_device", "to", "type", "type_as", "float",
    "double", "half", "bfloat16", "int", "long", "short", "bool", "byte", "char", "cpu", "cuda",
    "chunk", "split", "tensor_split", "unbind", "narrow", "select", "index_select", "gather",
    "take_along_dim", "masked_select", "masked_fill", "masked_fill_", "masked_scatter",
    "scatter", "scatter_", "index_put", "index_put_", "index_fill", "index_fill_", "index_copy",
    "new_zeros", "new_ones", "new_empty", "new_full", "new_tensor", "fill_", "zero_", "copy_",
    "roll", "flip", "tril", "triu", "tril_", "triu_", "diagonal", "diag_embed", "unfold",
    "__getitem__", "__setitem__", "__len__", "nonzero", "argwhere", "sort", "argsort", "topk",
    "unique", "unique_consecutive", "where", "as_strided", "narrow_copy", "item", "tolist", "float_power_", "align_to",
    "pin_memory", "share_memory_", "bernoulli", "bernoulli_", "normal_", "uniform_", "random_",
    "exponential_", "dtype", "shape", "device",
    # Tensor properties (torch reports reading one as a call): metadata, views and autograd state
    "real", "imag", "data", "H", "mH", "grad", "grad_fn", "is_leaf", "requires_grad", "is_cuda", "is_meta",
    "is_cpu", "is_sparse", "is_quantized", "ndim", "names", "layout", "itemsize", "nbytes", "output_nr",
    "_version", "_base", "is_nested",
)
