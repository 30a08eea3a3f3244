"""Which red-flag classifier: a logistic head on frozen embeddings, the fine-tuned embedder, or SetFit?

    python -m benchmarks.safety_heads                         # head and fine-tuned arms (~6 min idle)
    python -m benchmarks.safety_heads --arms head             # the frozen-embedding head alone (seconds)
    python -m benchmarks.safety_heads --arms setfit           # needs `pip install setfit`; slow here

All arms start from the project's embedder (all-MiniLM-L6-v2) and use the split of
:func:`assistant.chat.safety.classifier.split_messages` (validation = new wordings, by category). Each arm's
emergency threshold is picked on the validation split for sensitivity >= 0.98, so the arms compare on the
false-alarm rate (routine messages given emergency) at that sensitivity, AUC and training time; the fine-tuned arm
also reports its urgent level (:func:`assistant.chat.safety.classifier.pick_thresholds`). The head and SetFit arms
score emergency against everything else, messages read whole. No test set is read here.

- head: scikit-learn logistic regression (class-balanced, C chosen on validation) on frozen, L2-normalized
  embeddings: SetFit's second stage alone.
- finetuned: the library's classifier (:mod:`assistant.chat.safety.finetuned`): the embedder and a softmax head
  trained end to end with cross-entropy.
- setfit: SetFit 1.x (Tunstall et al. 2022, arXiv 2209.11055): contrastive pairs, then a logistic head.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np

from assistant.chat.safety.classifier import (
    TRAINING_FILE,
    conversation_text,
    pick_threshold,
    read_messages,
    split_messages,
    train,
)
from assistant.config import load_settings
from assistant.models import embedder_path, load_embedder


def figures(p: np.ndarray, y: np.ndarray) -> dict:
    """Threshold for sensitivity >= 0.98 on ``(p, y)`` and the figures there."""
    from sklearn.metrics import roc_auc_score

    t = pick_threshold(p, y)
    return {
        "threshold": round(t, 4),
        "sensitivity": round(float(np.mean(p[y == 1] >= t)), 4),
        "false_alarm_rate": round(float(np.mean(p[y == 0] >= t)), 4),
        "auc": round(float(roc_auc_score(y, p)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arms", default="head,finetuned", help="comma list of head, finetuned, setfit")
    parser.add_argument(
        "--setfit-iterations", type=int, default=5, help="SetFit pairs per message (default 5)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--epochs", type=int, default=None, help="fine-tuned arm's epochs (default: the library's)"
    )
    args = parser.parse_args()
    settings = load_settings()
    rows = read_messages(TRAINING_FILE)
    texts = [conversation_text(r.get("turns") or [r["text"]]) for r in rows]
    y = np.array([r["label"] == "emergency" for r in rows], dtype=int)
    embedder = load_embedder(settings=settings)
    t0 = time.perf_counter()
    x = embedder.encode(texts, normalize_embeddings=True, batch_size=64)
    embed_s = time.perf_counter() - t0
    train_idx, val_idx = split_messages(rows, x, args.seed)
    out = {"messages": len(rows), "train": len(train_idx), "validation": len(val_idx)}
    if "head" in args.arms:
        from sklearn.linear_model import LogisticRegression

        t0 = time.perf_counter()
        best = None
        for c in (0.5, 1.0, 2.0, 4.0, 8.0, 16.0):
            head = LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=args.seed)
            head.fit(x[train_idx], y[train_idx])
            f = figures(head.predict_proba(x[val_idx])[:, 1], y[val_idx])
            if best is None or (f["false_alarm_rate"], -f["auc"]) < (best["false_alarm_rate"], -best["auc"]):
                best = {**f, "C": c}
        out["head"] = {**best, "train_s": round(embed_s + time.perf_counter() - t0, 1)}
        print(json.dumps({"head": out["head"]}), flush=True)
    if "finetuned" in args.arms:
        t0 = time.perf_counter()
        _, report = train(lambda t: embedder.encode(t, normalize_embeddings=True, batch_size=64),
                          embedder_path(settings=settings), seed=args.seed, epochs=args.epochs)  # fmt: skip
        out["finetuned"] = {
            "epochs": args.epochs,
            "thresholds": report["thresholds"],
            "sensitivity": round(report["val_emergency_sensitivity"], 4),
            "false_alarm_rate": round(report["val_routine_emergency_rate"], 4),
            "alarm_sensitivity": round(report["val_alarm_sensitivity"], 4),
            "routine_banner_rate": round(report["val_routine_banner_rate"], 4),
            "auc": round(report["val_auc"], 4),
            "category_accuracy": round(report["val_category_accuracy"], 4),
            "train_s": round(time.perf_counter() - t0, 1),
        }
        print(json.dumps({"finetuned": out["finetuned"]}), flush=True)
    if "setfit" in args.arms:
        from datasets import Dataset
        from setfit import SetFitModel, Trainer, TrainingArguments

        t0 = time.perf_counter()
        model = SetFitModel.from_pretrained(embedder_path(settings=settings))
        with tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(
                model=model,
                args=TrainingArguments(
                    output_dir=tmp,
                    batch_size=32,
                    num_epochs=1,
                    num_iterations=args.setfit_iterations,
                    seed=args.seed,
                ),  # fmt: skip
                train_dataset=Dataset.from_dict(
                    {"text": [texts[i] for i in train_idx], "label": [int(y[i]) for i in train_idx]}
                ),
            )
            trainer.train()
        p_val = np.asarray(model.predict_proba([texts[i] for i in val_idx]))[:, 1]
        out["setfit"] = {**figures(p_val, y[val_idx]), "train_s": round(time.perf_counter() - t0, 1),
                         "num_iterations": args.setfit_iterations}  # fmt: skip
        print(json.dumps({"setfit": out["setfit"]}), flush=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
