"""Training throughput (target tokens/s) of the in-repo Transformer on random batches.

Each step is forward, label-smoothed cross-entropy, backward and an Adam step on a batch of about `--tokens` target
tokens (sentences of `--seq-len` pieces + eos, random lengths between half and full). Compare with the
`nn.Transformer` figure in docs/ENVIRONMENT.md §8 (d 128, 2+2 layers, FFN 256: ≈ 11k tokens/s on 2 threads).

    python scripts/bench_transformer.py                       # tiny and small on 1 CPU thread
    python scripts/bench_transformer.py --threads 2 --models small --steps 30
    python scripts/bench_transformer.py --device cuda --models tiny small iwslt
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from emergence.models.transformer import PRESETS, Transformer

MODELS = {
    "tiny": PRESETS["transformer_tiny"],
    "small": dict(d_model=128, ffn_dim=256, heads=4, encoder_layers=2, decoder_layers=2),
    "iwslt": PRESETS["transformer_iwslt_de_en"],
}
PAD, BOS, EOS = 0, 1, 2


def random_batch(g: torch.Generator, vocab: int, tokens: int, seq_len: int, device: str) -> tuple[torch.Tensor, ...]:
    """Right-padded source, prev_output_tokens and target holding about `tokens` target tokens."""
    lengths = torch.randint(seq_len // 2, seq_len + 1, (4 * tokens // seq_len + 1,), generator=g)
    n = int(torch.searchsorted(torch.cumsum(lengths + 1, 0), tokens)) + 1  # sentences until `tokens` is reached
    lengths = lengths[:n]
    pieces = torch.randint(4, vocab, (n, seq_len), generator=g)
    real = torch.arange(seq_len)[None, :] < lengths[:, None]
    src = torch.cat([pieces.masked_fill(~real, PAD), torch.full((n, 1), PAD)], dim=1)
    src[torch.arange(n), lengths] = EOS
    target = src.clone()
    prev = torch.cat([torch.full((n, 1), BOS), pieces.masked_fill(~real, PAD)], dim=1)
    return src.to(device), prev.to(device), target.to(device)


def bench(name: str, args: argparse.Namespace) -> float:
    torch.manual_seed(0)
    model = Transformer(args.vocab, args.vocab, **MODELS[name])
    with torch.no_grad():  # fairseq's embedding init, so that the printed loss is sensible (speed does not change)
        for emb in (model.encoder.embed_tokens, model.decoder.embed_tokens):
            emb.weight.normal_(0, emb.embedding_dim**-0.5)[PAD] = 0
    model = model.to(args.device).train()
    opt = torch.optim.Adam(model.parameters(), lr=5e-4, betas=(0.9, 0.98))
    g = torch.Generator().manual_seed(0)
    batches = [random_batch(g, args.vocab, args.tokens, args.seq_len, args.device) for _ in range(4)]
    n_tokens, times = 0, []
    for step in range(args.warmup + args.steps):
        src, prev, target = batches[step % len(batches)]
        if args.device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        logits = model(src, prev)
        loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=PAD, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if args.device == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:  # the first steps include allocator and kernel warm-up
            times.append(time.perf_counter() - start)
            n_tokens += int(target.ne(PAD).sum())
    params = sum(p.numel() for p in model.parameters())
    # The median step is robust to the other processes that share these machines (ENVIRONMENT.md §8).
    step_s = sorted(times)[len(times) // 2]
    rate = n_tokens / args.steps / step_s
    print(
        f"{name:6s} params {params / 1e6:6.2f} M  {n_tokens / args.steps:6.0f} tgt tokens/step  "
        f"median {1000 * step_s:8.1f} ms/step  {rate:9.0f} tokens/s  (mean {n_tokens / sum(times):9.0f}; "
        f"loss {loss.item():.2f})"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "small"], choices=sorted(MODELS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--tokens", type=int, default=3000, help="target tokens per step (approximate)")
    parser.add_argument("--seq-len", type=int, default=24, help="longest sentence in pieces")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {args.device}, threads {args.threads}, vocab {args.vocab}")
    for name in args.models:
        bench(name, args)


if __name__ == "__main__":
    main()
