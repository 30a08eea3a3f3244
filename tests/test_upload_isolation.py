"""Hostile uploads (issue #15): a fake under a curated file's name, page and inflation bombs, a slow or greedy
ingest, simultaneous same-name uploads, and "delete my data". Real PDFs, the bundled MiniLM, real Chroma stores,
and the real sandboxed child process."""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path

import pytest

from assistant.chat.answer import select_sources
from assistant.chat.library import retrieve_for_user
from assistant.chat.uploads import (
    UploadError,
    add_upload,
    delete_uploads,
    list_uploads,
    save_upload,
    upload_path,
    user_store_settings,
    user_uploads_dir,
)
from assistant.cli.ingest import IngestConfig, main
from assistant.rag import store as st
from assistant.rag.ingest import ingest_paths
from assistant.rag.retrieve import Retriever
from tests.helpers import (
    PREGNANCY_PAGES,
    TOPICS,
    make_settings,
    pdf_bytes,
    shared_stream_pdf_bytes,
    write_pdf,
)

WHO = "WHO_recommendations_maternal_health_2nd_ed_2025.pdf"  # a pregnancy manifest entry
FAKE = pdf_bytes([["Zorblax tablets cure pre-eclampsia in one day, says the World Health Organization."]])
ALICE, BOB = "oidc:https://id.example|alice", "oidc:https://id.example|bob"


def contents(settings) -> dict[str, tuple[str, dict]]:
    """chunk id -> (text, metadata) of the settings' collection."""
    data = st.open_collection(settings, client=st.open_client(settings, fresh=True)).get(
        include=["documents", "metadatas"]
    )
    return {i: (t, m) for i, t, m in zip(data["ids"], data["documents"], data["metadatas"], strict=True)}


def sandbox_children(fragment: str) -> list[int]:
    """Pids of running `assistant.rag.sandbox` processes whose command line mentions ``fragment``."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            cmd = (entry / "cmdline").read_bytes().decode("utf-8", "replace")
        except OSError:
            continue
        if "assistant.rag.sandbox" in cmd and fragment in cmd:
            pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """A curated store holding one real guideline, and a loaded curated retriever."""
    home = tmp_path_factory.mktemp("library")
    settings = make_settings(home, specialty="pregnancy")
    guide = write_pdf(home / "corpus" / "nutrition_guide.pdf", PREGNANCY_PAGES)
    ingest_paths([guide], settings, specialty="pregnancy")
    return settings, Retriever.from_settings(settings)


@pytest.fixture(scope="module")
def alice_fake(library):
    """Alice uploaded a fake under the WHO guideline's file name: (curated store before it, her UploadResult)."""
    before = contents(library[0])
    return before, add_upload(WHO, FAKE, library[0], ALICE)


def test_an_upload_under_a_curated_name_stays_the_uploaders_own(library, alice_fake):
    settings, curated = library
    before, result = alice_fake
    assert result.ok and result.file == WHO and result.chunks == 1, result
    assert "was added to your documents (1 page, 1 passage)" in result.message
    assert (user_uploads_dir(settings, ALICE) / WHO).read_bytes() == FAKE
    assert contents(settings) == before  # the curated store: same ids, texts and metadata

    question = "Do Zorblax tablets cure pre-eclampsia?"
    mine = retrieve_for_user(question, 3, settings, ALICE, curated)
    fake = [h for h in mine if "Zorblax" in h.text]
    assert len(fake) == 1 and fake[0].file == WHO and fake[0].uploaded
    assert fake[0].title == WHO  # its own name, not the manifest's "WHO recommendations ..." title
    assert any(not h.uploaded for h in mine)  # the curated guideline is searched too
    sources = select_sources("", [fake[0]], settings.min_score)
    assert sources and sources[0].uploaded and sources[0].title == WHO

    assert (
        upload_path(settings, ALICE, WHO).read_bytes() == FAKE
    )  # her page view shows her file, not the WHO's
    for who, name in ((BOB, WHO), (ALICE, "../" + WHO), (ALICE, "other.pdf")):
        with pytest.raises(UploadError, match="not one of your uploaded documents"):
            upload_path(settings, who, name)

    theirs = retrieve_for_user(question, 3, settings, BOB, curated)
    assert theirs and not any("Zorblax" in h.text or h.uploaded for h in theirs)
    assert not any("Zorblax" in h.text for h in curated.retrieve(question, 5))


def test_the_answer_path_searches_the_askers_uploads_only(library, alice_fake):
    from assistant.chat.answer import Assistant

    settings = dataclasses.replace(library[0], max_new_tokens=16)
    bot = Assistant.from_settings(settings, adapter=None)
    question = "Do Zorblax tablets cure pre-eclampsia?"
    comp, hits, _ = bot.compose_turn(question, user_id=ALICE)
    assert [h.uploaded for h in comp.passages if "Zorblax" in h.text] == [True]
    for user in (None, BOB):
        comp, hits, _ = bot.compose_turn(question, user_id=user)
        assert hits and not any("Zorblax" in h.text or h.uploaded for h in hits)
    answer = bot.ask(question, user_id=ALICE, seed=0).collect()
    assert [(s.file, s.title) for s in answer.sources if s.uploaded] == [(WHO, WHO)]


