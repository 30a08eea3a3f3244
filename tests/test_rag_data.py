"""``--task rag`` training data: deduplication against evaluation sets, gold position, abstain share, the chat's exact
prompt, citations; and the flags. Small MedQuAD-like files written here; the real tokenizers (bundled SmolLM2 and
all-MiniLM-L6-v2); the real MedQuAD and evaluation sets where ../shared is present."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from assistant.adapters import DEFAULT_SYSTEM_PROMPT
from assistant.finetuning.rag_data import (
    ABSTAIN_ANSWER,
    MAX_TARGET_WORDS,
    Passage,
    RagCounts,
    build_rag_pairs,
    load_eval_sets,
    load_medquad,
    normalize,
)
from assistant.prompts import PASSAGES_HEADER, compose
from tests.helpers import qa_rows, write_jsonl

DISEASES = [
    ("Asthma", "airways in the lungs", "wheezing, coughing and shortness of breath"),
    ("Gout", "joints", "sudden pain and swelling in the big toe"),
    ("Anemia", "red blood cells", "tiredness, pale skin and cold hands"),
    ("Migraine", "brain and nerves", "throbbing headache with nausea"),
    ("Psoriasis", "skin", "red, scaly patches on elbows and knees"),
    ("Glaucoma", "optic nerve of the eye", "slow loss of side vision"),
    ("Sciatica", "sciatic nerve", "pain running down the back of one leg"),
    ("Eczema", "skin barrier", "itchy, dry and inflamed skin"),
    ("Tinnitus", "inner ear", "ringing or buzzing in the ears"),
    ("Rosacea", "facial skin", "flushing and visible blood vessels on the cheeks"),
    ("Bronchitis", "bronchial tubes", "a cough that brings up mucus"),
    ("Shingles", "nerves under the skin", "a painful rash on one side of the body"),
]


def medquad_rows() -> list[dict]:
    """Two questions per disease (what is / symptoms), MedQuAD's fields and answer style (the answer comes first)."""
    rows = []
    for i, (name, organ, signs) in enumerate(DISEASES):
        for j, (qtype, question, answer) in enumerate(
            [
                (
                    "information",
                    f"What is (are) {name} ?",
                    f"{name} is a common condition that affects the {organ}. Doctors diagnose it from the history "
                    f"and an examination. Treatment depends on how severe {name.lower()} is. Most people with "
                    f"{name.lower()} live normal lives with the right care.",
                ),
                (
                    "symptoms",
                    f"What are the symptoms of {name} ?",
                    f"The main symptoms of {name.lower()} are {signs}. Symptoms may come and go. See a doctor "
                    f"if the symptoms of {name.lower()} get worse or do not improve.",
                ),
            ]
        ):
            rows.append(
                {
                    "id": f"{i:07d}-{j + 1}",
                    "question": question,
                    "answer": answer,
                    "qtype": qtype,
                    "focus": name,
                    "source": "TestGov",
                    "url": f"https://example.org/{name.lower()}",
                    "collection": "9_TestGov_QA",
                }
            )
    return rows


@pytest.fixture()
def data_dir(tmp_path):
    """A data folder: datasets/medquad.jsonl, datasets/chat.json and two evaluation sets that overlap it."""
    rows = medquad_rows()
    (tmp_path / "datasets").mkdir()
    write_jsonl(tmp_path / "datasets" / "medquad.jsonl", rows)
    write_jsonl(tmp_path / "datasets" / "chat.jsonl", qa_rows(20))
    (tmp_path / "eval" / "retrieval").mkdir(parents=True)
    (tmp_path / "eval" / "kqa").mkdir()
    # gold id of "What is (are) Asthma ?"
    write_jsonl(
        tmp_path / "eval" / "retrieval" / "medquad_q2a_sample500.jsonl",
        [{"qid": "9_0000000-1", "question": rows[0]["question"], "gold_doc_id": "MQ_9_0000000-1"}],
    )
    write_jsonl(  # Gout's symptoms question, verbatim but lower case; Migraine's asked nearly the same way
        tmp_path / "eval" / "kqa" / "kqa_questions_w_answers.jsonl",
        [
            {"Question": "what are the symptoms of gout?", "Free_form_answer": "Pain."},
            {"Question": "What is migraine?", "Free_form_answer": "A headache disorder."},
        ],
    )
    return tmp_path


