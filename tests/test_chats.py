from assistant.chat.history import ChatHistory


def test_history_survives_a_new_connection(tmp_path):
    history = ChatHistory(tmp_path)
    sid = history.new_session()
    history.add(sid, "user", "What is anemia?")
    history.add(sid, "assistant", "Low iron [1].", [{"file": "a.pdf", "page": 3}])
    again = ChatHistory(tmp_path)
    assert again.exists(sid) and not again.exists("nope")
    assert again.messages(sid) == [
        {"role": "user", "content": "What is anemia?", "sources": []},
        {"role": "assistant", "content": "Low iron [1].", "sources": [{"file": "a.pdf", "page": 3}]},
    ]


def test_answer_details_come_back_after_a_reload(tmp_path):
    history = ChatHistory(tmp_path)
    sid = history.new_session()
    details = {
        "evidence": [
            {"file": "a.pdf", "page": 3, "page_label": "3", "sentence": "Take 60 mg iron.", "score": 0.8}
        ],
        "groundedness": 0.5,
        "unsupported": [{"sentence": "Take 6 mg.", "quantities": ["6 mg"], "replaced_by": None}],
        "flags": ["low_groundedness"],
    }
    history.add(sid, "assistant", "Take 6 mg.", [{"file": "a.pdf", "page": 3}], details)
    assert ChatHistory(tmp_path).messages(sid) == [
        {"role": "assistant", "content": "Take 6 mg.", "sources": [{"file": "a.pdf", "page": 3}], **details}
    ]


def test_a_history_file_from_before_details_opens_and_keeps_its_rows(tmp_path):
    import sqlite3

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
    history.add("old", "assistant", "More.", [], {"groundedness": 1.0})
    assert history.messages("old") == [
        {"role": "user", "content": "Hi", "sources": []},
        {"role": "assistant", "content": "Hello [1].", "sources": [{"file": "a.pdf", "page": 1}]},
        {"role": "assistant", "content": "More.", "sources": [], "groundedness": 1.0},
    ]
