"""Chat history: owned chats, private files, no lost message under concurrent writers, deletion that really deletes,
and files written by earlier versions."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
import threading
import time
import uuid

import pytest

from assistant.chat.history import ChatAccessError, ChatHistory, make_title
from assistant.chat.users import local_user_id, oidc_user_id
from assistant.errors import LlamaMdError

ALICE = oidc_user_id("https://idp.example", "alice")
BOB = oidc_user_id("https://idp.example", "bob")

# The schema of the release before owners (sessions had no owner, updated or title).
SCHEMA_BEFORE_OWNERS = """
CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    position INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    sources_json TEXT NOT NULL DEFAULT '[]',
    created REAL NOT NULL,
    details_json TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (session_id, position)
);
"""


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_history_survives_a_new_connection(tmp_path):
    history = ChatHistory(tmp_path)
    sid = history.new_session(ALICE)
    assert history.add(sid, "user", "What is anemia?", owner=ALICE) == 0
    assert history.add(sid, "assistant", "Low iron [1].", [{"file": "a.pdf", "page": 3}], owner=ALICE) == 1
    again = ChatHistory(tmp_path)
    assert again.exists(sid) and again.exists(sid, ALICE) and not again.exists("nope")
    assert again.owner_of(sid) == ALICE and again.owner_of("nope") is None
    assert again.messages(sid, owner=ALICE) == [
        {"role": "user", "content": "What is anemia?", "sources": []},
        {"role": "assistant", "content": "Low iron [1].", "sources": [{"file": "a.pdf", "page": 3}]},
    ]


def test_answer_details_come_back_after_a_reload(tmp_path):
    history = ChatHistory(tmp_path)
    sid = history.new_session(ALICE)
    details = {
        "evidence": [
            {"file": "a.pdf", "page": 3, "page_label": "3", "sentence": "Take 60 mg iron.", "score": 0.8}
        ],
        "groundedness": 0.5,
        "unsupported": [{"sentence": "Take 6 mg.", "quantities": ["6 mg"], "replaced_by": None}],
        "flags": ["low_groundedness"],
    }
    history.add(sid, "assistant", "Take 6 mg.", [{"file": "a.pdf", "page": 3}], details, owner=ALICE)
    assert ChatHistory(tmp_path).messages(sid, owner=ALICE) == [
        {"role": "assistant", "content": "Take 6 mg.", "sources": [{"file": "a.pdf", "page": 3}], **details}
    ]


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_the_folder_and_files_are_private_whatever_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        chats = tmp_path / "home" / "chats"
        history = ChatHistory(chats)
        reader = sqlite3.connect(chats / "history.sqlite3")  # an open connection keeps the -wal/-shm files
        try:
            reader.execute("SELECT COUNT(*) FROM sessions").fetchone()
            sid = history.new_session(ALICE)
            history.add(sid, "user", "private question", owner=ALICE)
            assert mode(chats) == 0o700
            for name in ("history.sqlite3", "history.sqlite3-wal", "history.sqlite3-shm"):
                assert mode(chats / name) == 0o600, name
        finally:
            reader.close()
    finally:
        os.umask(old)


def test_an_existing_world_readable_folder_and_file_are_made_private(tmp_path):
    chats = tmp_path / "chats"
    chats.mkdir(mode=0o755)
    os.chmod(chats, 0o755)
    sqlite3.connect(chats / "history.sqlite3").close()
    os.chmod(chats / "history.sqlite3", 0o644)
    ChatHistory(chats)
    assert mode(chats) == 0o700 and mode(chats / "history.sqlite3") == 0o600


def test_the_file_is_in_wal_mode(tmp_path):
    ChatHistory(tmp_path)
    db = sqlite3.connect(tmp_path / "history.sqlite3")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


def _append(chats_dir, sid: str, writer: str, n: int, start, positions) -> None:
    history = ChatHistory(chats_dir)
    start.wait()
    for i in range(n):
        positions.append(history.add(sid, "user", f"{writer}-{i}", owner=ALICE))


def _append_in_process(chats_dir, sid, writer, n, start, queue) -> None:
    positions: list[int] = []
    try:
        _append(chats_dir, sid, writer, n, start, positions)
        queue.put((writer, positions, None))
    except BaseException as exc:  # reported to the test, which fails with it
        queue.put((writer, positions, repr(exc)))


def _check_no_message_lost(history: ChatHistory, sid: str, positions: list[int], n: int) -> None:
    """100 messages at positions 0..99, each writer's in the order it wrote them."""
    assert sorted(positions) == list(range(2 * n))
    contents = [m["content"] for m in history.messages(sid, owner=ALICE)]
    assert len(contents) == 2 * n
    for writer in ("a", "b"):
        assert [c for c in contents if c.startswith(writer + "-")] == [f"{writer}-{i}" for i in range(n)]


