"""The one answer path used by the Streamlit app, the CLI and the evaluation.

safety screen -> retrieve -> compose (system prompt, numbered passages, trimmed history, question) ->
stream the generator -> pick the sources the answer relies on.

Citation rule: a source is listed when the answer cites its marker ``[n]``; when the answer cites none (small
models rarely emit markers), the passages given to the model whose cosine similarity is at least
``settings.min_score`` and within 0.1 of the best are listed, at most three: those are the passages the answer
could have used, and the score bar keeps weak, off-topic passages out of the sources.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field

from assistant import torch_thread
from assistant.chat.generation import Generator
from assistant.chat.prompts import compose
from assistant.chat.safety import screen
from assistant.config import Settings

logger = logging.getLogger(__name__)

NO_SUPPORT = (
    "The library has no passage that supports an answer to this question, so what follows is general "
    "information without sources."
)
TRIMMED = "Your question was very long; only its beginning was used."
FALLBACK_MARGIN = 0.1
FALLBACK_MAX = 3
_MARKER = re.compile(r"\[(\d{1,2})\]")


@dataclass
class Source:
    """A passage the answer relies on: ``number`` is its [n] marker in the prompt."""

    number: int
    file: str
    page: int
    page_label: str
    score: float
    text: str
    title: str = ""


@dataclass
class Answer:
    """Everything about one answer. ``answer`` holds the full text shown to the user (notices included)."""

    question: str
    answer: str = ""
    sources: list[Source] = field(default_factory=list)
    emergency: bool = False
    flags: list[str] = field(
        default_factory=list
    )  # red flags matched, "no_support", "question_trimmed", "no_store"
    retrieval_ms: float = 0.0
    ttft_ms: float = 0.0
    tokens_per_s: float = 0.0
    new_tokens: int = 0
    stopped: bool = False
    model: str = ""
    adapter: str | None = None

    def to_json(self) -> dict:
        """The CLI's ``--json`` object (sources without passage text)."""
        data = asdict(self)
        data["sources"] = [{"file": s.file, "page": s.page, "score": round(s.score, 4)} for s in self.sources]
        data["ttft_ms"], data["tokens_per_s"] = round(self.ttft_ms, 1), round(self.tokens_per_s, 2)
        return data


def select_sources(text: str, passages: Sequence, min_score: float) -> list[Source]:
    """Sources per the module's citation rule. ``passages`` are the hits numbered 1..k in the prompt."""
    cited = sorted({int(m) for m in _MARKER.findall(text) if 1 <= int(m) <= len(passages)})
    if cited:
        chosen = [(n, passages[n - 1]) for n in cited]
    else:
        best = max((h.score for h in passages), default=0.0)
        bar = max(min_score, best - FALLBACK_MARGIN)
        chosen = [(n, h) for n, h in enumerate(passages, 1) if h.score >= bar][:FALLBACK_MAX]
    return [
        Source(n, h.file, h.page, h.page_label, float(h.score), h.text, getattr(h, "title", ""))
        for n, h in chosen
    ]


class AnswerStream:
    """Iterate to get the answer's text pieces (notices first, then model tokens); ``.answer`` afterwards."""

    def __init__(self, pieces: Iterator[str], answer: Answer) -> None:
        self._pieces, self.answer = pieces, answer

    def __iter__(self) -> Iterator[str]:
        yield from self._pieces

    def collect(self) -> Answer:
        """Consume the stream and return the finished Answer."""
        for _ in self:
            pass
        return self.answer


