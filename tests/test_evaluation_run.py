"""The evaluation end to end: a tiny quick-suite run through the real answer path, report files, CLI errors,
and the held-out split rebuilt from a fine-tune run's config."""

from __future__ import annotations

import json

import pytest

from assistant.evaluation.heldout import heldout_pairs
from assistant.evaluation.runner import EvalConfig, closed_prompt
from assistant.evaluation.suites import SIZES, ClosedItem, load_closed, load_kqa, sample

TINY = {
    "chatdoctor": 2,
    "kqa": 2,
    "pubmedqa": 2,
    "bioasq": 2,
    "obgyn": 2,
    "medquad": 0,
}


def test_config_rejects_unknown_variants_and_suites():
    with pytest.raises(ValueError) as err:
        EvalConfig(suite="huge", variants=("base", "lora"))
    assert "--suite" in str(err.value) and "lora" in str(err.value) and "base,rag,ft,ft+rag" in str(err.value)


def test_samples_are_seeded_and_cover_the_files(data_dir):
    a = load_closed("pubmedqa", data_dir, 16, seed=0)
    assert [i.id for i in a] == [i.id for i in load_closed("pubmedqa", data_dir, 16, seed=0)]
    assert [i.id for i in a] != [i.id for i in load_closed("pubmedqa", data_dir, 16, seed=1)]
    assert len({i.answer for i in a}) > 1  # not the first rows (the file is sorted by answer)
    assert len(load_closed("obgyn", data_dir, None)) == 319
    kqa = load_kqa(data_dir, None)
    assert len(kqa) == 201 and all(it.must_have for it in kqa)
    assert SIZES["full"]["kqa"] is None
    assert sample([1, 2, 3], None, 0) == [1, 2, 3]


def test_closed_prompt_asks_for_the_right_form():
    yn = ClosedItem("1", "Is X safe?", {"A": "yes", "B": "no"}, "A")
    mcq = ClosedItem("2", "Which drug?", {"A": "aspirin", "B": "heparin", "C": "warfarin", "D": "none"}, "B")
    assert yn.yes_no and not mcq.yes_no
    assert closed_prompt(yn).endswith("Answer yes or no first, then explain briefly.")
    assert "B. heparin" in closed_prompt(mcq) and "(A, B, C, D)" in closed_prompt(mcq)


