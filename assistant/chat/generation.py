"""Streaming generation with the base model, optionally with a fine-tuned LoRA adapter on top.

The adapter's ``llama-md.json`` (see :mod:`assistant.adapters`) supplies the chat template, system prompt and
stop tokens used in training, so inference renders prompts exactly as the model was tuned on them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from concurrent.futures import Future
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from assistant import torch_thread
from assistant.adapters import (
    DEFAULT_SYSTEM_PROMPT,
    AdapterError,
    AdapterInfo,
    check_base_model,
    select_adapter,
)
from assistant.config import EMBEDDED_GENERATOR, Settings
from assistant.errors import LlamaMdError
from assistant.models import load_generator, repetition_penalty_processors, resolve_model_id

logger = logging.getLogger(__name__)


class GenerationTimeoutError(LlamaMdError, TimeoutError):
    """The model wrote nothing for the stream's ``timeout_s``; the generation was cancelled (the message says so)."""


@dataclass
class GenerationStats:
    """Timings of one generation: ``ttft_s`` from call to first text, ``tokens_per_s`` over the decode phase."""

    prompt_tokens: int = 0
    new_tokens: int = 0
    ttft_s: float = 0.0
    total_s: float = 0.0
    stopped: bool = False  # ended on a stop token (not on max_new_tokens)
    cancelled: bool = False  # cancelled (cancel(), the reader left, a timeout): stopped early or never ran

    @property
    def tokens_per_s(self) -> float:
        decode_s = self.total_s - self.ttft_s
        return (self.new_tokens - 1) / decode_s if self.new_tokens > 1 and decode_s > 0 else 0.0


