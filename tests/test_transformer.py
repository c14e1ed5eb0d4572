"""Tests for the fairseq-compatible Transformer (emergence/models/transformer.py) and decoding (models/decode.py)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from emergence.config import group_config
from emergence.models.decode import beam_search, greedy_decode
from emergence.models.transformer import Transformer, sinusoidal_table
from tests.conftest import arch_model

PAD, BOS, EOS = 0, 1, 2


def tiny(vocab: int = 20, **kw) -> Transformer:
    args = dict(
        d_model=32,
        ffn_dim=64,
        heads=4,
        encoder_layers=2,
        decoder_layers=2,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
    )
    return Transformer(vocab, vocab, **{**args, **kw})


def random_batch(vocab: int, lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded source (pieces + eos) and prev_output_tokens (bos + pieces) with the given piece lengths."""
    g = torch.Generator().manual_seed(seed)
    width = max(lengths) + 1
    src = torch.full((len(lengths), width), PAD)
    prev = torch.full((len(lengths), width), PAD)
    for i, n in enumerate(lengths):
        src[i, :n] = torch.randint(4, vocab, (n,), generator=g)
        src[i, n] = EOS
        prev[i, 0] = BOS
        prev[i, 1 : n + 1] = torch.randint(4, vocab, (n,), generator=g)
    return src, prev


def fairseq_param_count(
    src_vocab: int,
    tgt_vocab: int,
    d: int,
    ffn: int,
    enc: int,
    dec: int,
    *,
    share_all: bool = False,
    share_dec_io: bool = True,
    pre_ln: bool = False,
) -> int:
    """Closed-form parameter count of fairseq's TransformerModel (sinusoidal positions have no parameters)."""
    attn = 4 * (d * d + d)  # q, k, v, out projections with bias
    ffn_params = d * ffn + ffn + ffn * d + d
    norm = 2 * d
    enc_layer = attn + ffn_params + 2 * norm
    dec_layer = 2 * attn + ffn_params + 3 * norm
    embeddings = src_vocab * d + (0 if share_all else tgt_vocab * d)
    output = 0 if (share_all or share_dec_io) else tgt_vocab * d
    final_norms = 2 * norm if pre_ln else 0
    return enc * enc_layer + dec * dec_layer + embeddings + output + final_norms


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() deduplicates tied tensors


@pytest.mark.parametrize(
    ("preset", "src_vocab", "tgt_vocab", "kw", "expected"),
    [
        ("transformer_iwslt_de_en", 8848, 6632, {}, 39_469_056),
        ("transformer_wmt_en_de", 32768, 32768, dict(share_all_embeddings=True), 60_915_712),
        ("transformer_tiny", 1000, 1000, {}, 295_424),
    ],
)
def test_transformer_param_count_matches_fairseq_closed_form(preset, src_vocab, tgt_vocab, kw, expected):
    with torch.device("meta"):  # sizes only; no memory or init time for the 60 M model
        model = arch_model(preset, src_vocab, tgt_vocab, **kw)
    p = group_config("arch", preset)
    closed = fairseq_param_count(
        src_vocab,
        tgt_vocab,
        p["d_model"],
        p["ffn_dim"],
        p["encoder_layers"],
        p["decoder_layers"],
        share_all=kw.get("share_all_embeddings", False),
    )
    assert n_params(model) == closed == expected


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("share", [True, False])
def test_transformer_param_count_variants_match_closed_form(norm_first, share):
    model = tiny(vocab=30, norm_first=norm_first, share_decoder_input_output_embed=share)
    assert n_params(model) == fairseq_param_count(30, 30, 32, 64, 2, 2, share_dec_io=share, pre_ln=norm_first)


def test_transformer_forward_shapes():
    model = tiny(vocab=20).eval()
    src, prev = random_batch(20, [5, 3, 7])
    model_2 = Transformer(20, 17, d_model=32, ffn_dim=64, heads=4, encoder_layers=1, decoder_layers=1)
    assert model(src, prev).shape == (3, 8, 20)
    assert model_2(src, prev.clamp(max=16)).shape == (3, 8, 17)
    enc_out, pad_mask = model.encode(src)
    assert enc_out.shape == (3, 8, 32) and torch.equal(pad_mask, src.eq(PAD))


def fairseq_position(p: int, dim: int) -> torch.Tensor:
    """fairseq's sinusoidal row p written out: [sin(p w_i)] + [cos(p w_i)], w_i = exp(-i ln(10000) / (dim/2 - 1))."""
    half = dim // 2
    w = [math.exp(-i * math.log(10000.0) / (half - 1)) for i in range(half)]
    return torch.tensor([math.sin(p * x) for x in w] + [math.cos(p * x) for x in w])


