"""init=fairseq_default against the analytic distributions of fairseq's Transformer init (hand-derived bounds)."""

import math

import torch
from torch import nn

from emergence.init.fairseq_default import FairseqDefault
from emergence.models.transformer import Transformer

D, FFN, VOCAB = 128, 256, 300


def _model(**kw):
    torch.manual_seed(0)
    return Transformer(VOCAB, VOCAB, d_model=D, ffn_dim=FFN, heads=4, encoder_layers=2, decoder_layers=2, **kw)


def _cat(model, suffix, attr="weight"):
    return torch.cat([getattr(m, attr).flatten() for n, m in model.named_modules() if n.endswith(suffix)])


def _check_uniform(x, bound):
    assert x.abs().max() <= bound + 1e-7  # inside U(-a, a)
    assert x.abs().max() > 0.97 * bound  # and reaching its edge
    assert abs(float(x.detach().std()) / (bound / math.sqrt(3)) - 1) < 0.04  # sd of U(-a, a) = a / sqrt(3)
    assert abs(float(x.detach().mean())) < 0.05 * bound


def test_fairseq_default_matches_fairseq_rules():
    model = _model(share_decoder_input_output_embed=False)
    FairseqDefault()(model, (), torch.Generator().manual_seed(1))
    xavier = lambda fan_in, fan_out, gain=1.0: gain * math.sqrt(6 / (fan_in + fan_out))  # noqa: E731
    for proj in ("q_proj", "k_proj", "v_proj"):
        _check_uniform(_cat(model, proj), xavier(D, D, 1 / math.sqrt(2)))
        _check_uniform(_cat(model, proj, "bias"), 1 / math.sqrt(D))  # PyTorch's Linear default, as fairseq keeps it
    _check_uniform(_cat(model, "out_proj"), xavier(D, D))
    _check_uniform(_cat(model, "fc1"), xavier(D, FFN))
    _check_uniform(_cat(model, "fc2"), xavier(FFN, D))
    for bias in ("out_proj", "fc1", "fc2"):
        assert torch.count_nonzero(_cat(model, bias, "bias")) == 0
    for emb in [m for m in model.modules() if isinstance(m, nn.Embedding)]:
        assert torch.count_nonzero(emb.weight[model.pad_idx]) == 0
        rows = torch.cat([emb.weight[: model.pad_idx], emb.weight[model.pad_idx + 1 :]]).detach()
        assert abs(float(rows.std()) * math.sqrt(D) - 1) < 0.03 and abs(float(rows.mean())) < 0.01
    out = model.decoder.output_projection.weight.detach()
    assert abs(float(out.std()) * math.sqrt(D) - 1) < 0.03
    for ln in [m for m in model.modules() if isinstance(m, nn.LayerNorm)]:
        assert torch.all(ln.weight == 1) and torch.all(ln.bias == 0)


def test_fairseq_default_is_seeded_and_differs_from_xavier_gain():
    a, b = _model(), _model()
    FairseqDefault()(a, (), torch.Generator().manual_seed(3))
    FairseqDefault()(b, (), torch.Generator().manual_seed(3))
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p, q), n
    c = _model()
    FairseqDefault()(c, (), torch.Generator().manual_seed(4))
    assert not torch.equal(a.encoder.layers[0].self_attn.q_proj.weight, c.encoder.layers[0].self_attn.q_proj.weight)
