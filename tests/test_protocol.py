"""Protocol fixes of the experiment design (README "Results"): validation is never the test set, collapsed runs are
recognised, a run cut by trainer.max_steps keeps the long schedule's LR, the LR horizon can be set in updates, and
tokenized BLEU is BLEU on the text's own tokens (checked against hand computations)."""

from __future__ import annotations

import math

import pytest
import torch

from emergence import protocol
from emergence.config import ConfigError, validate
from emergence.log import read_metrics
from emergence.metrics.bleu import corpus_bleu, tokenized_bleu
from emergence.optim import build_schedule
from emergence.train import run
from tests.conftest import compose_train


def test_val_size_zero_on_an_image_task_is_a_config_error(tmp_path):
    cfg = compose_train(["data=cifar10", "arch=vgg19", "init=kaiming", "data.val_size=0"], tmp_path)
    with pytest.raises(ConfigError, match="validation split the test set"):
        validate(cfg)


@pytest.mark.parametrize("experiment,arch", [("cifar10_paper", "vgg19"), ("cnn_fashion_mnist", "resnet20"),
                                             ("mlp_paper", "mlp"), ("mlp_fashion_mnist", "mlp")])  # fmt: skip
def test_every_image_profile_holds_out_validation(tmp_path, experiment, arch):
    cfg = compose_train([f"experiment={experiment}", f"arch={arch}", "init=kaiming"], tmp_path)
    validate(cfg)  # does not raise
    assert cfg.data.val_size >= 2000
    if experiment == "cifar10_paper":
        assert cfg.data.val_size == 5000


def test_collapsed_means_completed_at_chance():
    cls = {"data": {"_target_": "emergence.tasks.classification.ClassificationTask", "dataset": "cifar10"}}
    rec = lambda status, acc, config=cls: {"status": status, "config": config, "summary": {"val_acc_final": acc}}  # noqa: E731
    assert protocol.is_collapsed(rec("completed", 0.1005))
    assert protocol.is_collapsed(rec("completed", 0.119))
    assert not protocol.is_collapsed(rec("completed", 0.125))
    assert not protocol.is_collapsed(rec("diverged", None))  # diverged is counted as diverged, not collapsed
    c100 = {"data": {**cls["data"], "dataset": "cifar100"}}
    assert protocol.is_collapsed(rec("completed", 0.02, c100))
    assert not protocol.is_collapsed(rec("completed", 0.05, c100))
    assert not protocol.is_collapsed(rec("completed", 0.0, {"data": {"_target_": "x.TranslationTask"}}))


def test_cnn_cpu_profile_reads_a_long_schedule(tmp_path):
    cfg = compose_train(["experiment=cnn_fashion_mnist", "arch=vgg19", "init=kaiming"], tmp_path)
    steps_per_epoch = (cfg.data.train_subset) // cfg.trainer.batch_size
    assert cfg.trainer.max_steps <= 3 * steps_per_epoch < cfg.trainer.epochs * steps_per_epoch
    assert cfg.trainer.epochs == 200 and cfg.optim.lr == 0.1  # the recipe's length and LR


def test_max_steps_keeps_the_long_schedule(make_cfg, tmp_path):
    """A run cut after epoch 1 of a 3-epoch cosine equals the uncut run up to the cut (same LR at every step); a run
    whose schedule is 1 epoch long does not."""
    common = ["arch=mlp", "init=kaiming", "schedule=cosine", "optim.lr=0.2"]
    run(make_cfg(*common, "trainer.epochs=3", run="full"))
    spe = next(r["step"] for r in read_metrics(tmp_path / "full" / "metrics.jsonl") if r.get("epoch") == 1)
    run(make_cfg(*common, "trainer.epochs=3", f"trainer.max_steps={spe}", run="cut"))
    run(make_cfg(*common, "trainer.epochs=1", run="short"))
    ep1 = {}
    for name in ("full", "cut", "short"):
        records = read_metrics(tmp_path / name / "metrics.jsonl")
        ep1[name] = next(r["val/loss"] for r in records if r.get("epoch") == 1 and "val/loss" in r)
    steps = read_metrics(tmp_path / "cut" / "metrics.jsonl")[-1]["step"]
    assert steps == spe
    assert ep1["cut"] == ep1["full"] and ep1["short"] != ep1["full"]


