"""What ``--task rag`` would train on, without training: build, render and tokenize the pairs, print the figures.

    LLAMA_MD_DATA_DIR=../shared python -m benchmarks.rag_data_stats --rag-samples 400 --mix-samples 100
    LLAMA_MD_DATA_DIR=../shared python -m benchmarks.rag_data_stats --rag-chunk-size 254   # the store's chunks

Any ``finetune`` flag is accepted (``--task rag`` is implied). The pairs are those ``python -m finetune`` would
build (:func:`assistant.finetuning.dataprep.rag_task_pairs`), rendered by its ``render_example`` under the chat's
system prompt with the preset's tokenizer. Printed: evaluation-overlap drops per set and reason, abstain share, k and
gold-position histograms, target words, tokens p50/p95/max, truncation at several max_seq_length values, and the
training time per epoch at the measured 239 real tokens/s of the ChatDoctor run (docs/results.md, fine-tuning).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

TOKENS_PER_S = 239  # SmolLM2-135M LoRA on this 2-core CPU, docs/results.md (fine-tuning, the real run)


def main(argv: list[str]) -> int:
    from assistant.adapters import DEFAULT_SYSTEM_PROMPT
    from assistant.cli import build_parser
    from assistant.cli.finetune import config_from_args
    from assistant.config import load_settings
    from assistant.finetuning.dataprep import rag_task_pairs, render_example
    from assistant.finetuning.rag_data import ABSTAIN_ANSWER
    from assistant.models import load_tokenizer
    from assistant.prompts import PASSAGES_HEADER

    cfg = config_from_args(build_parser().parse_args(["finetune", "--task", "rag", *argv]))
    settings = load_settings({"home": str(cfg.home)})
    print(
        f"dataset {cfg.dataset} + {cfg.mix_dataset}; rag_samples {cfg.rag_samples}, mix_samples {cfg.mix_samples}, "
        f"rag_chunk_size {cfg.rag_chunk_size}, rag_top_k {cfg.rag_top_k}, max_seq_length {cfg.max_seq_length}"
    )
    started = time.perf_counter()
    pairs, mixed, rag = rag_task_pairs(cfg, settings)
    print(f"built {len(pairs)} pairs ({mixed} from the mix dataset) in {time.perf_counter() - started:.0f} s")
    print(f"rows {rag['rows']}: dropped as evaluation overlap {rag['overlap']}; per set {rag['dropped']}")
    print(f"  by reason {rag['dropped_by']}; skipped as gold (no answer text) {rag['no_answer_text']}")
    print(
        f"abstain {rag['abstain']}/{rag['pairs']} = {rag['abstain'] / rag['pairs']:.3f}; "
        f"k {dict(sorted(rag['k'].items()))}; gold position {dict(sorted(rag['gold_positions'].items()))}"
    )
    tokenizer = load_tokenizer(cfg.model, settings)
    lengths: dict[str, list[int]] = {"rag": [], "mix": []}
    words = []
    for pair in pairs:
        ids, _ = render_example(tokenizer, DEFAULT_SYSTEM_PROMPT, pair.question, pair.answer)
        is_rag = pair.question.startswith(PASSAGES_HEADER)
        lengths["rag" if is_rag else "mix"].append(len(ids))
        if is_rag and pair.answer != ABSTAIN_ANSWER:
            words.append(len(pair.answer.split()) - 1)  # without the [n]
    every = np.array(lengths["rag"] + lengths["mix"])
    for name, values in (*lengths.items(), ("all", every)):
        values = np.asarray(values)
        if len(values):
            print(
                f"{name}: {len(values)} examples, tokens p50 {np.percentile(values, 50):.0f} "
                f"p95 {np.percentile(values, 95):.0f} max {values.max()} total {values.sum()}"
            )
    print(
        f"target words p50 {np.percentile(words, 50):.0f} p95 {np.percentile(words, 95):.0f} max {max(words)}"
    )
    for limit in sorted({512, 768, 1024, 1536, cfg.max_seq_length}):
        cut = int((every > limit).sum())
        kept = int(np.minimum(every, limit).sum())
        print(
            f"max_seq_length {limit}: {cut} truncated ({cut / len(every):.1%}); {kept} tokens -> "
            f"{kept / TOKENS_PER_S / 60:.1f} min per epoch at {TOKENS_PER_S} tokens/s"
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main(sys.argv[1:]))
