"""Encoder-decoder Transformer with fairseq-compatible sizes, in plain PyTorch (blocks in ``transformer_layers.py``).

The IWSLT'14 De-En experiments (docs/experiments.md) use fairseq's `transformer_iwslt_de_en`; fairseq itself cannot be
installed beside Hydra 1.3 (docs/environment.md), so this module rebuilds that architecture and keeps its parameter
layout and count: token embeddings scaled by sqrt(d_model), fairseq's sinusoidal positions (half sin / half cos, in
fairseq's numbering: the first real token reads row 2 whatever the pad id; pads get a zero vector), dropout after
the embedding, no embedding LayerNorm, attention with separate q/k/v/out projections (with bias), FFN fc1 -> ReLU ->
activation dropout -> fc2, post-LN by default (pre-LN adds a final LayerNorm per stack), output projection = the tied
target embedding without bias.

Depth units for the Emergence initializer (docs/method.md) are exposed by `Transformer.unit_modules()`: source
embedding, encoder self-attn and FFN sublayers, target embedding, decoder self-attn, cross-attn and FFN sublayers, in
forward order (32 units for `transformer_iwslt_de_en`), with options to leave out attention or embeddings and to put
a tied embedding last (the readout). Weights keep PyTorch's layer defaults; initializers live in `emergence/init/`
(the family's conventional base is Xavier, ``base_init``).

Sizes and dropouts of the named architectures live in conf/arch/transformer_*.yaml (read them with
``emergence.config.group_config("arch", name)``). Usage: `model = Transformer(8848, 6632, d_model=512, ...)`, then
`model(src_tokens, prev_output_tokens)` gives B x T x V logits; search (emergence/models/decode.py) calls
`encode`/`decode_step`.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from emergence.models.transformer_layers import (
    MultiheadAttention,
    SinusoidalPositions,
    TransformerLayer,
    sinusoidal_table,
)

__all__ = ["Transformer", "sinusoidal_table"]

Cache = dict[int, dict[str, dict[str, Tensor]]]  # layer -> sublayer -> keys/values


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

    base_init = "xavier"  # the family's conventional base init (emergence/init/family_default.py)

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

    def unit_modules(
        self, include_attention: bool = True, include_embeddings: bool = True, tied_embedding: str = "first"
    ) -> list[tuple]:
        """Depth units (docs/method.md): embeddings and attention/FFN sublayers, in forward order.

        A unit is ``(name, module)``, or ``(name, module, "last")`` for one that goes to the end of the order.
        ``include_attention`` / ``include_embeddings`` False leave those units out. A tied embedding (the decoder's
        input/output embedding, or the one embedding when all are shared) is one tensor and one unit: at its first
        use with ``tied_embedding="first"`` (the head of the decoder stack, or of the encoder when all are shared),
        or the last unit, the readout, with ``"last"``. An untied output projection is always the last unit.
        """
        if tied_embedding not in ("first", "last"):
            raise ValueError(f"tied_embedding must be first or last; got {tied_embedding!r}")
        tied = self.decoder.output_projection is None
        if tied_embedding == "last" and not tied:
            raise ValueError("tied_embedding=last needs a tied decoder embedding (share_decoder_input_output_embed)")
        readout = "decoder.embed_tokens" if tied and tied_embedding == "last" else None
        units: list[tuple] = []

        def add(name: str, module: nn.Module, kind: str) -> None:
            if (kind == "attention" and include_attention) or kind == "ffn":
                units.append((name, module))
            elif kind == "embedding" and include_embeddings and name != readout:
                units.append((name, module))

        if not (self.share_all_embeddings and readout):
            add("encoder.embed_tokens", self.encoder.embed_tokens, "embedding")
        for i, layer in enumerate(self.encoder.layers):
            add(f"encoder.layers.{i}.self_attn", layer.self_attn, "attention")
            add(f"encoder.layers.{i}.ffn", layer.ffn, "ffn")
        if not self.share_all_embeddings:
            add("decoder.embed_tokens", self.decoder.embed_tokens, "embedding")
        for i, layer in enumerate(self.decoder.layers):
            add(f"decoder.layers.{i}.self_attn", layer.self_attn, "attention")
            add(f"decoder.layers.{i}.encoder_attn", layer.encoder_attn, "attention")
            add(f"decoder.layers.{i}.ffn", layer.ffn, "ffn")
        if readout and include_embeddings:
            units.append((readout, self.decoder.embed_tokens, "last"))
        if not tied:
            units.append(("decoder.output_projection", self.decoder.output_projection, "last"))
        return units
