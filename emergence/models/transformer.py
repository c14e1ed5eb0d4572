"""Encoder-decoder Transformer with fairseq-compatible sizes, in plain PyTorch.

The IWSLT'14 De-En experiments (PAPER.md §6) use fairseq's `transformer_iwslt_de_en`; fairseq itself cannot be
installed beside Hydra 1.3 (ENVIRONMENT.md §2), so this module rebuilds that architecture and keeps its parameter
layout and count: token embeddings scaled by sqrt(d_model), fairseq's sinusoidal positions (half sin / half cos, in
fairseq's numbering: the first real token reads row 2 whatever the pad id, pad positions get a zero vector), dropout after the embedding, no embedding LayerNorm,
attention with separate q/k/v/out projections (with bias), FFN fc1 -> ReLU -> activation dropout -> fc2, post-LN by
default (pre-LN adds a final LayerNorm per stack), output projection = the tied target embedding without bias.

Depth units for the Emergence initializer (PAPER.md §2.3) are exposed by `Transformer.unit_modules()`: source
embedding, encoder self-attn and FFN sublayers, target embedding, decoder self-attn, cross-attn and FFN sublayers, in
forward order (32 units for `transformer_iwslt_de_en`). Weights keep PyTorch's layer defaults; initializers live in
`emergence/init/`.

Usage: `model = Transformer.from_preset("transformer_iwslt_de_en", 8848, 6632)`, then (search: emergence/decode.py)
`model(src_tokens, prev_output_tokens)` gives B x T x V logits; search calls `encode`/`decode_step`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

# Sizes copied from fairseq's transformer_legacy.py. Dropout is not part of a preset: fairseq's base architecture
# uses dropout 0.1 and attention/activation dropout 0; the IWSLT recipe passes 0.3 / 0.1 / 0.1 (the defaults here).
PRESETS: dict[str, dict[str, int]] = {
    "transformer_iwslt_de_en": dict(d_model=512, ffn_dim=1024, heads=4, encoder_layers=6, decoder_layers=6),
    "transformer_wmt_en_de": dict(d_model=512, ffn_dim=2048, heads=8, encoder_layers=6, decoder_layers=6),
    "transformer_tiny": dict(d_model=64, ffn_dim=128, heads=4, encoder_layers=2, decoder_layers=2),
}

Cache = dict[int, dict[str, dict[str, Tensor]]]  # layer -> sublayer -> keys/values


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


class Stack(nn.Module):
    """One side of the model: scaled token embedding + positions + dropout, layers, final LayerNorm if pre-LN."""

    def __init__(
        self,
        embed_tokens: nn.Embedding,
        layers: list[TransformerLayer],
        *,
        pad_idx: int,
        dropout: float,
        norm_first: bool,
        max_positions: int,
    ) -> None:
        super().__init__()
        d_model = embed_tokens.embedding_dim
        self.embed_scale = math.sqrt(d_model)
        self.embed_tokens = embed_tokens
        self.embed_positions = SinusoidalPositions(d_model, pad_idx, max_positions)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(layers)
        self.layer_norm = nn.LayerNorm(d_model) if norm_first else None
        self.output_projection: nn.Linear | None = None  # decoder only, when not tied

    def embed(self, tokens: Tensor, positions: Tensor) -> Tensor:
        return self.dropout(self.embed_scale * self.embed_tokens(tokens) + positions)

    def output_weight(self) -> Tensor:
        """The decoder's V x C readout matrix (the target embedding itself when tied)."""
        return self.embed_tokens.weight if self.output_projection is None else self.output_projection.weight


