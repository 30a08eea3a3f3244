"""Training data: load any supported dataset, clean it, split it, and render completion-only examples.

Steps (every drop is counted in :class:`DataCounts`):

1. :func:`assistant.data.load_table` + :func:`assistant.data.to_pairs` (schema detection: instruction,
   chatbot, qa, prompt, messages; an unknown schema lists the columns and the known schemas).
   With ``--task rag``: :func:`rag_task_pairs` (RAG pairs from MedQuAD + patient-doctor pairs, shuffled).
2. Remove rows whose question or answer is empty, then exact duplicates of (question, answer).
3. Optionally keep one specialty's questions (:func:`filter_specialty`).
4. Seeded split: ``eval_samples`` rows (or ``eval_fraction``) held out, the rest capped at ``max_samples``.
5. Render each pair with the model's chat template under one system prompt; labels are -100 on the prompt
   (system + user + assistant header) and the token ids on the answer **including the end-of-turn token**
   (completion-only loss). Longer sequences are truncated to ``max_seq_length`` and counted.

:func:`check_end_of_turn` is the pre-flight check: it shows which tokens of one rendered example carry loss
and refuses to train when the end-of-turn token carries none (the "model never stops" bug: trl #1623,
unsloth #416, LlamaFactory #7943).
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from assistant.adapters import DEFAULT_SYSTEM_PROMPT
from assistant.data import DatasetError, Pair, load_table, to_pairs
from assistant.errors import LlamaMdError

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
"""Label value that carries no loss (PyTorch CrossEntropyLoss ``ignore_index``)."""
SPECIALTY_MIN_SIMILARITY = 0.10
"""Cosine similarity (question vs specialty description, all-MiniLM-L6-v2) a question needs for --specialty.
Set on hand-written questions: on-topic pregnancy / chest-pain questions scored 0.12-0.36 for their specialty,
eye / ankle / skin questions at most 0.05 for any (tests/test_finetune_data.py)."""


class DataPrepError(LlamaMdError, ValueError):
    """The data can't be trained on (empty after filtering, no loss on the end-of-turn token, ...)."""


@dataclass
class DataCounts:
    """What happened to the rows, in order."""

    rows: int = 0
    empty: int = 0
    duplicates: int = 0
    other_specialty: int = 0
    eval: int = 0
    over_max_samples: int = 0
    train: int = 0
    truncated: int = 0
    train_tokens: int = 0
    eval_tokens: int = 0
    mixed: int = 0
    rag: dict = field(
        default_factory=dict
    )  # --task rag: RagCounts (evaluation-overlap drops, abstain, positions)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PreparedData:
    """Tokenized train/eval sets (columns ``input_ids``, ``labels``) and what is needed to report on them."""

    train: Dataset
    eval: Dataset
    eval_pairs: list[Pair]
    system_prompt: str
    schema: str
    counts: DataCounts
    preview: str = ""
    fold_system: bool = False
    sources: dict[str, str] = field(default_factory=dict)


def clean_pairs(pairs: list[Pair], counts: DataCounts) -> list[Pair]:
    """Drop pairs with an empty question or answer, then exact (question, answer) duplicates; counts both."""
    kept, seen = [], set()
    for pair in pairs:
        if not pair.question or not pair.answer:
            counts.empty += 1
            continue
        key = (pair.question, pair.answer)
        if key in seen:
            counts.duplicates += 1
            continue
        seen.add(key)
        kept.append(pair)
    return kept


