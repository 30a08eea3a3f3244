"""The one answer path used by the Streamlit app, the CLI and the evaluation.

safety screen of the recent user turns (rules + classifier, :mod:`assistant.chat.safety`) -> retrieve -> compose (system
prompt, numbered passages, trimmed history, question) ->
quote evidence (:mod:`assistant.chat.evidence`: the passages' sentences that answer the question, chosen before
the first token so a front-end can show them at once) -> stream the generator -> pick the sources the answer relies
on -> the number check (:mod:`assistant.chat.numbers`, ``settings.number_check``) and the groundedness score
(:mod:`assistant.chat.groundedness`). :meth:`Assistant.ask` returns an :class:`AnswerStream`; reading it yields the
notices, then the model's words, and fills its :class:`Answer`. The number check and the groundedness notice change
the answer only after the stream ends: front-ends show :attr:`Answer.shown_text` (or ``text``) once it is done.

Citation rule: a source is listed when the answer cites its marker ``[n]``; when the answer cites none (small
models rarely emit markers), the passages given to the model whose cosine similarity is at least
``settings.min_score`` and within 0.1 of the best are listed, at most three: those are the passages the answer
could have used, and the score bar keeps weak, off-topic passages out of the sources. With the re-ranker
(``settings.rerank``) the passages it gives a probability of at least ``MIN_RELEVANCE`` and within
``RELEVANCE_MARGIN`` of the best are listed instead (the bars the quotes use, :mod:`assistant.chat.evidence`), at
most three, best first. The passage of every quoted sentence is listed too (after those), so a page a quote comes
from is always a cited page.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from pathlib import Path

from assistant import torch_thread
from assistant.chat.evidence import (
    MIN_RELEVANCE,
    RELEVANCE_MARGIN,
    Evidence,
    PassageSentences,
    load_splitter,
    select_evidence,
)
from assistant.chat.generation import GenerationStream, Generator
from assistant.chat.groundedness import LOW_GROUNDEDNESS, LOW_NOTICE, groundedness
from assistant.chat.queue import RequestQueue
from assistant.chat.remote import load_generator_backend
from assistant.chat.safety import load_screener, screen_conversation
from assistant.config import Settings
from assistant.prompts import compose, format_passage

logger = logging.getLogger(__name__)

NO_SUPPORT = (
    "The library has no passage that supports an answer to this question, so what follows is general "
    "information without sources."
)
TRIMMED = "Your question was very long; only its beginning was used."
REMOVED = "(A quantity the sources do not state was removed here.)"
SERVER_SLOTS = 4  # answers admitted at once with generator_backend = openai
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
    uploaded: bool = False  # from the asking user's own uploads: the UI labels it "your document"


@dataclass
class Answer:
    """Everything about one answer. ``text`` is the model's words after the number check (``generated_text``
    before it); ``notices`` are shown before them (emergency advice or the urgent "checked today" notice, no
    supporting passage, question trimmed, low groundedness); :attr:`full_text` is both; :attr:`shown_text` adds
    the quoted evidence, as the user reads it."""

    question: str
    text: str = ""
    notices: list[str] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    emergency: bool = False  # True exactly when urgency == "emergency"
    urgency: str = "routine"  # the red-flag screen's level: emergency | urgent | routine
    category: str | None = None  # the screen's category (assistant.chat.safety.categories), None when routine
    trigger: str = ""  # the sentence of the question that set the level, "" when routine
    flags: list[str] = field(
        default_factory=list
    )  # red-flag categories, "no_support", "question_trimmed", "no_store", "unsupported_quantity", "low_groundedness",
    # "cancelled" (stopped early by AnswerStream.cancel or a cancel event: the text is partial)
    screening: dict = field(
        default_factory=dict
    )  # the red-flag screen: urgency, category, categories, trigger, stage, probability, alarm_probability
    screen_ms: float = 0.0
    retrieval_ms: float = 0.0
    ttft_ms: float = 0.0
    tokens_per_s: float = 0.0
    new_tokens: int = 0
    stopped: bool = False
    model: str = ""
    adapter: str | None = None
    evidence: list[Evidence] = field(default_factory=list)  # quoted sentences, best first (at most 3)
    unsupported: list[dict] = field(
        default_factory=list
    )  # answer sentences whose quantity no passage supports
    groundedness: float | None = (
        None  # share of answer sentences supported by a cited passage; None: no passages
    )
    evidence_ms: float = 0.0  # time to select the evidence, ms (before the first token; part of ttft_ms)
    generated_text: str = ""  # the model's words as generated, before the number check

    @property
    def full_text(self) -> str:
        """The answer as shown: each notice followed by a blank line, then the model's text."""
        return notice_prefix(self.notices) + self.text

    @property
    def shown_text(self) -> str:
        """What the user reads: :attr:`full_text`, then one ``From <title>, p. <label>: “…”`` line per quote."""
        quotes = "\n".join(e.citation() for e in self.evidence)
        return self.full_text + ("\n\n" + quotes if quotes else "")

    def to_json(self) -> dict:
        """The CLI's ``--json`` object: ``answer`` is :attr:`full_text`; sources without passage text;
        ``evidence`` as ``[{"file", "page", "page_label", "sentence", "score"}]``; ``unsupported`` as
        ``[{"sentence", "quantities", "replaced_by"}]``; ``groundedness`` in [0, 1] or None."""
        data = asdict(self)
        data["answer"], data["shown_text"] = self.full_text, self.shown_text
        data["sources"] = [{"file": s.file, "page": s.page, "score": round(s.score, 4)} for s in self.sources]
        data["evidence"] = [e.to_json() for e in self.evidence]
        data["groundedness"] = None if self.groundedness is None else round(self.groundedness, 4)
        data["ttft_ms"], data["tokens_per_s"] = round(self.ttft_ms, 1), round(self.tokens_per_s, 2)
        data["evidence_ms"] = round(self.evidence_ms, 1)
        return data