class Transformer(nn.Module):
    """fairseq-style encoder-decoder Transformer (see the module docstring for the details that match fairseq)."""

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        *,
        pad_idx: int = 0,
        d_model: int = 512,
        ffn_dim: int = 1024,
        heads: int = 4,
        encoder_layers: int = 6,
        decoder_layers: int = 6,
        dropout: float = 0.3,
        attention_dropout: float = 0.1,
        activation_dropout: float = 0.1,
        norm_first: bool = False,
        share_decoder_input_output_embed: bool = True,
        share_all_embeddings: bool = False,
        max_positions: int = 1024,
        math_attention: bool = False,
    ) -> None:
        super().__init__()
        if share_all_embeddings and src_vocab_size != tgt_vocab_size:
            raise ValueError(
                f"share_all_embeddings needs equal vocabularies, got src {src_vocab_size} and tgt {tgt_vocab_size}"
            )
        self.pad_idx, self.max_positions = pad_idx, max_positions
        self.share_all_embeddings = share_all_embeddings
        src_embed = nn.Embedding(src_vocab_size, d_model, padding_idx=pad_idx)
        tgt_embed = src_embed if share_all_embeddings else nn.Embedding(tgt_vocab_size, d_model, padding_idx=pad_idx)
        sizes = dict(
            dropout=dropout,
            attention_dropout=attention_dropout,
            activation_dropout=activation_dropout,
            norm_first=norm_first,
            math_attention=math_attention,
        )
        stack = dict(pad_idx=pad_idx, dropout=dropout, norm_first=norm_first, max_positions=max_positions)
        enc_layers = [
            TransformerLayer(d_model, ffn_dim, heads, cross_attention=False, **sizes) for _ in range(encoder_layers)
        ]
        dec_layers = [
            TransformerLayer(d_model, ffn_dim, heads, cross_attention=True, **sizes) for _ in range(decoder_layers)
        ]
        self.encoder = Stack(src_embed, enc_layers, **stack)
        self.decoder = Stack(tgt_embed, dec_layers, **stack)
        # As in fairseq, sharing all embeddings implies the tied decoder input/output embedding.
        if not (share_decoder_input_output_embed or share_all_embeddings):
            self.decoder.output_projection = nn.Linear(d_model, tgt_vocab_size, bias=False)

    @classmethod
    def from_preset(cls, name: str, src_vocab_size: int, tgt_vocab_size: int, **overrides) -> Transformer:
        """Build a named preset from `PRESETS`; `overrides` replace or extend its keyword arguments."""
        return cls(src_vocab_size, tgt_vocab_size, **{**PRESETS[name], **overrides})

    def encode(self, src_tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Returns the encoder output B x S x C and the source pad mask B x S (True at pads)."""
        pad_mask = src_tokens.eq(self.pad_idx)
        x = self.encoder.embed(src_tokens, self.encoder.embed_positions(src_tokens))
        x = x.masked_fill(pad_mask[..., None], 0.0)  # as fairseq: pad positions start from zero
        for layer in self.encoder.layers:
            x = layer(x, pad_mask)
        if self.encoder.layer_norm is not None:
            x = self.encoder.layer_norm(x)
        return x, pad_mask

    def decode(
        self, prev_output_tokens: Tensor, enc_out: Tensor, src_pad_mask: Tensor, cache: Cache | None = None
    ) -> Tensor:
        """Decoder logits B x T x V; with `cache`, only the newest position (B x 1 x V), see `decode_step`."""
        positions = self.decoder.embed_positions(prev_output_tokens)
        if cache is not None:
            prev_output_tokens, positions = prev_output_tokens[:, -1:], positions[:, -1:]
        x = self.decoder.embed(prev_output_tokens, positions)
        for i, layer in enumerate(self.decoder.layers):
            x = layer(
                x, enc_out=enc_out, src_pad_mask=src_pad_mask, cache=None if cache is None else cache.setdefault(i, {})
            )
        if self.decoder.layer_norm is not None:
            x = self.decoder.layer_norm(x)
        return F.linear(x, self.decoder.output_weight())

    def forward(self, src_tokens: Tensor, prev_output_tokens: Tensor) -> Tensor:
        """Teacher-forced logits B x T x V for `prev_output_tokens` (bos + pieces)."""
        return self.decode(prev_output_tokens, *self.encode(src_tokens))

    def decode_step(
        self, prev_output_tokens: Tensor, enc_out: Tensor, src_pad_mask: Tensor, cache: Cache | None = None
    ) -> Tensor:
        """Logits B x V for the token after the prefix `prev_output_tokens` (B x t, no pads).

        With `cache` (start with `{}` and pass the same dict every step, one new token per step) past keys/values
        are reused; with `cache=None` the decoder re-runs over the whole prefix (same result, slower).
        """
        return self.decode(prev_output_tokens, enc_out, src_pad_mask, cache)[:, -1]

    @staticmethod
    def reorder_cache(cache: Cache, new_order: Tensor) -> None:
        """Select batch rows of every cached tensor in place (beam reordering, dropping finished sentences)."""
        for layer_cache in cache.values():
            for state in layer_cache.values():
                for key, value in state.items():
                    state[key] = value.index_select(0, new_order)

    def set_math_attention(self, enabled: bool) -> None:
        """Switch every attention to SDPA's math backend (double-differentiable) or back to the default."""
        for module in self.modules():
            if isinstance(module, MultiheadAttention):
                module.math_attention = enabled

    def unit_modules(self) -> list[tuple[str, nn.Module]]:
        """Depth units in forward order (PAPER.md §2.3): embeddings and attention/FFN sublayers.

        With `share_all_embeddings` the single embedding is listed once, at the source position, so that no tensor
        is rescaled twice.
        """
        units: list[tuple[str, nn.Module]] = [("encoder.embed_tokens", self.encoder.embed_tokens)]
        for i, layer in enumerate(self.encoder.layers):
            units += [(f"encoder.layers.{i}.self_attn", layer.self_attn), (f"encoder.layers.{i}.ffn", layer.ffn)]
        if not self.share_all_embeddings:
            units.append(("decoder.embed_tokens", self.decoder.embed_tokens))
        for i, layer in enumerate(self.decoder.layers):
            units += [
                (f"decoder.layers.{i}.self_attn", layer.self_attn),
                (f"decoder.layers.{i}.encoder_attn", layer.encoder_attn),
                (f"decoder.layers.{i}.ffn", layer.ffn),
            ]
        return units