@pytest.mark.parametrize("pad_idx", [0, 1])
def test_positions_follow_fairseq_numbering(pad_idx):
    """fairseq (pad id 1): make_positions = cumsum(mask) * mask + 1, so tokens [5, 6, eos, pad] read rows
    [2, 3, 4, pad-row] and the pad row is zero. Whatever the suite's pad id, the same rows must come out."""
    model = tiny(vocab=20, encoder_layers=0, pad_idx=pad_idx).eval()  # encoder output = embedding layer output
    tokens = torch.tensor([[5, 6, EOS, pad_idx]])
    expected = torch.stack([fairseq_position(p, 32) for p in (2, 3, 4)] + [torch.zeros(32)])
    torch.testing.assert_close(model.decoder.embed_positions(tokens)[0], expected, atol=1e-5, rtol=0)
    enc_out, _ = model.encode(tokens)
    embed = math.sqrt(32) * model.encoder.embed_tokens.weight[tokens[0, :3]]
    torch.testing.assert_close(enc_out[0, :3], embed + expected[:3], atol=1e-5, rtol=1e-5)
    assert enc_out[0, 3].abs().sum() == 0  # pad positions are zeroed


def test_positions_fit_a_max_positions_long_input():
    model = tiny(vocab=20, max_positions=6).eval()
    tokens = torch.full((1, 6), 7)
    rows = model.encoder.embed_positions(tokens)[0]
    torch.testing.assert_close(rows[-1], fairseq_position(7, 32), atol=1e-5, rtol=0)  # the last row, 6 + 1
    with pytest.raises(ValueError, match="max_positions"):
        model.encoder.embed_positions(torch.full((1, 7), 7))


@pytest.mark.parametrize("norm_first", [False, True])
def test_layer_residual_wiring_is_post_or_pre_ln(norm_first):
    model = tiny(vocab=20, norm_first=norm_first).eval()
    layer = model.encoder.layers[0]
    x = torch.randn(2, 5, 32)

    def sublayer(x, norm, f):
        return x + f(norm(x)) if norm_first else norm(x + f(x))

    h = sublayer(x, layer.self_attn_layer_norm, layer.self_attn)
    expected = sublayer(h, layer.final_layer_norm, layer.ffn)
    torch.testing.assert_close(layer(x), expected)