def notice_prefix(notices: Sequence[str]) -> str:
    """The notices as they open an answer: each followed by a blank line."""
    return "".join(n + "\n\n" for n in notices)


def select_sources(
    text: str, passages: Sequence, min_score: float, quoted: Sequence[int] = ()
) -> list[Source]:
    """Sources per the module's citation rule, plus the passages the shown quotes come from (``quoted``: their
    [n] markers), so a quoted page is always a cited page. ``passages`` are the hits numbered 1..k in the prompt.
    """
    cited = sorted({int(m) for m in _MARKER.findall(text) if 1 <= int(m) <= len(passages)})
    reranked = bool(passages) and all(getattr(h, "rerank", None) is not None for h in passages)
    if cited:
        chosen = [(n, passages[n - 1]) for n in cited]
    elif reranked:  # the re-ranker's probability decides, with the same bars as the quotes
        best = max(h.rerank for h in passages)
        bar = max(MIN_RELEVANCE, best - RELEVANCE_MARGIN)
        chosen = [(n, h) for n, h in enumerate(passages, 1) if h.rerank >= bar and h.score >= min_score]
        chosen = sorted(chosen, key=lambda nh: -nh[1].rerank)[:FALLBACK_MAX]
    else:
        best = max((h.score for h in passages), default=0.0)
        bar = max(min_score, best - FALLBACK_MARGIN)
        chosen = [(n, h) for n, h in enumerate(passages, 1) if h.score >= bar][:FALLBACK_MAX]
    listed = {n for n, _ in chosen}
    chosen += [
        (n, passages[n - 1]) for n in dict.fromkeys(quoted) if 1 <= n <= len(passages) and n not in listed
    ]
    return [
        Source(
            n,
            h.file,
            h.page,
            h.page_label,
            float(h.score),
            h.text,
            getattr(h, "title", ""),
            getattr(h, "uploaded", False),
        )  # fmt: skip
        for n, h in chosen
    ]


def number_check_context(question: str, passages: Sequence) -> list[str]:
    """What the model was given that may state a number: the question and each passage as the prompt shows it
    (``[n] file, p. label: text``), so "12 weeks" from the question or "p. 42" from a header is not "unsupported"."""
    return [question] + [format_passage(i, h) for i, h in enumerate(passages, 1)]


