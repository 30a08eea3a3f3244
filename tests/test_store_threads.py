"""Two users' requests at once in one chat process (issue #25): a query never scores with a BM25 row map of another
index, and reopening one user's Chroma store never pulls the client cache out from under another user's store."""

from __future__ import annotations

import threading
import time

from assistant.config import load_settings
from assistant.rag.ingest import ingest_paths
from assistant.rag.retrieve import Retriever
from tests.helpers import topic_pages, write_pdf


def test_a_query_scores_bm25_with_the_row_map_of_the_index_it_ranked_with(tmp_path):
    """One user's query holds its BM25 index while another user's query finds the collection changed and rebuilds
    it: the first query still ranks exactly as it would have alone (its index and its row map belong together)."""
    write_pdf(tmp_path / "in" / "one.pdf", topic_pages(0, 4))
    write_pdf(tmp_path / "in" / "two.pdf", topic_pages(4, 4))
    settings = load_settings({"home": str(tmp_path / "home")}, environ={})
    ingest_paths([tmp_path / "in"], settings, specialty="pregnancy")
    taken, resume = threading.Event(), threading.Event()

    class Held(Retriever):
        """Stops the thread named "first" after it took the BM25 index and before it scores with it."""

        def _with_bm25_only(self, *args):
            if threading.current_thread().name == "first":
                taken.set()
                assert resume.wait(60)
            return super()._with_bm25_only(*args)

    r = Held.from_settings(settings, "convex")
    query = "tetanus toxoid vaccination during pregnancy"
    alone = [(h.file, h.page, h.chunk_id) for h in r.retrieve(query, top_k=8)]
    found: dict = {}
    first = threading.Thread(
        target=lambda: found.update(hits=r.retrieve(query, top_k=8)), name="first", daemon=True
    )
    first.start()
    assert taken.wait(60)
    # another user's question: one chunk left the collection (every later row of the index moves up by one)
    r.collection.delete(ids=[r.collection.get(include=[])["ids"][0]])
    r.retrieve("calcium supplementation lowers pre-eclampsia", top_k=3)  # rebuilds the BM25 index
    resume.set()
    first.join(60)
    assert [(h.file, h.page, h.chunk_id) for h in found["hits"]] == alone


def test_reopening_one_users_store_leaves_another_users_store_usable(tmp_path):
    """User A's upload reopens A's store fresh (``fresh=True``) again and again while user B's requests open and
    read B's store: every one of B's requests succeeds (before: chromadb's whole client cache was cleared, and B's
    client, half built, failed with a KeyError on its own path)."""
    from assistant.rag.store import open_client

    a = load_settings({"home": str(tmp_path / "a")}, environ={})
    b = load_settings({"home": str(tmp_path / "b")}, environ={})
    for store in (a, b):
        open_client(store).get_or_create_collection("llama-md")
    errors: list[str] = []
    done = {"b": 0}
    stop = time.monotonic() + 4.0

    def user_a() -> None:
        while time.monotonic() < stop:
            open_client(a, fresh=True).get_collection("llama-md").count()

    def user_b() -> None:
        while time.monotonic() < stop:
            try:
                open_client(b).get_collection("llama-md").count()
                done["b"] += 1
            except Exception as exc:  # noqa: BLE001 - every failure is the finding
                errors.append(repr(exc))

    threads = [threading.Thread(target=user_a), threading.Thread(target=user_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert done["b"] > 20 and not errors, errors[:3]