def passages_of(prompt: str) -> tuple[list[Passage], str]:
    """The ``[n] file, p. 1: text`` passages and the question of a RAG prompt (inverse of ``user_turn``)."""
    body, question = prompt.removeprefix(PASSAGES_HEADER + "\n").rsplit("\n\nQuestion: ", 1)
    passages = []
    for n, block in enumerate(body.split("\n\n"), 1):
        match = re.fullmatch(r"\[(\d+)\] (\S+), p\. 1: (.*)", block, flags=re.S)
        assert match and int(match[1]) == n, block
        passages.append(Passage(match[3], match[2]))
    return passages, question


def build(data_dir, n=24, abstain=0.0, seed=0, counts=None):
    eval_sets = load_eval_sets(data_dir, project_dir=data_dir / "none")
    rows = load_medquad(data_dir / "datasets" / "medquad.jsonl")
    return build_rag_pairs(
        rows, n, chunk_size=64, abstain_fraction=abstain, seed=seed, eval_sets=eval_sets, counts=counts
    )


def test_rows_in_an_evaluation_set_are_dropped_and_counted(data_dir):
    counts = RagCounts()
    pairs = build(data_dir, n=100, counts=counts)
    asked = {normalize(passages_of(p.question)[1]) for p in pairs}
    for question in ("What is (are) Asthma ?", "What are the symptoms of Gout ?", "What is (are) Migraine ?"):
        assert normalize(question) not in asked
    assert counts.dropped == {
        "retrieval/medquad_q2a_sample500.jsonl": 1,
        "kqa/kqa_questions_w_answers.jsonl": 2,
    }
    assert counts.dropped_by == {"id": 1, "question": 1, "near_question": 1}
    assert counts.overlap == 3 and counts.pairs == len(pairs) == 24 - 3


def test_gold_position_varies_and_the_target_quotes_and_cites_it(data_dir):
    pairs = build(data_dir)
    positions = Counter()
    for pair in pairs:
        passages, question = passages_of(pair.question)
        match = re.fullmatch(r"(.+) \[(\d)\]", pair.answer, flags=re.S)
        assert match, pair.answer
        quote, n = match[1], int(match[2])
        positions[n] += 1
        assert 3 <= len(passages) <= 5 and 1 <= n <= len(passages)
        assert quote in passages[n - 1].text  # verbatim sentences of the gold passage
        assert len(quote.split()) <= MAX_TARGET_WORDS
        focus = question.split(" of ")[-1].removeprefix("What is (are) ").rstrip("?").strip()
        assert focus.lower() in passages[n - 1].text.lower()
        assert all(focus.lower() not in p.text.lower() for i, p in enumerate(passages) if i != n - 1)
    assert len(positions) >= 3, positions


def test_abstain_examples_have_the_fixed_target_and_no_gold_passage(data_dir):
    counts = RagCounts()
    pairs = build(data_dir, n=20, abstain=0.25, counts=counts)
    abstaining = [p for p in pairs if p.answer == ABSTAIN_ANSWER]
    assert len(abstaining) == counts.abstain == 5  # 0.25 of 20, exactly
    for pair in abstaining:
        passages, question = passages_of(pair.question)
        focus = question.split(" of ")[-1].removeprefix("What is (are) ").rstrip("?").strip()
        assert all(focus.lower() not in p.text.lower() for p in passages)
    assert all(re.search(r" \[\d\]$", p.answer) for p in pairs if p.answer != ABSTAIN_ANSWER)


def test_the_user_turn_is_what_the_chat_composes_for_the_same_passages(data_dir):
    from assistant.models import load_tokenizer

    tokenizer = load_tokenizer()
    for pair in build(data_dir, n=6):
        passages, question = passages_of(pair.question)
        comp = compose(
            question,
            passages,
            [],
            system_prompt=DEFAULT_SYSTEM_PROMPT,
            count_tokens=lambda t: len(tokenizer(t, add_special_tokens=False)["input_ids"]),
            context_tokens=2048,
            max_new_tokens=256,
        )
        assert len(comp.passages) == len(passages)
        assert comp.messages[-1]["content"] == pair.question  # byte for byte


