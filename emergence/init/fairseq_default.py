"""fairseq's Transformer initialization (``fairseq/models/transformer``, ``fairseq/modules/multihead_attention.py``):
the baseline the paper's IWSLT'14 Xavier number (34.85 BLEU) most likely comes from (docs/method.md).

- attention q/k/v: Xavier uniform with gain 1/sqrt(2) when query, key and value have the same dimension (always in
  this suite's self- and cross-attention), else gain 1; their biases keep PyTorch's Linear default,
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (redrawn here, so the result does not depend on how the model was built);
- attention output projection and FFN fc1/fc2: Xavier uniform (gain 1), biases 0;
- token embeddings N(0, d^-1/2) with the padding row 0; an untied output projection N(0, d^-1/2);
- LayerNorm (1, 0). Any other Conv/Linear (none in the Transformer) gets Xavier uniform with bias 0.

Contract: see ``emergence/init/__init__.py``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from emergence.init.layers import reset_shared_, weight_stats

QKV = ("q_proj", "k_proj", "v_proj")


def _qkv_same_dim(attn: nn.Module) -> bool:
    dims = {getattr(attn, n).in_features for n in QKV} | {getattr(attn, n).out_features for n in QKV}
    return len(dims) == 1


class FairseqDefault:
    needs_data = False

    @torch.no_grad()
    def __call__(self, model: nn.Module, example: tuple = (), generator=None, batches=None) -> dict[str, float]:
        reset_shared_(model, generator)  # biases 0, LayerNorm (1, 0), embeddings N(0, d^-1/2) with pad row 0
        qkv_ids = set()
        for m in model.modules():
            if all(isinstance(getattr(m, n, None), nn.Linear) for n in QKV):
                gain = 1 / math.sqrt(2) if _qkv_same_dim(m) else 1.0
                for n in QKV:
                    lin = getattr(m, n)
                    nn.init.xavier_uniform_(lin.weight, gain=gain, generator=generator)
                    if lin.bias is not None:
                        bound = 1 / math.sqrt(lin.in_features)
                        lin.bias.uniform_(-bound, bound, generator=generator)
                    qkv_ids.add(id(lin))
        for name, m in model.named_modules():
            if id(m) in qkv_ids or not isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                continue
            if name.endswith("output_projection"):
                m.weight.normal_(0.0, m.weight.shape[1] ** -0.5, generator=generator)
            else:
                nn.init.xavier_uniform_(m.weight, generator=generator)
        return weight_stats(model)
