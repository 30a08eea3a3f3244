"""The bundled models through the project's loader: conversion cache, chat template, embeddings, errors."""

import pytest
import torch

from assistant import models
from assistant.config import EMBEDDED_GENERATOR, load_settings


def test_second_load_reuses_the_converted_cache(tmp_path, monkeypatch):
    """The first load converts the bundled GGUF once; later loads read the safetensors cache (how much faster that
    is: ``python -m benchmarks.model_load_bench``, in docs/results.md)."""
    from transformers import AutoModelForCausalLM

    settings = load_settings({"home": str(tmp_path)}, environ={})
    models.load_generator(None, settings, device="cpu")
    weights = settings.cache_dir / "models" / "SmolLM2-135M-Instruct" / "model.safetensors"
    assert weights.is_file()
    converted_at = weights.stat().st_mtime_ns
    load = AutoModelForCausalLM.from_pretrained

    def without_gguf(*args, **kwargs):
        assert "gguf_file" not in kwargs, "the second load read the GGUF again instead of the cache"
        return load(*args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", without_gguf)
    model, _ = models.load_generator(None, settings, device="cpu")
    assert weights.stat().st_mtime_ns == converted_at
    assert model.config.model_type == "llama" and not hasattr(model.config, "quantization_config")


def test_generates_an_answer_that_ends_by_itself(generator):
    model, tokenizer = generator
    messages = [
        {"role": "system", "content": "You are a helpful medical assistant. Answer in one short sentence."},
        {"role": "user", "content": "What is a normal resting heart rate for an adult?"},
    ]
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    torch.manual_seed(0)
    out = model.generate(**inputs, max_new_tokens=96, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    new = out[0, inputs["input_ids"].shape[1] :]
    text = tokenizer.decode(new, skip_special_tokens=True).strip()
    assert text
    assert new[-1].item() == tokenizer.convert_tokens_to_ids("<|im_end|>"), "did not stop by itself"


def test_embedder_gives_384_dimensional_vectors(embedder):
    vectors = embedder.encode(["iron supplements in pregnancy", "blood pressure targets"])
    assert vectors.shape == (2, models.EMBEDDING_DIM)
    near = embedder.similarity(embedder.encode(["anemia in pregnancy"]), vectors)[0]
    assert near[0] > near[1]


def test_offline_hub_id_error_names_id_and_default(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = load_settings({"home": str(tmp_path)}, environ={})
    with pytest.raises(models.ModelUnavailableError) as err:
        models.load_generator("meta-llama/Llama-3.2-1B-Instruct", settings)
    message = str(err.value)
    assert (
        "meta-llama/Llama-3.2-1B-Instruct" in message
        and "offline" in message
        and EMBEDDED_GENERATOR in message
    )
