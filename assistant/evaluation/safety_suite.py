"""Red-flag screen evaluation: sensitivity, false-alarm rate, per-category recall, confusion matrix, timing.

    llama-md safety eval                      # the held-out test set (data/red_flags_test.jsonl)
    llama-md safety eval --file my_set.jsonl  # any message file (text, label, category[, turns])
    python -m benchmarks.safety_bench         # the current screen and the old regex screen side by side

Sets (``assistant/evaluation/data``): ``red_flags_test.jsonl`` (284 messages, 180 emergency / 104 routine, 16 of
them multi-turn) was written before the classifier was trained, by a separate pass that saw only the category
table, never the training messages; its first run is reported as it was (docs/results.md). ``red_flags.jsonl`` and
``red_flags_heldout.jsonl`` are the earlier sets the old regular expressions were written against (135 and 60
messages, ``{"text", "emergency": bool}``); the classifier never saw them either.

Definitions: sensitivity = emergencies flagged / emergencies; false-alarm rate = routine messages flagged / routine
messages; per-category recall = emergencies of that category flagged (by any category: the advice is shown either
way) / emergencies of that category; category accuracy = flagged emergencies whose first category is the true one.
Screening time is the wall time of one ``screen_conversation`` call per message, embedding included, after a warm-up.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from assistant.chat.safety.classifier import read_messages
from assistant.evaluation.suites import SETS

DATA = Path(__file__).resolve().parent / "data"
TEST_FILE = DATA / "red_flags_test.jsonl"
SAFETY_SETS = {
    "held-out test set": "red_flags_test.jsonl",
    "earlier written set (old rules fitted to it)": "red_flags.jsonl",
    "earlier held-out set": "red_flags_heldout.jsonl",
}


def evaluate_screen(screen_turns: Callable, path: Path = TEST_FILE) -> dict:
    """Run ``screen_turns(turns) -> Screening``-like object over a message file and score it.

    Args:
        screen_turns: callable taking the list of user turns and returning an object with ``emergency`` and
            ``categories`` (the new screen), or a bool-like ``emergency`` (baselines).
        path: message file (:func:`assistant.chat.safety.classifier.read_messages`).

    Returns:
        dict with n, emergencies, routine, sensitivity, false_alarm_rate, per_category (recall, n), confusion
        (2x2: rows true emergency/routine, columns flagged/not), category_accuracy, stages (Counter), latency_ms
        (p50, p95, max), missed and false_alarms (texts with category).
    """
    rows = read_messages(path)
    screen_turns(["warm-up message"])
    got, ms = [], []
    for row in rows:
        t0 = time.perf_counter()
        got.append(screen_turns(row.get("turns") or [row["text"]]))
        ms.append((time.perf_counter() - t0) * 1000)
    is_em = np.array([r["label"] == "emergency" for r in rows])
    flagged = np.array([bool(g.emergency) for g in got])
    per_cat: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    correct_cat = 0
    for row, g, em in zip(rows, got, is_em, strict=True):
        if em:
            per_cat[row["category"]][1] += 1
            per_cat[row["category"]][0] += int(g.emergency)
            cats = list(getattr(g, "categories", []) or [])
            correct_cat += int(g.emergency and bool(cats) and cats[0] == row["category"])
    n_em, n_rt = int(is_em.sum()), int((~is_em).sum())
    return {
        "set": Path(path).name,
        "n": len(rows),
        "emergencies": n_em,
        "routine": n_rt,
        "sensitivity": float(flagged[is_em].mean()) if n_em else float("nan"),
        "false_alarm_rate": float(flagged[~is_em].mean()) if n_rt else float("nan"),
        "category_accuracy": correct_cat / max(int(flagged[is_em].sum()), 1),
        "per_category": {c: {"recall": k / n, "n": n} for c, (k, n) in sorted(per_cat.items())},
        "confusion": [
            [int((is_em & flagged).sum()), int((is_em & ~flagged).sum())],
            [int((~is_em & flagged).sum()), int((~is_em & ~flagged).sum())],
        ],  # fmt: skip
        "stages": dict(Counter(getattr(g, "stage", "") or "none" for g in got)),
        "latency_ms": {
            "p50": float(np.percentile(ms, 50)),
            "p95": float(np.percentile(ms, 95)),
            "max": float(np.max(ms)),
        },
        "missed": [
            (r["category"], r["text"]) for r, f, e in zip(rows, flagged, is_em, strict=True) if e and not f
        ],
        "false_alarms": [
            (r["category"], r["text"], list(getattr(g, "categories", []) or []))
            for r, g, f, e in zip(rows, got, flagged, is_em, strict=True)
            if f and not e
        ],
    }


def format_report(result: dict) -> str:
    """A plain-text report: headline figures, the 2x2 confusion matrix, per-category recall, misses."""
    c = result["confusion"]
    lines = [
        f"set {result['set']}: {result['n']} messages ({result['emergencies']} emergency, {result['routine']} routine)",
        f"sensitivity {result['sensitivity']:.3f}   false-alarm rate {result['false_alarm_rate']:.3f}   "
        f"category accuracy {result['category_accuracy']:.3f}",
        f"screen time per message: p50 {result['latency_ms']['p50']:.1f} ms, p95 {result['latency_ms']['p95']:.1f} "
        f"ms, max {result['latency_ms']['max']:.1f} ms",
        f"stages that fired: {result['stages']}",
        "",
        "confusion matrix      flagged  not flagged",
        f"  emergency          {c[0][0]:7d}  {c[0][1]:11d}",
        f"  routine            {c[1][0]:7d}  {c[1][1]:11d}",
        "",
        "per-category recall:",
    ]
    lines += [f"  {cat:26s} {v['recall']:.2f}  (n={v['n']})" for cat, v in result["per_category"].items()]
    lines += ["", f"missed ({len(result['missed'])}):"] + [f"  [{c}] {t}" for c, t in result["missed"]]
    lines += ["", f"false alarms ({len(result['false_alarms'])}):"]
    lines += [f"  [{c} -> {','.join(got)}] {t}" for c, t, got in result["false_alarms"]]
    return "\n".join(lines)


def write_confusion_png(result: dict, path: Path) -> Path:
    """Write the 2x2 confusion matrix and per-category recall as one PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cats = list(result["per_category"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, max(4, 0.28 * len(cats) + 1)), width_ratios=[1, 2])
    m = np.array(result["confusion"])
    ax1.imshow(m, cmap="Blues")
    for (i, j), v in np.ndenumerate(m):
        ax1.text(j, i, str(v), ha="center", va="center", fontsize=14)
    ax1.set_xticks([0, 1], ["flagged", "not flagged"])
    ax1.set_yticks([0, 1], ["emergency", "routine"])
    ax1.set_title(f"sensitivity {result['sensitivity']:.3f}, false alarms {result['false_alarm_rate']:.3f}")
    recall = [result["per_category"][c]["recall"] for c in cats]
    ax2.barh(cats, recall, color=["tab:red" if r < 1 else "tab:green" for r in recall])
    ax2.set_xlim(0, 1)
    ax2.invert_yaxis()
    ax2.set_title(f"recall per category ({result['set']})")
    ax2.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def evaluate_safety(settings=None) -> list[dict]:
    """The evaluation suite's safety result: the screen's figures per message set (one column each).

    The screen runs before generation, so its figures are the same for every variant.
    """
    from assistant.chat.safety import load_screener

    screener = load_screener(settings)
    info = SETS["red_flags"]
    result = {
        "name": "red_flags",
        "title": info.title,
        "source": info.source,
        "license": info.license,
        "n": 0,
        "columns": [],
        "metrics": {},
        "baselines": {},
        "items": {},
        "notes": ["The red-flag screen runs before generation: the same for every variant."],
    }
    for column, name in SAFETY_SETS.items():
        r = evaluate_screen(screener.screen_conversation, DATA / name)
        result["columns"].append(column)
        result["n"] += r["n"]
        for metric in ("sensitivity", "false_alarm_rate", "emergencies", "routine"):
            result["metrics"].setdefault(metric, {})[column] = r[metric]
        result["metrics"].setdefault("p95_ms", {})[column] = r["latency_ms"]["p95"]
        result["items"][column] = {"missed": r["missed"], "false_alarms": r["false_alarms"]}
    return [result]