class Assistant:
    """Holds the generator and (optionally) the retriever; loaded once per process."""

    def __init__(
        self, settings: Settings, generator: Generator, retriever=None, store_error: str = ""
    ) -> None:
        self.settings, self.generator, self.retriever, self.store_error = (
            settings,
            generator,
            retriever,
            store_error,
        )

    @classmethod
    def from_settings(cls, settings: Settings, adapter="auto", *, use_rag: bool = True) -> Assistant:
        """Load generator (+ adapter) and, when ``use_rag``, the retriever over the store.

        A missing store is not fatal: ``store_error`` says which command builds it and answers go without
        retrieval. A store built with another embedding model is (StoreError, naming both models).
        Models load on the torch thread (:mod:`assistant.torch_thread`), where they also run.
        """
        return torch_thread.run(cls._load, settings, adapter, use_rag)

    @classmethod
    def _load(cls, settings: Settings, adapter, use_rag: bool) -> Assistant:
        generator = Generator.from_settings(settings, adapter)
        retriever, store_error = None, ""
        if use_rag:
            from assistant.rag.retrieve import Retriever
            from assistant.rag.store import StoreError

            try:
                retriever = Retriever.from_settings(settings)
            except StoreError as exc:
                if "embedding model" in str(exc):
                    raise
                store_error = str(exc)
                logger.warning("No retrieval: %s", exc)
        return cls(settings, generator, retriever, store_error)

    def compose_turn(
        self,
        question: str,
        history: Sequence[dict] = (),
        *,
        use_rag: bool = True,
        top_k: int | None = None,
        max_new_tokens: int | None = None,
    ):
        """Retrieve (when ``use_rag``), keep hits with score >= ``min_score`` and compose the prompt.

        Returns:
            ``(composition, hits, retrieval_ms)``: the messages sent to the model (``composition.passages`` are
            the supporting hits that fit, numbered 1..k), every retrieved hit, and the retrieval time in ms.
        """
        s, gen = self.settings, self.generator
        hits, retrieval_ms = [], 0.0
        if use_rag and self.retriever is not None:
            started = time.perf_counter()
            hits = self.retriever.retrieve(question, top_k or s.top_k)
            retrieval_ms = (time.perf_counter() - started) * 1000
        supported = [h for h in hits if h.score >= s.min_score]
        comp = compose(
            question,
            supported,
            history,
            system_prompt=gen.system_prompt,
            count_tokens=gen.count_tokens,
            context_tokens=min(s.context_tokens, gen.context_window),
            max_new_tokens=max_new_tokens or s.max_new_tokens,
            max_question_tokens=s.max_question_tokens,
        )
        return comp, hits, retrieval_ms

    def ask(
        self,
        question: str,
        history: Sequence[dict] = (),
        *,
        use_rag: bool = True,
        use_adapter: bool = True,
        top_k: int | None = None,
        temperature: float | None = None,
        max_new_tokens: int | None = None,
        seed: int | None = None,
    ) -> AnswerStream:
        """Answer one question; see the module docstring for the steps.

        Raises:
            ValueError: the question is empty.
        """
        s = self.settings
        if not (question or "").strip():
            raise ValueError("The question is empty: type a question about your health or the documents.")
        gen = self.generator
        answer = Answer(
            question=question,
            model=gen.base_model,
            adapter=str(gen.adapter_dir) if gen.adapter_dir and use_adapter else None,
        )
        safety = screen(question)
        answer.emergency, answer.flags = safety.emergency, list(safety.flags)
        comp, hits, answer.retrieval_ms = self.compose_turn(
            question, history, use_rag=use_rag, top_k=top_k, max_new_tokens=max_new_tokens
        )
        if use_rag and self.retriever is None:
            answer.flags.append("no_store")
        if use_rag and not any(h.score >= s.min_score for h in hits):
            answer.flags.append("no_support")
        max_new = max_new_tokens or s.max_new_tokens
        if comp.question_trimmed:
            answer.flags.append("question_trimmed")
        notices = [safety.message] if safety.emergency else []
        notices += [NO_SUPPORT] if "no_support" in answer.flags else []
        notices += [TRIMMED] if comp.question_trimmed else []

        def pieces() -> Iterator[str]:
            prefix = "".join(n + "\n\n" for n in notices)
            if prefix:
                yield prefix
            generated = []
            for piece in gen.stream(
                comp.messages,
                temperature=s.temperature if temperature is None else temperature,
                max_new_tokens=max_new,
                repetition_penalty=s.repetition_penalty,
                use_adapter=use_adapter,
                seed=seed,
            ):
                generated.append(piece)
                yield piece
            text = "".join(generated).strip()
            stats = gen.last_stats
            answer.answer = prefix + text
            answer.sources = select_sources(text, comp.passages, s.min_score)
            answer.ttft_ms = stats.ttft_s * 1000 + answer.retrieval_ms
            answer.tokens_per_s, answer.new_tokens, answer.stopped = (
                stats.tokens_per_s,
                stats.new_tokens,
                stats.stopped,
            )

        return AnswerStream(pieces(), answer)