def split_pairs(
    pairs: list[Pair], *, eval_fraction: float, eval_samples: int | None, seed: int
) -> tuple[list[Pair], list[Pair]]:
    """Seeded shuffle, then ``(train, eval)``; eval has ``eval_samples`` rows or ``round(eval_fraction * n)``."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_eval = eval_samples if eval_samples is not None else round(eval_fraction * len(pairs))
    n_eval = min(n_eval, max(len(pairs) - 1, 0))
    shuffled = [pairs[i] for i in order]
    return shuffled[n_eval:], shuffled[:n_eval]


def filter_specialty(pairs: list[Pair], specialty: str, settings) -> list[Pair]:
    """Keep the pairs whose question is closest to ``specialty``'s corpus description.

    Same measure as the topics step (:mod:`assistant.topics`): cosine similarity of the question's embedding with
    each specialty's ``description`` (``corpora/*.toml``). A pair is kept when ``specialty`` is the most similar
    one and the similarity is at least :data:`SPECIALTY_MIN_SIMILARITY`. Single questions score far lower than the
    topic centroids the topics step compares (0.12-0.36 vs 0.34-0.48), hence the lower threshold.
    """
    import numpy as np

    from assistant.models import load_embedder
    from corpora import check_specialty, specialty_descriptions

    check_specialty(specialty)
    names, descriptions = zip(*specialty_descriptions().items(), strict=True)
    embedder = load_embedder(None, settings)
    questions = embedder.encode([p.question for p in pairs], normalize_embeddings=True, batch_size=64)
    labels = embedder.encode(list(descriptions), normalize_embeddings=True)
    sims = np.asarray(questions) @ np.asarray(labels).T  # (N, S)
    best = sims.argmax(axis=1)
    target = names.index(specialty)
    return [
        p
        for p, b, row in zip(pairs, best, sims, strict=True)
        if b == target and row[b] >= SPECIALTY_MIN_SIMILARITY
    ]


def chat_messages(
    system: str, question: str, answer: str | None = None, *, fold_system: bool = False
) -> list:
    """Messages for the chat template; ``fold_system`` puts the system prompt into the user turn instead
    (for templates without a system role, e.g. some Mistral versions)."""
    if fold_system:
        messages = [{"role": "user", "content": f"{system}\n\n{question}" if system else question}]
    else:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return messages


def needs_folded_system(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True when the chat template rejects a system turn (it raises while rendering one)."""
    try:
        tokenizer.apply_chat_template(chat_messages("s", "q", "a"), tokenize=False)
        return False
    except Exception as exc:  # jinja2 raise_exception() -> TemplateError
        logger.warning(
            "Chat template rejects a system turn (%s); the system prompt goes into the user turn", exc
        )
        return True


def render_example(
    tokenizer: PreTrainedTokenizerBase,
    system: str,
    question: str,
    answer: str,
    *,
    fold_system: bool = False,
) -> tuple[list[int], list[int]]:
    """Token ids and completion-only labels of one example.

    The prompt is the template with ``add_generation_prompt=True``; the completion is the rest of the full
    rendering (answer + end-of-turn token + whatever the template adds after it). Both are tokenized without
    extra special tokens (templates write BOS themselves) and concatenated, as trl does for prompt-completion data.

    Returns:
        ``(input_ids, labels)``, both of length T; ``labels`` is -100 on the T_prompt prompt tokens.
    """
    prompt = tokenizer.apply_chat_template(
        chat_messages(system, question, fold_system=fold_system), tokenize=False, add_generation_prompt=True
    )
    full = tokenizer.apply_chat_template(
        chat_messages(system, question, answer, fold_system=fold_system), tokenize=False
    )
    if not full.startswith(prompt):
        raise DataPrepError(
            "The chat template renders the prompt differently with and without the answer, so the answer tokens "
            f"can't be located. Prompt ends {prompt[-80:]!r}; full text starts {full[: len(prompt)][-80:]!r}. "
            "Fix: use the model's own chat template (or a --model whose template is prefix-consistent)."
        )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    return prompt_ids + completion_ids, [IGNORE_INDEX] * len(prompt_ids) + completion_ids


