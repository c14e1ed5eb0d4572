"""The pre-registered verdict rule, applied to every entry of the claims file.

For each claim: select the treatment and control runs, pair them by seed (``claims.pairs``), compute the paired
statistics (``stats.paired``), adjust the p-values of all comparisons of the report together with Holm, and decide:

- **not run**: a cell has no run at this scale (or the cells cannot be paired: several runs per seed, mixed data);
- **too few seeds**: fewer than ``rule.min_pairs`` completed pairs (diverged runs count as finished pairs);
- **supported**: the interval lies above 0 in the claimed direction and the Holm-adjusted p < ``rule.alpha``;
- **contradicted**: the interval lies entirely on the other side of 0;
- **equivalent**: the interval lies inside ±δ;
- **inconclusive**: anything else, and whenever every value was substituted (no run of either cell reached the
  target, say): a tie at the budget measures nothing.

The interval is the one ``rule.ci`` names: the paired bootstrap, the t-interval, or (``hull``) the smallest interval
containing both, so neither a narrow small-sample bootstrap nor a skewed t-interval alone decides a verdict.
"""

from __future__ import annotations

from emergence.report import claims as cl
from emergence.report.stats import holm, paired

VERDICTS = ("supported", "contradicted", "equivalent", "inconclusive", "too few seeds", "not run")


def decide(s: dict | None, p_holm: float | None, rule: dict, n_pairs: int, ran: bool, informative: bool = True) -> str:
    """One verdict from the statistics ``s`` (of the differences, signed as measured) and the Holm-adjusted p.
    ``informative`` is False when every value was substituted (e.g. no run reached the target): nothing measured."""
    if not ran:
        return "not run"
    if n_pairs < int(rule["min_pairs"]) or s is None or s.get("ci_t") is None:
        return "too few seeds"
    if not informative:
        return "inconclusive"
    lo, hi = interval(s, rule["ci"])
    if s["direction"] == "less":  # turn the interval so that positive = the claimed direction
        lo, hi = -hi, -lo
    if lo > 0 and p_holm is not None and p_holm < float(rule["alpha"]):
        return "supported"
    if hi < 0:
        return "contradicted"
    if -s["delta"] < lo and hi < s["delta"]:
        return "equivalent"
    return "inconclusive"


def interval(s: dict, which: str) -> tuple[float, float]:
    if which == "bootstrap":
        return s["ci_boot"]
    if which == "t":
        return s["ci_t"]
    return min(s["ci_boot"][0], s["ci_t"][0]), max(s["ci_boot"][1], s["ci_t"][1])


def evaluate(doc: dict, runs: list[cl.Run]) -> list[dict]:
    """One result per claims-file entry (in file order): cells, pairs, statistics, Holm p and verdict."""
    rule, results = doc["rule"], []
    ignore = list(rule.get("ignore_variant", []))
    for claim in doc["claims"]:
        metric = doc["metrics"][claim["metric"]]
        t_runs, c_runs = cl.select(runs, claim, "treatment", ignore), cl.select(runs, claim, "control", ignore)
        paired_runs = cl.pairs(t_runs, c_runs, metric)
        ps = paired_runs["pairs"]
        ran = bool(t_runs) and bool(c_runs) and not paired_runs["ambiguous"]
        scale = float(metric["scale"])
        s = None
        if ps and ran:
            s = paired(
                [p["t"] * scale for p in ps], [p["c"] * scale for p in ps], direction=claim["direction"],
                delta=claim["delta"], confidence=float(rule["confidence"]),
                resamples=int(rule["bootstrap_resamples"]), seed=int(rule["bootstrap_seed"]),
            )  # fmt: skip
        results.append({
            "claim": claim, "metric": metric, "treatment_runs": t_runs, "control_runs": c_runs, "pairs": ps,
            "counts": paired_runs["counts"], "note": paired_runs["note"], "ran": ran, "stats": s,
            "substituted": sum(p["t_substituted"] + p["c_substituted"] for p in ps),
        })  # fmt: skip
    test = rule.get("test", "t")
    key = {"t": "p_t", "wilcoxon": "p_wilcoxon"}[test]
    raw = [r["stats"][key] if r["stats"] and r["ran"] else None for r in results]
    for r, p_adj in zip(results, holm(raw)):
        r["p"], r["p_holm"] = (r["stats"] or {}).get(key), p_adj
        informative = not r["pairs"] or not all(p["t_substituted"] and p["c_substituted"] for p in r["pairs"])
        if not informative:
            r["note"] = "; ".join(filter(None, [r["note"], "every value substituted (e.g. no run reached the target)"]))
        r["verdict"] = decide(r["stats"], p_adj, rule, len(r["pairs"]), r["ran"], informative)
    return results


def counts(results: list[dict], kind: str | None = None) -> dict:
    """{verdict: number of entries} over the entries of one kind (claim or control), in VERDICTS order."""
    chosen = [r for r in results if kind is None or r["claim"]["kind"] == kind]
    return {v: sum(r["verdict"] == v for r in chosen) for v in VERDICTS}
