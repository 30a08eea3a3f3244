"""Data that outlives its owner (issue #25): uploads from before per-user stores are moved to their owner or deleted
at start, the retention purge runs while the chat runs, users' stores and rendered pages are owner-only, and logs
hold no question or passage text. Real PDFs, real Chroma stores, the bundled models and the sandboxed child."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from assistant.chat.history import ChatHistory
from assistant.chat.library import retrieve_for_user
from assistant.chat.retention import PurgeReport, RetentionTimer, migrate_flat_uploads, purge_expired
from assistant.chat.uploads import (
    add_upload,
    list_uploads,
    upload_path,
    user_store_settings,
    user_uploads_dir,
)
from assistant.chat.users import local_user_id
from assistant.rag import store as st
from assistant.rag.ingest import ingest_paths
from assistant.rag.render import SourceFileError, find_pdf, render_page
from tests.helpers import PREGNANCY_PAGES, make_settings, pdf_bytes, write_pdf

LETTER = ["Zorblax letter: the patient in room 12 takes 40 mg of zorblax twice a day for her migraine."]
ALICE, BOB = "oidc:https://id.example|alice", "oidc:https://id.example|bob"
DAY = 86_400.0


def files_in(settings) -> dict[str, set]:
    """file name -> {uploaded flags} of the chunks in the settings' collection."""
    data = st.open_collection(settings, client=st.open_client(settings, fresh=True)).get(
        include=["metadatas"]
    )
    found: dict[str, set] = {}
    for meta in data["metadatas"]:
        found.setdefault(meta["file"], set()).add(bool(meta.get("uploaded", False)))
    return found


def legacy_home(tmp_path: Path):
    """A home as a chat from before per-user stores left it: a curated guideline, plus an upload saved flat as
    ``uploads/letter.pdf`` and ingested into the curated store, plus a chunk marked ``uploaded`` there."""
    settings = make_settings(
        tmp_path / "home", specialty="pregnancy", data_dir=str(tmp_path / "data"), retention_days=0
    )
    guide = write_pdf(settings.data_dir / "corpora" / "pregnancy" / "nutrition_guide.pdf", PREGNANCY_PAGES)
    letter = write_pdf(settings.uploads_dir / "letter.pdf", [LETTER])
    ingest_paths([guide, letter], settings, specialty="pregnancy")  # what the chat's upload button did then
    marked = write_pdf(tmp_path / "elsewhere" / "marked.pdf", [["Marked as uploaded, in the curated store."]])
    ingest_paths([marked], settings, specialty="uploads", uploaded=True)
    assert set(files_in(settings)) == {"nutrition_guide.pdf", "letter.pdf", "marked.pdf"}
    return settings


def test_the_page_view_never_serves_the_flat_uploads_folder(tmp_path):
    """Before: find_pdf looked in ``<home>/uploads/``, so anyone naming a flat old upload saw its pages."""
    settings = make_settings(tmp_path / "home", specialty="pregnancy", data_dir=str(tmp_path / "data"))
    write_pdf(settings.uploads_dir / "letter.pdf", [LETTER])
    with pytest.raises(SourceFileError, match="can't be shown: the file is not in"):
        find_pdf("letter.pdf", settings)
    guide = write_pdf(settings.data_dir / "corpora" / "pregnancy" / "guide.pdf", PREGNANCY_PAGES)
    assert find_pdf("guide.pdf", settings) == guide.resolve()


@pytest.mark.slow
def test_old_flat_uploads_become_the_local_owners_when_the_chat_starts(tmp_path, caplog):
    """Single-user mode: the service's start moves ``uploads/letter.pdf`` into the local owner's folder and own
    store, removes every old upload's passages from the curated store, and says so in one log line."""
    from assistant.chat.service import ChatService

    settings = legacy_home(tmp_path)
    owner = local_user_id()
    with caplog.at_level(logging.INFO, logger="assistant"):
        service = ChatService.from_settings(settings, single_user=owner)
    assert files_in(settings) == {
        "nutrition_guide.pdf": {False}
    }  # the curated store holds the guideline only
    assert not list(settings.uploads_dir.glob("*.pdf"))
    assert list_uploads(settings, owner) == ["letter.pdf"]
    assert files_in(user_store_settings(settings, owner)) == {"letter.pdf": {True}}
    assert upload_path(settings, owner, "letter.pdf").read_bytes().startswith(b"%PDF")
    with pytest.raises(SourceFileError):
        find_pdf("letter.pdf", settings)
    lines = [r.getMessage() for r in caplog.records if "before per-user stores" in r.getMessage()]
    assert lines == [
        "Uploads from before per-user stores: 1 files moved to the local owner's own store "
        f"(users/{user_store_settings(settings, owner).home.name}), 0 deleted; 2 of their passages removed from "
        "the curated store"
    ]
    hits = retrieve_for_user("zorblax for migraine", 3, settings, owner, service.assistant.retriever)
    assert hits[0].file == "letter.pdf" and hits[0].uploaded  # hers, from her own store
    others = retrieve_for_user("zorblax for migraine", 3, settings, ALICE, service.assistant.retriever)
    assert not any("zorblax" in h.text.lower() for h in others)  # nobody else's any more
    assert migrate_flat_uploads(settings, owner).moved == 0  # the next start has nothing to do


def test_old_flat_uploads_are_deleted_in_team_mode(tmp_path, caplog):
    """Team mode: nobody knows who uploaded a flat file, so it and its passages are deleted."""
    settings = legacy_home(tmp_path)
    with caplog.at_level(logging.INFO, logger="assistant"):
        report = migrate_flat_uploads(settings, None)
    assert (report.moved, report.deleted, report.curated_passages) == (0, 1, 2)
    assert files_in(settings) == {"nutrition_guide.pdf": {False}}
    assert not list(settings.uploads_dir.iterdir()) and not (settings.home / "users").exists()
    assert any("1 deleted; 2 of their passages removed" in r.getMessage() for r in caplog.records)


