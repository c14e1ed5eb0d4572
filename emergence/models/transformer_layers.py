"""The building blocks of the fairseq-compatible Transformer (``transformer.py``): fairseq's sinusoidal positions,
multi-head attention with separate q/k/v/out projections, the FFN, and one encoder or decoder layer (post- or pre-LN).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel


def sinusoidal_table(num_rows: int, dim: int, zero_row: int) -> Tensor:
    """fairseq's sinusoidal table: row p = [sin(p w), cos(p w)], w_i = 10000^(-i / (dim/2 - 1)); row zero_row = 0."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float) * -(math.log(10000.0) / (half - 1)))
    angles = torch.arange(num_rows, dtype=torch.float)[:, None] * freqs[None, :]
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2 == 1:
        table = torch.cat([table, torch.zeros(num_rows, 1)], dim=1)
    table[zero_row] = 0
    return table


class SinusoidalPositions(nn.Module):
    """Position vectors for right-padded tokens, in fairseq's numbering whatever the suite's pad id.

    fairseq (pad id 1) gives the k-th real token (1-based) row k + 1 and pads the zero row 1. Here the k-th real token
    reads row k + 1 too, and pads read row 0, which is zeroed (fairseq never uses its row 0), so rows 2.. are
    fairseq's rows exactly and ``max_positions`` real tokens need ``max_positions + 2`` rows.
    """

    PAD_ROW = 0

    def __init__(self, dim: int, pad_idx: int, max_positions: int) -> None:
        super().__init__()
        self.pad_idx, self.max_positions = pad_idx, max_positions
        # Not persistent: a function of the sizes, so it is not a parameter and not in checkpoints.
        self.register_buffer("table", sinusoidal_table(max_positions + 2, dim, self.PAD_ROW), persistent=False)

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.size(1) > self.max_positions:
            raise ValueError(f"sequence length {tokens.size(1)} exceeds max_positions={self.max_positions}")
        mask = tokens.ne(self.pad_idx).long()
        positions = (torch.cumsum(mask, dim=1) + 1) * mask + self.PAD_ROW * (1 - mask)
        return F.embedding(positions, self.table)


class MultiheadAttention(nn.Module):
    """Scaled dot-product attention with separate q/k/v/out projections (fairseq's parameter layout).

    `math_attention=True` forces SDPA's math backend, whose backward is itself differentiable (GradInit's double
    backward); the fused kernels are not.
    """

    def __init__(self, d_model: int, heads: int, attention_dropout: float, math_attention: bool = False) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model={d_model} is not divisible by heads={heads}")
        self.heads, self.attention_dropout, self.math_attention = heads, attention_dropout, math_attention
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def _split(self, x: Tensor) -> Tensor:  # B x T x C -> B x H x T x C/H
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def forward(
        self,
        x: Tensor,
        memory: Tensor | None = None,
        key_padding_mask: Tensor | None = None,
        causal: bool = False,
        cache: dict[str, Tensor] | None = None,
    ) -> Tensor:
        """Self-attention over `x` (B x T x C) or cross-attention to `memory` (B x S x C).

        `key_padding_mask` (B x S) is True at keys to ignore. With `cache`, `x` holds only the newest position:
        self-attention appends its keys/values to the cache, cross-attention computes them once.
        """
        q = self._split(self.q_proj(x))
        if memory is None:
            k, v = self._split(self.k_proj(x)), self._split(self.v_proj(x))
            if cache is not None:
                if "k" in cache:
                    k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
                cache["k"], cache["v"] = k, v
                causal = False  # the single new query may see every cached key
        elif cache is not None and "k" in cache:
            k, v = cache["k"], cache["v"]
        else:
            k, v = self._split(self.k_proj(memory)), self._split(self.v_proj(memory))
            if cache is not None:
                cache["k"], cache["v"] = k, v
        mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
        p = self.attention_dropout if self.training else 0.0
        if self.math_attention:
            with sdpa_kernel(SDPBackend.MATH):
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal)
        return self.out_proj(out.transpose(1, 2).flatten(2))


class FeedForward(nn.Module):
    """fc1 -> ReLU (its own module, for the emergence measure's hooks) -> activation dropout -> fc2."""

    def __init__(self, d_model: int, ffn_dim: int, activation_dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, ffn_dim)
        self.activation = nn.ReLU()
        self.activation_dropout = nn.Dropout(activation_dropout)
        self.fc2 = nn.Linear(ffn_dim, d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.activation_dropout(self.activation(self.fc1(x))))


class TransformerLayer(nn.Module):
    """Encoder layer (self-attn, FFN) or, with `cross_attention`, decoder layer (causal self-attn, cross-attn, FFN).

    Each sublayer is its own submodule (the Emergence depth unit). Post-LN: x = norm(x + drop(f(x)));
    pre-LN: x = x + drop(f(norm(x))).
    """

    def __init__(
        self,
        d_model: int,
        ffn_dim: int,
        heads: int,
        *,
        dropout: float,
        attention_dropout: float,
        activation_dropout: float,
        norm_first: bool,
        math_attention: bool,
        cross_attention: bool,
    ) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.dropout = nn.Dropout(dropout)
        self.self_attn = MultiheadAttention(d_model, heads, attention_dropout, math_attention)
        self.self_attn_layer_norm = nn.LayerNorm(d_model)
        self.encoder_attn = (
            MultiheadAttention(d_model, heads, attention_dropout, math_attention) if cross_attention else None
        )
        self.encoder_attn_layer_norm = nn.LayerNorm(d_model) if cross_attention else None
        self.ffn = FeedForward(d_model, ffn_dim, activation_dropout)
        self.final_layer_norm = nn.LayerNorm(d_model)

    def _residual(self, x: Tensor, norm: nn.LayerNorm, sublayer: Callable[[Tensor], Tensor]) -> Tensor:
        x = x + self.dropout(sublayer(norm(x) if self.norm_first else x))
        return x if self.norm_first else norm(x)

    def forward(
        self,
        x: Tensor,
        pad_mask: Tensor | None = None,
        enc_out: Tensor | None = None,
        src_pad_mask: Tensor | None = None,
        cache: dict[str, dict[str, Tensor]] | None = None,
    ) -> Tensor:
        """Encoder layer: `pad_mask` hides source pads. Decoder layer: causal self-attention (right padding plus
        causality already hide target pads from real queries), cross-attention to `enc_out`, optional `cache`."""
        decoder = self.encoder_attn is not None
        c_self, c_cross = (
            (None, None) if cache is None else (cache.setdefault("self", {}), cache.setdefault("cross", {}))
        )
        x = self._residual(x, self.self_attn_layer_norm, lambda h: self.self_attn(h, None, pad_mask, decoder, c_self))
        if decoder:
            x = self._residual(
                x, self.encoder_attn_layer_norm, lambda h: self.encoder_attn(h, enc_out, src_pad_mask, cache=c_cross)
            )
        return self._residual(x, self.final_layer_norm, self.ffn)