def test_two_tabs_writing_one_chat_lose_no_message_threads(tmp_path):
    history = ChatHistory(tmp_path)
    sid = history.new_session(ALICE)
    start, positions, errors = threading.Barrier(2), [], []

    def run(writer):
        try:
            _append(tmp_path, sid, writer, 50, start, positions)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == []
    _check_no_message_lost(history, sid, positions, 50)


def test_two_tabs_writing_one_chat_lose_no_message_processes(tmp_path):
    history = ChatHistory(tmp_path)
    sid = history.new_session(ALICE)
    ctx = multiprocessing.get_context("spawn")
    start, queue = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_append_in_process, args=(tmp_path, sid, w, 50, start, queue)) for w in "ab"]
    for p in procs:
        p.start()
    results = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [error for _, _, error in results] == [None, None]
    _check_no_message_lost(history, sid, [pos for _, got, _ in results for pos in got], 50)


def test_another_owners_chat_is_refused_like_a_missing_one(tmp_path):
    history = ChatHistory(tmp_path)
    sid = history.new_session(ALICE)
    history.add(sid, "user", "Alice's question", owner=ALICE)

    with pytest.raises(ChatAccessError) as theirs:
        history.messages(sid, owner=BOB)
    with pytest.raises(ChatAccessError) as missing:
        history.messages("0" * 32, owner=BOB)
    assert str(theirs.value).replace(sid, "ID") == str(missing.value).replace("0" * 32, "ID")
    assert "new chat" in str(theirs.value).lower()
    assert isinstance(theirs.value, LlamaMdError) and isinstance(theirs.value, PermissionError)

    with pytest.raises(ChatAccessError):
        history.add(sid, "user", "Bob writes here", owner=BOB)
    with pytest.raises(ChatAccessError):
        history.add("0" * 32, "user", "to nowhere", owner=BOB)
    assert history.delete(sid, owner=BOB) is False
    assert history.exists(sid) and not history.exists(sid, BOB) and history.exists(sid, ALICE)
    assert history.messages(sid, owner=ALICE) == [
        {"role": "user", "content": "Alice's question", "sources": []}
    ]
    assert history.sessions(BOB) == []


def test_sessions_lists_only_the_owners_chats_newest_first_with_titles(tmp_path):
    history = ChatHistory(tmp_path)
    long_question = "  What   is the recommended daily dose of iron in pregnancy for a woman with anemia?"
    first, second = history.new_session(ALICE), history.new_session(ALICE)
    bobs = history.new_session(BOB)
    history.add(first, "assistant", "Welcome.", owner=ALICE)  # an answer does not name the chat
    history.add(first, "user", long_question, owner=ALICE)
    history.add(first, "user", "And in the first trimester?", owner=ALICE)  # the first question does
    history.add(second, "user", "Is ibuprofen safe?", owner=ALICE)
    history.add(bobs, "user", "Bob's question", owner=BOB)

    listed = history.sessions(ALICE)
    assert [c.id for c in listed] == [second, first]
    assert listed[0].title == "Is ibuprofen safe?" and listed[0].n_messages == 1
    assert listed[1].n_messages == 3
    assert listed[1].title == make_title(long_question)
    assert listed[1].title.startswith("What is the recommended daily dose of iron")
    assert len(listed[1].title) == 60 and listed[1].title.endswith("…")
    assert all(c.updated >= c.created for c in listed)

    history.add(first, "assistant", "30-60 mg.", owner=ALICE)  # touched last: listed first
    assert [c.id for c in history.sessions(ALICE)] == [first, second]
    assert [(c.id, c.title) for c in history.sessions(BOB)] == [(bobs, "Bob's question")]


