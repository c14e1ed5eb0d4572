"""T-Fixup (Huang, Perez, Ba & Volkovs, ICML 2020, "Improving Transformer Optimization Through Better
Initialization", Sec. 3.3) for the encoder-decoder Transformer (emergence/models/transformer.py).

Rules, with N_e encoder and N_d decoder layers (the paper writes N for both):

1. Xavier uniform (gain 1) for every Linear weight; token embeddings N(0, d^-1/2) (pad row 0); biases 0.
2. Decoder: the value and output projections of every attention block (self and cross), both FFN weights, and the
   token embeddings of encoder and decoder are multiplied by (9 N_d)^(-1/4).
3. Encoder: the value and output projections of every self-attention block and both FFN weights are multiplied by
   0.67 N_e^(-1/4).

Query and key projections keep plain Xavier. A tied embedding is scaled once.

Why T-Fixup and not muP-style fan scaling: the suite's Transformer is fairseq's ``transformer_iwslt_de_en``, and
T-Fixup was designed and reported for exactly that model on IWSLT'14 De-En (35.73 BLEU averaged over checkpoints)
as an init that removes the need for learning-rate warm-up, which is the question the emergence init raises there.
muP is a parametrization: it changes per-layer learning rates and the attention and logit multipliers, so an
init-only version would not be muP, and its guarantees concern width transfer, which this suite does not vary.

What differs from the paper: T-Fixup also removes every LayerNorm. The suite's Transformer has no option to drop
them (its architecture file would need one), so this initializer keeps them and records their number
(``t_fixup/layer_norms``); with post-LN the rescaled branches still enter each residual sum at the paper's scale.

Stats: ``t_fixup/encoder_scale``, ``t_fixup/decoder_scale``, ``t_fixup/N_e``, ``t_fixup/N_d``, ``t_fixup/layer_norms``
and each weight's std. Other models raise ``InitNotApplicable``. Contract: emergence/init/__init__.py.
"""

from __future__ import annotations

import torch
from torch import nn

from emergence.init import InitNotApplicable
from emergence.init.layers import reset_shared_, weight_modules, weight_stats


def scales(n_encoder: int, n_decoder: int) -> tuple[float, float]:
    """(encoder factor 0.67 N_e^-1/4, decoder and embedding factor (9 N_d)^-1/4)."""
    return 0.67 * n_encoder**-0.25, (9 * n_decoder) ** -0.25


def scaled_weights(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """The encoder tensors (v, out, fc1, fc2 per layer) and decoder tensors (v, out of both attentions, fc1, fc2 per
    layer, and the token embeddings, each once) that T-Fixup rescales."""
    encoder = [
        w
        for layer in model.encoder.layers
        for w in (
            layer.self_attn.v_proj.weight,
            layer.self_attn.out_proj.weight,
            layer.ffn.fc1.weight,
            layer.ffn.fc2.weight,
        )
    ]
    decoder = []
    for layer in model.decoder.layers:
        for attn in (layer.self_attn, layer.encoder_attn):
            decoder += [attn.v_proj.weight, attn.out_proj.weight]
        decoder += [layer.ffn.fc1.weight, layer.ffn.fc2.weight]
    embeddings = {id(e.weight): e.weight for e in (model.encoder.embed_tokens, model.decoder.embed_tokens)}
    return encoder, decoder + list(embeddings.values())


class TFixup:
    """Xavier, then T-Fixup's depth scaling of value/output/FFN weights and embeddings (see the module docstring)."""

    needs_data = False

    @torch.no_grad()
    def __call__(self, model: nn.Module, example: tuple = (), generator=None, batches=None) -> dict:
        encoder, decoder = getattr(model, "encoder", None), getattr(model, "decoder", None)
        layers = getattr(encoder, "layers", None), getattr(decoder, "layers", None)
        if any(part is None or len(part) == 0 for part in layers) or not hasattr(decoder, "embed_tokens"):
            raise InitNotApplicable(
                "init=t_fixup needs the encoder-decoder Transformer (arch=transformer_tiny, transformer_iwslt_de_en)"
            )
        n_e, n_d = len(encoder.layers), len(decoder.layers)
        enc_scale, dec_scale = scales(n_e, n_d)
        reset_shared_(model, generator)  # embeddings N(0, d^-1/2) with pad row 0, biases 0, LayerNorm (1, 0)
        for _, m in weight_modules(model):
            nn.init.xavier_uniform_(m.weight, gain=1.0, generator=generator)
        enc_weights, dec_weights = scaled_weights(model)
        for w in enc_weights:
            w.mul_(enc_scale)
        for w in dec_weights:
            w.mul_(dec_scale)
        return {
            **weight_stats(model),
            "t_fixup/encoder_scale": enc_scale,
            "t_fixup/decoder_scale": dec_scale,
            "t_fixup/N_e": n_e,
            "t_fixup/N_d": n_d,
            "t_fixup/layer_norms": sum(isinstance(m, nn.LayerNorm) for m in model.modules()),
        }
