"""Ingest never loses work (issue #17): scoped and refusing --prune, --dry-run, unreadable and vanished files,
non-UTF-8 names, one writer at a time, stale chunks of a changed file, and --rebuild under a running retriever."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from assistant.cli.ingest import IngestConfig, main
from assistant.rag import store as st
from assistant.rag.ingest import FILE_PREFIX, ingest_paths
from assistant.rag.lock import StoreLockedError, lock_path, store_lock
from tests.helpers import REPO, make_settings, pdf_bytes, topic_pages, write_pdf


def snapshot(settings) -> tuple[dict[str, str], dict[str, int]]:
    """(file records: name -> sha256, chunks per file in Chroma) of the store."""
    docstore = st.load_docstore(st.docstore_path(settings))
    records = {
        k[len(FILE_PREFIX) :]: d.metadata["file_sha256"]
        for k, d in docstore.docs.items()
        if k.startswith(FILE_PREFIX)
    }
    chunks: dict[str, int] = {}
    for meta in st.open_collection(settings).get(include=["metadatas"])["metadatas"]:
        chunks[meta["file"]] = chunks.get(meta["file"], 0) + 1
    return records, chunks


def assert_consistent(settings) -> None:
    """Docstore and Chroma agree file by file: every record has its chunks, no chunk lacks a record."""
    records, chunks = snapshot(settings)
    assert set(records) == set(chunks), (sorted(records), sorted(chunks))
    docstore = st.load_docstore(st.docstore_path(settings))
    for name in records:
        assert docstore.get_document(FILE_PREFIX + name).metadata["chunks"] == chunks[name], name


@pytest.fixture
def two_folders(tmp_path):
    """A store holding folder a/ (two files, specialty a) and folder b/ (one file, specialty b)."""
    a, b = tmp_path / "a", tmp_path / "b"
    write_pdf(a / "a1.pdf", topic_pages(0, 2))
    write_pdf(a / "a2.pdf", topic_pages(1, 2))
    write_pdf(b / "b1.pdf", topic_pages(2, 2))
    settings = make_settings(tmp_path / "home")
    ingest_paths([a], settings, specialty="a")
    ingest_paths([b], settings, specialty="b")
    return settings, a, b


def test_prune_with_a_wrong_or_missing_path_leaves_the_store_unchanged(tmp_path, two_folders, capsys):
    settings, a, b = two_folders
    before = snapshot(settings)
    assert len(before[0]) == 3
    for wrong in ([tmp_path / "typo"], [tmp_path / "empty"], [a / "nothing.pdf"]):
        (tmp_path / "empty").mkdir(exist_ok=True)
        assert main(IngestConfig(settings, paths=wrong, prune=True)) == 1
        assert snapshot(settings) == before
    assert "--prune refused" in capsys.readouterr().out


def test_prune_removes_only_files_under_the_given_paths(two_folders):
    settings, a, b = two_folders
    (a / "a2.pdf").unlink()
    report = ingest_paths([a], settings, prune=True)
    assert [f.file for f in report.files if f.status == "pruned"] == ["a2.pdf"]
    assert set(snapshot(settings)[0]) == {"a1.pdf", "b1.pdf"}  # b/ was not given: untouched
    assert_consistent(settings)


def test_dry_run_lists_adds_replaces_and_removals_and_writes_nothing(two_folders, capsys):
    settings, a, b = two_folders
    (a / "a2.pdf").unlink()
    write_pdf(a / "a1.pdf", topic_pages(5, 1))  # changed
    write_pdf(a / "a3.pdf", topic_pages(6, 1))  # new
    before = snapshot(settings)
    assert main(IngestConfig(settings, paths=[a], prune=True, dry_run=True)) == 0
    out = capsys.readouterr().out
    assert snapshot(settings) == before
    rows = {line.split()[0]: " ".join(line.split()[1:3]) for line in out.splitlines() if ".pdf" in line}
    assert rows == {"a1.pdf": "to replace", "a3.pdf": "to add", "a2.pdf": "to remove"}
    assert "would add 1, replace 1, remove 1" in out


def test_vanished_and_unreadable_files_keep_their_chunks_and_are_reported(tmp_path, two_folders):
    settings, a, b = two_folders
    before_records, before_chunks = snapshot(settings)
    write_pdf(a / "a1.pdf", topic_pages(7, 2))  # changed, so it is read; a2 vanishes while a1 is ingested

    def vanish(done, total, name):
        if name == "a1.pdf":
            (a / "a2.pdf").unlink()

    report = ingest_paths([a], settings, prune=True, progress=vanish)
    a2 = next(f for f in report.files if f.file == "a2.pdf")
    assert a2.status == "failed" and "vanished" in a2.reason and "kept" in a2.reason
    records, chunks = snapshot(settings)
    assert records["a2.pdf"] == before_records["a2.pdf"] and chunks["a2.pdf"] == before_chunks["a2.pdf"]
    (b / "b1.pdf").write_bytes(pdf_bytes(topic_pages(2, 2))[:300])  # now truncated: unreadable
    report = ingest_paths([b], settings, prune=True)
    assert report.files[0].status == "failed" and "kept" in report.files[0].reason
    assert snapshot(settings)[1]["b1.pdf"] == before_chunks["b1.pdf"]
    assert_consistent(settings)


def test_a_non_utf8_file_name_does_not_stop_the_run(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / os.fsdecode(b"caf\xe9.pdf")).write_bytes(pdf_bytes(topic_pages(0, 1)))
    write_pdf(folder / "z.pdf", topic_pages(1, 1))
    settings = make_settings(tmp_path / "home")
    assert main(IngestConfig(settings, paths=[folder])) == 0
    out = capsys.readouterr().out
    assert "caf\\xe9.pdf" in out and "z.pdf" in out
    assert set(snapshot(settings)[1]) == {"caf\\xe9.pdf", "z.pdf"}
    assert [f.status for f in ingest_paths([folder], settings).files] == ["unchanged", "unchanged"]


def test_a_changed_file_keeps_no_stale_chunks_even_when_its_record_was_lost(tmp_path):
    folder = tmp_path / "in"
    write_pdf(folder / "a.pdf", topic_pages(0, 3))
    settings = make_settings(tmp_path / "home")
    ingest_paths([folder], settings)
    st.docstore_path(settings).unlink()  # what a second writer's docstore save used to do
    write_pdf(folder / "a.pdf", topic_pages(4, 3))  # same chunk ids, new text
    ingest_paths([folder], settings)
    texts = st.open_collection(settings).get(include=["documents"])["documents"]
    assert texts and all("Document 4" in t or "trial 4-" in t for t in texts)
    assert_consistent(settings)


def test_a_second_writer_fails_fast_with_no_wait_naming_the_lock(tmp_path):
    folder = tmp_path / "in"
    write_pdf(folder / "a.pdf", topic_pages(0, 1))
    settings = make_settings(tmp_path / "home")
    with store_lock(settings), pytest.raises(StoreLockedError) as err:
        ingest_paths([folder], settings, wait=False)
    message = str(err.value)
    assert str(lock_path(settings)) in message and f"pid {os.getpid()}" in message and "--no-wait" in message
    assert ingest_paths([folder], settings, wait=False).files[0].status == "ingested"  # released


def test_two_concurrent_ingests_agree_file_by_file(tmp_path, caplog):
    sets = []
    for s in range(2):
        folder = tmp_path / f"set{s}"
        for d in range(3):
            write_pdf(folder / f"s{s}_doc{d}.pdf", topic_pages(3 * s + d, 3))
        sets.append(folder)
    settings = make_settings(tmp_path / "home")
    ingest_paths([sets[0] / "s0_doc0.pdf"], settings)  # the store exists; the model is loaded once
    errors: list[BaseException] = []

    def ingest(folder):
        try:
            ingest_paths([folder], settings, specialty=folder.name)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=ingest, args=(f,)) for f in sets]
    with caplog.at_level("WARNING", logger="assistant.rag.lock"):
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
    assert not errors, errors
    assert_consistent(settings)
    assert set(snapshot(settings)[0]) == {f"s{s}_doc{d}.pdf" for s in range(2) for d in range(3)}


@pytest.mark.slow
def test_two_concurrent_cli_ingests_of_different_specialties_agree_file_by_file(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "ANONYMIZED_TELEMETRY": "False"}
    procs = []
    for s in range(2):
        folder = tmp_path / f"spec{s}"
        for d in range(3):
            write_pdf(folder / f"spec{s}_doc{d}.pdf", topic_pages(3 * s + d, 4))
        cmd = [sys.executable, "-m", "ingest", str(folder), "--home", str(home), "--batch-size", "8"]
        procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-2000:]
    settings = make_settings(home)
    assert_consistent(settings)
    assert len(snapshot(settings)[0]) == 6


@pytest.mark.slow
def test_cli_rebuild_under_a_running_retriever_answers_from_the_new_store(tmp_path):
    from assistant.rag.retrieve import Retriever

    old, new = tmp_path / "old", tmp_path / "new"
    write_pdf(old / "old.pdf", topic_pages(0, 3))
    write_pdf(new / "new.pdf", topic_pages(1, 3))
    settings = make_settings(tmp_path / "home")
    ingest_paths([old], settings)
    retriever = Retriever.from_settings(settings)
    assert {h.file for h in retriever.retrieve("screening for postpartum depression", 3)} == {"old.pdf"}
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "ANONYMIZED_TELEMETRY": "False"}
    cmd = [sys.executable, "-m", "ingest", str(new), "--rebuild", "--home", str(settings.home)]
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, timeout=600)
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    assert {h.file for h in retriever.retrieve("screening for postpartum depression", 3)} == {"new.pdf"}


def test_a_failed_rebuild_keeps_the_old_store(two_folders, tmp_path):
    settings, a, b = two_folders
    before = snapshot(settings)
    generation = st.store_generation(st.open_collection(settings))
    assert main(IngestConfig(settings, paths=[tmp_path / "typo"], rebuild=True)) == 1
    assert snapshot(settings) == before
    assert st.store_generation(st.open_collection(settings)) == generation
    report = ingest_paths([b], settings, rebuild=True)
    assert report.ok and set(snapshot(settings)[0]) == {"b1.pdf"}
    assert st.store_generation(st.open_collection(settings)) == generation + 1
    assert_consistent(settings)
