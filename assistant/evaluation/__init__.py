"""Evaluation of base vs RAG vs fine-tuned vs fine-tuned + RAG on the real evaluation sets, in one report.

Modules: ``suites`` (the sets, sources, licenses, sample sizes), ``metrics`` (ROUGE-L, similarity, coverage,
parsers, run-on turns), ``likelihood`` (option scoring), ``heldout`` (a run's verified held-out pairs),
``runner`` (the variants through the answer path), ``retrieval_suite`` / ``safety_suite`` (retrieval and red-flag
scoring on the written sets in ``data/``; ``benchmarks/`` print them), ``report`` (report.md / report.json / PNGs).
Command line: ``llama-md evaluate``.
"""
