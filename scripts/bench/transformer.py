"""Training throughput (target tokens/s) of the in-repo Transformer on random batches.

Each step is forward, label-smoothed cross-entropy, backward and an Adam step on a batch of about `--tokens` target
tokens (sentences of `--seq-len` pieces + eos, random lengths between half and full). A repeat is `--steps` steps
after `--warmup` steps; the models are interleaved per repeat, medians over repeats. (For scale: PyTorch's own
``nn.Transformer`` at d 128, 2+2 layers, FFN 256 ran at about 11k tokens/s on 2 threads of this project's CPU.)

    python -m scripts.bench.transformer                       # tiny and small on 1 CPU thread
    python -m scripts.bench.transformer --threads 2 --models small --steps 30
    python -m scripts.bench.transformer --device cuda --models tiny small iwslt
    python -m scripts.bench.transformer --smoke
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F

from emergence.config import group_config
from emergence.models.transformer import Transformer
from scripts.bench.timing import Report, clock, common_args, interleave, setup

SIZES = ("d_model", "ffn_dim", "heads", "encoder_layers", "decoder_layers")  # the model's dropouts stay the defaults
ARCHS = {"tiny": "transformer_tiny", "small": "transformer_tiny", "iwslt": "transformer_iwslt_de_en",
         "wmt": "transformer_wmt_en_de"}  # fmt: skip
OVERRIDES = {"small": dict(d_model=128, ffn_dim=256)}  # translation_gettext's width on the tiny layout


def sizes(name: str) -> dict[str, int]:
    """The sizes of bench model ``name``: its conf/arch YAML's, with ``OVERRIDES``."""
    arch = group_config("arch", ARCHS[name])
    return {**{k: arch[k] for k in SIZES}, **OVERRIDES.get(name, {})}


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


def make_model(name: str, vocab: int, device) -> Transformer:
    torch.manual_seed(0)
    model = Transformer(vocab, vocab, **sizes(name))
    with torch.no_grad():  # fairseq's embedding init, so that the loss is sensible (speed does not change)
        for emb in (model.encoder.embed_tokens, model.decoder.embed_tokens):
            emb.weight.normal_(0, emb.embedding_dim**-0.5)[PAD] = 0
    return model.to(device).train()


def trainer(name: str, args: argparse.Namespace):
    """A callable running ``args.steps`` training steps and returning target tokens/s (after ``args.warmup``)."""
    model = make_model(name, args.vocab, args.device)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4, betas=(0.9, 0.98))
    g = torch.Generator().manual_seed(0)
    batches = [random_batch(g, args.vocab, args.tokens, args.seq_len, args.device) for _ in range(4)]

    def step(i: int) -> None:
        src, prev, target = batches[i % len(batches)]
        logits = model(src, prev)
        loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=PAD, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(args.warmup):  # allocator and kernel warm-up
        step(i)
    tokens = sum(int(batches[i % len(batches)][2].ne(PAD).sum()) for i in range(args.steps))

    def repeat() -> float:
        return tokens / clock(lambda: [step(i) for i in range(args.steps)], args.device)

    return repeat, sum(p.numel() for p in model.parameters()), tokens / args.steps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny", "small"], choices=sorted(ARCHS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--tokens", type=int, default=3000, help="target tokens per step (approximate)")
    parser.add_argument("--seq-len", type=int, default=24, help="longest sentence in pieces")
    parser.add_argument("--steps", type=int, default=10, help="steps per repeat")
    parser.add_argument("--warmup", type=int, default=3)
    common_args(parser, repeats=3)
    args = parser.parse_args(argv)
    if args.smoke:
        args.models, args.vocab, args.tokens, args.steps, args.warmup = ["tiny"], 500, 200, 2, 1
    setup(args)
    runs = {name: trainer(name, args) for name in args.models}
    stats = interleave({name: r[0] for name, r in runs.items()}, args.repeats, device=args.device)
    report = Report(
        "Transformer training throughput",
        ["model", "params (M)", "tgt tokens/step", "tokens/s (median)", "spread"],
        device=args.device,
        setting=f"vocab {args.vocab}, ~{args.tokens} target tokens per step, {args.steps} steps x {args.repeats} "
        "interleaved repeats, Adam",
    )
    for name, s in stats.items():
        params, tokens = runs[name][1:]
        report.add(name, f"{params / 1e6:.2f}", f"{tokens:.0f}", f"{s.median:.0f}", f"{100 * s.spread:.0f} %")
    report.emit(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
