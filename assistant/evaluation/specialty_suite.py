"""Specialty router evaluation: top-1, top-3, macro-F1, confusion pairs, unsure rate, routing time.

    llama-md specialty eval                       # held-out patient questions + MedQuAD / MTSamples test slices
    llama-md specialty eval --file my_set.jsonl   # any question file ({question, specialty, accept})

Sets: ``data/specialty_questions.jsonl`` (548 patient questions, 17-19 per class, written from the taxonomy alone
by a separate pass before the router was trained; never tuned on: its first run is reported as it was,
docs/results.md). The silver test slices are MedQuAD questions split by focus and MTSamples descriptions split by
sample name (:func:`assistant.specialties.examples.silver_split`), at most the training caps per class.

Definitions, with ``accept`` the classes that count as right: top-1 = top class in ``accept``; strict top-1 = top
class is the row's ``specialty``; top-3 = one of the top three in ``accept``; macro-F1 = the mean over the gold
classes of per-class F1, where a hit counts for the predicted class (``gold = prediction if prediction in accept
else specialty``); confusion pairs = the most frequent (gold, predicted) misses; unsure rate = share with top-1 p
below the router's threshold. Routing time is one ``predict([question])`` per question, embedding included, after a
warm-up (p50 / p95 ms).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np

from assistant.specialties.examples import Example, read_questions, silver_slice

DATA = Path(__file__).resolve().parent / "data"
TEST_FILE = DATA / "specialty_questions.jsonl"
CONFUSION_PAIRS = 10


def score(predictions: list, rows: list[Example]) -> dict:
    """Score router predictions (:class:`assistant.specialties.router.Prediction`) against labelled rows.

    Returns:
        dict with n, top1, top1_strict, top3, macro_f1, per_class (f1, n), confusion_pairs ([gold, predicted,
        count]), unsure_rate.
    """
    from sklearn.metrics import f1_score

    top = [p.specialty for p in predictions]
    gold = [t if t in r.accept else r.label for t, r in zip(top, rows, strict=True)]
    classes = sorted({r.label for r in rows})
    f1 = f1_score(gold, top, labels=classes, average=None, zero_division=0)
    misses = Counter((g, t) for g, t in zip(gold, top, strict=True) if g != t)
    return {
        "n": len(rows),
        "top1": float(np.mean([t in r.accept for t, r in zip(top, rows, strict=True)])),
        "top1_strict": float(np.mean([t == r.label for t, r in zip(top, rows, strict=True)])),
        "top3": float(np.mean([any(s in r.accept for s, _ in p.top3) for p, r in zip(predictions, rows, strict=True)])),
        "macro_f1": float(np.mean(f1)),
        "per_class": {c: {"f1": round(float(v), 3), "n": sum(r.label == c for r in rows)} for c, v in zip(classes, f1, strict=True)},
        "confusion_pairs": [[g, t, n] for (g, t), n in misses.most_common(CONFUSION_PAIRS)],
        "unsure_rate": float(np.mean([p.unsure for p in predictions])),
    }  # fmt: skip


def routing_ms(router, questions: list[str]) -> dict:
    """Wall time of one ``router.predict([q])`` per question after a warm-up: ``{"p50", "p95", "max"}`` in ms."""
    router.predict(["warm-up question"])
    ms = []
    for q in questions:
        t0 = time.perf_counter()
        router.predict([q])
        ms.append((time.perf_counter() - t0) * 1000)
    return {
        k: round(float(v), 2)
        for k, v in zip(("p50", "p95", "max"), np.percentile(ms, [50, 95, 100]), strict=True)
    }


def evaluate_router(router, path: Path = TEST_FILE, data_dir: Path | None = None) -> dict:
    """Score ``router`` on a question file and, when ``data_dir`` has them, the silver test slices.

    Returns:
        ``{"sets": {name: score dict}, "routing_ms": {...}, "router": router.meta}``; the question file's set is
        named by its file name.
    """
    rows = read_questions(path, source="test")
    sets = {Path(path).name: score(router.predict([r.text for r in rows]), rows)}
    for name, part in silver_slice(data_dir, "test").items():
        sets[f"{name} test slice"] = score(router.predict([r.text for r in part]), part)
    return {"sets": sets, "routing_ms": routing_ms(router, [r.text for r in rows]), "router": router.meta}


def format_report(result: dict) -> str:
    """The evaluation as text: one block per set, then the routing time."""
    lines = []
    for name, s in result["sets"].items():
        lines.append(
            f"{name} ({s['n']}): top-1 {s['top1']:.3f} (strict {s['top1_strict']:.3f}), top-3 {s['top3']:.3f}, "
            f"macro-F1 {s['macro_f1']:.3f}, unsure {s['unsure_rate']:.1%}"
        )
        worst = sorted(s["per_class"].items(), key=lambda kv: kv[1]["f1"])[:5]
        lines.append("  lowest F1: " + ", ".join(f"{c} {v['f1']:.2f}" for c, v in worst))
        lines.append(
            "  confusion pairs (gold -> predicted): "
            + ", ".join(f"{g}->{t} {n}" for g, t, n in s["confusion_pairs"])
        )
    r = result["routing_ms"]
    lines.append(
        f"routing time per question: p50 {r['p50']:.1f} ms, p95 {r['p95']:.1f} ms, max {r['max']:.1f} ms"
    )
    return "\n".join(lines)  # fmt: skip