def test_sinusoidal_table_is_half_sin_half_cos_with_zero_pad_row():
    dim, pad = 8, 1
    table = sinusoidal_table(6, dim, pad)
    assert table[pad].abs().sum() == 0
    for p, i in itertools.product([2, 5], range(dim // 2)):
        w = 10000 ** (-i / (dim // 2 - 1))
        assert table[p, i].item() == pytest.approx(math.sin(p * w), abs=1e-6)
        assert table[p, dim // 2 + i].item() == pytest.approx(math.cos(p * w), abs=1e-6)


def test_transformer_key_padding_mask_hides_pad_positions():
    model = tiny(vocab=20).eval()
    src, prev = random_batch(20, [3, 6])
    ref = model(src, prev)
    # More pad columns change nothing at real positions.
    wider = torch.cat([src, torch.full((2, 4), PAD)], dim=1)
    torch.testing.assert_close(model(wider, prev), ref)
    # Garbage in the hidden states at source pad positions (between encoder layers) does not leak either.
    pad = src.eq(PAD)
    hook = model.encoder.layers[0].register_forward_hook(
        lambda m, i, out: out + 100 * pad[..., None] * torch.randn_like(out)
    )
    try:
        perturbed = model(src, prev)
    finally:
        hook.remove()
    torch.testing.assert_close(perturbed, ref)
    assert pad.any()  # the test exercised padding


def test_transformer_decoder_is_causal():
    model = tiny(vocab=20).eval()
    src, prev = random_batch(20, [6, 6])
    ref = model(src, prev)
    for t in range(prev.size(1) - 1):
        changed = prev.clone()
        changed[:, t + 1 :] = torch.randint(4, 20, changed[:, t + 1 :].shape)
        out = model(src, changed)
        torch.testing.assert_close(out[:, : t + 1], ref[:, : t + 1])
        assert not torch.allclose(out[:, t + 1 :], ref[:, t + 1 :])


@pytest.mark.parametrize("norm_first", [False, True])
def test_decode_step_with_cache_matches_teacher_forcing(norm_first):
    model = tiny(vocab=20, norm_first=norm_first).eval()
    src, prev = random_batch(20, [5, 7])
    prev[:, 1:] = prev[:, 1:].clamp(min=4)  # a full prefix without pads, as during search
    ref = model(src, prev)
    enc_out, pad_mask = model.encode(src)
    cache: dict = {}
    for t in range(prev.size(1)):
        torch.testing.assert_close(model.decode_step(prev[:, : t + 1], enc_out, pad_mask, cache), ref[:, t])
        torch.testing.assert_close(model.decode_step(prev[:, : t + 1], enc_out, pad_mask), ref[:, t])


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_pre_and_post_ln_train(norm_first):
    model = tiny(vocab=20, norm_first=norm_first, dropout=0.1)
    assert (model.encoder.layer_norm is not None) == norm_first
    assert (model.decoder.layer_norm is not None) == norm_first
    src, prev = random_batch(20, [4, 6])
    loss = F.cross_entropy(model(src, prev).flatten(0, 1), prev.flatten(), ignore_index=PAD)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_shared_embeddings_are_one_tensor():
    tied = tiny(vocab=20)
    assert tied.decoder.output_projection is None
    assert tied.decoder.output_weight() is tied.decoder.embed_tokens.weight
    assert tied.encoder.embed_tokens.weight is not tied.decoder.embed_tokens.weight
    shared = tiny(vocab=20, share_all_embeddings=True)
    assert shared.encoder.embed_tokens.weight is shared.decoder.embed_tokens.weight is shared.decoder.output_weight()
    untied = tiny(vocab=20, share_decoder_input_output_embed=False)
    assert untied.decoder.output_weight() is not untied.decoder.embed_tokens.weight
    assert untied.decoder.output_projection.bias is None
    with pytest.raises(ValueError, match="share_all_embeddings"):
        Transformer(20, 21, share_all_embeddings=True)


def test_unit_modules_forward_order_and_count():
    with torch.device("meta"):
        iwslt = arch_model("transformer_iwslt_de_en", 8848, 6632)
    units = iwslt.unit_modules()
    assert len(units) == 1 + 12 + 1 + 18 == 32
    assert all(iwslt.get_submodule(name) is module for name, module in units)
    assert sum(isinstance(m, torch.nn.ReLU) for m in iwslt.modules()) == 12  # one ReLU module per FFN

    model = tiny(vocab=20).eval()
    order: list[str] = []
    names = {id(m): n for n, m in model.unit_modules()}
    for module in dict(model.unit_modules()).values():
        module.register_forward_hook(lambda m, i, o: order.append(names[id(m)]))
    model(*random_batch(20, [3, 4]))
    first_seen = list(dict.fromkeys(order))
    assert first_seen == [n for n, _ in model.unit_modules()]
    assert len(tiny(vocab=20, share_all_embeddings=True).unit_modules()) == len(first_seen) - 1


CUDA = pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")])


@pytest.mark.parametrize("device", ["cpu", CUDA])
@pytest.mark.parametrize("training", [True, False])
def test_math_attention_supports_double_backward(training, device):
    # On CUDA the fused SDPA kernels have no double backward; the math backend does (GradInit needs it).
    model = tiny(vocab=20, math_attention=True, dropout=0.1, attention_dropout=0.1).to(device).train(training)
    src, prev = (t.to(device) for t in random_batch(20, [4, 6]))
    params = [p for p in model.parameters() if p.requires_grad]
    loss = F.cross_entropy(model(src, prev).flatten(0, 1), prev.flatten(), ignore_index=PAD)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    grad_norm = sum(g.pow(2).sum() for g in grads)
    second = torch.autograd.grad(grad_norm, params, allow_unused=True)
    q_weight = model.encoder.layers[0].self_attn.q_proj.weight
    q_second = second[[i for i, p in enumerate(params) if p is q_weight][0]]
    assert q_second is not None and torch.isfinite(q_second).all() and q_second.abs().sum() > 0


def test_math_attention_matches_default_backend():
    model = tiny(vocab=20).eval()
    src, prev = random_batch(20, [4, 6])
    ref = model(src, prev)
    model.set_math_attention(True)
    torch.testing.assert_close(model(src, prev), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("len_penalty", [1.0, 0.0])
def test_beam_search_finds_exhaustive_best_when_beam_covers_all(len_penalty):
    # Vocabulary {pad, bos, eos, 3, 4, 5}; with max_len 2 there are 3 + 9 hypotheses, all kept by beam 12.
    torch.manual_seed(0)
    model = tiny(vocab=6).eval()
    src = torch.tensor([[4, 5, EOS], [3, EOS, PAD]])
    hyps, scores = beam_search(
        model, src, beam=12, len_penalty=len_penalty, max_len_a=0, max_len_b=2, return_scores=True
    )
    for i in range(2):
        best, best_score = None, -math.inf
        for length in (1, 2):
            for h in itertools.product([3, 4, 5], repeat=length):
                prev = torch.tensor([[BOS, *h]])
                lprobs = torch.log_softmax(model(src[i : i + 1], prev)[0], dim=-1)
                score = sum(lprobs[t, tok].item() for t, tok in enumerate([*h, EOS])) / (length + 1) ** len_penalty
                if score > best_score:
                    best, best_score = list(h), score
        assert hyps[i] == best
        assert scores[i] == pytest.approx(best_score, abs=1e-5)


@pytest.mark.parametrize("eos_bias", [-100.0, 0.0, 100.0])
def test_decoding_forces_eos_at_max_len_and_forbids_empty_output(eos_bias):
    torch.manual_seed(0)
    model = tiny(vocab=20).train()
    step = model.decode_step
    model.decode_step = lambda *args, **kw: step(*args, **kw) + eos_bias * F.one_hot(torch.tensor(EOS), 20)
    src, _ = random_batch(20, [2, 5])  # padded width 6: max_len = int(0.5 * 6 + 1) = 4 tokens before eos
    for out in (
        greedy_decode(model, src, max_len_a=0.5, max_len_b=1),
        beam_search(model, src, beam=3, max_len_a=0.5, max_len_b=1),
    ):
        assert all(1 <= len(h) <= 4 for h in out)
        assert all(t not in (PAD, BOS, EOS) for h in out for t in h)
        if eos_bias < 0:  # eos only where forced
            assert all(len(h) == 4 for h in out)
        if eos_bias > 0:  # eos as soon as allowed
            assert all(len(h) == 1 for h in out)
    assert model.training  # the decoders restore the training flag


def make_copy_batch(g: torch.Generator, n: int, vocab: int = 12) -> tuple[torch.Tensor, ...]:
    """Copy task: source = target = 3..8 random symbols from 4..vocab-1."""
    lengths = torch.randint(3, 9, (n,), generator=g).tolist()
    src = torch.full((n, max(lengths) + 1), PAD)
    target, prev = src.clone(), src.clone()
    for i, length in enumerate(lengths):
        seq = torch.randint(4, vocab, (length,), generator=g)
        src[i, :length], src[i, length] = seq, EOS
        target[i, :length], target[i, length] = seq, EOS
        prev[i, 0], prev[i, 1 : length + 1] = BOS, seq
    return src, prev, target


@pytest.fixture(scope="module")
def copy_model() -> Transformer:
    """A 1+1-layer, d 64 model trained for 300 Adam steps on the copy task (≈ 5 s on one core)."""
    torch.manual_seed(0)
    model = Transformer(
        12,
        12,
        d_model=64,
        ffn_dim=128,
        heads=4,
        encoder_layers=1,
        decoder_layers=1,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
    )
    for p in model.parameters():
        if p.dim() > 1:
            torch.nn.init.xavier_uniform_(p)
    steps = 300
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 30) * (1 - s / steps))
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        src, prev, target = make_copy_batch(g, 64)
        loss = F.cross_entropy(model(src, prev).flatten(0, 1), target.flatten(), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def test_tiny_transformer_learns_copy_task(copy_model):
    src, _, target = make_copy_batch(torch.Generator().manual_seed(99), 200)
    refs = [[t for t in row if t not in (PAD, EOS)] for row in target.tolist()]
    greedy = greedy_decode(copy_model, src)
    beam = beam_search(copy_model, src, beam=4)
    assert sum(h == r for h, r in zip(greedy, refs)) / len(refs) >= 0.9
    assert sum(h == r for h, r in zip(beam, refs)) / len(refs) >= 0.9


def test_beam_one_equals_greedy(copy_model):
    torch.manual_seed(0)
    random_model = tiny(vocab=12).eval()
    src, _, _ = make_copy_batch(torch.Generator().manual_seed(5), 50)
    for model in (copy_model, random_model):
        assert beam_search(model, src, beam=1) == greedy_decode(model, src)


def test_beam_search_batched_equals_one_sentence_at_a_time(copy_model):
    src, _, _ = make_copy_batch(torch.Generator().manual_seed(7), 12)
    src[:3, :3] = torch.tensor([5, 6, 7])  # perturbed copies: sentences finish at different steps
    batched = beam_search(copy_model, src, beam=3, max_len_a=0, max_len_b=10, return_scores=True)
    for i in range(len(src)):
        single = src[i : i + 1, : int(src[i].ne(PAD).sum())]
        hyp, score = beam_search(copy_model, single, beam=3, max_len_a=0, max_len_b=10, return_scores=True)
        assert hyp[0] == batched[0][i]
        assert score[0] == pytest.approx(batched[1][i], abs=1e-4)