class GenerationStream:
    """One generation's text, piece by piece as the model writes it; ``stats`` is complete once it has ended.

    Nothing runs before the first iteration, and the stream is read once: ``for piece in stream`` or
    :meth:`text`. The stats travel with the stream, so two generations never share (or overwrite) one record.

    Cancelling: :meth:`cancel` (from any thread) stops the generation within one token; the reader then sees the
    stream end. A reader that stops reading (``close()`` on the iterator, which Streamlit's rerun and stop do to
    ``st.write_stream``'s generator, or :meth:`close`) cancels it too, so the torch thread is freed at once. A
    generation cancelled while it still waits for the torch thread never runs.
    """

    def __init__(
        self, run: Callable[[GenerationStream], Iterator[str]], cancel: threading.Event | None = None
    ) -> None:
        self.stats = GenerationStats()
        self.cancel_event = cancel if cancel is not None else threading.Event()
        self._future: Future | None = None  # the torch thread's job, once the stream was first read
        self._pieces = run(self)

    def __iter__(self) -> Iterator[str]:
        yield from self._pieces

    def text(self) -> str:
        """Read the whole stream; the answer's text without surrounding whitespace."""
        return "".join(self).strip()

    def cancel(self) -> None:
        """Stop the generation within one token (or before it starts); safe from any thread, more than once."""
        self.cancel_event.set()

    def close(self) -> None:
        """Cancel and stop reading: what a reader that leaves early calls (``finally: stream.close()``); from
        another thread, while a read is in progress, it only cancels (that read then ends)."""
        self.cancel()
        try:
            self._pieces.close()
        except ValueError:  # being read in another thread: cancel() alone ends that read
            pass
        if self._future is None:  # never read: it will never run
            self.stats.cancelled = True

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the generation's torch job has ended; ``stats`` is then complete.

        Call it from the reading thread (or once it has stopped): a stream never read has no job (True).

        Returns:
            True when no job runs or waits for this stream; False when ``timeout_s`` seconds passed first.
        """
        return self._future is None or not futures.wait([self._future], timeout_s).not_done


def resolve_adapter(
    settings: Settings, adapter: str | Path | None
) -> tuple[str, Path | None, AdapterInfo | None, list[str]]:
    """``(base model id, adapter folder, its AdapterInfo, notices)`` of ``adapter``.

    Args:
        adapter: "auto" = the newest run in ``settings.runs_dir`` that completed and passed its checks
            (:func:`~assistant.adapters.select_adapter`; runs skipped are named in the notices, and with none the
            base model is served), a run or adapter folder (served as given), or None.


    Raises:
        AdapterError: the adapter is malformed or was trained on another base model.
    """
    base = resolve_model_id(settings.generator_model, EMBEDDED_GENERATOR)
    notices: list[str] = []
    if adapter == "auto":
        choice = select_adapter(settings.runs_dir, base)
        adapter_dir, notices = choice.adapter_dir, choice.notices
    else:
        adapter_dir = Path(adapter) if adapter else None
    if adapter_dir is not None and (adapter_dir / "adapter").is_dir():
        adapter_dir = adapter_dir / "adapter"  # a run folder was given
    info = AdapterInfo.load(adapter_dir) if adapter_dir is not None else None
    if info is not None:
        check_base_model(info, base, adapter_dir)
    return base, adapter_dir, info, notices


class Generator:
    """A causal LM (+ optional peft adapter), its tokenizer and the prompt format it was trained with."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        base_model: str,
        adapter_dir: Path | None = None,
        info: AdapterInfo | None = None,
    ) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.base_model, self.adapter_dir, self.info = base_model, adapter_dir, info
        self.notices: list[
            str
        ] = []  # runs adapter="auto" skipped, with the reason, for the front-ends to show
        if info is not None and info.chat_template:
            tokenizer.chat_template = info.chat_template
        stops = list(info.stop_tokens) if info else []
        ids = {tokenizer.convert_tokens_to_ids(t) for t in stops} | {tokenizer.eos_token_id}
        self.stop_token_ids = sorted(i for i in ids if isinstance(i, int) and i != tokenizer.unk_token_id)

    @property
    def system_prompt(self) -> str:
        return self.info.system_prompt if self.info and self.info.system_prompt else DEFAULT_SYSTEM_PROMPT

    @property
    def has_adapter(self) -> bool:
        return self.adapter_dir is not None and not (self.info and self.info.full_model)

    @property
    def special_tokens(self) -> list[str]:
        """Every string this tokenizer turns into a control token, longest first: ``all_special_tokens`` and every
        added token (``get_added_vocab``), flagged ``special`` or not: a template's ``<tool_call>`` or a fine-tune's
        added marker is matched as one token from text all the same. Untrusted text passes these to
        :func:`assistant.untrusted.clean_text` so it can't forge a turn (the served backend uses the same set)."""
        tok = self.tokenizer
        return sorted(set(tok.all_special_tokens) | set(tok.get_added_vocab()), key=lambda t: (-len(t), t))

    @property
    def context_window(self) -> int:
        """Maximum positions of the model (tokens)."""
        return int(getattr(self.model.config, "max_position_embeddings", 2048))

    @classmethod
    def from_settings(
        cls, settings: Settings, adapter: str | Path | None = "auto", *, device: str | None = None
    ) -> Generator:
        """Load the generator of ``settings`` with an adapter.

        Args:
            adapter: as :func:`resolve_adapter` takes it; the adapters "auto" skipped are named in ``notices``.

        Raises:
            AdapterError: the adapter is malformed or was trained on another base model (both named).
            ModelUnavailableError: the base weights can't be loaded.
        """
        base, adapter_dir, info, notices = resolve_adapter(settings, adapter)
        if info is not None and info.full_model:
            model, tokenizer = load_generator(str(adapter_dir), settings, device=device)
        else:
            model, tokenizer = load_generator(base, settings, device=device)
            if info is not None:
                from peft import PeftModel

                try:
                    model = PeftModel.from_pretrained(model, str(adapter_dir)).eval()
                except (OSError, ValueError, RuntimeError) as exc:
                    raise AdapterError(
                        f"Could not apply adapter {adapter_dir}: {exc}. Fix: re-run the fine-tune."
                    ) from exc
        logger.info("Generator %s%s", base, f" + adapter {adapter_dir}" if adapter_dir else " (no adapter)")
        generator = cls(model, tokenizer, base_model=base, adapter_dir=adapter_dir, info=info)
        generator.notices = notices
        return generator

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def render(self, messages: list[dict]):
        """Chat-template ``messages`` into input ids of shape (1, T) on the model's device."""
        ids = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        return {k: v.to(self.model.device) for k, v in ids.items()}

    def stream(
        self,
        messages: list[dict],
        *,
        temperature: float = 0.6,
        max_new_tokens: int = 256,
        repetition_penalty: float = 1.1,
        use_adapter: bool = True,
        seed: int | None = None,
        cancel: threading.Event | None = None,
        timeout_s: float = 600.0,
    ) -> GenerationStream:
        """Generate an answer to ``messages``, streamed.

        Sampling with ``temperature`` (0 = greedy), a ``repetition_penalty`` on the answer's own tokens (see
        :func:`~assistant.models.repetition_penalty_processors`), stopping at any of ``self.stop_token_ids`` or
        after ``max_new_tokens``. ``model.generate`` runs on the torch thread (:mod:`assistant.torch_thread`)
        while the caller reads a ``TextIteratorStreamer``.

        Args:
            cancel: an event that stops the generation within one token once set (a
                :class:`~assistant.chat.cancel.CancelOnEvent` stopping criterion), or before it starts; one is made
                when None. :meth:`GenerationStream.cancel` sets it, and so does a reader that stops reading.
            timeout_s: longest wait for the next piece of text, in seconds. Waiting for a turn belongs in front
                of the generation (:mod:`assistant.chat.queue`), so this only catches a generator that is stuck.

        Returns:
            A :class:`GenerationStream`: iterate it for the text pieces; afterwards its ``stats`` hold the prompt
            and new token counts, time to first text, tokens/s, whether a stop token ended the answer and whether
            it was cancelled.

        Raises:
            GenerationTimeoutError: (while reading) no text for ``timeout_s``; the generation is cancelled first.
        """
        return GenerationStream(
            lambda stream: self._generate(
                stream,
                messages,
                temperature,
                max_new_tokens,
                repetition_penalty,
                use_adapter,
                seed,
                timeout_s,
            ),
            cancel,
        )

    def _generate(
        self,
        stream: GenerationStream,
        messages: list[dict],
        temperature: float,
        max_new_tokens: int,
        repetition_penalty: float,
        use_adapter: bool,
        seed: int | None,
        timeout_s: float,
    ) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        from assistant.chat.cancel import CancelOnEvent

        started = time.perf_counter()
        stats, cancel = stream.stats, stream.cancel_event
        if cancel.is_set():  # cancelled before the first read: nothing to run
            stats.cancelled = True
            return
        inputs = self.render(messages)
        stats.prompt_tokens = int(inputs["input_ids"].shape[1])
        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=timeout_s
        )
        criterion = CancelOnEvent(cancel)
        kwargs = dict(
            **inputs,
            streamer=streamer,
            max_new_tokens=max_new_tokens,
            logits_processor=repetition_penalty_processors(repetition_penalty, stats.prompt_tokens),
            stopping_criteria=StoppingCriteriaList([criterion]),
            eos_token_id=self.stop_token_ids,
            pad_token_id=self.tokenizer.pad_token_id,
            do_sample=temperature > 0,
            **({"temperature": temperature, "top_p": 0.95} if temperature > 0 else {}),
        )
        errors: list[Exception] = []

        def work() -> None:
            # Runs on the torch thread and fills the stats there, so they are complete even when the reader left.
            try:
                if cancel.is_set():  # cancelled while waiting for the torch thread: don't start
                    stats.cancelled = True
                    streamer.end()
                    return
                if seed is not None:
                    torch.manual_seed(seed)
                disable = (
                    self.model.disable_adapter() if (self.has_adapter and not use_adapter) else nullcontext()
                )
                with disable, torch.inference_mode():
                    ids = self.model.generate(**kwargs)
                new = ids[0, stats.prompt_tokens :]
                stats.new_tokens = int(new.shape[0])
                stats.stopped = bool(stats.new_tokens and int(new[-1]) in self.stop_token_ids)
                stats.cancelled = criterion.fired
            except Exception as exc:  # noqa: BLE001 - re-raised in the reader's thread
                errors.append(exc)
                streamer.end()
            finally:
                stats.total_s = time.perf_counter() - started
                if stats.cancelled:  # the server log shows that an abandoned answer stopped, and when
                    logger.info(
                        "Generation cancelled after %d new tokens (%.2f s)", stats.new_tokens, stats.total_s
                    )

        stream._future = torch_thread.submit(work)
        finished = False
        try:
            try:
                for piece in streamer:
                    if piece and not stats.ttft_s:
                        stats.ttft_s = time.perf_counter() - started
                    yield piece
            except queue.Empty:
                cancel.set()
                raise GenerationTimeoutError(
                    f"The model wrote nothing for {timeout_s:g} s (it was busy or stuck), so this answer was "
                    "cancelled. Ask again; if it keeps happening, restart the chat (llama-md ui)."
                ) from None
            stream._future.result()
            finished = True
        finally:
            if not finished:  # the reader left early (GeneratorExit) or failed: free the torch thread
                cancel.set()
        if errors:
            raise errors[0]

    def generate(self, messages: list[dict], **kwargs) -> str:
        """Non-streaming :meth:`stream`: the whole answer text."""
        return self.stream(messages, **kwargs).text()
