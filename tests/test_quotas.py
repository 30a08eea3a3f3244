"""One user cannot starve the others (issue #25): answers waiting per user, upload ingests at once per user and in
total, files and bytes kept per user; past a cap, one sentence and nothing written. Real files, real stores and the
real sandboxed ingest process."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pytest

from assistant.chat.queue import QueueFullError, RequestQueue
from assistant.chat.uploads import add_upload, list_uploads, user_store_settings, user_uploads_dir
from assistant.config import ConfigError
from tests.helpers import PREGNANCY_PAGES, make_settings, pdf_bytes, write_pdf

ALICE, BOB, CAROL = (f"oidc:https://id.example|{n}" for n in ("alice", "bob", "carol"))


def test_settings_hold_the_caps_with_their_defaults_and_refuse_bad_ones(tmp_path):
    settings = make_settings(tmp_path)
    assert (
        settings.queue_max_waiting_per_user,
        settings.upload_max_ingests_per_user,
        settings.upload_max_ingests,
        settings.upload_quota_mb,
    ) == (2, 1, 2, 200)
    with pytest.raises(ConfigError) as err:
        make_settings(
            tmp_path, queue_max_waiting_per_user=0, upload_quota_mb=-1, upload_max_ingests_per_user=3
        )
    text = str(err.value)
    assert "queue_max_waiting_per_user must be > 0, got 0 (LLAMA_MD_QUEUE_MAX_WAITING_PER_USER)" in text
    assert "upload_quota_mb must be > 0, got -1" in text
    assert "upload_max_ingests_per_user (3) must be <= upload_max_ingests (2)" in text


def test_one_user_holds_at_most_two_waiting_places_and_others_still_get_in():
    """Alice's many tabs can't fill the line: her third waiting question is refused with one sentence, while Bob
    still joins. Before: every tab of hers took a place until the whole line (16) was full for everyone."""
    queue = RequestQueue(max_active=1, max_waiting=16, max_waiting_per_user=2)
    generating = queue.join(ALICE)
    first, second = queue.join(ALICE), queue.join(ALICE)
    with pytest.raises(QueueFullError) as err:
        queue.join(ALICE)
    assert str(err.value) == (
        "You have 2 questions waiting for the model already; ask again once one of them is answered."
    )
    bob = queue.join(BOB)
    assert [t.position for t in (generating, first, second, bob)] == [0, 1, 2, 3]
    generating.release()  # her first answer is done: one of hers generates, one waits; she may queue one more
    third = queue.join(ALICE)
    assert third.position == 3 and queue.snapshot().waiting == 3


def test_the_assistant_line_takes_the_per_user_cap_from_the_settings(ui_home):
    from assistant.chat.answer import Assistant
    from assistant.config import load_settings

    settings = load_settings({"home": str(ui_home), "queue_max_waiting_per_user": 1}, environ={})
    bot = Assistant.from_settings(settings, None, use_rag=False)
    assert bot.queue.max_waiting_per_user == 1
    bot.queue.join(ALICE), bot.queue.join(ALICE)
    with pytest.raises(QueueFullError, match="You have 1 question waiting"):
        bot.queue.join(ALICE)


def sandbox_running(fragment: str) -> bool:
    """Whether an `assistant.rag.sandbox` child whose command line mentions ``fragment`` runs now."""
    for entry in Path("/proc").iterdir():
        try:
            cmd = (entry / "cmdline").read_bytes().decode("utf-8", "replace")
        except OSError:
            continue
        if "assistant.rag.sandbox" in cmd and fragment in cmd:
            return True
    return False


@pytest.mark.slow
def test_upload_ingests_at_once_are_capped_per_user_and_in_total(tmp_path):
    """While Alice's upload is being read (a real sandboxed child), her second is refused (one per user) and, with
    one place in total, Bob's too; both are refused with one sentence and leave nothing behind. Once hers is done,
    Bob's goes through. Before: every upload started its own child at once (each maps ~1.5 GiB)."""
    settings = make_settings(tmp_path / "home", upload_max_ingests=1, upload_max_ingests_per_user=1)
    guide = pdf_bytes([PREGNANCY_PAGES[:1]])
    results = []
    reading = threading.Thread(target=lambda: results.append(add_upload("guide.pdf", guide, settings, ALICE)))
    reading.start()
    deadline = time.monotonic() + 60
    while not sandbox_running(str(user_uploads_dir(settings, ALICE))) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert reading.is_alive(), results
    second = add_upload("second.pdf", guide, settings, ALICE)
    bobs = add_upload("bob.pdf", guide, settings, BOB)
    reading.join(180)
    assert results[0].ok, results
    assert second.message == (
        "second.pdf was not added: 1 of your uploads is still being read, the most at once "
        "(upload_max_ingests_per_user); add this one when it is done."
    )
    assert bobs.message == (
        "bob.pdf was not added: 1 upload is being read right now, the most at once (upload_max_ingests); "
        "try again in a minute."
    )
    assert list_uploads(settings, ALICE) == ["guide.pdf"] and list_uploads(settings, BOB) == []
    assert add_upload("bob.pdf", guide, settings, BOB).ok  # the place is free again


def test_files_and_bytes_kept_per_user_are_capped(tmp_path):
    """Past a user's quota of files or MiB, an upload is refused with one sentence before anything is written or
    read; other users are not affected. Before: no quota, one user could fill the server's disk."""
    settings = make_settings(tmp_path / "home", upload_max_files_per_user=2, upload_quota_mb=1)
    folder = user_uploads_dir(settings, ALICE)
    write_pdf(folder / "one.pdf", PREGNANCY_PAGES)
    (folder / "big.pdf").write_bytes(b"%PDF-1.4\n" + b"0" * (900 * 1024))  # an earlier upload, 0.9 MiB
    result = add_upload("three.pdf", pdf_bytes([PREGNANCY_PAGES[:1]]), settings, ALICE)
    assert result.message == (
        "three.pdf was not added: you keep 2 uploaded files already, the most allowed "
        "(upload_max_files_per_user); delete yours with 'Delete my data' first."
    )
    (folder / "one.pdf").unlink()
    big = pdf_bytes([PREGNANCY_PAGES[:1]]) + b"%" + b"0" * (200 * 1024)
    result = add_upload("two.pdf", big, settings, ALICE)
    assert not result.ok and "over your quota of 1 MiB (upload_quota_mb)" in result.message, result
    assert result.message.startswith("two.pdf was not added: your uploads would take 1.1 MiB")
    assert list_uploads(settings, ALICE) == ["big.pdf"]  # nothing written
    assert not user_store_settings(settings, ALICE).store_dir.exists()  # nothing read
    small = dataclasses.replace(settings, upload_quota_mb=1)
    assert add_upload("letter.pdf", pdf_bytes([["A short letter."]]), small, BOB).ok  # Bob's own quota
