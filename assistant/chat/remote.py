"""The generator on an OpenAI-compatible server: llama.cpp's ``python -m assistant serve``, vLLM.

The prompt is still composed here: ``messages`` are rendered to text with the local tokenizer of
``settings.generator_model`` and the run's chat template (the adapter chosen as :meth:`Generator.from_settings`
chooses it; only the tokenizer loads, never the weights), then sent to the **completions** endpoint with the run's
stop tokens. The server only decodes, so a chat through it sees the same prompt, byte for byte, as one in-process.

    python -m assistant serve --run .llama-md/runs/RUN          # prints the URL
    LLAMA_MD_GENERATOR_BACKEND=openai LLAMA_MD_GENERATOR_URL=http://127.0.0.1:8080/v1 python -m assistant chat "..."

The API key (:func:`assistant.serving.client_api_key`): the key ``llama-md serve`` recorded for exactly this URL's scheme, host and port
(:func:`assistant.serving.served_key`), else ``OPENAI_API_KEY``, else a placeholder that servers without a key
ignore. It goes to ``generator_url`` and nowhere else: redirects are not followed (a 307 would re-send the key's
request, prompt included, to another host), and ``llama-md doctor`` names the URL.

Differences from the in-process :class:`~assistant.chat.generation.Generator`: llama.cpp's ``repeat_penalty`` looks
at the last 64 tokens, prompt included (ours spares the prompt); ``stats.new_tokens`` is the local tokenizer's count
of the answer (+1 for the stop token), since streamed chunks carry no usage.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from assistant.adapters import DEFAULT_SYSTEM_PROMPT, AdapterInfo
from assistant.chat.generation import GenerationStream, Generator, resolve_adapter
from assistant.config import Settings
from assistant.errors import LlamaMdError
from assistant.models import generator_path, load_tokenizer
from assistant.serving import PLACEHOLDER_API_KEY, client_api_key

logger = logging.getLogger(__name__)


class ServerError(LlamaMdError, ConnectionError):
    """The generator server can't be reached, or doesn't serve the model name llama-md asks for."""


class OpenAIGenerator:
    """The answer path's generator surface (as :class:`Generator`) over an OpenAI-compatible completions endpoint."""

    def __init__(
        self,
        tokenizer,
        *,
        url: str,
        served_model: str,
        served_base_model: str,
        base_model: str,
        adapter_dir: Path | None = None,
        info: AdapterInfo | None = None,
        context_window: int = 2048,
        timeout_s: float = 600.0,
        api_key: str = PLACEHOLDER_API_KEY,
        key_source: str = "no key",
    ) -> None:
        """Connect to ``url`` (e.g. ``http://127.0.0.1:8080/v1``) and check that ``served_model`` is served.

        ``api_key`` is sent to ``url`` only (redirects are not followed); ``key_source`` names it in messages.

        Raises:
            ServerError: nothing answers at ``url``, it refuses the key, redirects, or serves no model named
                ``served_model``.
        """
        from openai import DefaultHttpxClient, OpenAI

        self.tokenizer, self.url = tokenizer, url.rstrip("/")
        self.served_model, self.served_base_model = served_model, served_base_model
        self.base_model, self.adapter_dir, self.info = base_model, adapter_dir, info
        self._context_window = context_window
        self.notices: list[str] = []
        if info is not None and info.chat_template:
            tokenizer.chat_template = info.chat_template
        stops = list(info.stop_tokens) if info else []
        self.stop = [t for t in dict.fromkeys([*stops, tokenizer.eos_token]) if t]
        self.key_source = key_source
        self.client = OpenAI(
            base_url=self.url,
            api_key=api_key,
            timeout=timeout_s,
            max_retries=0,
            http_client=DefaultHttpxClient(follow_redirects=False),  # the key and prompts go to self.url only
        )
        self.served = self.list_models()
        self.check_model(served_model)

    @classmethod
    def from_settings(cls, settings: Settings, adapter: str | Path | None = "auto") -> OpenAIGenerator:
        """The generator at ``settings.generator_url`` with the prompt format of ``adapter`` (see
        :meth:`Generator.from_settings`); loads the tokenizer (and model config) only.

        Raises:
            AdapterError: the adapter is malformed or was trained on another base model.
            ServerError: the server is unreachable or doesn't serve ``settings.served_model``.
        """
        from transformers import AutoConfig

        base, adapter_dir, info, notices = resolve_adapter(settings, adapter)
        source = str(adapter_dir) if info is not None and info.full_model else base
        tokenizer = load_tokenizer(source, settings)
        config = AutoConfig.from_pretrained(generator_path(source, settings))
        api_key, key_source = client_api_key(settings.home, settings.generator_url)
        generator = cls(
            tokenizer,
            api_key=api_key,
            key_source=key_source,
            url=settings.generator_url,
            served_model=settings.served_model,
            served_base_model=settings.served_base_model,
            base_model=base,
            adapter_dir=adapter_dir,
            info=info,
            context_window=int(getattr(config, "max_position_embeddings", 2048)),
        )
        generator.notices = notices
        logger.info("Generator %s at %s as %r", base, generator.url, settings.served_model)
        return generator

    # The surface the answer path reads --------------------------------------------------------------

    @property
    def system_prompt(self) -> str:
        return self.info.system_prompt if self.info and self.info.system_prompt else DEFAULT_SYSTEM_PROMPT

    @property
    def has_adapter(self) -> bool:
        return self.adapter_dir is not None and not (self.info and self.info.full_model)

    @property
    def context_window(self) -> int:
        """Maximum positions of the model (tokens), from its config."""
        return self._context_window

    @property
    def special_tokens(self) -> list[str]:
        """The tokenizer's special and added tokens as strings (e.g. ``<|im_start|>``), sorted."""
        tok = self.tokenizer
        return sorted(set(tok.all_special_tokens) | set(tok.get_added_vocab()))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_text(self, messages: list[dict]) -> str:
        """``messages`` chat-templated to the text sent to the server (generation prompt appended)."""
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def render(self, messages: list[dict]):
        """As :meth:`Generator.render`: input ids of shape (1, T) of :meth:`prompt_text`, on the CPU."""
        return self.tokenizer(self.prompt_text(messages), add_special_tokens=False, return_tensors="pt")

    # Models on the server ---------------------------------------------------------------------------

    def list_models(self) -> list[str]:
        """The model names the server serves (``GET /v1/models``).

        Raises:
            ServerError: nothing answers at the URL, or it refuses the key or redirects.
        """
        import openai

        try:
            return sorted(m.id for m in self.client.models.list())
        except (openai.APIConnectionError, openai.APIStatusError) as exc:
            raise self._unreachable(exc) from exc

    def check_model(self, name: str) -> None:
        """Raise unless the server serves ``name`` (llama-cpp-python answers an unknown name with its default
        model, silently, so the name is checked here).

        Raises:
            ServerError: ``name`` is not among the served models (they are listed).
        """
        if name not in self.served:
            self.served = self.list_models()  # the server may have been restarted with other models
        if name not in self.served:
            raise ServerError(
                f"The generator server at {self.url} does not serve a model named {name!r}; it serves "
                f"{self.served}. Fix: start it with `python -m assistant serve` (it serves the run as "
                "'llama-md' and the base as 'llama-md-base'), or set LLAMA_MD_SERVED_MODEL / "
                "LLAMA_MD_SERVED_BASE_MODEL to one of the served names."
            )

    def _unreachable(self, exc: Exception) -> ServerError:
        status = getattr(exc, "status_code", None)
        if status in (401, 403):
            return ServerError(
                f"The generator server at {self.url} refused the API key (HTTP {status}; sent: {self.key_source}). "
                "Fix: set OPENAI_API_KEY to the key the server was started with (`llama-md serve` prints it), or "
                "start the server again with this home so the chat finds its key."
            )
        if status is not None and 300 <= status < 400:
            return ServerError(
                f"The generator server at {self.url} answered with a redirect (HTTP {status}) to "
                f"{exc.response.headers.get('location', 'another address')}; llama-md sends the API key and the "
                "prompts to the configured URL only. Fix: set LLAMA_MD_GENERATOR_URL to the address it redirects to."
            )
        return ServerError(
            f"Could not reach the generator server at {self.url} ({exc}). Fix: start it with "
            "`python -m assistant serve` and set LLAMA_MD_GENERATOR_URL to the URL it prints, or set "
            "LLAMA_MD_GENERATOR_BACKEND=transformers to generate in-process."
        )

    # Generation -------------------------------------------------------------------------------------

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
    ) -> GenerationStream:
        """Generate an answer to ``messages`` on the server, streamed (arguments as :meth:`Generator.stream`).

        ``use_adapter=False`` asks for ``served_base_model`` (compare mode). Setting ``cancel``, or closing the
        iterator early, closes the HTTP response; the server notices at its next token and stops decoding.

        Returns:
            A :class:`GenerationStream`; its ``stats.stopped`` is True when the server reports
            ``finish_reason == "stop"`` (a stop token or string, not ``max_new_tokens``).

        Raises:
            ServerError: the server is unreachable or doesn't serve the model name (on first iteration).
        """
        return GenerationStream(
            lambda stream: self._generate(
                stream, messages, temperature, max_new_tokens, repetition_penalty, use_adapter, seed
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
    ) -> Iterator[str]:
        import openai

        stats, cancel = stream.stats, stream.cancel_event
        if cancel.is_set():  # cancelled before the first read: nothing to send
            stats.cancelled = True
            return
        started = time.perf_counter()
        model = self.served_model if use_adapter else self.served_base_model
        self.check_model(model)
        prompt = self.prompt_text(messages)
        stats.prompt_tokens = self.count_tokens(prompt)
        try:
            response = self.client.completions.create(
                model=model,
                prompt=prompt,
                stream=True,
                max_tokens=max_new_tokens,
                temperature=temperature,
                top_p=0.95 if temperature > 0 else 1.0,
                stop=self.stop,
                seed=seed,
                extra_body={"repeat_penalty": repetition_penalty},
            )
        except (openai.APIConnectionError, openai.APIStatusError) as exc:
            raise self._unreachable(exc) from exc
        pieces: list[str] = []
        try:
            for chunk in response:
                if cancel.is_set():
                    stats.cancelled = True
                    break
                choice = chunk.choices[0] if chunk.choices else None
                if choice is None:
                    continue
                if choice.text:
                    if not stats.ttft_s:
                        stats.ttft_s = time.perf_counter() - started
                    pieces.append(choice.text)
                    yield choice.text
                if choice.finish_reason:
                    stats.stopped = choice.finish_reason == "stop"
        except openai.APIConnectionError as exc:
            raise self._unreachable(exc) from exc
        finally:
            response.close()  # also on GeneratorExit: the server sees the disconnect and stops decoding
            stats.new_tokens = self.count_tokens("".join(pieces)) + int(stats.stopped)
            stats.total_s = time.perf_counter() - started
            if stats.cancelled:
                logger.info(
                    "Generation cancelled after %d new tokens (%.2f s)", stats.new_tokens, stats.total_s
                )

    def generate(self, messages: list[dict], **kwargs) -> str:
        """Non-streaming :meth:`stream`: the whole answer text."""
        return self.stream(messages, **kwargs).text()


def load_generator_backend(
    settings: Settings, adapter: str | Path | None = "auto"
) -> Generator | OpenAIGenerator:
    """The generator ``settings.generator_backend`` names: in-process transformers, or the server at
    ``settings.generator_url``.

    Raises:
        AdapterError, ModelUnavailableError: as :meth:`Generator.from_settings`.
        ServerError: as :meth:`OpenAIGenerator.from_settings`.
    """
    if settings.generator_backend == "openai":
        return OpenAIGenerator.from_settings(settings, adapter)
    return Generator.from_settings(settings, adapter)
