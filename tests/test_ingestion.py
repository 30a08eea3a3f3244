"""Ingest into a real Chroma store in tmp_path: bad inputs, idempotency, changes, pruning, crash safety, server."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.cli.ingest import IngestConfig, main
from assistant.rag.ingest import ingest_paths
from assistant.rag.lock import StoreLockedError, lock_path, store_lock
from assistant.rag.store import StoreError, open_collection
from tests.helpers import REPO, empty_pdf, free_port, make_settings, pdf_bytes, topic_pages, write_pdf


def stored(settings) -> dict[str, dict]:
    """chunk id -> metadata of everything in the collection."""
    data = open_collection(settings).get(include=["metadatas"])
    return dict(zip(data["ids"], data["metadatas"], strict=True))


@pytest.fixture
def bad_folder(tmp_path) -> Path:
    """One good PDF among every kind of bad input."""
    folder = tmp_path / "in"
    write_pdf(folder / "good.pdf", topic_pages(0, 3))
    (folder / "corrupt.pdf").write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 8)
    (folder / "truncated.pdf").write_bytes(pdf_bytes(topic_pages(1, 3))[:400])
    write_pdf(folder / "locked.pdf", topic_pages(2, 1), password="hunter2")
    write_pdf(folder / "scan.pdf", [[], []])
    empty_pdf(folder / "zero.pdf")
    (folder / "notes.txt").write_text("not a pdf")
    (folder / "empty_sub").mkdir()
    return folder


def test_bad_inputs_are_reported_and_never_abort_or_leave_chunks(tmp_path, bad_folder):
    settings = make_settings(tmp_path / "home")
    report = ingest_paths([bad_folder, tmp_path / "missing.pdf", tmp_path / "empty_dir_x"], settings)
    status = {f.file: (f.status, f.reason) for f in report.files}
    assert status["good.pdf"][0] == "ingested"
    assert status["corrupt.pdf"][0] == "failed" and "unreadable" in status["corrupt.pdf"][1]
    assert status["truncated.pdf"][0] == "failed"
    assert status["locked.pdf"][0] == "skipped" and "password" in status["locked.pdf"][1]
    assert status["scan.pdf"][0] == "skipped" and "no text layer" in status["scan.pdf"][1]
    assert status["zero.pdf"][0] == "skipped" and "0 pages" in status["zero.pdf"][1]
    assert status["notes.txt"] == ("skipped", "not a PDF")
    assert status["missing.pdf"] == ("failed", "path does not exist")
    assert status["empty_dir_x"] == ("failed", "path does not exist")
    assert {m["file"] for m in stored(settings).values()} == {"good.pdf"}
    assert report.ok and report.total_chunks == report.ingested[0].chunks_added > 0


def test_empty_folder_and_only_bad_inputs_exit_nonzero(tmp_path, bad_folder, capsys):
    (tmp_path / "empty").mkdir()
    settings = make_settings(tmp_path / "home")
    assert main(IngestConfig(settings, paths=[tmp_path / "empty"])) == 1
    assert "empty folder" in capsys.readouterr().out
    (bad_folder / "good.pdf").unlink()
    assert main(IngestConfig(settings, paths=[bad_folder])) == 1


def test_strict_fails_on_any_failure_and_report_json_is_written(tmp_path, bad_folder):
    settings = make_settings(tmp_path / "home")
    out = tmp_path / "report.json"
    assert main(IngestConfig(settings, paths=[bad_folder], report=out)) == 0
    assert main(IngestConfig(settings, paths=[bad_folder], strict=True)) == 1
    data = json.loads(out.read_text())
    assert data["totals"]["ingested"] == 1 and data["totals"]["failed"] == 2
    good = next(f for f in data["files"] if f["file"] == "good.pdf")
    assert good["pages"] == 3 and good["chunks_added"] == data["totals"]["total_chunks"]


def test_chunks_carry_citation_metadata_and_fit_the_embedder(tmp_path):
    from assistant.models import load_index_embedder

    folder = tmp_path / "in"
    write_pdf(folder / "book.pdf", topic_pages(0, 4, lines_per_page=40), roman_pages=1)
    settings = make_settings(tmp_path / "home", chunk_size=120, chunk_overlap=20)
    ingest_paths([folder], settings, specialty="pregnancy")
    data = open_collection(settings).get(include=["metadatas", "documents"])
    tokenizer = load_index_embedder(None, settings).model.tokenizer
    assert len(data["ids"]) > 4  # 40 lines per page don't fit one 120-token chunk
    for chunk_id, meta, text in zip(data["ids"], data["metadatas"], data["documents"], strict=True):
        assert chunk_id.startswith(f"book.pdf::p{meta['page']}::c")
        assert (
            meta["file"] == "book.pdf" and meta["specialty"] == "pregnancy" and len(meta["file_sha256"]) == 64
        )
        assert meta["page_label"] == ("i" if meta["page"] == 1 else str(meta["page"] - 1))
        # every line of page p names it ("Document 0 page p:", "trial 0-<p-1>-<line>"): the text is that page's
        named = {int(n) + 1 for n in re.findall(r"trial 0-(\d+)-", text)}
        named |= {int(n) for n in re.findall(r"Document 0 page (\d+):", text)}
        assert named == {meta["page"]}, (meta["page"], text[:120])
        assert len(tokenizer.encode(text, add_special_tokens=False)) <= 120


def test_chunk_size_longer_than_the_embedder_reads_is_refused(tmp_path):
    folder = tmp_path / "in"
    write_pdf(folder / "a.pdf", topic_pages(0, 1))
    with pytest.raises(ValueError, match="--chunk-size 254"):
        ingest_paths([folder], make_settings(tmp_path / "home", chunk_size=300))


def test_reingest_is_idempotent_changes_replace_and_prune_removes(tmp_path):
    folder = tmp_path / "in"
    write_pdf(folder / "a.pdf", topic_pages(0, 3))
    write_pdf(folder / "b.pdf", topic_pages(1, 2))
    settings = make_settings(tmp_path / "home")
    first = ingest_paths([folder], settings)
    ids_first = set(stored(settings))
    again = ingest_paths([folder], settings)
    assert [f.status for f in again.files] == ["unchanged", "unchanged"]
    assert again.totals()["chunks_added"] == 0 and set(stored(settings)) == ids_first

    write_pdf(folder / "a.pdf", topic_pages(5, 2))  # changed: 3 pages -> 2 pages, new text
    changed = ingest_paths([folder], settings)
    a = next(f for f in changed.files if f.file == "a.pdf")
    assert a.status == "ingested" and a.chunks_removed == first.files[0].chunks_added
    now = stored(settings)
    assert {m["page"] for m in now.values() if m["file"] == "a.pdf"} == {1, 2}
    texts = open_collection(settings).get(where={"file": "a.pdf"}, include=["documents"])["documents"]
    assert all("Document 5" in t or "trial 5-" in t for t in texts)

    (folder / "b.pdf").unlink()
    pruned = ingest_paths([folder], settings, prune=True)
    assert [f.file for f in pruned.files if f.status == "pruned"] == ["b.pdf"]
    assert {m["file"] for m in stored(settings).values()} == {"a.pdf"}
    rebuilt = ingest_paths([folder], settings, rebuild=True)
    assert rebuilt.files[0].status == "ingested" and set(stored(settings)) == {
        k for k, m in now.items() if m["file"] == "a.pdf"
    }


def test_store_built_with_another_embedding_model_is_refused(tmp_path):
    from assistant.rag.retrieve import Retriever

    folder = tmp_path / "in"
    write_pdf(folder / "a.pdf", topic_pages(0, 1))
    ingest_paths([folder], make_settings(tmp_path / "home"))
    other = make_settings(tmp_path / "home", embedding_model="BAAI/bge-small-en-v1.5")
    for attempt in (lambda: Retriever.from_settings(other), lambda: open_collection(other, create_dim=384)):
        with pytest.raises(StoreError) as err:
            attempt()
        message = str(err.value)
        assert "sentence-transformers/all-MiniLM-L6-v2" in message and "BAAI/bge-small-en-v1.5" in message
        assert "--rebuild" in message
    with pytest.raises(StoreError, match=f"chunk_size={make_settings(tmp_path / 'home').chunk_size}"):
        ingest_paths([folder], make_settings(tmp_path / "home", chunk_size=100, chunk_overlap=10))


def test_missing_store_names_the_ingest_command(tmp_path):
    from assistant.rag.retrieve import Retriever

    with pytest.raises(StoreError, match="python -m ingest --specialty pregnancy"):
        Retriever.from_settings(make_settings(tmp_path / "home", specialty="pregnancy"))


def _ingest_cmd(home: Path, folder: Path) -> list[str]:
    return [sys.executable, "-m", "ingest", str(folder), "--home", str(home), "--batch-size", "4"]


@pytest.mark.slow
def test_kill_9_mid_ingest_then_rerun_equals_one_clean_run(tmp_path):
    folder = tmp_path / "in"
    for doc in range(4):
        write_pdf(folder / f"doc{doc}.pdf", topic_pages(doc, 6, lines_per_page=30))
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "ANONYMIZED_TELEMETRY": "False"}
    crashed = tmp_path / "crashed"
    docstore = crashed / "store" / "docstores" / "llama-md.json"
    proc = subprocess.Popen(
        _ingest_cmd(crashed, folder), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 240
    while not docstore.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the docstore appears once the first file is complete: kill during the second
    assert proc.poll() is None, "ingest finished before it could be killed; make the inputs larger"
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    partial = stored(make_settings(crashed))
    assert 0 < len({m["file"] for m in partial.values()}) < 4

    rerun = subprocess.run(_ingest_cmd(crashed, folder), cwd=REPO, env=env, capture_output=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    clean = tmp_path / "clean"
    assert main(IngestConfig(make_settings(clean), paths=[folder], batch_size=4)) == 0
    crashed_chunks, clean_chunks = stored(make_settings(crashed)), stored(make_settings(clean))
    assert set(crashed_chunks) == set(clean_chunks)
    assert open_collection(make_settings(crashed)).count() == open_collection(make_settings(clean)).count()
    assert all(crashed_chunks[i]["file_sha256"] == clean_chunks[i]["file_sha256"] for i in clean_chunks)


@pytest.mark.slow
def test_ingest_and_retrieve_through_a_chroma_server(tmp_path):
    from assistant.rag.retrieve import Retriever

    chroma = Path(sys.executable).parent / "chroma"
    if not chroma.exists():
        chroma = shutil.which("chroma")
    assert chroma, "the chroma CLI ships with chromadb; reinstall the project"
    port = free_port()
    server = subprocess.Popen(
        [str(chroma), "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        folder = tmp_path / "in"
        write_pdf(folder / "a.pdf", topic_pages(0, 3))
        settings = make_settings(tmp_path / "home")
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "chroma server did not start"
                time.sleep(0.2)
        report = ingest_paths([folder], settings, chroma_url=url)
        assert report.files[0].status == "ingested"
        assert not (settings.store_dir / "chroma.sqlite3").exists()  # nothing went to the embedded store
        again = ingest_paths([folder], settings, chroma_url=url)
        assert again.files[0].status == "unchanged"
        with store_lock(settings, url), pytest.raises(StoreLockedError, match=str(lock_path(settings, url))):
            ingest_paths([folder], settings, chroma_url=url, wait=False)  # one writer per server collection
        retriever = Retriever.from_settings(settings, chroma_url=url)
        hits = retriever.retrieve("screening for postpartum depression", 1)
        assert (hits[0].file, hits[0].page) == ("a.pdf", 3) and "depression" in hits[0].text
        write_pdf(folder / "a.pdf", topic_pages(4, 3))  # changed while the retriever runs
        ingest_paths([folder], settings, chroma_url=url)
        assert all("Document 4" in h.text or "trial 4-" in h.text for h in retriever.retrieve("trial", 3))
    finally:
        server.terminate()
        server.wait(timeout=30)
