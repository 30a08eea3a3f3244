"""Log-likelihood option scoring for closed questions, on the answer path's own prompts.

Where a generated answer names no option the parser can read, the option is chosen the way lm-evaluation-harness
scores multiple choice: each option's continuation is appended to the chat-templated prompt and the option with
the highest mean log-probability per continuation token wins (length-normalized, so long option texts are not
penalized for their length).

The prompt is the one :meth:`assistant.chat.answer.Assistant.ask` sends: both call
:meth:`assistant.chat.answer.Assistant.compose_turn`, so generation and scoring see the same system prompt, passages and
question.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext


def composed_messages(bot, question: str, *, use_rag: bool, max_new_tokens: int) -> list[dict]:
    """The chat messages ``bot.ask(question, use_rag=use_rag, max_new_tokens=...)`` sends to the model."""
    return bot.compose_turn(question, (), use_rag=use_rag, max_new_tokens=max_new_tokens)[0].messages


def option_logprobs(
    generator, messages: list[dict], continuations: Sequence[str], *, use_adapter: bool
) -> list[float]:
    """Mean log-probability per token of each continuation after the rendered prompt.

    Args:
        generator: an :class:`assistant.chat.generation.Generator` (model, tokenizer, ``render``).
        messages: chat messages; rendered with the generation prompt, as in generation.
        continuations: candidate answer texts, e.g. ``["Yes", "No", "Maybe"]``.
        use_adapter: False scores with the LoRA adapter disabled (the base model).

    Returns:
        One float <= 0 per continuation (nats per token). Computed on the torch thread, like generation
        (:mod:`assistant.torch_thread`).
    """
    from assistant import torch_thread

    return torch_thread.run(_option_logprobs, generator, messages, continuations, use_adapter)


def _option_logprobs(generator, messages, continuations, use_adapter: bool) -> list[float]:
    import copy

    import torch

    tok, model = generator.tokenizer, generator.model
    prompt = generator.render(messages)  # input_ids (1, T)
    conts = [tok(c, add_special_tokens=False)["input_ids"] for c in continuations]
    disable = model.disable_adapter() if (generator.has_adapter and not use_adapter) else nullcontext()
    scores = []
    with disable, torch.inference_mode():
        # The prompt is run once; each continuation reuses a copy of its key/value cache.
        first = model(**prompt, use_cache=True, logits_to_keep=1)
        last = torch.log_softmax(first.logits[0, -1].float(), dim=-1)  # (V,) predicts the first token
        for ids in conts:
            if not ids:
                scores.append(float("-inf"))
                continue
            picked = [float(last[ids[0]])]
            if len(ids) > 1:
                cont = torch.tensor([ids], dtype=torch.long, device=prompt["input_ids"].device)
                mask = torch.ones(
                    (1, prompt["input_ids"].shape[1] + len(ids)), dtype=torch.long, device=cont.device
                )
                out = model(
                    input_ids=cont,
                    attention_mask=mask,
                    past_key_values=copy.deepcopy(first.past_key_values),
                    use_cache=True,
                )
                logprobs = torch.log_softmax(out.logits[0, :-1].float(), dim=-1)  # (L - 1, V)
                picked += logprobs.gather(1, cont[0, 1:, None])[:, 0].tolist()
            scores.append(sum(picked) / len(picked))
    return scores


def option_continuations(options: dict[str, str], yes_no: bool) -> dict[str, str]:
    """Text scored for each option: the capitalized word for yes/no questions, else ``"B. option text"``."""
    if yes_no:
        return {k: v.strip().capitalize() for k, v in options.items()}
    return {k: f"{k}. {v.strip()}" for k, v in options.items()}


def choose_by_likelihood(
    generator, messages: list[dict], options: dict[str, str], *, yes_no: bool, use_adapter: bool
) -> str:
    """The option letter whose continuation has the highest mean log-probability."""
    conts = option_continuations(options, yes_no)
    keys = list(conts)
    scores = option_logprobs(generator, messages, [conts[k] for k in keys], use_adapter=use_adapter)
    return keys[max(range(len(keys)), key=scores.__getitem__)]
