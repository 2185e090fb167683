"""``KeyedModule``: a ``TensorDictModule`` that writes the tensors its network returns straight into the TensorDict."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule
from tensordict.utils import NestedKey


class KeyedModule(TensorDictModule):
    """A ``TensorDictModule`` (same keys, same behaviour) for networks that return tensors.

    ``TensorDictModule`` converts every output with ``TensorDict.from_any``, whose probes for
    optional libraries search the import path on each call when those are not installed: about
    0.1 ms per output, a third of a small policy's step. A tensor needs no conversion, so it is set
    as it is; anything else takes the parent's path.

    With ``autocast_dtype`` set (an encoder under ``train.precision: bf16``), the network runs under
    ``torch.autocast`` in that dtype and its floating outputs are handed on in float32.
    """

    autocast_dtype: torch.dtype | None = None

    def _call_module(self, tensors: Sequence[torch.Tensor], **kwargs: Any) -> Any:
        if self.autocast_dtype is None:
            return super()._call_module(tensors, **kwargs)
        device = next((tensor.device.type for tensor in tensors if isinstance(tensor, torch.Tensor)), "cpu")
        with torch.autocast(device, dtype=self.autocast_dtype):
            out = super()._call_module(tensors, **kwargs)
        if isinstance(out, torch.Tensor):
            return out.float() if out.is_floating_point() else out
        return tuple(tensor.float() if tensor.is_floating_point() else tensor for tensor in out)

    def _write_to_tensordict(
        self,
        tensordict: TensorDictBase,
        tensors: Sequence[torch.Tensor],
        tensordict_out: TensorDictBase | None = None,
        out_keys: Iterable[NestedKey] | None = None,
    ) -> TensorDictBase:
        if tensordict_out is not None or self.inplace is not True or not all(
            isinstance(tensor, torch.Tensor) for tensor in tensors
        ):
            return super()._write_to_tensordict(tensordict, tensors, tensordict_out, out_keys)
        out_keys = list(self.out_keys_source if out_keys is None else out_keys)
        if len(out_keys) != len(tensors):
            raise RuntimeError(f"{len(tensors)} tensors for the out_keys {out_keys}")
        for key, tensor in zip(out_keys, tensors):
            if key != "_":
                tensordict.set(key, tensor)
        return tensordict
