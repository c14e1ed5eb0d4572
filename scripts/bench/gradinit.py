"""GradInit's cost in training-step equivalents (GRADINIT.md §3 expects ~2x per iteration at equal batch size).

For each architecture, on one fixed random batch (no data loading or augmentation in any timing), measured side by
side in one process: one plain SGD-momentum training step (forward, backward, update), one GradInit objective
iteration (gamma huge: g without a graph, then the lookahead loss on S~ and its gradient to the scales) and one
constraint iteration (gamma tiny: g, then g again with a graph and the double backward). An iteration's time is
(t(1 + r iterations) - t(1 iteration)) / r, so GradInit's one-off setup and checks are excluded.

    python scripts/bench_gradinit.py                 # CPU, 1 thread, batch 128, about 1-2 minutes
    python scripts/bench_gradinit.py --device cuda --threads 16
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from emergence.init.gradinit import GradInit
from emergence.init.kaiming import Kaiming
from emergence.init.torch_default import TorchDefault
from emergence.models.cnn import SmallCNN
from emergence.models.mlp import MLP
from emergence.models.resnet import ResNet
from emergence.models.vgg import VGG

ARCHS = {
    "mlp (1x28x28)": ((1, 28, 28), lambda s: MLP(s, 10)),
    "small_cnn (1x28x28)": ((1, 28, 28), lambda s: SmallCNN(s, 10)),
    "resnet20 (3x32x32)": ((3, 32, 32), lambda s: ResNet(s, 10, depth=20, norm="batch")),
    "resnet20_nobn (3x32x32)": ((3, 32, 32), lambda s: ResNet(s, 10, depth=20, norm="none")),
    "vgg19 w0.25 (3x32x32)": ((3, 32, 32), lambda s: VGG(s, 10, depth=19, norm="batch", width=0.25)),
}


class FixedBatches:
    """Pre-made half-batches on the device: the task API GradInit uses, without sampling cost."""

    def __init__(self, shape, batch_size, device):
        g = torch.Generator().manual_seed(0)
        x, y = torch.randn(3 * (batch_size // 2), *shape, generator=g), torch.randint(10, (3 * (batch_size // 2),))
        self.parts = tuple((xb.to(device), yb.to(device)) for xb, yb in zip(x.chunk(3), y.chunk(3)))

    def gradinit_batches(self, batch_size, generator):
        return self.parts

    @staticmethod
    def merge(a, b):
        return torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])

    @staticmethod
    def inputs(batch):
        return (batch[0],)

    @staticmethod
    def criterion(logits, batch):
        return F.cross_entropy(logits, batch[1])


def clock(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def train_step_s(model, task, device, repeats: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batch = task.merge(*task.parts[:2])

    def step():
        opt.zero_grad(set_to_none=True)
        task.criterion(model(batch[0]), batch).backward()
        opt.step()

    step()  # warm-up
    return statistics.median(clock(step, device) for _ in range(repeats))


def iteration_s(model, task, device, gamma: float, repeats: int, batch_size: int) -> tuple[float, str]:
    def call(n):
        init = GradInit(TorchDefault(), gamma=gamma, iterations=n, batch_size=batch_size, lr=1e-3)
        return lambda: init(model, (), None, task=task, device=device), init

    warm, _ = call(1)
    warm()
    one, _ = call(1)
    many, init = call(1 + repeats)
    per_iter = (clock(many, device) - clock(one, device)) / repeats
    return per_iter, init.history[-1]["kind"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device}, {torch.get_num_threads()} thread(s), batch {args.batch_size}, torch {torch.__version__}")
    print(
        f"| {'architecture':<24} | train step ms | objective ms | constraint ms | objective / step | "
        "constraint / step |"
    )
    print(f"|{'-' * 26}|--------------:|-------------:|--------------:|-----------------:|------------------:|")
    for name, (shape, build) in ARCHS.items():
        torch.manual_seed(0)
        model = build(shape)
        Kaiming()(model, (), torch.Generator().manual_seed(0))
        model.to(device)
        task = FixedBatches(shape, args.batch_size, device)
        step = train_step_s(model, task, device, args.repeats)
        obj, kind_o = iteration_s(model, task, device, 1e30, args.repeats, args.batch_size)
        con, kind_c = iteration_s(model, task, device, 1e-30, args.repeats, args.batch_size)
        assert (kind_o, kind_c) == ("objective", "constraint")
        print(
            f"| {name:<24} | {step * 1e3:13.1f} | {obj * 1e3:12.1f} | {con * 1e3:13.1f} | {obj / step:16.2f} | "
            f"{con / step:17.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