def check_end_of_turn(
    tokenizer: PreTrainedTokenizerBase, input_ids: list[int], labels: list[int], end_of_turn: str
) -> str:
    """Pre-flight check on one rendered example: the end-of-turn token must carry loss.

    Returns:
        A readable preview: the prompt's last tokens, then the loss-carrying tokens in ``[[...]]``.

    Raises:
        DataPrepError: the end-of-turn token is not in the vocabulary or carries no loss in this example.
    """
    eot_id = tokenizer.convert_tokens_to_ids(end_of_turn)
    pieces = []
    for i, (tok, lab) in enumerate(zip(input_ids, labels, strict=True)):
        text = tokenizer.decode([tok])
        if lab != IGNORE_INDEX:
            pieces.append(f"[[{text}]]")
        elif i >= len(input_ids) - 1 or labels[i + 1] != IGNORE_INDEX or i > len(input_ids) - 400:
            pieces.append(text)
    preview = "".join(pieces)
    trained = {t for t, lab in zip(input_ids, labels, strict=True) if lab != IGNORE_INDEX}
    if eot_id is None or eot_id == tokenizer.unk_token_id or eot_id not in trained:
        raise DataPrepError(
            f"Refusing to train: the end-of-turn token {end_of_turn!r} (id {eot_id}) carries no loss in the first "
            f"training example, so the model would never learn to stop (trl #1623, unsloth #416, LlamaFactory "
            f"#7943). Loss-carrying tokens are in [[...]]:\n{preview[-1500:]}\n"
            "Fix: use a chat template that closes the assistant turn with that token, raise --max-seq-length if "
            "the example was truncated, or pass the right --end-of-turn token for this model."
        )
    return preview


def tokenize_pairs(
    tokenizer: PreTrainedTokenizerBase,
    pairs: list[Pair],
    system: str,
    max_seq_length: int,
    *,
    fold_system: bool = False,
) -> tuple[Dataset, int, int]:
    """Render ``pairs`` to a Dataset with ``input_ids`` and ``labels`` truncated to ``max_seq_length``.

    Returns:
        ``(dataset, truncated_count, token_count)``; examples whose truncation left no loss token are dropped
        (and counted as truncated).
    """
    from datasets import Dataset

    ids_col, labels_col, truncated, tokens = [], [], 0, 0
    for pair in pairs:
        ids, labels = render_example(tokenizer, system, pair.question, pair.answer, fold_system=fold_system)
        if len(ids) > max_seq_length:
            truncated += 1
            ids, labels = ids[:max_seq_length], labels[:max_seq_length]
            if all(lab == IGNORE_INDEX for lab in labels):
                continue
        ids_col.append(ids)
        labels_col.append(labels)
        tokens += len(ids)
    return Dataset.from_dict({"input_ids": ids_col, "labels": labels_col}), truncated, tokens


def rag_task_pairs(cfg, settings=None) -> tuple[list[Pair], int, dict]:
    """``--task rag``: RAG pairs from ``cfg.dataset`` plus ``cfg.mix_samples`` pairs of ``cfg.mix_dataset``, shuffled.

    Evaluation sets are read from ``settings.data_dir`` (else the dataset's grandparent folder when it holds
    ``eval/``) and the project's ``assistant/evaluation/data``; see :mod:`assistant.finetuning.rag_data`.

    Returns:
        ``(pairs, mixed, rag_counts)``: the shuffled pairs, how many came from the mix dataset, and the RAG counts.

    Raises:
        RagDataError: MedQuAD file missing or nothing usable; DatasetError: unreadable mix dataset.
    """
    from pathlib import Path

    from assistant.finetuning.rag_data import RagCounts, build_rag_pairs, load_eval_sets, load_medquad

    data_dir = getattr(settings, "data_dir", None)
    if data_dir is None and (Path(cfg.dataset).resolve().parents[1] / "eval").is_dir():
        data_dir = Path(cfg.dataset).resolve().parents[1]
    eval_sets = load_eval_sets(data_dir)
    if not any(s.medquad_ids for s in eval_sets):
        logger.warning(
            "No MedQuAD evaluation set found under %s: RAG pairs are not deduplicated against it", data_dir
        )
    counts = RagCounts()
    top_k = (min(3, cfg.rag_top_k), cfg.rag_top_k)
    pairs = build_rag_pairs(
        load_medquad(cfg.dataset),
        cfg.rag_samples,
        chunk_size=cfg.rag_chunk_size,
        top_k_range=top_k,
        abstain_fraction=cfg.abstain_fraction,
        seed=cfg.seed,
        eval_sets=eval_sets,
        settings=settings,
        counts=counts,
    )
    mixed: list[Pair] = []
    if cfg.mix_samples:
        mixed = clean_pairs(to_pairs(load_table(cfg.mix_dataset))[0], DataCounts())
        random.Random(cfg.seed).shuffle(mixed)
        mixed = mixed[: cfg.mix_samples]
    pairs += mixed
    random.Random(cfg.seed + 1).shuffle(pairs)
    return pairs, len(mixed), asdict(counts)


