"""The answer path end to end: real SmolLM2, a real Chroma store from a written PDF, the adapter format."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import pytest

from assistant.adapters import AdapterError, AdapterInfo
from assistant.chat.answer import NO_SUPPORT, Assistant, select_sources
from assistant.chat.safety.advice import GROUP_ADVICE
from assistant.chat.safety.categories import MEDICAL
from assistant.config import load_settings
from assistant.prompts import compose
from tests.helpers import REPO


@dataclass
class Passage:
    text: str
    score: float
    file: str = "guide.pdf"
    page: int = 1
    page_label: str = ""


def words(text: str) -> int:
    return len(text.split())


def test_sources_are_the_cited_markers_else_the_top_passages_above_the_bar():
    passages = [Passage("a", 0.62, page=3), Passage("b", 0.58, page=4), Passage("c", 0.40, page=9)]
    assert [s.page for s in select_sources("Eat iron-rich food [2].", passages, 0.3)] == [4]
    assert [s.page for s in select_sources("Eat iron-rich food.", passages, 0.3)] == [3, 4]
    assert select_sources("Answer [7].", passages, 0.7) == []


def test_repetition_penalty_spares_the_prompt_so_the_end_of_turn_token_is_not_pushed_down():
    import torch

    from assistant.models import repetition_penalty_processors

    end_of_turn, word, fresh = 2, 7, 9
    prompt = [1, end_of_turn, 5, end_of_turn, 1]  # system and user turns each closed by the end-of-turn token
    ids = torch.tensor([prompt + [word, word]])  # two answer tokens generated so far
    scores = torch.full((1, 16), 2.0)
    out = repetition_penalty_processors(1.25, len(prompt))(ids, scores.clone())
    assert out[0, end_of_turn] == 2.0 and out[0, fresh] == 2.0  # prompt tokens and unseen tokens untouched
    assert out[0, word] == pytest.approx(2.0 / 1.25)  # the answer's own repeats are penalized
    assert len(repetition_penalty_processors(1.0, len(prompt))) == 0


def test_compose_fits_the_budget_and_trims_a_long_question():
    hits = [Passage("word " * 50, 0.9), Passage("word " * 50, 0.8), Passage("word " * 50, 0.7)]
    history = [{"role": "user", "content": "old " * 30}, {"role": "assistant", "content": "reply " * 30}]
    comp = compose(
        "q " * 100,
        hits,
        history,
        system_prompt="sys",
        count_tokens=words,
        context_tokens=260,
        max_new_tokens=64,
        max_question_tokens=40,
    )
    assert comp.question_trimmed and words(comp.question) == 40
    assert len(comp.passages) == 1 and comp.history_turns == 0
    assert (
        comp.messages[0] == {"role": "system", "content": "sys"}
        and "[1] guide.pdf, p. 1:" in comp.messages[-1]["content"]
    )
    roomy = compose(
        "q", hits, history, system_prompt="sys", count_tokens=words, context_tokens=4096, max_new_tokens=64
    )
    assert len(roomy.passages) == 3 and roomy.history_turns == 2 and len(roomy.messages) == 4
    with pytest.raises(ValueError, match="empty"):
        compose("  ", hits, [], system_prompt="s", count_tokens=words, context_tokens=100, max_new_tokens=10)


@pytest.fixture(scope="module")
def bot(ui_home):
    settings = load_settings({"home": str(ui_home), "max_new_tokens": 40}, environ={})
    return Assistant.from_settings(settings, "auto")


def test_answer_cites_the_page_that_holds_the_answer(bot):
    answer = bot.ask("What should I eat during the third trimester?", seed=0).collect()
    assert answer.full_text.strip() and answer.adapter and not answer.emergency
    assert answer.sources and answer.sources[0].file == "nutrition_guide.pdf" and answer.sources[0].page == 1
    assert answer.ttft_ms > 0 and answer.tokens_per_s > 0 and answer.retrieval_ms > 0


def test_unsupported_question_says_so_and_cites_nothing(bot):
    answer = bot.ask("How do I replace the clutch on a diesel van?", seed=0).collect()
    assert "no_support" in answer.flags and answer.sources == [] and answer.full_text.startswith(NO_SUPPORT)
    assert answer.evidence == [] and answer.groundedness is None and answer.shown_text == answer.full_text


def test_the_answer_quotes_its_evidence_and_scores_its_groundedness(bot):
    answer = bot.ask("What should I eat during the third trimester?", seed=0).collect()
    assert answer.evidence and (answer.evidence[0].file, answer.evidence[0].page) == (
        "nutrition_guide.pdf",
        1,
    )
    assert "third trimester" in answer.evidence[0].sentence and answer.evidence_ms > 0
    assert answer.ttft_ms > answer.evidence_ms
    assert answer.groundedness is not None and 0.0 <= answer.groundedness <= 1.0
    assert answer.generated_text and answer.shown_text.startswith(answer.full_text)
    assert answer.shown_text.endswith(answer.evidence[-1].citation())
    data = answer.to_json()
    assert (
        data["evidence"][0]["sentence"] == answer.evidence[0].sentence
        and data["shown_text"] == answer.shown_text
    )
    assert data["unsupported"] == answer.unsupported and data["groundedness"] == round(answer.groundedness, 4)


def test_red_flag_gets_the_emergency_message_before_the_answer(bot):
    answer = bot.ask("I'm 30 weeks pregnant and there is heavy bleeding", seed=0).collect()
    assert answer.emergency and answer.full_text.startswith(GROUP_ADVICE[MEDICAL])
    assert answer.screening["category"] == "pregnancy_bleeding" and answer.screen_ms > 0


def test_the_screen_reads_the_conversation_not_just_the_last_message(bot):
    history = [
        {"role": "user", "content": "I had my baby ten days ago."},
        {"role": "assistant", "content": "Congratulations! How can I help?"},
    ]
    stream = bot.ask(
        "my calf is hot and swollen and now I'm short of breath", history, seed=0, max_new_tokens=8
    )
    assert stream.answer.emergency and stream.answer.notices[0].startswith(GROUP_ADVICE[MEDICAL])


def test_an_urgent_question_gets_the_amber_notice_first_not_the_emergency_advice(bot):
    question = "my back tooth has been throbbing for days and now my cheek and jaw on that side are swollen"
    answer = bot.ask(question, seed=0, max_new_tokens=8).collect()
    assert answer.urgency == "urgent" and not answer.emergency
    assert answer.category == "urgent_dental" and answer.trigger == question
    assert (
        answer.full_text.startswith("This should be checked today:") and "urgent dentist" in answer.notices[0]
    )
    assert answer.screening["urgency"] == "urgent" and answer.screening["trigger"] == question


def test_adapter_for_another_base_model_is_refused(ui_home, tmp_path):
    import shutil

    adapter = tmp_path / "adapter"
    shutil.copytree(next((ui_home / "runs").glob("*/adapter")), adapter)
    info = AdapterInfo.load(adapter)
    info.base_model = "meta-llama/Llama-3.2-1B-Instruct"
    info.save(adapter)
    with pytest.raises(AdapterError, match="trained on 'meta-llama/Llama-3.2-1B-Instruct'.*SmolLM2"):
        Assistant.from_settings(load_settings({"home": str(ui_home)}, environ={}), adapter)


def test_chat_cli_json(ui_home):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "assistant",
            "chat",
            "--json",
            "--max-new-tokens",
            "24",
            "--seed",
            "0",
            "Should newborns be breastfed?",
            "   ",
            "my 5 week old is burning up, floppy and won't feed",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        env={**__import__("os").environ, "LLAMA_MD_HOME": str(ui_home)},
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert (
        len(rows) == 2 and rows[0]["question"] == "Should newborns be breastfed?" and not rows[0]["emergency"]
    )
    assert rows[1]["emergency"] and rows[1]["screening"]["stage"] in ("rules", "classifier", "both")
    assert (
        rows[1]["urgency"] == "emergency"
        and rows[1]["category"]
        and rows[1]["trigger"] == rows[1]["question"]
    )
    assert rows[0]["urgency"] == "routine" and rows[0]["category"] is None and rows[0]["trigger"] == ""
    assert rows[1]["answer"].startswith("This may be an emergency. Call your local emergency number")
    assert rows[0]["sources"][0]["file"] == "nutrition_guide.pdf" and rows[0]["sources"][0]["page"] == 2
    assert set(rows[0]) >= {"answer", "emergency", "ttft_ms", "tokens_per_s", "unsupported", "groundedness"}
    assert rows[0]["evidence"][0]["file"] == "nutrition_guide.pdf" and rows[0]["evidence"][0]["page"] == 2
    assert "breastf" in rows[0]["evidence"][0]["sentence"] and rows[0]["shown_text"].startswith(
        rows[0]["answer"]
    )
    assert "adapter:" in out.stderr and "The question is empty" in out.stderr


def test_notices_and_the_models_words_are_kept_apart(bot):
    answer = bot.ask("How do I replace the clutch on a diesel van?", seed=0).collect()
    assert answer.notices == [NO_SUPPORT] and NO_SUPPORT not in answer.text
    assert answer.full_text == NO_SUPPORT + "\n\n" + answer.text
    assert answer.to_json()["answer"] == answer.full_text


def test_each_generation_stream_carries_its_own_stats(bot):
    messages = [{"role": "user", "content": "Name one fruit."}]
    short = bot.generator.stream(messages, temperature=0, max_new_tokens=2)
    longer = bot.generator.stream(messages, temperature=0, max_new_tokens=6)
    assert longer.text() and short.text()  # read in the other order than made
    assert 0 < short.stats.new_tokens <= 2 < longer.stats.new_tokens <= 6
    assert short.stats.prompt_tokens == longer.stats.prompt_tokens > 0
    assert not hasattr(bot.generator, "last_stats")


def test_one_empty_question_check_for_every_front_end(bot):
    from assistant.prompts import EmptyQuestionError

    with pytest.raises(EmptyQuestionError, match="The question is empty: type a question"):
        bot.ask("   ")


def test_describe_says_what_is_loaded(bot):
    loaded = bot.describe()
    assert loaded.model.endswith("SmolLM2-135M-Instruct") and loaded.run == "smollm2-135m-test"
    assert loaded.has_adapter and loaded.chunks > 0 and loaded.hints == []
    assert (
        loaded.header()
        == f"model: {loaded.model}; adapter: {loaded.adapter}; retrieval: {loaded.chunks} chunks"
    )