def apply_number_check(answer: Answer, passages: Sequence, mode: str) -> None:
    """Check ``answer.text``'s quantities against ``passages`` (:func:`assistant.chat.numbers.check_numbers`);
    fill ``answer.unsupported`` and, with ``mode="replace"``, replace each such sentence in ``answer.text``: the
    first by the best quote, ``(From <title>, p. <label>: “…”)``, the others (or all, without evidence) by
    :data:`REMOVED`. ``mode="mark"`` keeps the text; ``"off"`` does nothing."""
    from assistant.chat.numbers import check_numbers

    if mode == "off" or not passages or not answer.text:
        return
    text, pieces, last, quoted = answer.text, [], 0, False
    for check in check_numbers(text, number_check_context(answer.question, passages)):
        if not check.unsupported:
            continue
        replaced_by = None
        if mode == "replace":
            if answer.evidence and not quoted:
                replaced_by, quoted = f"({answer.evidence[0].citation()})", True
            else:
                replaced_by = REMOVED
            pieces += [text[last : check.start], replaced_by]
            last = check.end
        answer.unsupported.append(
            {
                "sentence": check.sentence,
                "quantities": [q.text for q in check.unsupported],
                "replaced_by": replaced_by,
            }
        )
    if answer.unsupported:
        answer.flags.append("unsupported_quantity")
    answer.text = "".join(pieces) + text[last:]


class AnswerStream:
    """Iterate to get the answer's text pieces (the notices first, then the model's); ``.answer`` is complete
    once the stream has been read.

    :meth:`cancel` stops the generation within one token (the stream then ends and ``.answer`` holds the partial
    text, flagged "cancelled"); closing the iterator early (Streamlit's rerun or stop) or :meth:`close` cancels it
    too, so an abandoned answer frees the torch thread."""

    def __init__(
        self, pieces: Iterator[str], answer: Answer, generation: GenerationStream | None = None
    ) -> None:
        self._pieces, self.answer, self.generation = pieces, answer, generation

    def __iter__(self) -> Iterator[str]:
        yield from self._pieces

    def cancel(self) -> None:
        """Stop the generation within one token, or before it starts; safe from any thread."""
        if self.generation is not None:
            self.generation.cancel()

    def close(self) -> None:
        """Cancel and stop reading (for a reader that leaves early; from another thread it only cancels)."""
        self.cancel()
        try:
            self._pieces.close()
        except ValueError:  # being read in another thread: cancel() alone ends that read
            pass

    def collect(self) -> Answer:
        """Consume the stream and return the finished Answer."""
        for _ in self:
            pass
        return self.answer