def test_delete_removes_only_that_chat_of_its_owner(tmp_path):
    history = ChatHistory(tmp_path)
    gone, kept = history.new_session(ALICE), history.new_session(ALICE)
    for sid in (gone, kept):
        history.add(sid, "user", "q", owner=ALICE)
    assert history.delete(gone, owner=ALICE) is True
    assert history.delete(gone, owner=ALICE) is False  # a second tab deleting it again
    assert not history.exists(gone)
    with pytest.raises(ChatAccessError):
        history.messages(gone, owner=ALICE)
    assert [c.id for c in history.sessions(ALICE)] == [kept]
    db = sqlite3.connect(tmp_path / "history.sqlite3")
    try:
        assert db.execute("SELECT COUNT(*) FROM messages WHERE session_id = ?", (gone,)).fetchone() == (0,)
    finally:
        db.close()


def test_delete_owner_deletes_all_of_that_owners_data_and_nothing_else(tmp_path):
    history = ChatHistory(tmp_path)
    for _ in range(2):
        history.add(history.new_session(ALICE), "user", "alice", owner=ALICE)
    history.new_session(ALICE)  # an empty chat counts too
    bobs = history.new_session(BOB)
    history.add(bobs, "user", "bob", owner=BOB)
    assert history.delete_owner(ALICE) == 3
    assert history.sessions(ALICE) == [] and history.delete_owner(ALICE) == 0
    assert history.messages(bobs, owner=BOB) == [{"role": "user", "content": "bob", "sources": []}]


def test_purge_deletes_chats_not_updated_within_the_retention(tmp_path):
    history = ChatHistory(tmp_path)
    old = history.new_session(ALICE)
    history.add(old, "user", "old question", owner=ALICE)
    between = time.time()
    time.sleep(0.01)
    recent = history.new_session(BOB)
    history.add(recent, "user", "recent question", owner=BOB)

    a_day_later = between + 86_400
    assert history.purge(0, now=a_day_later + 10 * 86_400) == 0  # 0 days: keep forever
    assert history.purge(2, now=a_day_later) == 0  # nothing is 2 days old yet
    assert history.purge(1, now=a_day_later) == 1
    assert not history.exists(old) and history.exists(recent, BOB)
    with pytest.raises(ValueError, match="keep forever"):
        history.purge(-1)


@pytest.mark.parametrize("how", ["delete", "delete_owner", "purge"])
def test_deleted_messages_are_gone_from_the_raw_file(tmp_path, how):
    history = ChatHistory(tmp_path)
    paths = [tmp_path / "history.sqlite3", tmp_path / "history.sqlite3-wal"]
    # An open connection from the start: SQLite keeps the -wal (where the messages are first written) until the
    # last connection closes, as in a running app.
    reader = sqlite3.connect(paths[0])
    reader.execute("SELECT COUNT(*) FROM sessions").fetchone()
    secret, kept_text = f"SECRET-{uuid.uuid4().hex}", f"KEPT-{uuid.uuid4().hex}"
    sid = history.new_session(ALICE)
    history.add(sid, "user", f"My diagnosis is {secret}", owner=ALICE)  # also the chat's title
    history.add(sid, "assistant", f"About {secret}: see page 3.", [{"file": f"{secret}.pdf"}], owner=ALICE)
    time.sleep(0.01)
    kept = history.new_session(BOB)
    history.add(kept, "user", f"Bob asks {kept_text}", owner=BOB)
    try:
        assert secret.encode() in paths[1].read_bytes()  # the check can see a message's bytes

        if how == "delete":
            assert history.delete(sid, owner=ALICE)
        elif how == "delete_owner":
            assert history.delete_owner(ALICE) == 1
        else:
            assert history.purge(1, now=history.sessions(BOB)[0].updated - 0.001 + 86_400) == 1

        raw = b"".join(p.read_bytes() for p in paths if p.exists())
        assert secret.encode() not in raw
        assert kept_text.encode() in raw
    finally:
        reader.close()


