"""Streaming generation with the base model, optionally with a fine-tuned LoRA adapter on top.

The adapter's ``llama-md.json`` (see :mod:`assistant.adapters`) supplies the chat template, system prompt and
stop tokens used in training, so inference renders prompts exactly as the model was tuned on them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
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
from assistant.models import load_generator, repetition_penalty_processors, resolve_model_id

logger = logging.getLogger(__name__)


@dataclass
class GenerationStats:
    """Timings of one generation: ``ttft_s`` from call to first text, ``tokens_per_s`` over the decode phase."""

    prompt_tokens: int = 0
    new_tokens: int = 0
    ttft_s: float = 0.0
    total_s: float = 0.0
    stopped: bool = False  # ended on a stop token (not on max_new_tokens)

    @property
    def tokens_per_s(self) -> float:
        decode_s = self.total_s - self.ttft_s
        return (self.new_tokens - 1) / decode_s if self.new_tokens > 1 and decode_s > 0 else 0.0


class GenerationStream:
    """One generation's text, piece by piece as the model writes it; ``stats`` is complete once it has ended.

    Nothing runs before the first iteration, and the stream is read once: ``for piece in stream`` or
    :meth:`text`. The stats travel with the stream, so two generations never share (or overwrite) one record.
    """

    def __init__(self, run: Callable[[GenerationStats], Iterator[str]]) -> None:
        self.stats = GenerationStats()
        self._pieces = run(self.stats)

    def __iter__(self) -> Iterator[str]:
        yield from self._pieces

    def text(self) -> str:
        """Read the whole stream; the answer's text without surrounding whitespace."""
        return "".join(self).strip()


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
        """Every string this tokenizer turns into a control token, longest first: ``all_special_tokens`` and the
        added tokens flagged ``special`` (``added_tokens_decoder``). Untrusted text passes these to
        :func:`assistant.untrusted.clean_text` so it can't forge a turn."""
        tok = self.tokenizer
        added = {t.content for t in getattr(tok, "added_tokens_decoder", {}).values() if t.special}
        return sorted(set(tok.all_special_tokens) | added, key=lambda t: (-len(t), t))

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
            adapter: "auto" = the newest run in ``settings.runs_dir`` that completed and passed its checks
                (:func:`~assistant.adapters.select_adapter`; runs skipped are named in ``notices``, and with
                none the base model is served), a run or adapter folder (served as given), or None.

        Raises:
            AdapterError: the adapter is malformed or was trained on another base model (both named).
            ModelUnavailableError: the base weights can't be loaded.
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
    ) -> GenerationStream:
        """Generate an answer to ``messages``, streamed.

        Sampling with ``temperature`` (0 = greedy), a ``repetition_penalty`` on the answer's own tokens (see
        :func:`~assistant.models.repetition_penalty_processors`), stopping at any of ``self.stop_token_ids`` or
        after ``max_new_tokens``. ``model.generate`` runs on the torch thread (:mod:`assistant.torch_thread`)
        while the caller reads a ``TextIteratorStreamer``.

        Returns:
            A :class:`GenerationStream`: iterate it for the text pieces; afterwards its ``stats`` hold the prompt
            and new token counts, time to first text, tokens/s and whether a stop token ended the answer.
        """
        return GenerationStream(
            lambda stats: self._generate(
                stats, messages, temperature, max_new_tokens, repetition_penalty, use_adapter, seed
            )
        )

    def _generate(
        self,
        stats: GenerationStats,
        messages: list[dict],
        temperature: float,
        max_new_tokens: int,
        repetition_penalty: float,
        use_adapter: bool,
        seed: int | None,
    ) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        started = time.perf_counter()
        inputs = self.render(messages)
        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600
        )
        kwargs = dict(
            **inputs,
            streamer=streamer,
            max_new_tokens=max_new_tokens,
            logits_processor=repetition_penalty_processors(repetition_penalty, inputs["input_ids"].shape[1]),
            eos_token_id=self.stop_token_ids,
            pad_token_id=self.tokenizer.pad_token_id,
            do_sample=temperature > 0,
            **({"temperature": temperature, "top_p": 0.95} if temperature > 0 else {}),
        )
        result: dict = {}

        def work() -> None:
            if seed is not None:
                torch.manual_seed(seed)
            disable = (
                self.model.disable_adapter() if (self.has_adapter and not use_adapter) else nullcontext()
            )
            try:
                with disable, torch.inference_mode():
                    result["ids"] = self.model.generate(**kwargs)
            except Exception as exc:  # noqa: BLE001 - re-raised in the caller's thread
                result["error"] = exc
                streamer.end()

        future = torch_thread.submit(work)
        stats.prompt_tokens = int(inputs["input_ids"].shape[1])
        for piece in streamer:
            if piece and not stats.ttft_s:
                stats.ttft_s = time.perf_counter() - started
            yield piece
        future.result()
        if "error" in result:
            raise result["error"]
        new = result["ids"][0, stats.prompt_tokens :]
        stats.new_tokens = int(new.shape[0])
        stats.stopped = bool(stats.new_tokens and int(new[-1]) in self.stop_token_ids)
        stats.total_s = time.perf_counter() - started

    def generate(self, messages: list[dict], **kwargs) -> str:
        """Non-streaming :meth:`stream`: the whole answer text."""
        return self.stream(messages, **kwargs).text()