def _write_run(tmp_path, pairs, *, eval_samples=3, seed=0, counts=None, samples=None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "data.json"
    data.write_text(
        json.dumps([{"instruction": "If you are a doctor...", "input": q, "output": a} for q, a in pairs])
    )
    run = tmp_path / "home" / "runs" / "run-1"
    (run / "adapter").mkdir(parents=True)
    config = {
        "dataset": str(data),
        "seed": seed,
        "eval_fraction": 0.05,
        "eval_samples": eval_samples,
        "max_samples": None,
        "specialty": None,
        "resolved": {"data": counts or {}},
    }
    (run / "config.json").write_text(json.dumps(config))
    if samples is not None:
        (run / "report.json").write_text(json.dumps({"samples": [{"question": q} for q in samples]}))
    return run / "adapter"


def test_heldout_rebuilds_the_runs_split_and_drops_questions_seen_in_training(tmp_path, settings):
    from assistant.data import Pair
    from assistant.finetuning.dataprep import split_pairs

    pairs = [(f"question {i}", f"answer {i}") for i in range(12)] + [("question 3", "another answer")]
    train, held = split_pairs([Pair(q, a) for q, a in pairs], eval_fraction=0.05, eval_samples=3, seed=0)
    counts = {"rows": 13, "empty": 0, "duplicates": 0, "other_specialty": 0, "eval": 3}
    adapter = _write_run(tmp_path, pairs, counts=counts, samples=[held[0].question])
    items, note = heldout_pairs(settings, adapter, None, seed=0)
    trained = {p.question for p in train}
    expected = [p for p in held if p.question not in trained]
    assert [(i.question, i.reference) for i in items] == [(p.question, p.answer) for p in expected]
    assert not {i.question for i in items} & trained
    assert f"{len(held) - len(expected)} dropped" in note and "run-1" in note


def test_near_copies_of_training_questions_are_dropped(settings):
    from assistant.data import Pair
    from assistant.evaluation.heldout import drop_near_duplicates

    held = [Pair("Doctor, I have a cough and a fever.", "a"), Pair("What foods are rich in iron?", "b")]
    kept, dropped = drop_near_duplicates(
        held, ["Doctor, I have a cough and fever.", "My knee hurts."], settings
    )
    assert [p.question for p in kept] == ["What foods are rich in iron?"] and dropped == 1


def test_heldout_refuses_a_split_that_differs_from_the_run(tmp_path, settings):
    pairs = [(f"question {i}", f"answer {i}") for i in range(12)]
    adapter = _write_run(tmp_path, pairs, counts={"rows": 12, "eval": 4})  # the run held out 4, we rebuild 3
    items, note = heldout_pairs(settings, adapter, None, seed=0)
    assert items is None and "differs" in note and "'eval': (4, 3)" in note
    adapter = _write_run(
        tmp_path / "b", pairs, counts={"rows": 12, "eval": 3}, samples=["not a held-out question"]
    )
    items, note = heldout_pairs(settings, adapter, None, seed=0)
    assert items is None and "report.json" in note
    assert heldout_pairs(settings, None, 2, 0)[0] is None


@pytest.mark.slow
def test_quick_suite_smoke_run_through_the_answer_path(ui_home, data_dir, tmp_path):
    """Four variants, two items per set, short answers: every suite lands in report.md / .json / .png."""
    import torch

    from assistant.chat.answer import Assistant
    from assistant.config import load_settings
    from assistant.evaluation.report import write_report
    from assistant.evaluation.runner import evaluate

    settings = load_settings({"home": str(ui_home), "data_dir": str(data_dir)}, environ={})
    cfg = EvalConfig(sizes=TINY, max_new_tokens_open=24, max_new_tokens_closed=8)
    bot = Assistant.from_settings(settings, "auto", use_rag=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a CPU shared with other jobs, one thread is many times faster
    try:
        results = evaluate(cfg, settings, bot=bot)
    finally:
        torch.set_num_threads(threads)
    path = write_report(results, tmp_path / "out")

    assert results["adapter"] and results["store"].endswith("chunks")
    patient = {r["name"]: r for r in results["suites"]["patient"]}
    assert (
        patient["chatdoctor"]["n"] == 0 and "skipped" in patient["chatdoctor"]["notes"][0]
    )  # no config.json
    kqa = patient["kqa"]
    assert kqa["columns"] == ["base", "rag", "ft", "ft+rag"]
    for variant in kqa["columns"]:
        rows = kqa["items"][variant]
        assert len(rows) == 2 and all(r["answer"] for r in rows)
        assert 0 <= kqa["metrics"]["rouge_l"][variant] <= 1
        assert kqa["metrics"]["stop_rate"][variant] == sum(r["stopped"] for r in rows) / 2
    assert "no_support_rate" in kqa["metrics"] and "rag" in kqa["metrics"]["no_support_rate"]
    assert kqa["baselines"]["reference answer"]["coverage"] > 0.9
    for result in results["suites"]["closed"]:
        assert result["n"] == 2
        for variant in result["columns"]:
            rows = result["items"][variant]
            assert all(r["chosen"] in {"A", "B", "C", "D"} for r in rows)
            acc = sum(r["chosen"] == r["gold"] for r in rows) / 2
            assert result["metrics"]["accuracy"][variant] == acc
        assert "majority answer (this sample)" in result["baselines"]
    retrieval = results["suites"]["retrieval"]
    assert [r["name"] for r in retrieval] == ["pregnancy_questions"]
    assert retrieval[0]["n"] == 49 and {c.split(" ")[0] for c in retrieval[0]["columns"]} == {
        "dense",
        "hybrid",
        "convex",
    }
    assert sum(c.endswith("(answer path)") for c in retrieval[0]["columns"]) == 1
    safety = results["suites"]["safety"][0]
    assert safety["metrics"]["sensitivity"]["held-out test set"] > 0.9
    assert safety["metrics"]["false_alarm_rate"]["held-out test set"] < 0.2

    text = path.read_text()
    assert "| metric | base | rag | ft | ft+rag |" in text
    assert "majority answer (MIRAGE)" in text and "55.2%" in text
    for suite in ("patient", "closed", "retrieval", "safety"):
        assert (path.parent / f"{suite}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((path.parent / "report.json").read_text())["suite"] == "quick"


def test_cli_names_the_missing_adapter(tmp_path, monkeypatch, capsys):
    from assistant.__main__ import main

    monkeypatch.setenv("LLAMA_MD_HOME", str(tmp_path / "empty-home"))
    code = main(["evaluate", "--variants", "base,ft", "--parts", "safety"])
    err = capsys.readouterr().err
    assert code == 2 and "need a LoRA adapter" in err and "--variants base,rag" in err


def test_option_scoring_with_a_shared_prompt_cache_equals_scoring_each_full_sequence(generator):
    import copy

    import torch

    from assistant.chat.generation import Generator
    from assistant.evaluation.likelihood import choose_by_likelihood, option_logprobs

    model, tokenizer = generator
    # The identity is exact in fp32; in bf16 (the chat's default on this CPU) the cached and the full pass round
    # differently, by ~5e-3 in a mean log-probability.
    model = copy.deepcopy(model).float()
    gen = Generator(model, tokenizer, base_model="bundled")
    messages = [{"role": "user", "content": "Is the sky blue on a clear day? Answer yes or no."}]
    conts = ["Yes", "No", "B. Known liver neoplasm"]
    scores = option_logprobs(gen, messages, conts, use_adapter=False)
    prompt = gen.render(messages)["input_ids"]
    for cont, score in zip(conts, scores, strict=True):
        ids = tokenizer(cont, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logits = model(input_ids=torch.cat([prompt, torch.tensor([ids])], dim=1)).logits[0].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        t = prompt.shape[1]
        expected = sum(float(logprobs[t - 1 + i, tok]) for i, tok in enumerate(ids)) / len(ids)
        assert score == pytest.approx(expected, abs=1e-3)
    assert choose_by_likelihood(gen, messages, {"A": "yes", "B": "no"}, yes_no=True, use_adapter=False) == (
        "A" if scores[0] > scores[1] else "B"
    )
