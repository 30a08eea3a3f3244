"""Topic modeling picks the specialty: three written areas are recovered and mapped; bad input is reported."""

from __future__ import annotations

import json
import logging

import pytest
from datasets import Dataset

from assistant.config import load_settings, picked_specialty
from assistant.data import DatasetError
from assistant.topics import OTHER, TOP_N, TopicsError, model_topics, topic_count, write_report

PREGNANCY = [
    "I'm 8 weeks pregnant and have light spotting, is that normal?",
    "How much folic acid should I take while trying to get pregnant?",
    "My morning sickness is so bad I can't keep water down during pregnancy",
    "When will I feel my baby kick for the first time in my first pregnancy?",
    "Is it safe to drink coffee when you are expecting a baby?",
    "What are the signs that labour has started?",
    "Can I keep breastfeeding my newborn if I catch a cold?",
    "How long after giving birth should I wait before using contraception?",
    "My midwife says my baby is breech at 36 weeks, what can be done?",
    "Is it normal to have back pain in the third trimester of pregnancy?",
    "What foods should pregnant women avoid?",
    "How often should a newborn baby feed at the breast?",
    "I had a caesarean section two weeks ago and the scar is red",
    "Can I fly on a plane when I am 30 weeks pregnant?",
    "What is gestational hypertension and is it dangerous for the baby?",
    "My period is late and the pregnancy test is faint, am I pregnant?",
    "How many antenatal visits should I have during my pregnancy?",
    "Is it safe to exercise during the first trimester?",
    "The baby is moving less today at 34 weeks, should I worry?",
    "What helps sore cracked nipples while nursing my infant?",
    "Which birth control pill is safe while breastfeeding?",
    "I feel contractions every ten minutes at 37 weeks of pregnancy",
    "When can I take my newborn out after delivery?",
    "Do I need an ultrasound scan at 20 weeks of pregnancy?",
    "My waters broke but there are no contractions yet",
    "How much weight should I gain when pregnant with twins?",
    "Can an IUD be placed right after childbirth?",
    "Is heartburn common in late pregnancy and what can I take?",
    "My newborn's skin looks yellow, is jaundice serious?",
    "What vaccines are recommended for pregnant women?",
    "How soon after a miscarriage can we try to conceive again?",
    "I'm bleeding heavily a week after giving birth",
    "Is it okay to sleep on my back while pregnant?",
    "How do I know if my baby is getting enough breast milk?",
    "What are the risks of being pregnant over the age of 40?",
    "Should I be worried about swelling in my feet during pregnancy?",
]
MENTAL_HEALTH = [
    "I've felt sad and hopeless every day for a month and lost interest in everything",
    "My panic attacks come out of nowhere and my heart races, what is happening?",
    "I can't stop checking that the door is locked, could this be OCD?",
    "Since the accident I keep having nightmares and flashbacks",
    "How do I know if my mood swings are bipolar disorder?",
    "I hear voices that other people don't hear",
    "My teenage son can't concentrate at school, could he have ADHD?",
    "I worry constantly about everything and can't relax",
    "Is therapy or medication better for depression?",
    "Sometimes I think about ending my life",
    "I feel anxious in social situations and avoid meeting people",
    "Every winter I get depressed and sleep far too much",
    "How long do antidepressants take to start working?",
    "My sister is binge eating and then making herself vomit",
    "I feel numb and disconnected since my father died",
    "Work stress is making me irritable and exhausted all the time",
    "What is cognitive behavioural therapy and does it help anxiety?",
    "My friend believes people are spying on him, is this paranoia?",
    "I have no motivation, cry a lot and feel worthless",
    "Can stress cause me to have trouble sleeping every night?",
    "How can I support my partner who has schizophrenia?",
    "I get intrusive thoughts that I can't get rid of",
    "Are there side effects of stopping lithium for bipolar?",
    "I feel lonely and empty even when I'm with friends",
    "My anxiety makes me feel like I can't breathe in crowds",
    "Is it normal to feel this down after losing my job?",
    "I have racing thoughts and haven't slept for three days but feel full of energy",
    "What are the warning signs of suicide in a teenager?",
    "I'm afraid of leaving the house because of panic",
    "Does exercise help with depression and low mood?",
    "I keep reliving the assault and jump at every noise",
    "My child is extremely hyperactive and impulsive",
    "How do I find a psychiatrist or counsellor?",
    "I feel guilty and ashamed all the time for no reason",
    "Can anorexia be treated if someone doesn't want help?",
    "My thoughts feel jumbled and I don't trust what is real",
]
DIABETES = [
    "My fasting blood sugar was 130, do I have diabetes?",
    "What is a normal A1C level?",
    "I'm always thirsty and urinating a lot, could it be diabetes?",
    "How do I inject insulin correctly?",
    "What should I eat to keep my blood glucose stable?",
    "My glucose dropped to 55 and I felt shaky and sweaty",
    "Is type 2 diabetes reversible with weight loss?",
    "What is the difference between type 1 and type 2 diabetes?",
    "Can I eat fruit if I have diabetes?",
    "My doctor says I have prediabetes, what does that mean?",
    "How often should I check my blood sugar with a glucose meter?",
    "Does metformin cause stomach problems?",
    "What should I do when my blood sugar is very high after meals?",
    "How many carbohydrates should a diabetic eat per day?",
    "Are artificial sweeteners okay for diabetics?",
    "My child was diagnosed with type 1 diabetes, what now?",
    "Can diabetes damage the nerves in my feet?",
    "What is a low glycemic index diet for blood sugar control?",
    "How do I treat a hypo with sugar tablets?",
    "Why is my morning glucose reading higher than at night?",
    "Is it safe for diabetics to drink alcohol?",
    "How does exercise affect my insulin needs?",
    "What are the early symptoms of high blood sugar?",
    "Can I skip my insulin dose if I am not eating?",
    "My A1C went up from 6.5 to 7.8, what should I change?",
    "Is brown rice better than white rice for diabetes?",
    "What is diabetic ketoacidosis?",
    "How does an insulin pump work?",
    "Do I need to eat snacks between meals with diabetes?",
    "Is an oral glucose tolerance test accurate?",
    "My feet tingle and my sugar levels are always high",
    "What blood test is used to diagnose diabetes?",
    "How do I count carbs in my meal plan?",
    "Can stress raise my blood glucose levels?",
    "Are continuous glucose monitors worth it for type 2?",
    "What portion sizes should I use on a diabetes plate?",
]
AREAS = {"pregnancy": PREGNANCY, "mental_health": MENTAL_HEALTH, "diabetes": DIABETES}
AREA_OF = {q: area for area, qs in AREAS.items() for q in qs}


