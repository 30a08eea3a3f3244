"""llama-md: an open specialty medical assistant (library).

Modules: ``config`` (settings), ``models`` (loading generator and embedder), ``doctor`` (environment checks);
``corpora`` (top-level package) holds the corpus manifests. Front-ends (``ingest``, ``finetune``, ``ui``) import
this package; it imports none of them.
"""

__version__ = "0.1.0"