def test_schedule_length_in_updates():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_schedule(opt, 10, 80, name="linear", total_updates=100)
    lrs = []
    for _ in range(60):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 1.0 and lrs[50] == pytest.approx(0.5) and lrs[59] == pytest.approx(0.41)
    with pytest.raises(ValueError, match="total_updates"):
        build_schedule(opt, 10, 80, name="linear", total_updates=0)


def test_iwslt_profile_decays_over_100k_updates_and_keeps_the_best(tmp_path):
    cfg = compose_train(["experiment=iwslt14_paper", "init=xavier"], tmp_path)
    assert cfg.schedule.total_updates == 100000 and cfg.trainer.epochs == 80
    assert cfg.data.keep_best and cfg.data.tokenized_bleu


def test_tokenized_bleu_matches_hand_computation():
    # hyp "the cat sat on mat" vs ref "the cat sat on the mat": p1..p4 = 5/5, 3/4, 2/3, 1/2; BP = exp(1 - 6/5)
    expected = 100 * math.exp(1 - 6 / 5) * (1 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25
    assert tokenized_bleu(["the cat sat on mat"], ["the cat sat on the mat"])["score"] == pytest.approx(expected)
    # a prefix of the reference: all precisions 1, BP = exp(1 - 5/4)
    assert tokenized_bleu(["a b c d"], ["a b c d e"])["score"] == pytest.approx(100 * math.exp(-0.25))
    # the text's own tokens: "don't" is one token here, two ("don", "'t"-ish) for 13a's tokenizer
    hyp, ref = ["we don't go home ."], ["we don 't go home ."]
    assert tokenized_bleu(hyp, ref)["score"] != pytest.approx(corpus_bleu(hyp, ref)["score"])
    signature = tokenized_bleu(hyp, ref)["signature"]
    assert "tok:none" in signature and "smooth:none" in signature


def test_keep_best_stores_the_best_val_bleu_and_scores_it_on_test(tmp_path):
    from tests.test_translation_task import make_task, tiny_model, write_corpus

    task = make_task(write_corpus(tmp_path / "xx_yy", n_train=200, n_eval=10), keep_best=True, tokenized_bleu=True)
    task.run_dir = tmp_path
    model = tiny_model(task)
    path = tmp_path / "best_model.pt"
    task._keep_if_best(model, 5.0, 10.0)
    assert torch.load(path, weights_only=True)["epoch"] == 5.0
    task._keep_if_best(model, 6.0, 9.0)  # worse: kept
    task._keep_if_best(model, 7.0, 10.0)  # a tie is not better
    assert torch.load(path, weights_only=True)["epoch"] == 5.0
    task._keep_if_best(model, 8.0, 11.0)
    assert torch.load(path, weights_only=True)["epoch"] == 8.0
    task._keep_if_best(model, 2.0, 1.0)  # a file from a later epoch belongs to an earlier attempt: replaced
    best = torch.load(path, weights_only=True)
    assert best["epoch"] == 2.0 and best["val_bleu"] == 1.0
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # the final model now differs from the stored best
    final = {k: v.clone() for k, v in model.state_dict().items()}
    out = task.evaluate(model, "test", final=True)
    assert {"bleu", "bleu_tok", "chrf", "best_bleu", "best_bleu_tok", "best_chrf", "best_epoch"} <= set(out)
    assert out["best_epoch"] == 2.0 and (tmp_path / "translations.test.best.hyp").is_file()
    assert all(torch.equal(final[k], v) for k, v in model.state_dict().items())  # the final weights are restored
    assert not all(torch.equal(before[k], final[k]) for k in before)