def test_task_rag_flags_parse_and_default_to_medquad_mixed_with_chatdoctor(tmp_path, monkeypatch):
    from assistant.cli import build_parser
    from assistant.cli.finetune import config_from_args
    from assistant.finetuning.config import FinetuneConfigError

    monkeypatch.setenv("LLAMA_MD_DATA_DIR", str(tmp_path))
    args = build_parser().parse_args(
        [
            "finetune",
            "--task",
            "rag",
            "--rag-samples",
            "30",
            "--mix-samples",
            "7",
            "--abstain-fraction",
            "0.2",
        ]
        + ["--rag-top-k", "4", "--home", str(tmp_path)]
    )
    cfg = config_from_args(args)
    assert (cfg.task, cfg.rag_samples, cfg.mix_samples, cfg.abstain_fraction, cfg.rag_top_k) == (
        "rag",
        30,
        7,
        0.2,
        4,
    )
    assert cfg.dataset == str(tmp_path / "datasets" / "medquad.jsonl")
    assert cfg.mix_dataset == str(tmp_path / "datasets" / "chatdoctor5k.json")
    assert cfg.max_seq_length == 1024  # k passages do not fit the preset's 512
    # 8 sequences of ~600 tokens without activation checkpointing were OOM-killed at 21.7 GB: half the micro-batch,
    # twice the accumulation (same effective batch), checkpointing on, unless the flags say otherwise
    assert (cfg.batch_size, cfg.gradient_accumulation_steps, cfg.gradient_checkpointing) == (4, 2, True)
    chat = config_from_args(build_parser().parse_args(["finetune", "--home", str(tmp_path)]))
    assert (chat.task, chat.max_seq_length, chat.dataset.endswith("chatdoctor5k.json")) == ("chat", 512, True)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["finetune", "--task", "summarise"])
    with pytest.raises(FinetuneConfigError, match="--abstain-fraction"):
        config_from_args(build_parser().parse_args(["finetune", "--task", "rag", "--abstain-fraction", "1"]))


def test_prepare_data_mixes_rag_and_chat_pairs_and_trains_the_end_of_turn(data_dir):
    from assistant.finetuning.config import FinetuneConfig
    from assistant.finetuning.dataprep import prepare_data
    from assistant.models import load_tokenizer

    cfg = FinetuneConfig.from_preset(
        "smollm2-135m",
        task="rag",
        dataset=str(data_dir / "datasets" / "medquad.jsonl"),
        mix_dataset=str(data_dir / "datasets" / "chat.jsonl"),
        rag_samples=12,
        mix_samples=6,
        eval_samples=3,
        home=data_dir / "home",
    )
    data = prepare_data(cfg, load_tokenizer(), "<|im_end|>")
    assert data.schema == "rag" and data.counts.mixed == 6 and data.counts.rag["pairs"] == 12
    assert data.counts.rag["dropped"]["kqa/kqa_questions_w_answers.jsonl"] == 2
    assert len(data.train) + len(data.eval) == 18 and data.counts.truncated == 0
    assert (
        data.system_prompt == DEFAULT_SYSTEM_PROMPT
    )  # the chat's; ChatDoctor's instruction is the same text


def test_real_medquad_pairs_skip_every_evaluation_question(data_dir_real):
    rows = load_medquad(data_dir_real / "datasets" / "medquad.jsonl")
    eval_sets = load_eval_sets(data_dir_real)
    counts = RagCounts()
    pairs = build_rag_pairs(rows, 40, abstain_fraction=0.15, seed=1, eval_sets=eval_sets, counts=counts)
    sample = next(s for s in eval_sets if s.name == "retrieval/medquad_q2a_sample500.jsonl")
    assert counts.dropped[sample.name] >= len(sample.medquad_ids)
    banned = {normalize(q) for s in eval_sets for q in s.questions}
    assert all(
        normalize(passages_of(p.question)[1]) not in banned for p in pairs if p.answer != ABSTAIN_ANSWER
    )
    assert counts.abstain == 6 and len(pairs) == 40


@pytest.fixture()
def data_dir_real(request):
    from tests.conftest import _data_dir

    path = _data_dir()
    if path is None or not (path / "datasets" / "medquad.jsonl").is_file():
        pytest.skip(
            "real data absent: set LLAMA_MD_DATA_DIR or place ../shared (with datasets/medquad.jsonl)"
        )
    return path