def test_a_file_from_before_owners_opens_and_its_chats_belong_to_the_local_user(tmp_path):
    db = sqlite3.connect(tmp_path / "history.sqlite3")
    db.executescript(SCHEMA_BEFORE_OWNERS)
    db.executemany("INSERT INTO sessions VALUES (?, ?)", [("old", 100.0), ("empty", 50.0)])
    db.executemany(
        "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            ("old", 0, "user", "How much folic acid before pregnancy?", "[]", 110.0, "{}"),
            (
                "old",
                1,
                "assistant",
                "400 µg [1].",
                '[{"file": "a.pdf", "page": 1}]',
                120.0,
                '{"groundedness": 1.0}',
            ),
        ],
    )
    db.commit()
    db.close()

    history = ChatHistory(tmp_path)
    me = local_user_id()
    assert history.owner_of("old") == me and history.owner_of("empty") == me
    listed = history.sessions(me)
    assert [(c.id, c.title, c.created, c.updated, c.n_messages) for c in listed] == [
        ("old", "How much folic acid before pregnancy?", 100.0, 120.0, 2),
        ("empty", "", 50.0, 50.0, 0),
    ]
    assert history.messages("old", owner=me) == [
        {"role": "user", "content": "How much folic acid before pregnancy?", "sources": []},
        {
            "role": "assistant",
            "content": "400 µg [1].",
            "sources": [{"file": "a.pdf", "page": 1}],
            "groundedness": 1.0,
        },
    ]
    with pytest.raises(ChatAccessError):
        history.messages("old", owner=ALICE)
    assert history.add("old", "user", "And after?", owner=me) == 2
    assert ChatHistory(tmp_path).owner_of("old") == me  # opening it again changes nothing


def test_a_history_file_from_before_details_opens_and_keeps_its_rows(tmp_path):
    db = sqlite3.connect(tmp_path / "history.sqlite3")
    db.executescript(
        """
        CREATE TABLE sessions (id TEXT PRIMARY KEY, created REAL NOT NULL);
        CREATE TABLE messages (session_id TEXT NOT NULL REFERENCES sessions(id), position INTEGER NOT NULL,
            role TEXT NOT NULL, content TEXT NOT NULL, sources_json TEXT NOT NULL DEFAULT '[]',
            created REAL NOT NULL, PRIMARY KEY (session_id, position));
        INSERT INTO sessions VALUES ('old', 0);
        INSERT INTO messages VALUES ('old', 0, 'user', 'Hi', '[]', 0);
        INSERT INTO messages VALUES ('old', 1, 'assistant', 'Hello [1].', '[{"file": "a.pdf", "page": 1}]', 0);
        """
    )
    db.commit()
    db.close()
    history = ChatHistory(tmp_path)
    me = local_user_id()
    history.add("old", "assistant", "More.", [], {"groundedness": 1.0}, owner=me)
    assert history.messages("old", owner=me) == [
        {"role": "user", "content": "Hi", "sources": []},
        {"role": "assistant", "content": "Hello [1].", "sources": [{"file": "a.pdf", "page": 1}]},
        {"role": "assistant", "content": "More.", "sources": [], "groundedness": 1.0},
    ]