@pytest.fixture(scope="module")
def three_areas(tmp_path_factory):
    """The written questions, interleaved area by area, as a ChatDoctor-style json file."""
    rows = [
        {"instruction": "x", "input": q, "output": "y"}
        for qs in zip(*AREAS.values(), strict=True)
        for q in qs
    ]
    path = tmp_path_factory.mktemp("topics") / "questions.json"
    path.write_text(json.dumps(rows))
    return path


@pytest.fixture(scope="module")
def report(three_areas, settings):
    return model_topics(three_areas, settings, seed=0)


def test_three_areas_recovered_and_mapped(report):
    assert report.text_column == "input"
    assert report.n_questions == 3 * 36
    assert len(report.topics) == TOP_N == report.n_topics
    assert sum(t.size for t in report.topics) == report.n_questions
    for topic in report.topics:
        true_areas = {AREA_OF[q] for q in topic.examples}
        assert true_areas == {topic.specialty}, (topic.keywords, topic.specialty, topic.examples)
    assert set(report.specialty_shares) == set(AREAS)
    for area in AREAS:
        assert report.specialty_shares[area] == pytest.approx(1 / 3, abs=0.1)
    assert report.specialty in AREAS


def test_same_seed_same_topics(report, three_areas, settings):
    again = model_topics(three_areas, settings, seed=0)
    assert [t.to_json() for t in again.topics] == [t.to_json() for t in report.topics]
    assert again.specialty_shares == report.specialty_shares


