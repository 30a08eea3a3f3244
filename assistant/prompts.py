"""Prompt composition, shared by the chat and the fine-tuning data builders: system prompt, numbered passages with file and page, trimmed history, the question.

Everything is fitted to a token budget: ``context_tokens - max_new_tokens``. The question and the system prompt
always fit (a question longer than ``max_question_tokens`` is trimmed and flagged); passages go in by rank while
they fit; then as many recent history turns as still fit, newest first.

Everything but the system prompt is untrusted (passages, their file names and page labels, the question, history
turns) and passes through :mod:`assistant.untrusted` first, so no string in it becomes a chat-template control token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from assistant.errors import LlamaMdError
from assistant.untrusted import clean_label, clean_text

PASSAGES_HEADER = "Use the numbered passages below if they help, and cite them like [1].\n\nPassages:"
FILE_MAX_CHARS = 255  # a passage's file name in the prompt, characters (the usual file-system limit)
PAGE_LABEL_MAX_CHARS = 32  # a passage's printed page label in the prompt, characters


class EmptyQuestionError(LlamaMdError, ValueError):
    """The question is empty or only whitespace (checked once, in :func:`compose`)."""

    def __init__(self) -> None:
        super().__init__("The question is empty: type a question about your health or the documents.")


@dataclass
class Composition:
    """The chat messages sent to the model and what went into them."""

    messages: list[dict]
    passages: list = field(default_factory=list)  # the hits that fit, numbered 1..k in this order
    history_turns: int = 0
    question: str = ""
    question_trimmed: bool = False
    prompt_tokens: int = 0


def format_passage(number: int, hit, special_tokens: Iterable[str] = ()) -> str:
    """``[n] file, p. label: text`` for one retrieval hit, each field cleaned by :mod:`assistant.untrusted`.

    Args:
        number: the passage's marker, 1-based.
        hit: an object with ``text``, ``file``, ``page`` (1-based) and ``page_label``.
        special_tokens: the tokenizer's control-token strings (``Generator.special_tokens``); empty = the generic
            set of :data:`assistant.untrusted.GENERIC_TOKENS` only.
    """
    page = str(hit.page)
    label = clean_label(hit.page_label or page, special_tokens, max_chars=PAGE_LABEL_MAX_CHARS) or page
    file = clean_label(hit.file, special_tokens, max_chars=FILE_MAX_CHARS)
    return f"[{number}] {file}, p. {label}: {clean_text(hit.text, special_tokens).strip()}"


def trim_to_tokens(text: str, max_tokens: int, count: Callable[[str], int]) -> tuple[str, bool]:
    """Cut ``text`` to at most ``max_tokens`` (by words, keeping the start); returns ``(text, trimmed)``."""
    if count(text) <= max_tokens:
        return text, False
    words = text.split()
    lo, hi = 0, len(words)
    while lo < hi:  # largest prefix of words that fits
        mid = (lo + hi + 1) // 2
        if count(" ".join(words[:mid])) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo]), True


def user_turn(question: str, hits: Sequence, special_tokens: Iterable[str] = ()) -> str:
    """The user message for ``question`` with ``hits`` numbered 1..k (just the question when there are none).

    The one place the passages' layout is written; :func:`compose` and the RAG fine-tuning data
    (:mod:`assistant.finetuning.rag_data`) both call it, so training prompts are the chat's byte for byte (for
    text that :func:`assistant.untrusted.clean_text` leaves unchanged). The question and every passage are cleaned
    with ``special_tokens`` (see :func:`format_passage`).
    """
    question = clean_text(question, special_tokens)
    if not hits:
        return question
    passages = "\n\n".join(format_passage(i, h, special_tokens) for i, h in enumerate(hits, 1))
    return f"{PASSAGES_HEADER}\n{passages}\n\nQuestion: {question}"


def compose(
    question: str,
    hits: Sequence,
    history: Sequence[dict],
    *,
    system_prompt: str,
    count_tokens: Callable[[str], int],
    context_tokens: int,
    max_new_tokens: int,
    max_question_tokens: int = 512,
    special_tokens: Iterable[str] = (),
) -> Composition:
    """Build the messages for one turn.

    Args:
        question: the user's message.
        hits: retrieval hits (objects with text, file, page, page_label), best first; may be empty.
        history: earlier turns as ``{"role": "user"|"assistant", "content": str}``, oldest first.
        system_prompt: the adapter's system prompt (the one it was trained with).
        count_tokens: tokenizer-based counter, text -> number of tokens.
        context_tokens: the model's usable context window, tokens.
        max_new_tokens: tokens reserved for the answer.
        max_question_tokens: longer questions are trimmed (``question_trimmed``).
        special_tokens: the tokenizer's control-token strings (``Generator.special_tokens``), removed from the
            question, the history turns and the passages with :func:`assistant.untrusted.clean_text`; empty = the
            generic chat-template set only.

    Returns:
        A Composition; ``messages`` = [system, *history, user], the user turn holding passages and question.

    Raises:
        EmptyQuestionError: the question is empty, or held only control tokens (the one place this is checked
            for every front-end).
    """
    special_tokens = tuple(special_tokens)
    question = clean_text(question, special_tokens).strip()
    if not question:
        raise EmptyQuestionError()
    question, trimmed = trim_to_tokens(question, max_question_tokens, count_tokens)
    overhead = (
        16  # chat-template tokens per turn (role markers), a safe upper bound for Llama/ChatML templates
    )
    budget = (
        context_tokens - max_new_tokens - count_tokens(system_prompt) - count_tokens(question) - 3 * overhead
    )
    used = []
    if hits:
        budget -= count_tokens(PASSAGES_HEADER)
        for hit in hits:
            cost = count_tokens(format_passage(len(used) + 1, hit, special_tokens)) + 2
            if cost > budget:
                break
            used.append(hit)
            budget -= cost
    kept: list[dict] = []
    for turn in reversed(list(history)):
        content = clean_text(turn["content"], special_tokens)
        cost = count_tokens(content) + overhead
        if cost > budget:
            break
        kept.insert(0, {"role": turn["role"], "content": content})
        budget -= cost
    user = user_turn(question, used, special_tokens)
    messages = [{"role": "system", "content": system_prompt}, *kept, {"role": "user", "content": user}]
    prompt_tokens = context_tokens - max_new_tokens - budget
    return Composition(messages, used, len(kept), question, trimmed, prompt_tokens)
