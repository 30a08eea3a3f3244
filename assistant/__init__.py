"""llama-md: an open specialty medical assistant (the library).

Grouped by the pipeline it implements; imports go one way, top to bottom (``tests/test_layers.py`` holds it):

    cli/            the ``llama-md`` command line (front-end): one module per subcommand
    chat/           the answer path: safety screen -> retrieve -> compose -> generate -> cite; history, uploads
    evaluation/     suites and scoring for base / rag / ft / ft+rag (``benchmarks/`` import these)
    doctor.py       environment checks
    rag/            pdf -> ingest -> store -> retrieve
    finetuning/     presets, data prep, training, guards, report
    topics.py       questions -> topics -> specialty
    config.py models.py adapters.py data.py errors.py torch_thread.py
                    settings, the one place models load, the adapter format, datasets, errors, the torch thread

``corpora/`` (a top-level package) holds the corpus manifests and their loader. Front-ends (``ingest``,
``finetune``, ``ui``, ``benchmarks``) import this package; it imports none of them.
"""

__version__ = "0.1.0"