@dataclass
class Description:
    """What an :class:`Assistant` has loaded, as the UI's sidebar and the CLI's header show it."""

    model: str
    """Base model id."""
    adapter: str | None
    """Adapter folder, None for the base model."""
    run: str | None
    """Name of the fine-tune run folder the adapter belongs to."""
    has_adapter: bool
    """True when a LoRA adapter can be switched on and off (False for none and for a full fine-tune)."""
    chunks: int | None
    """Passages in the store; None without retrieval."""
    store_error: str
    """Why there is no retrieval (names the command that builds the store); empty when there is."""
    specialty: str | None
    """Display name of the settings' specialty, None when none is chosen."""
    hints: list[str] = field(default_factory=list)
    """What is missing and the command that makes it."""

    def header(self) -> str:
        """One line: ``model: M; adapter: A; retrieval: N chunks`` (or why there is none, or ``off``)."""
        retrieval = f"{self.chunks} chunks" if self.chunks is not None else (self.store_error or "off")
        return f"model: {self.model}; adapter: {self.adapter or 'none (base model)'}; retrieval: {retrieval}"


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
        # one answer at a time in-process (a second would only slow both on a CPU, assistant/torch_thread.py);
        # a server decodes several (`python -m assistant serve` starts llama.cpp with SERVER_SLOTS parallel slots)
        active = SERVER_SLOTS if settings.generator_backend == "openai" else 1
        self.queue = RequestQueue(
            max_active=active,
            max_waiting=settings.queue_max_waiting,
            max_waiting_per_user=settings.queue_max_waiting_per_user,
        )
        """The line every answer waits in (one ticket per request, :mod:`assistant.chat.queue`)."""

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
        generator = load_generator_backend(settings, adapter)
        load_screener(settings)  # the red-flag classifier loads with the models, not on the first question
        load_splitter()  # NLTK's import takes ~1.6 s: with the models, not on the first question
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

    def swap_generator(self, adapter: str | Path | None = "auto") -> Future:
        """Load the generator with ``adapter`` off the request path, then serve it.

        The load runs on the loader thread (:func:`~assistant.torch_thread.submit_load`; its docstring says what
        that costs), so queued answers keep being served meanwhile; ``self.generator`` is then replaced in one
        assignment. Answers already asked keep the generator they started with.

        Args:
            adapter: as :meth:`Generator.from_settings` takes it ("auto", a run or adapter folder, None).

        Returns:
            A Future of the new :class:`Generator`; its ``result()`` raises what loading raised (AdapterError,
            ModelUnavailableError), and then the old generator stays in place.
        """

        def load() -> Generator:
            generator = load_generator_backend(self.settings, adapter)
            self.generator = generator
            return generator

        return torch_thread.submit_load(load)

    def compose_turn(
        self,
        question: str,
        history: Sequence[dict] = (),
        *,
        use_rag: bool = True,
        top_k: int | None = None,
        max_new_tokens: int | None = None,
        user_id: str | None = None,
        generator=None,
    ):
        """Retrieve (when ``use_rag``), keep hits with score >= ``min_score`` and compose the prompt.

        With ``user_id``, the curated store and that user's own uploads are searched and the best ``top_k`` kept
        (:func:`assistant.chat.library.retrieve_for_user`); without it, the curated store alone.

        Returns:
            ``(composition, hits, retrieval_ms)``: the messages sent to the model (``composition.passages`` are
            the supporting hits that fit, numbered 1..k), every retrieved hit, and the retrieval time in ms.
            ``generator``: the one the answer will use (default ``self.generator``), so a swap landing meanwhile
            never composes with one model's prompt format and generates with another.
        """
        s, gen = self.settings, generator or self.generator
        hits, retrieval_ms = [], 0.0
        if use_rag and user_id is not None:
            from assistant.chat.library import retrieve_for_user

            started = time.perf_counter()
            hits = retrieve_for_user(question, top_k or s.top_k, s, user_id, self.retriever)
            retrieval_ms = (time.perf_counter() - started) * 1000
        elif use_rag and self.retriever is not None:
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
            special_tokens=gen.special_tokens,
        )
        return comp, hits, retrieval_ms

    def describe(self) -> Description:
        """What is loaded, for the UI's sidebar and the CLI's header (see :class:`Description`)."""
        from corpora import CorpusError, load_corpus

        gen, specialty = self.generator, self.settings.specialty
        try:
            specialty = load_corpus(specialty).display_name if specialty else None
        except CorpusError:
            pass
        hints = [self.store_error] if self.store_error else []
        hints += getattr(gen, "notices", [])  # fine-tune runs adapter="auto" skipped, and why
        if gen.adapter_dir is None:
            hints.append("No fine-tuned adapter: train one with `python -m finetune --preset smollm2-135m`.")
        return Description(
            model=gen.base_model,
            adapter=str(gen.adapter_dir) if gen.adapter_dir else None,
            run=gen.adapter_dir.parent.name if gen.adapter_dir else None,
            has_adapter=gen.has_adapter,
            chunks=self.retriever.count() if self.retriever is not None else None,
            store_error=self.store_error,
            specialty=specialty,
            hints=hints,
        )

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
        cancel: threading.Event | None = None,
        user_id: str | None = None,
    ) -> AnswerStream:
        """Answer one question; see the module docstring for the steps. ``user_id`` (:mod:`assistant.chat.users`)
        adds that user's own uploads to the passages searched (see :meth:`compose_turn`).

        Screening, retrieval and composing happen here; generation starts when the stream is read. ``cancel``:
        set it (from any thread) to stop the generation, as :meth:`AnswerStream.cancel` does.

        Raises:
            EmptyQuestionError: the question is empty (checked by :func:`~assistant.prompts.compose`).
        """
        s, gen = self.settings, self.generator
        answer = Answer(
            question=question,
            model=gen.base_model,
            adapter=str(gen.adapter_dir) if gen.adapter_dir and use_adapter else None,
        )
        started = time.perf_counter()
        turns = [m.get("content", "") for m in history if m.get("role") == "user"] + [question]
        safety = screen_conversation(turns, s)
        answer.screen_ms = (time.perf_counter() - started) * 1000
        answer.emergency, answer.flags = safety.emergency, list(safety.categories)
        answer.urgency, answer.category, answer.trigger = safety.urgency, safety.category, safety.trigger
        answer.screening = {k: v for k, v in safety.to_json().items() if k not in ("emergency", "message")}
        comp, hits, answer.retrieval_ms = self.compose_turn(
            question,
            history,
            use_rag=use_rag,
            top_k=top_k,
            max_new_tokens=max_new_tokens,
            user_id=user_id,
            generator=gen,
        )
        if use_rag and self.retriever is None:
            answer.flags.append("no_store")
        if use_rag and not any(h.score >= s.min_score for h in hits):
            answer.flags.append("no_support")
        if comp.question_trimmed:
            answer.flags.append("question_trimmed")
        answer.notices = [safety.message] if safety.message else []  # emergency advice, or the amber notice
        answer.notices += [NO_SUPPORT] if "no_support" in answer.flags else []
        answer.notices += [TRIMMED] if comp.question_trimmed else []
        sentences = PassageSentences()
        if comp.passages and self.retriever is not None:
            started = time.perf_counter()
            sentences = PassageSentences.from_passages(comp.passages)
            answer.evidence = select_evidence(
                comp.question,
                comp.passages,
                self.retriever.embed_model,
                sentences=sentences,
                reranker=getattr(self.retriever, "reranker", None),
            )
            answer.evidence_ms = (time.perf_counter() - started) * 1000
        generation = gen.stream(
            comp.messages,
            temperature=s.temperature if temperature is None else temperature,
            max_new_tokens=max_new_tokens or s.max_new_tokens,
            repetition_penalty=s.repetition_penalty,
            use_adapter=use_adapter,
            seed=seed,
            cancel=cancel,
        )

        def pieces() -> Iterator[str]:
            prefix = notice_prefix(answer.notices)
            generated, finished = [], False
            try:
                if prefix:
                    yield prefix
                for piece in generation:
                    generated.append(piece)
                    yield piece
                finished = True
            finally:
                if not finished:  # closed early (rerun, closed tab): free the torch thread
                    generation.close()
            stats = generation.stats
            if stats.cancelled:
                answer.flags.append("cancelled")
            answer.text = answer.generated_text = "".join(generated).strip()
            answer.sources = select_sources(
                answer.text, comp.passages, s.min_score, quoted=[e.number for e in answer.evidence]
            )
            answer.ttft_ms = stats.ttft_s * 1000 + answer.retrieval_ms + answer.screen_ms + answer.evidence_ms
            if sentences.sentences:
                cited = [src.number for src in answer.sources] if _MARKER.search(answer.text) else []
                answer.groundedness = groundedness(
                    answer.generated_text, sentences, self.retriever.embed_model, cited
                )
                if answer.groundedness is not None and answer.groundedness < LOW_GROUNDEDNESS:
                    answer.flags.append("low_groundedness")
                    answer.notices.append(LOW_NOTICE)
            apply_number_check(answer, comp.passages, s.number_check)
            answer.tokens_per_s, answer.new_tokens, answer.stopped = (
                stats.tokens_per_s,
                stats.new_tokens,
                stats.stopped,
            )

        return AnswerStream(pieces(), answer, generation)
