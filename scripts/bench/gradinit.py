"""GradInit's cost per iteration, ours against the official code, and in training-step equivalents.

For each architecture, on fixed random half-batches (no data loading or augmentation in any timing), side by side in
one process (interleaved repeats, medians): one plain SGD-momentum training step (forward, backward, update) at the
same batch size; one objective iteration (gamma huge, so every iteration is one) and one constraint iteration (gamma
tiny) of ``emergence.init.gradinit.GradInit``; and, with ``--official PATH``, the same two kinds of iteration of the
official CIFAR function ``gradinit_utils.gradinit`` (Zhu et al., github.com/zhuchen03/gradinit; a local clone at
PATH) on a copy of the same model and the same half-batches. The official code is imported from PATH at run time,
never copied: its ``.cuda()`` calls are made no-ops for the duration of the call (CPU), its log lines are silenced
and the file it writes goes to a temporary folder. Settings match on both sides: SGD target, normalized gradient
(A[g] = g/|g|), eta 0.1, scale lr 1e-3, min scale 0.01, scale-gradient clip 1, overlapping batches.

An iteration's time is (t(1 + k iterations) - t(1 iteration)) / k, so one-off setup is excluded on both sides. Each
is measured as wall time and as this process's CPU time; the table's times and its main ratios are CPU time (at one
torch thread, the compute an iteration needs, which other jobs on a shared machine barely change), the wall-time
ratios stand beside them.
Without ``--official`` the comparison columns say so and the rest is measured.

    python -m scripts.bench.gradinit --official ~/src/gradinit      # CPU, 1 thread, batch 128
    python -m scripts.bench.gradinit --device cuda --threads 16
    python -m scripts.bench.gradinit --smoke
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import io
import os
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from emergence.init import InitBatch
from emergence.init.gradinit import GradInit
from emergence.init.kaiming import Kaiming
from emergence.init.torch_default import TorchDefault
from emergence.models.cnn import SmallCNN
from emergence.models.mlp import MLP
from emergence.models.resnet import ResNet
from emergence.models.vgg import VGG
from scripts.bench.timing import Report, clocks, common_args, interleave, paired, setup

# name -> (input shape, model builder, k: iterations per timing, so that one timing lasts about half a second)
ARCHS = {
    "mlp (1x28x28)": ((1, 28, 28), lambda s: MLP(s, 10), 40),
    "small_cnn (1x28x28)": ((1, 28, 28), lambda s: SmallCNN(s, 10), 4),
    "resnet20 (3x32x32)": ((3, 32, 32), lambda s: ResNet(s, 10, depth=20, norm="batch"), 2),
    "resnet20_nobn (3x32x32)": ((3, 32, 32), lambda s: ResNet(s, 10, depth=20, norm="none"), 2),
    "vgg19 w0.25 (3x32x32)": ((3, 32, 32), lambda s: VGG(s, 10, depth=19, norm="batch", width=0.25), 2),
}
SMOKE_ARCHS = ["mlp (1x28x28)"]
ETA, LR, MIN_SCALE, CLIP = 0.1, 1e-3, 0.01, 1.0


class FixedBatches:
    """Pre-made half-batches on the device: the task API GradInit uses, without sampling cost."""

    def __init__(self, shape, batch_size, device):
        g = torch.Generator().manual_seed(0)
        half = batch_size // 2
        x, y = torch.randn(3 * half, *shape, generator=g), torch.randint(10, (3 * half,), generator=g)
        self.parts = tuple((xb.to(device), yb.to(device)) for xb, yb in zip(x.chunk(3), y.chunk(3)))

    def init_batches(self, batch_size, generator, kind="thirds"):
        while True:
            yield tuple(InitBatch(p, self.inputs, self.criterion, self.merge) for p in self.parts)

    @staticmethod
    def merge(a, b):
        return torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])

    @staticmethod
    def inputs(batch):
        return (batch[0],)

    @staticmethod
    def criterion(logits, batch):
        return F.cross_entropy(logits, batch[1])


def train_step(model, task, device):
    """Seconds of one SGD-momentum step on S = B0 + B1 (a callable for ``interleave``)."""
    model = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batch = task.merge(*task.parts[:2])

    def step():
        opt.zero_grad(set_to_none=True)
        task.criterion(model(batch[0]), batch).backward()
        opt.step()

    step()  # warm-up
    return lambda: clocks(step, device)


def per_iteration(run_n, device, k: int):
    """(t(1 + k) - t(1)) / k for ``run_n(n)``, which runs n iterations on a fresh copy of the model: a (wall, CPU)
    pair of seconds."""

    def figure():
        (w1, c1), (w0, c0) = clocks(lambda: run_n(1 + k), device), clocks(lambda: run_n(1), device)
        return (w1 - w0) / k, (c1 - c0) / k

    return figure


def ours(model, task, device, gamma: float, batch_size: int, k: int):
    def run_n(n: int) -> None:
        init = GradInit(TorchDefault(), gamma=gamma, iterations=n, batch_size=batch_size, lr=LR, eta=ETA,
                        min_scale=MIN_SCALE, grad_clip=CLIP)  # fmt: skip
        init(copy.deepcopy(model), (), None, batches=task.init_batches(batch_size, None), device=device)
        kinds = {r["kind"] for r in init.history}
        assert kinds == {"objective" if gamma > 1 else "constraint"}, kinds

    run_n(1)  # warm-up
    return per_iteration(run_n, device, k)


@contextlib.contextmanager
def official_environment(path: Path):
    """The official module imported from ``path``, with ``.cuda()`` a no-op, stdout silenced, cwd a temp folder."""
    cuda, cwd = torch.Tensor.cuda, os.getcwd()
    sys.path.insert(0, str(path))  # the user's clone of the official repository, only while it runs
    try:
        module = importlib.import_module("gradinit_utils")
        torch.Tensor.cuda = lambda self, *a, **kw: self
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
            os.chdir(tmp)  # it saves chks/<expname>_init.pth into the working directory
            yield module
    finally:
        torch.Tensor.cuda = cuda
        os.chdir(cwd)
        sys.path.remove(str(path))


def official(module, model, task, device, gamma: float, k: int):
    # its data loader: an iterable of half-batches (get_batch restarts it when exhausted)
    loader = list(task.parts)

    def run_n(n: int) -> None:
        args = SimpleNamespace(
            gradinit_resume="", gradinit_min_scale=MIN_SCALE, gradinit_lr=LR, gradinit_grad_clip=CLIP,
            gradinit_eta=ETA, gradinit_alg="sgd", gradinit_gamma=gamma, gradinit_normalize_grad=True,
            batch_no_overlap=False, gradinit_iters=n, expname="bench",
        )  # fmt: skip
        module.gradinit(copy.deepcopy(model), loader, args)

    run_n(1)  # warm-up
    return per_iteration(run_n, device, k)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, default=None, help="a clone of github.com/zhuchen03/gradinit")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=None,
                        help="k: iterations per timing (1 + k vs 1); default per architecture (MLP 40, small CNN 4, "
                        "others 2)")  # fmt: skip
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    parser.add_argument("--device", default="cpu")
    common_args(parser, repeats=5)
    args = parser.parse_args(argv)
    if args.smoke:
        args.archs, args.batch_size, args.iterations = SMOKE_ARCHS, 16, 1
    if args.official is not None and not (args.official / "gradinit_utils.py").is_file():
        print(f"--official {args.official}: no gradinit_utils.py there; give the root of a clone of "
              "github.com/zhuchen03/gradinit", file=sys.stderr)  # fmt: skip
        return 2
    setup(args)
    device = torch.device(args.device)
    report = Report(
        "GradInit cost per iteration: ours vs the official code",
        ["architecture", "k", "train step ms", "objective ms", "constraint ms", "official obj ms", "official con ms",
         "obj / official", "con / official", "obj / official (wall)", "con / official (wall)", "obj / step",
         "con / step"],  # fmt: skip
        device=device,
        setting=f"batch {args.batch_size} (|S| = |S~|), k = {args.iterations or 'per architecture (column k)'}, "
        f"{args.repeats} interleaved repeats, "
        "medians; times are CPU ms of this process (one torch thread), ratios are medians of per-repeat ratios",
    )
    ratios = {}
    for name in args.archs:
        shape, build, k = ARCHS[name]
        k = args.iterations or k
        torch.manual_seed(0)
        model = build(shape)
        Kaiming()(model, (), torch.Generator().manual_seed(0))
        model.to(device)
        task = FixedBatches(shape, args.batch_size, device)
        variants = {
            "step": train_step(model, task, device),
            "objective": ours(model, task, device, 1e30, args.batch_size, k),
            "constraint": ours(model, task, device, 1e-30, args.batch_size, k),
        }
        with contextlib.ExitStack() as stack:
            if args.official is not None:
                module = stack.enter_context(official_environment(args.official))
                variants["official objective"] = official(module, model, task, device, 1e30, k)
                variants["official constraint"] = official(module, model, task, device, 1e-30, k)
            stats = interleave(variants, args.repeats, device=device)
        wall, cpu = ({v: s[i] for v, s in stats.items()} for i in (0, 1))  # (wall, CPU) Stats per variant
        ms = {v: 1e3 * s.median for v, s in cpu.items()}
        step = ms["step"]
        if args.official is not None:
            clocks_ = (("cpu", cpu), ("wall", wall))
            r = {f"{kind} {clock}": paired(times[kind], times[f"official {kind}"]).median
                 for kind in ("objective", "constraint") for clock, times in clocks_}  # fmt: skip
            ratios[name] = {"objective": r["objective cpu"], "constraint": r["constraint cpu"],
                            "objective_wall": r["objective wall"], "constraint_wall": r["constraint wall"]}  # fmt: skip
            off = [f"{ms['official objective']:.1f}", f"{ms['official constraint']:.1f}"] + [
                f"{r[c]:.2f}" for c in ("objective cpu", "constraint cpu", "objective wall", "constraint wall")]
        else:
            off = ["-"] * 6
        report.add(name, k, f"{step:.1f}", f"{ms['objective']:.1f}", f"{ms['constraint']:.1f}", *off,
                   f"{ms['objective'] / step:.2f}", f"{ms['constraint'] / step:.2f}")  # fmt: skip
    if args.official is None:
        report.note("official comparison skipped: no --official PATH (a clone of github.com/zhuchen03/gradinit)")
    report.note("obj / official, con / official: our iteration's CPU time / the official's (target <= 1.0), the "
                "figure that holds on a shared machine; (wall): the same in wall time, which other jobs distort; "
                "obj / step, con / step: an iteration in training-step equivalents (CPU time).")  # fmt: skip
    report.extra["ratios"] = ratios
    report.emit(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
