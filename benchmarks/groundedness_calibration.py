"""Calibrate the groundedness threshold on K-QA, a set that is not one of the project's evaluation sets.

    LLAMA_MD_DATA_DIR=../shared .venv/bin/python -m benchmarks.groundedness_calibration [--seed 0]

K-QA (Manes et al. 2024, arXiv 2401.14493; ``$LLAMA_MD_DATA_DIR/eval/kqa/kqa_questions_w_answers.jsonl``):
each question has a physician's free-form answer and "must have" statements that answer supports. Positives:
(statement, its own answer). Negatives: (statement, the answer of another question drawn at random, seeded), and
a harder set: (statement, the other answer most similar to its own). The score of a pair is what the chat uses
(:func:`assistant.chat.groundedness.support_scores`): the best cosine similarity between the statement and any
sentence of the answer (all-MiniLM-L6-v2, unit vectors, Punkt sentences). Prints ROC AUC and the threshold that
maximises balanced accuracy (Youden's J) for both negative sets.
"""

from __future__ import annotations

import argparse
import json
import random

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="seed for the random negatives (default 0)")
    args = parser.parse_args()
    from sklearn.metrics import roc_auc_score, roc_curve

    from assistant.chat.evidence import embed, split_sentences
    from assistant.chat.groundedness import support_scores
    from assistant.config import load_settings
    from assistant.models import load_embedder

    settings = load_settings()
    path = settings.data_dir / "eval" / "kqa" / "kqa_questions_w_answers.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("Must_have") and r.get("Free_form_answer")]
    model = load_embedder(None, settings)
    answers = [split_sentences(r["Free_form_answer"]) for r in rows]
    centroid = embed([r["Free_form_answer"] for r in rows], model)
    rng = random.Random(args.seed)
    pos, rand_neg, hard_neg = [], [], []
    for i, row in enumerate(rows):
        statements = row["Must_have"]
        j = rng.choice([k for k in range(len(rows)) if k != i])
        sims = centroid @ centroid[i]
        sims[i] = -2
        h = int(np.argmax(sims))
        pos += list(support_scores(statements, answers[i], model))
        rand_neg += list(support_scores(statements, answers[j], model))
        hard_neg += list(support_scores(statements, answers[h], model))
    print(f"K-QA: {len(rows)} questions, {len(pos)} statements (all-MiniLM-L6-v2, best sentence cosine)\n")
    print("| negatives | ROC AUC | threshold (max balanced accuracy) | balanced accuracy |")
    print("|---|---|---|---|")
    for name, neg in (("random other answer", rand_neg), ("most similar other answer", hard_neg)):
        y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        s = np.r_[pos, neg]
        fpr, tpr, thr = roc_curve(y, s)
        best = int(np.argmax(tpr - fpr))
        print(
            f"| {name} | {roc_auc_score(y, s):.3f} | {thr[best]:.3f} | {(tpr[best] + 1 - fpr[best]) / 2:.3f} |"
        )


if __name__ == "__main__":
    main()
