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