def test_retention_purges_chats_uploads_and_stores_while_the_chat_runs(tmp_path):
    """The purge thread, not only the start: a chat and uploads that pass ``retention_days`` while the service
    runs are deleted, with their passages; a user left with nothing loses their store; fresh data stays."""
    settings = make_settings(tmp_path / "home", retention_days=30)
    history = ChatHistory(settings.chats_dir)
    old_chat, new_chat = history.new_session(ALICE), history.new_session(BOB)
    for sid, owner in ((old_chat, ALICE), (new_chat, BOB)):
        history.add(sid, "user", "How much iron?", owner=owner)
    for who, names in ((ALICE, ["old.pdf"]), (BOB, ["old.pdf", "new.pdf"])):
        folder = user_uploads_dir(settings, who)
        pdfs = [write_pdf(folder / n, [[f"{n} of {who}: calcium lowers pre-eclampsia."]]) for n in names]
        ingest_paths(pdfs, user_store_settings(settings, who), specialty="uploads", uploaded=True)
    timer = RetentionTimer(settings, history, every_s=0.2).start()
    try:
        time.sleep(0.5)  # a round or two with nothing past retention: nothing goes
        assert history.exists(old_chat) and list_uploads(settings, ALICE) == ["old.pdf"]
        # 31 days pass (the clock stays; the data ages)
        with sqlite3.connect(history.path) as db:
            db.execute("UPDATE sessions SET updated = updated - ? WHERE id = ?", (31 * DAY, old_chat))
        for who in (ALICE, BOB):
            old = user_uploads_dir(settings, who) / "old.pdf"
            os.utime(old, (old.stat().st_atime - 31 * DAY, old.stat().st_mtime - 31 * DAY))
        runs = timer.runs
        deadline = time.monotonic() + 60
        while timer.runs < runs + 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        timer.stop()
    assert not history.exists(old_chat) and history.exists(new_chat)
    assert list_uploads(settings, ALICE) == [] and not user_store_settings(settings, ALICE).home.exists()
    assert list_uploads(settings, BOB) == ["new.pdf"]
    assert files_in(user_store_settings(settings, BOB)) == {"new.pdf": {True}}  # old.pdf's passages went too
    assert purge_expired(settings, history) == PurgeReport()  # nothing left to do


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.slow
def test_a_users_files_store_and_rendered_pages_are_owner_only(tmp_path):
    """Whatever the umask, a user's upload folder, store (folders and Chroma's files) and rendered pages are
    created ``0700`` / ``0600``, like the chat history. Before: ``users/<key>/store`` was 0755 and chroma.sqlite3
    0644 under umask 022, and the page cache's folders 0755."""
    settings = make_settings(tmp_path / "home", data_dir=str(tmp_path / "data"))
    old = os.umask(0o022)
    try:
        result = add_upload("letter.pdf", pdf_bytes([LETTER]), settings, ALICE)
        assert result.ok, result
        png = render_page(
            upload_path(settings, ALICE, "letter.pdf"),
            1,
            highlight=None,
            cache_dir=settings.cache_dir / "pages",
        )
    finally:
        os.umask(old)
    store_home = user_store_settings(settings, ALICE).home
    folders = [settings.home / "users", store_home, *[p for p in store_home.rglob("*") if p.is_dir()]]
    folders += [settings.uploads_dir, user_uploads_dir(settings, ALICE), png.parent, png.parent.parent]
    files = [p for p in store_home.rglob("*") if p.is_file()] + [
        upload_path(settings, ALICE, "letter.pdf"),
        png,
    ]
    assert any(p.name == "chroma.sqlite3" for p in files)
    assert {str(p): oct(mode(p)) for p in folders if mode(p) != 0o700} == {}
    assert {str(p): oct(mode(p)) for p in files if mode(p) != 0o600} == {}


@pytest.mark.slow
def test_logs_hold_no_question_or_passage_text_at_info(ui_home, caplog):
    """A real answer (screening, retrieval, evidence, generation), a page rendered with a sentence that is not on
    it, and a purge, with every llama-md logger at INFO: no record holds the question or any passage's text.
    Before: the page renderer logged the first 60 characters of the sentence it could not find."""
    from assistant.chat.answer import Assistant
    from assistant.config import load_settings

    settings = load_settings({"home": str(ui_home), "max_new_tokens": 16, "retention_days": 1}, environ={})
    question = "Which vegetables should I eat in the third trimester, says Qwertyuiop?"
    with caplog.at_level(logging.INFO, logger="assistant"):
        bot = Assistant.from_settings(settings, "auto")
        answer = bot.ask(question, seed=0, user_id=ALICE).collect()
        missing = "Zorblax sentence that is on no page of this guide at all, Qwertyuiop."
        render_page(
            ui_home / "corpora" / "pregnancy" / "nutrition_guide.pdf",
            2,
            highlight=missing,
            cache_dir=settings.cache_dir / "pages",
        )
        purge_expired(settings, ChatHistory(settings.chats_dir))
    assert answer.sources
    texts = [question, missing] + [s.text for s in answer.sources] + [e.sentence for e in answer.evidence]
    needles = {t[:30] for t in texts} | {"Qwertyuiop", "vegetables", "Zorblax"}
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert logged  # the loggers did speak (models loaded, ...)
    assert [(n, m) for m in logged for n in needles if n in m] == []
