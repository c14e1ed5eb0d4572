"""T-Fixup (emergence/init/t_fixup.py): the depth factors against hand-computed numbers, each tensor equal to the plain
Xavier draw times the factor its role gets (encoder v/out/FFN, decoder v/out/FFN and embeddings, q/k unscaled), the
realised distribution against the analytic uniform one (KS), and the config through the runner on a tiny corpus."""

from __future__ import annotations

import math

import pytest
import torch

from emergence.init import InitNotApplicable
from emergence.init.t_fixup import TFixup, scales
from emergence.init.xavier import Xavier
from emergence.models.mlp import MLP
from emergence.models.transformer import Transformer
from emergence.train import run
from tests.conftest import compose_train
from tests.test_translation_task import corpus_overrides, write_corpus

# by hand: 0.67 / 2^(1/4), 18^(-1/4), 0.67 / 6^(1/4), 54^(-1/4)
HAND = {2: (0.5634005982, 0.4854917717), 6: (0.4280918798, 0.3688939732)}


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def model(layers=2, d=64, ffn=128, **kw):
    torch.manual_seed(0)
    return Transformer(50, 50, d_model=d, ffn_dim=ffn, heads=4, encoder_layers=layers, decoder_layers=layers, **kw)


@pytest.mark.parametrize("n", [2, 6])
def test_factors_match_the_hand_computation(n):
    enc, dec = scales(n, n)
    assert enc == pytest.approx(HAND[n][0], rel=1e-9) and dec == pytest.approx(HAND[n][1], rel=1e-9)


def expected_factor(name: str, enc: float, dec: float) -> float:
    """The paper's rule, read off the parameter name."""
    if "embed_tokens" in name:
        return dec
    if not any(k in name for k in ("v_proj", "out_proj", "fc1", "fc2")):
        return 1.0  # q, k projections: plain Xavier
    return enc if name.startswith("encoder.") else dec


@pytest.mark.parametrize("share_all", [False, True])
def test_every_tensor_is_the_xavier_draw_times_its_role_factor(share_all):
    a, b = model(share_all_embeddings=share_all), model(share_all_embeddings=share_all)
    stats = TFixup()(a, (), gen(3))
    Xavier(distribution="uniform", gain=1.0)(b, (), gen(3))  # same draws in the same order, unscaled
    enc, dec = HAND[2]
    assert stats["t_fixup/encoder_scale"] == pytest.approx(enc) and stats["t_fixup/decoder_scale"] == pytest.approx(dec)
    seen = 0
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        if p.dim() < 2:
            assert torch.equal(p, q), name  # biases 0, LayerNorm (1, 0)
            continue
        factor = expected_factor(name, enc, dec)
        assert torch.allclose(p, q * factor, rtol=1e-6, atol=0), name
        seen += factor != 1.0
    # 4 tensors per encoder layer, 6 per decoder layer, and the embeddings (one tensor when shared)
    assert seen == 2 * 4 + 2 * 6 + (1 if share_all else 2)
    assert torch.all(a.decoder.embed_tokens.weight[a.pad_idx] == 0)


def ks_uniform(x: torch.Tensor, bound: float) -> float:
    v = x.detach().double().flatten().sort().values
    n = len(v)
    cdf = ((v + bound) / (2 * bound)).clamp(0, 1)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return float(torch.maximum(i / n - cdf, cdf - (i - 1) / n).max())


def test_realised_distribution_is_the_scaled_xavier_uniform():
    m = model(layers=6, d=256, ffn=512)
    TFixup()(m, (), gen(1))
    enc, dec = HAND[6]
    crit = lambda n: math.sqrt(-math.log(0.005) / 2) / math.sqrt(n)  # noqa: E731  KS at 1 %
    for w, factor in (
        (m.encoder.layers[0].ffn.fc1.weight, enc),
        (m.decoder.layers[5].encoder_attn.v_proj.weight, dec),
        (m.encoder.layers[3].self_attn.q_proj.weight, 1.0),
    ):
        fan_out, fan_in = w.shape
        bound = factor * math.sqrt(6 / (fan_in + fan_out))
        assert float(w.detach().abs().max()) <= bound
        assert ks_uniform(w, bound) < crit(w.numel())
        assert ks_uniform(w, 1.05 * bound) > crit(w.numel())  # the test sees a 5 % error
    emb = m.encoder.embed_tokens.weight[1:]  # row 0 is the pad row
    assert float(emb.detach().std()) == pytest.approx(256**-0.5 * dec, rel=0.03)


def test_other_models_get_a_clear_error():
    with pytest.raises(InitNotApplicable, match="init=t_fixup needs the encoder-decoder Transformer"):
        TFixup()(MLP((1, 8, 8), 10, depth=2, width=8), (), gen())


def test_config_composes_and_runs_through_the_runner(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", n_train=80, n_eval=8)
    over = ["arch=transformer_tiny", "init=t_fixup", *corpus_overrides(tmp_path, corpus), "arch.d_model=32"]
    smoke = [
        "debug=smoke",
        "trainer.max_steps=3",
        "data.max_tokens=256",
        "data.bleu_every_epochs=0",
        "measure.enabled=false",
    ]
    record = run(compose_train([*over, "arch.ffn_dim=64", *smoke], tmp_path))
    assert record["status"] == "completed"
    assert record["config"]["init"]["_target_"] == "emergence.init.t_fixup.TFixup"
