"""AUROC at the size of a chest X-ray probe: 100,000 scores x 14 labels, hpt's one-sort AUROC against
scikit-learn's `roc_auc_score` (the answers must agree within 1e-6) and hpt 0.6's rank loop (at 20,000 scores
only, one label: it was quadratic in the number of distinct scores).

Scores are a linear probe's logits drawn at random (Gaussian, rounded to 3 decimals so ties occur, as they do in
float16 logits), labels Bernoulli with each label's own prevalence (1% to 50%); timings are the median of
`--repeats`.

    .venv/bin/python benchmarks/auroc.py --out benchmarks/results/auroc
    .venv/bin/python benchmarks/auroc.py --quick --out /tmp/auroc          # the suite's
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from provenance import header, markdown_header, write_results_json
from sklearn.metrics import roc_auc_score

from hpt.eval.linear import auroc


def rank_loop_auroc(scores: torch.Tensor, positives: torch.Tensor) -> float:
    """hpt 0.6's AUROC (a Python loop over the distinct scores, each a pass over all of them), kept to time it."""
    scores, positives = scores.double().flatten(), positives.bool().flatten()
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    order = scores.argsort()
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.float64)
    for value in scores[order].unique_consecutive():
        tied = scores == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def data(n: int, labels: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    prevalence = np.linspace(0.01, 0.5, labels)
    positives = rng.random((n, labels)) < prevalence
    scores = (rng.normal(size=(n, labels)) + 0.8 * positives).round(3)  # separable in part, with ties
    return scores, positives.astype(np.int64)


def timed(fn: Callable[[], list[float]], repeats: int) -> tuple[float, list[float]]:
    times, answer = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        answer = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scores", type=int, default=100_000)
    parser.add_argument("--labels", type=int, default=14)
    parser.add_argument("--loop-scores", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat: checks the script")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.quick:
        args.scores, args.loop_scores, args.repeats = 5_000, 2_000, 1
    scores, positives = data(args.scores, args.labels)
    s, p = torch.from_numpy(scores), torch.from_numpy(positives)
    ours_s, ours = timed(lambda: [auroc(s[:, c], p[:, c]) for c in range(args.labels)], args.repeats)
    sk_s, theirs = timed(
        lambda: [float(roc_auc_score(positives[:, c], scores[:, c])) for c in range(args.labels)], args.repeats
    )
    worst = max(abs(a - b) for a, b in zip(ours, theirs))
    if worst > 1e-6:
        raise SystemExit(f"hpt's AUROC differs from scikit-learn's by {worst:.2e} (> 1e-6)")
    n = args.loop_scores
    loop_s, loop = timed(lambda: [rank_loop_auroc(s[:n, 0], p[:n, 0])], 1)
    now_n_s, now_n = timed(lambda: [auroc(s[:n, 0], p[:n, 0])], args.repeats)
    results = {
        **header("auroc.py", args),
        "scores": args.scores,
        "labels": args.labels,
        "hpt_s": ours_s,
        "sklearn_s": sk_s,
        "largest_difference": worst,
        "loop_scores": n,
        "hpt_0_6_loop_s": loop_s,
        "hpt_at_loop_scores_s": now_n_s,
        "loop_difference": abs(loop[0] - now_n[0]),
    }
    write_results_json(args.out, results)
    lines = markdown_header("AUROC: one sort", results)
    lines += [
        f"Median of {args.repeats}; every label's AUROC equals scikit-learn's within {worst:.1e}.",
        "",
        "| what | hpt now (s) | scikit-learn (s) | hpt 0.6 rank loop (s) |",
        "|---|---|---|---|",
        f"| {args.scores:,} scores x {args.labels} labels | {ours_s:.3f} | {sk_s:.3f} | - |",
        f"| {n:,} scores x 1 label | {now_n_s:.4f} | - | {loop_s:.2f} |",
    ]
    text = "\n".join(lines) + "\n"
    (args.out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