def test_report_file_becomes_settings_specialty(report, tmp_path):
    json_path, png_path = write_report(report, tmp_path / "topics")
    data = json.loads(json_path.read_text())
    assert set(data) == {
        "topics",
        "specialty_shares",
        "specialty",
        "dataset",
        "text_column",
        "n_questions",
        "seed",
        "seconds",
    }
    assert set(data["topics"][0]) == {"id", "keywords", "size", "share", "specialty", "examples"}
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    settings = load_settings({"home": str(tmp_path)}, environ={})
    assert settings.specialty == report.specialty == picked_specialty(tmp_path / "topics")


def test_cli_override_and_table(three_areas, tmp_path, settings, capsys, monkeypatch):
    from assistant.__main__ import main

    monkeypatch.setenv("LLAMA_MD_HOME", str(settings.home))
    out = tmp_path / "out"
    args = ["topics", str(three_areas), "--out", str(out), "--specialty", "cardiology", "--seed", "0"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "pick: cardiology (given with --specialty)" in printed
    assert "specialty shares:" in printed
    data = json.loads((out / "topics.json").read_text())
    assert data["specialty"] == "cardiology" and data["seed"] == 0
    assert "cardiology" not in data["specialty_shares"]  # the override does not change the measured shares


def test_cli_bad_input_exits_2(three_areas, tmp_path, capsys):
    from assistant.__main__ import main

    assert main(["topics", str(three_areas), "--out", str(tmp_path), "--specialty", "dermatology"]) == 2
    assert "corpora exist for: cardiology, diabetes, mental_health, pregnancy" in capsys.readouterr().err
    assert not (tmp_path / "topics.json").exists()


def test_empty_dataset(settings):
    with pytest.raises(TopicsError, match=r"empty \(0 rows\)"):
        model_topics(Dataset.from_dict({"input": [], "output": []}), settings)


@pytest.mark.parametrize(
    "name, content", [("empty.json", "[]"), ("empty.jsonl", ""), ("header.csv", "input,output\n")]
)
def test_empty_files_say_so(name, content, tmp_path, capsys):
    from assistant.__main__ import main

    (tmp_path / name).write_text(content)
    assert main(["topics", str(tmp_path / name), "--out", str(tmp_path / "out")]) == 2
    assert "is empty (0 rows)" in capsys.readouterr().err
    assert not (tmp_path / "out" / "topics.json").exists()


def test_unknown_column_lists_columns(settings):
    data = Dataset.from_dict({"input": ["a"], "output": ["b"]})
    with pytest.raises(DatasetError, match=r"'symptom' not found; the dataset has \['input', 'output'\]"):
        model_topics(data, settings, text_column="symptom")


def test_too_few_questions(settings):
    data = Dataset.from_dict({"question": DIABETES[:9], "answer": ["a"] * 9})
    with pytest.raises(TopicsError, match="Only 9 usable question"):
        model_topics(data, settings)


def test_fewer_questions_give_fewer_topics_and_skip_bad_values(settings, caplog):
    questions = PREGNANCY[:12] + DIABETES[:12] + [None, "", "   ", None]
    data = Dataset.from_dict({"question": questions, "answer": ["a"] * len(questions)})
    with caplog.at_level(logging.WARNING, logger="assistant.topics"):
        report = model_topics(data, settings, seed=1)
    assert report.n_questions == 24
    assert report.skipped == {"empty": 2, "non_text": 2}
    assert report.n_topics == len(report.topics) == topic_count(24) == 4
    assert "fewer than the 50 that 10 topics of 5 need; returning 4 topics" in caplog.text
    assert sum(t.size for t in report.topics) == 24


@pytest.mark.slow
def test_chatdoctor_gives_ten_topics_and_a_corpus_pick(data_dir, settings):
    from corpora import list_corpora

    report = model_topics(data_dir / "datasets" / "chatdoctor5k.json", settings, seed=0)
    assert report.n_questions == 5452 and report.text_column == "input"
    assert len(report.topics) == TOP_N
    assert [t.size for t in report.topics] == sorted((t.size for t in report.topics), reverse=True)
    assert report.specialty in list_corpora()
    assert sum(report.specialty_shares.values()) == pytest.approx(1.0, abs=1e-3)
    assert report.specialty_shares[report.specialty] == max(
        v for k, v in report.specialty_shares.items() if k != OTHER
    )