def test_the_cli_refuses_a_curated_name_with_other_bytes(library, tmp_path, capsys):
    settings, _ = library
    before = contents(settings)
    fake = tmp_path / WHO
    fake.write_bytes(FAKE)
    assert main(IngestConfig(settings=settings, paths=[fake])) == 1
    out = capsys.readouterr().out
    assert "differs from the manifest" in out and "corpora/pregnancy.toml" in out
    assert contents(settings) == before


def test_a_page_bomb_is_refused_before_it_is_read(library):
    settings, _ = library
    small = dataclasses.replace(settings, upload_max_pages=5, upload_max_chunks=3)
    pages = [[f"Page {p}: " + TOPICS[p % len(TOPICS)]] * 40 for p in range(30)]
    result = add_upload("many_pages.pdf", pdf_bytes(pages), small, ALICE)
    assert not result.ok and result.pages == 30 and result.chunks == 0
    # the page check came first: reading the text would have failed on the chunk cap instead
    assert "30 pages, more than the 5 allowed (upload_max_pages)" in result.message
    assert "many_pages.pdf" not in list_uploads(settings, ALICE)


def test_an_inflation_bomb_is_cut_at_the_chunk_cap_while_the_server_answers(library):
    settings, curated = library
    small = dataclasses.replace(settings, upload_max_chunks=50)
    bomb = shared_stream_pdf_bytes(40, [f"Line {i}: " + TOPICS[i % len(TOPICS)] for i in range(150)])
    assert len(bomb) < 20_000
    user = "local:bomber"
    results = []
    worker = threading.Thread(target=lambda: results.append(add_upload("bomb.pdf", bomb, small, user)))
    worker.start()
    while worker.is_alive() and not sandbox_children("bomb.pdf"):
        worker.join(0.05)
    hits = curated.retrieve("iron and folic acid in pregnancy", 3)  # the server keeps answering meanwhile
    assert hits and sandbox_children("bomb.pdf"), "retrieval should return while the ingest process runs"
    worker.join(120)
    (result,) = results
    assert not result.ok and "more than the limit of 50 (upload_max_chunks)" in result.message, result
    store = user_store_settings(settings, user)
    assert contents(store) == {}  # nothing written
    assert list_uploads(settings, user) == []


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        ({"upload_timeout_s": 1.0}, "longer than the 1 s allowed (upload_timeout_s)"),
        ({"upload_max_memory_mb": 300}, "more than the 300 MiB of memory allowed (upload_max_memory_mb)"),
    ],
)
def test_time_and_memory_limits_stop_the_child(library, alice_fake, limit, expected):
    settings, _ = library
    mine = contents(user_store_settings(settings, ALICE))
    limited = dataclasses.replace(settings, **limit)
    result = add_upload("slow.pdf", pdf_bytes([PREGNANCY_PAGES[:1]]), limited, ALICE)
    assert not result.ok and expected in result.message, result
    assert sandbox_children(str(user_uploads_dir(settings, ALICE))) == []  # the child is gone
    assert list_uploads(settings, ALICE) == [WHO]  # her earlier upload is still there, the failed one is not
    assert contents(user_store_settings(settings, ALICE)) == mine


def test_a_corrupt_upload_is_reported_and_changes_nothing(library, alice_fake):
    settings, _ = library
    before, mine = contents(settings), contents(user_store_settings(settings, ALICE))
    result = add_upload("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog", settings, ALICE)
    assert not result.ok and "broken.pdf was not added: unreadable PDF" in result.message, result
    assert list_uploads(settings, ALICE) == [WHO]
    assert contents(user_store_settings(settings, ALICE)) == mine and contents(settings) == before


def test_simultaneous_same_name_uploads_never_tear(tmp_path):
    inputs = [b"%PDF-1.4\n" + bytes([65 + i]) * (2**20 + i) for i in range(8)]
    barrier = threading.Barrier(len(inputs))
    saved = []

    def upload(data: bytes) -> None:
        barrier.wait()
        saved.append(save_upload("letter.pdf", data, tmp_path))

    threads = [threading.Thread(target=upload, args=(d,)) for d in inputs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(p.name for p in saved) == sorted(["letter.pdf"] + [f"letter-{n}.pdf" for n in range(2, 9)])
    assert sorted(p.read_bytes() for p in saved) == sorted(inputs)  # each file is exactly one input
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in saved)  # no temporary files left


def test_delete_uploads_removes_the_files_and_the_store(library):
    settings, curated = library
    before = contents(settings)
    user = "local:leaving"
    assert add_upload("letter.pdf", FAKE, settings, user).ok
    store = user_store_settings(settings, user)
    assert len(contents(store)) == 1
    assert retrieve_for_user("Zorblax tablets", 3, settings, user, curated)[0].uploaded
    assert delete_uploads(settings, user) == 1
    assert not user_uploads_dir(settings, user).exists() and not store.home.exists()
    assert not any(h.uploaded for h in retrieve_for_user("Zorblax tablets", 3, settings, user, curated))
    assert contents(settings) == before
    assert delete_uploads(settings, user) == 0
