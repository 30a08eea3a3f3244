from pathlib import Path

import pytest

from assistant.config import ConfigError, Settings, load_settings


def test_precedence_defaults_toml_env_overrides(tmp_path):
    assert load_settings(cwd=tmp_path, environ={}).top_k == Settings().top_k
    (tmp_path / "llama-md.toml").write_text('top_k = 7\nspecialty = "diabetes"\nhome = "h-toml"\n')
    s = load_settings(cwd=tmp_path, environ={})
    assert (s.top_k, s.specialty, s.home) == (7, "diabetes", Path("h-toml"))
    s = load_settings(cwd=tmp_path, environ={"LLAMA_MD_TOP_K": "9", "LLAMA_MD_HOME": "h-env"})
    assert (s.top_k, s.specialty, s.home) == (9, "diabetes", Path("h-env"))
    s = load_settings({"top_k": 3, "specialty": None}, cwd=tmp_path, environ={"LLAMA_MD_TOP_K": "9"})
    assert (s.top_k, s.specialty) == (3, "diabetes")
    assert s.store_dir == Path("h-toml") / "store"


def test_every_problem_reported_once(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings({"chunk_size": 0, "top_k": 0}, cwd=tmp_path, environ={})
    assert "chunk_size" in str(err.value) and "top_k" in str(err.value) and "--top-k" in str(err.value)


def test_unknown_toml_key_and_bad_env_value(tmp_path):
    (tmp_path / "llama-md.toml").write_text("topk = 3\n")
    with pytest.raises(ConfigError, match="unknown settings \\['topk'\\]"):
        load_settings(cwd=tmp_path, environ={})
    with pytest.raises(ConfigError, match="LLAMA_MD_TOP_K"):
        load_settings(cwd=tmp_path.parent, environ={"LLAMA_MD_TOP_K": "many"})


def test_specialty_falls_back_to_topics_pick(tmp_path):
    (tmp_path / "h" / "topics").mkdir(parents=True)
    (tmp_path / "h" / "topics" / "topics.json").write_text('{"specialty": "pregnancy"}')
    assert load_settings({"home": str(tmp_path / "h")}, cwd=tmp_path, environ={}).specialty == "pregnancy"
    assert (
        load_settings(
            {"home": str(tmp_path / "h"), "specialty": "diabetes"}, cwd=tmp_path, environ={}
        ).specialty
        == "diabetes"
    )
