"""Write an evaluation's results: ``report.md`` (a table per set, variants as columns, baselines beside),
``report.json`` (everything, per-item answers included) and one bar chart PNG per suite.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from assistant.evaluation.metrics import COVERAGE_THRESHOLD

logger = logging.getLogger(__name__)

#: metric -> (label in tables and charts, kind: "rate" shown as %, "score" 3 decimals, "count")
METRICS: dict[str, tuple[str, str]] = {
    "rouge_l": ("ROUGE-L F1", "score"),
    "similarity": ("semantic similarity (cosine, MiniLM)", "score"),
    "coverage": ("must-have coverage (embedding proxy)", "rate"),
    "words": ("answer length (words)", "count"),
    "stop_rate": ("stop rate (ended on a stop token)", "rate"),
    "run_on_rate": ("run-on rate (invented follow-up turns)", "rate"),
    "no_support_rate": ("no supporting passage", "rate"),
    "accuracy": ("accuracy (parsed answer, else log-likelihood)", "rate"),
    "parse_failure_rate": ("parse-failure rate", "rate"),
    "generation_accuracy": ("accuracy of parsed answers only (failures wrong)", "rate"),
    "likelihood_accuracy": ("accuracy by log-likelihood only", "rate"),
    "top_pick_share": ("share of the most frequent pick", "rate"),
    "mrr@5": ("MRR@5", "score"),
    "sensitivity": ("sensitivity (emergency level)", "rate"),
    "alarm_sensitivity": ("sensitivity (emergency or urgent)", "rate"),
    "false_alarm_rate": ("false-alarm rate (routine given emergency)", "rate"),
    "routine_banner_rate": ("routine messages shown any banner", "rate"),
    "emergencies": ("emergency messages", "count"),
    "urgent": ("urgent messages", "count"),
    "routine": ("routine messages", "count"),
    "emergency": ("emergency messages", "count"),
    "benign": ("benign messages", "count"),
}
SUITE_TITLES = {
    "patient": "Patient answers",
    "closed": "Closed questions",
    "retrieval": "Retrieval",
    "safety": "Safety",
}


def label(metric: str) -> str:
    if metric.startswith("recall@"):
        return metric
    return METRICS.get(metric, (metric, "score"))[0]


def fmt(metric: str, value) -> str:
    """A table cell: percentages for rates, 3 decimals for scores, whole numbers for counts, "n/a" for None."""
    if value is None:
        return "n/a"
    kind = "rate" if metric.startswith("recall@") else METRICS.get(metric, (metric, "score"))[1]
    if kind == "rate":
        return f"{100 * value:.1f}%"
    if kind == "count":
        return f"{value:.0f}"
    return f"{value:.3f}"


def set_table(result: dict) -> list[str]:
    """Markdown lines of one set: metrics as rows, variants then baselines as columns."""
    baselines = list(result["baselines"])
    header = ["metric", *result["columns"], *baselines]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for metric, by_column in result["metrics"].items():
        cells = [fmt(metric, by_column.get(c)) for c in result["columns"]]
        cells += [
            fmt(metric, result["baselines"][b].get(metric)) if metric in result["baselines"][b] else ""
            for b in baselines
        ]
        lines.append("| " + " | ".join([label(metric), *cells]) + " |")
    return lines


def render_markdown(results: dict) -> str:
    """The whole report.md text."""
    cfg = results["config"]
    out = [
        f"# llama-md evaluation ({results['suite']} suite)",
        "",
        f"- model: `{results['model']}`; adapter: `{results['adapter'] or 'none'}`; store: {results['store']}",
        f"- variants: {', '.join(cfg['variants'])} (base = no adapter, no retrieval; rag = retrieval; "
        "ft = the LoRA adapter; ft+rag = both), all through `Assistant.ask`, the chat's answer path",
        f"- decoding: {results['decoding']}; max_new_tokens {cfg['max_new_tokens_open']} (patient answers), "
        f"{cfg['max_new_tokens_closed']} (closed questions); seed {cfg['seed']}",
        "- timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in results["timings_s"].items()),
        "",
    ]
    for suite, sets in results["suites"].items():
        out += [f"## {SUITE_TITLES.get(suite, suite)}", "", f"![{suite}]({suite}.png)", ""]
        for result in sets:
            out += [
                f"### {result['title']} (n = {result['n']})",
                "",
                f"Source: {result['source']}. License: {result['license']}.",
                "",
                *set_table(result),
                "",
            ]
            out += [f"- {note}" for note in result["notes"]]
            out += [""] if result["notes"] else []
    out += ["## Methods", "", *METHODS]
    return "\n".join(out) + "\n"


METHODS = [
    "- ROUGE-L: F1 of the longest common subsequence, `rouge-score` with Porter stemming (Lin 2004).",
    "- Semantic similarity: cosine of all-MiniLM-L6-v2 embeddings of answer and reference.",
    f"- Must-have coverage (K-QA): share of the physicians' must-have statements with cosine >= {COVERAGE_THRESHOLD} to the answer "
    "or one of its sentences. K-QA's paper uses NLI entailment; no maintained NLI model is available offline here, "
    "so this embedding proxy is used: it cannot see negation and rewards naming the right topic (a statement "
    "about the right drug but the wrong side effect can pass), so read it as topical coverage. Beside it: the physician's own answer (ceiling) and "
    "another question's reference answer (an on-topic-sounding but wrong answer).",
    "- Stop rate: share of answers that ended on a stop token before max_new_tokens. Run-on rate: share of answers "
    "that continue into an invented turn (a speaker label such as 'Patient:' or 'Q:', 'Hi doctor', a leaked "
    "role marker) after their first 20 characters.",
    "- Closed questions: the generated answer is parsed for a letter or yes/no/maybe; where nothing can be parsed, "
    "the option with the highest mean log-probability per token (the option word for yes/no, 'B. option text' "
    "for MCQs) after the same composed prompt is used. In the full suite every item is also scored by "
    "log-likelihood alone (its accuracy is a row of its own); the quick suite scores only unparsed answers. "
    "Retrieval uses the whole prompt (question, options, instruction) because it goes through the answer path; "
    "MIRAGE's protocol retrieves on the question only.",
    "- The answer path's notices (emergency advice, 'no supporting passage') are removed before scoring.",
]


def plot_suite(suite: str, sets: list[dict], path: Path) -> Path:
    """One PNG: a panel per set, grouped bars of its 0-1 metrics, one bar per variant / baseline column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = [r for r in sets if r["metrics"]]
    fig, axes = plt.subplots(1, len(sets), figsize=(5.5 * len(sets), 5.0), squeeze=False)
    for ax, result in zip(axes[0], sets, strict=True):
        shown = [m for m in result["metrics"] if METRICS.get(m, (m, "rate"))[1] != "count"]
        columns = result["columns"] + list(result["baselines"])
        width = 0.8 / max(len(columns), 1)
        for j, column in enumerate(columns):
            source = result["baselines"].get(column) if column in result["baselines"] else None
            values = [
                (source.get(m) if source is not None else result["metrics"][m].get(column)) or 0.0
                for m in shown
            ]
            xs = [i + (j - (len(columns) - 1) / 2) * width for i in range(len(shown))]
            ax.bar(xs, values, width, label=column, hatch="//" if source is not None else None)
        ax.set_xticks(range(len(shown)))
        ax.set_xticklabels([label(m).split(" (")[0] for m in shown], rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"{result['title']} (n = {result['n']})", fontsize=10)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=3, frameon=False)
    fig.suptitle(SUITE_TITLES.get(suite, suite))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(results: dict, out_dir: Path) -> Path:
    """Write report.md, report.json and ``<suite>.png`` into ``out_dir``; returns the report.md path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(results, indent=2, default=str))
    for suite, sets in results["suites"].items():
        if any(r["metrics"] for r in sets):
            plot_suite(suite, sets, out_dir / f"{suite}.png")
    path = out_dir / "report.md"
    path.write_text(render_markdown(results))
    logger.info("Report written to %s", path)
    return path
