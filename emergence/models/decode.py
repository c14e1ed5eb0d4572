"""Greedy and beam-search decoding for `emergence.models.transformer.Transformer`, following fairseq's generator.

BLEU in docs/method.md#training-recipes is computed with beam 5, max_len_a 1.2, max_len_b 10. The rules copied from
fairseq's
SequenceGenerator (facts, not code):
- at most max_len = int(max_len_a * src_len + max_len_b) tokens before eos, where src_len is the padded width of the
  batch's `src_tokens` (eos included), capped by the model's positions; at step max_len only eos is allowed;
- pad is never generated (nor is bos here; fairseq needs no bos mask, its decoder starts from eos), and eos is
  not allowed at the first step (min_len = 1, no empty output);
- a hypothesis scores sum(log p) / len ** len_penalty, len counting its eos; log-probabilities are not renormalized
  after masking;
- beam search ranks 2 * beam candidates per sentence; eos candidates within the top `beam` are finalized, the best
  `beam` non-eos candidates continue; a sentence is done once it has `beam` finalized hypotheses.
With beam = 1 this reduces to greedy search, and `greedy_decode` returns the same tokens.

Both functions run the model in eval mode without gradients (restoring its mode afterwards), use the model's
key/value cache, and return token lists without bos and eos.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


def _max_len(model: nn.Module, src_tokens: Tensor, max_len_a: float, max_len_b: int) -> int:
    # fairseq uses the padded source width (eos included); bos takes a target position too.
    return min(int(max_len_a * src_tokens.size(1) + max_len_b), model.max_positions - 1)


def _mask_(lprobs: Tensor, step: int, max_len: int, *, bos: int, eos: int, pad: int, min_len: int) -> Tensor:
    lprobs[:, pad] = -math.inf
    lprobs[:, bos] = -math.inf
    if step < min(min_len, max_len):  # forcing eos wins over min_len
        lprobs[:, eos] = -math.inf
    if step >= max_len:  # force eos
        eos_col = lprobs[:, eos].clone()
        lprobs.fill_(-math.inf)
        lprobs[:, eos] = eos_col
    return lprobs


@contextmanager
def _eval_no_grad(model: nn.Module) -> Iterator[None]:
    """Eval mode and no grad, restoring the model's training flag afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def greedy_decode(
    model: nn.Module,
    src_tokens: Tensor,
    *,
    bos: int = 1,
    eos: int = 2,
    pad: int = 0,
    max_len_a: float = 1.2,
    max_len_b: int = 10,
    min_len: int = 1,
) -> list[list[int]]:
    """Argmax decoding of a batch of right-padded sources (B x S). Returns B token lists without bos/eos."""
    with _eval_no_grad(model):
        max_len = _max_len(model, src_tokens, max_len_a, max_len_b)
        enc_out, src_pad_mask = model.encode(src_tokens)
        batch = src_tokens.size(0)
        tokens = torch.full((batch, 1), bos, dtype=torch.long, device=src_tokens.device)
        done = torch.zeros(batch, dtype=torch.bool, device=src_tokens.device)
        cache: dict = {}
        for step in range(max_len + 1):
            lprobs = torch.log_softmax(model.decode_step(tokens, enc_out, src_pad_mask, cache).float(), dim=-1)
            lprobs = _mask_(lprobs, step, max_len, bos=bos, eos=eos, pad=pad, min_len=min_len)
            nxt = lprobs.argmax(dim=-1).masked_fill(done, pad)
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
            done |= nxt.eq(eos)
            if bool(done.all()):
                break
        return [[t for t in row if t not in (eos, pad)] for row in tokens[:, 1:].tolist()]


def beam_search(
    model: nn.Module,
    src_tokens: Tensor,
    *,
    beam: int = 5,
    len_penalty: float = 1.0,
    max_len_a: float = 1.2,
    max_len_b: int = 10,
    min_len: int = 1,
    bos: int = 1,
    eos: int = 2,
    pad: int = 0,
    return_scores: bool = False,
) -> list[list[int]] | tuple[list[list[int]], list[float]]:
    """fairseq-style beam search over a batch of right-padded sources (B x S).

    Returns the best hypothesis per sentence (token lists without bos/eos), and with `return_scores` also its
    length-normalized score.
    """
    with _eval_no_grad(model):
        device = src_tokens.device
        max_len = _max_len(model, src_tokens, max_len_a, max_len_b)
        enc_out, src_pad_mask = model.encode(src_tokens)
        expand = torch.arange(src_tokens.size(0), device=device).repeat_interleave(beam)
        enc_out, src_pad_mask = enc_out.index_select(0, expand), src_pad_mask.index_select(0, expand)
        alive = list(range(src_tokens.size(0)))  # original index of each sentence still searched
        finalized: list[list[tuple[float, list[int]]]] = [[] for _ in alive]
        tokens = torch.full((len(alive) * beam, 1), bos, dtype=torch.long, device=device)
        scores = torch.zeros(len(alive) * beam, device=device)
        cache: dict = {}
        beam_offsets = torch.arange(2 * beam, device=device)
        for step in range(max_len + 1):
            lprobs = torch.log_softmax(model.decode_step(tokens, enc_out, src_pad_mask, cache).float(), dim=-1)
            lprobs = _mask_(lprobs, step, max_len, bos=bos, eos=eos, pad=pad, min_len=min_len)
            n, vocab = len(alive), lprobs.size(1)
            cand = (scores[:, None] + lprobs).view(n, beam, vocab)
            if step == 0:  # all beams hold the same prefix: expand only the first
                cand[:, 1:] = -math.inf
            top_scores, top_idx = cand.view(n, -1).topk(2 * beam, dim=1)
            cand_beam, cand_tok = top_idx // vocab, top_idx % vocab
            is_eos = cand_tok.eq(eos)
            rows = torch.arange(n, device=device)[:, None] * beam + cand_beam  # row in `tokens` of each candidate

            # Finalize eos candidates ranked within the top `beam` (already in descending score order).
            hits = (is_eos[:, :beam] & top_scores[:, :beam].isfinite()).nonzero().tolist()
            norm = (step + 1) ** len_penalty
            for i, j in hits:
                if len(finalized[alive[i]]) < beam:
                    score = float(top_scores[i, j]) / norm
                    finalized[alive[i]].append((score, tokens[rows[i, j], 1:].tolist()))
            keep = [i for i in range(n) if len(finalized[alive[i]]) < beam]
            if step == max_len or not keep:
                break

            # Continue the best `beam` non-eos candidates of every unfinished sentence.
            rank = beam_offsets + is_eos.long() * (2 * beam)
            chosen = rank.topk(beam, dim=1, largest=False).indices[keep]  # n_keep x beam
            keep_t = torch.tensor(keep, device=device)
            new_rows = rows[keep_t].gather(1, chosen).flatten()
            scores = top_scores[keep_t].gather(1, chosen).flatten()
            new_tok = cand_tok[keep_t].gather(1, chosen).flatten()
            tokens = torch.cat([tokens.index_select(0, new_rows), new_tok[:, None]], dim=1)
            model.reorder_cache(cache, new_rows)
            if len(keep) < n:  # drop finished sentences from the batch
                keep_rows = (keep_t[:, None] * beam + torch.arange(beam, device=device)).flatten()
                enc_out, src_pad_mask = enc_out.index_select(0, keep_rows), src_pad_mask.index_select(0, keep_rows)
                alive = [alive[i] for i in keep]

        best = [max(hyps, key=lambda h: h[0]) for hyps in finalized]
        if return_scores:
            return [tokens for _, tokens in best], [score for score, _ in best]
        return [tokens for _, tokens in best]