def prepare_data(cfg, tokenizer: PreTrainedTokenizerBase, end_of_turn: str, settings=None) -> PreparedData:
    """Load, clean, split and tokenize ``cfg.dataset`` for ``tokenizer`` (see the module docstring).

    Raises:
        DatasetError: unreadable dataset or unknown schema (from :mod:`assistant.data`).
        DataPrepError: nothing left to train on, or the pre-flight end-of-turn check failed.
    """
    if getattr(cfg, "task", "chat") == "rag":
        pairs, mixed, rag = rag_task_pairs(cfg, settings)
        schema, counts = "rag", DataCounts(rows=len(pairs), mixed=mixed, rag=rag)
    else:
        table = load_table(cfg.dataset)
        pairs, schema = to_pairs(table)
        counts = DataCounts(rows=len(pairs))
    if schema == "prompt" and "completion" not in table.column_names:
        raise DatasetError(
            f"{cfg.dataset} holds already-formatted 'prompt' text; completion-only loss needs the answer apart. "
            "Fix: provide {prompt, completion} columns, or {question, answer} / chat {messages}."
        )
    pairs = clean_pairs(pairs, counts)
    if cfg.specialty:
        before = len(pairs)
        pairs = filter_specialty(pairs, cfg.specialty, settings)
        counts.other_specialty = before - len(pairs)
    if len(pairs) < 2:
        raise DataPrepError(
            f"Only {len(pairs)} usable rows left in {cfg.dataset} after cleaning "
            f"({counts.empty} empty, {counts.duplicates} duplicates, {counts.other_specialty} other specialty). "
            "Fix: check the dataset's question/answer columns, or drop --specialty."
        )
    systems = Counter(p.system for p in pairs if p.system)
    system = cfg.system_prompt or (systems.most_common(1)[0][0] if systems else DEFAULT_SYSTEM_PROMPT)
    train_pairs, eval_pairs = split_pairs(
        pairs, eval_fraction=cfg.eval_fraction, eval_samples=cfg.eval_samples, seed=cfg.seed
    )
    if cfg.max_samples is not None and len(train_pairs) > cfg.max_samples:
        counts.over_max_samples = len(train_pairs) - cfg.max_samples
        train_pairs = train_pairs[: cfg.max_samples]
    fold = needs_folded_system(tokenizer)
    train, truncated, counts.train_tokens = tokenize_pairs(
        tokenizer, train_pairs, system, cfg.max_seq_length, fold_system=fold
    )
    evalset, eval_truncated, counts.eval_tokens = tokenize_pairs(
        tokenizer, eval_pairs, system, cfg.max_seq_length, fold_system=fold
    )
    counts.truncated, counts.train, counts.eval = truncated + eval_truncated, len(train), len(evalset)
    if len(train) == 0:
        raise DataPrepError(f"No training examples left in {cfg.dataset}; counts: {counts.to_dict()}.")
    preview = check_end_of_turn(tokenizer, train[0]["input_ids"], train[0]["labels"], end_of_turn)
    logger.info("Data %s (schema %s): %s", cfg.dataset, schema, counts.to_dict())
    logger.info("System prompt: %r", system)
    logger.info("First example, loss-carrying tokens in [[...]]:\n%s", preview[-1200:])
    if counts.truncated:
        logger.warning(
            "%d sequences longer than %d tokens were truncated%s",
            counts.truncated,
            cfg.max_seq_length,
            " (--task rag: a cut prompt loses passages; raise --max-seq-length or lower --rag-chunk-size / "
            "--rag-top-k)"
            if schema == "rag"
            else "",
        )
    return PreparedData(train, evalset, eval_pairs, system, schema, counts, preview, fold)
