"""llama-md chat: retrieval-grounded answers from the fine-tuned generator, with page citations.

    streamlit run ui/app.py            # http://127.0.0.1:8501 (.streamlit/config.toml binds to loopback)

Who is asking (assistant/chat/users.py): with an ``[auth]`` section in .streamlit/secrets.toml every visitor logs in
through Streamlit's ``st.login`` (OIDC) and owns their chats and uploads; without one, the machine's user is the one
owner (the README's "Running the chat"). The models, the store, the history and the request queue load once per
process (``ChatService``, st.cache_resource); each chat is in SQLite under $LLAMA_MD_HOME/chats, owned, listed in the
sidebar and deletable; a ``?session=`` URL of someone else's chat is refused. Uploads go to the uploader's own
collection, ingested in a separate process with page, time and memory limits (assistant/rag/sandbox.py).

Everything from PDFs, uploads and the model is shown as plain text (``st.text``), never as Markdown or HTML. An
answer waits in a bounded queue (its place is shown) and stops generating when its page is closed or rerun.

Under each answer: the quoted evidence (plain text, never Markdown: it comes from PDFs), each quote and source
with a "Show page" switch that renders the PDF page with the sentence highlighted (assistant/rag/render.py, cached
under $LLAMA_MD_HOME/cache/pages), a groundedness badge, and a warning listing sentences whose numbers no passage
supports. When groundedness is low the evidence comes first, above the answer.
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import asdict

import streamlit as st

from assistant.chat.evidence import Evidence
from assistant.chat.queue import QueueFullError
from assistant.chat.safety import DISCLAIMER, banner
from assistant.chat.service import ChatService
from assistant.chat.uploads import MAX_UPLOAD_BYTES, upload_path
from assistant.chat.users import local_user_id, oidc_user_id
from assistant.cli import setup_logging
from assistant.config import load_settings
from assistant.errors import LlamaMdError, report_unexpected
from assistant.prompts import EmptyQuestionError
from assistant.rag.render import find_pdf, render_page

st.set_page_config(page_title="llama-md", page_icon="🩺", layout="wide")


@st.cache_resource(show_spinner="Loading the model and the document store...")
def load_service(home: str, backend: str, url: str, single_user: str) -> ChatService:
    """One per process and (home, generator backend, server URL, mode): the arguments are the cache key.
    ``single_user``: the one owner in single-user mode, "" in team mode. Also sends llama-md's INFO logs
    (loading, cancelled answers, purged chats) to the server's stderr."""
    setup_logging()
    return ChatService.from_settings(
        load_settings({"home": home, "generator_backend": backend, "generator_url": url}),
        single_user=single_user or None,
    )


REFUSED = (
    "This chat was not found: it does not exist, was deleted, or belongs to another user. Start a new chat."
)


def auth_configured() -> bool:
    """True when .streamlit/secrets.toml has an ``[auth]`` section: then every visitor must log in (st.login)."""
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets file at all: single-user mode
        return False


def current_user() -> str:
    """The owner id of this visitor (assistant/chat/users.py); shows the login page and stops when needed."""
    if not auth_configured():
        return local_user_id()
    if not st.user.is_logged_in:
        st.title("llama-md")
        st.caption(DISCLAIMER)
        st.button("Log in", on_click=st.login, type="primary")
        st.stop()
    claims = st.user.to_dict()
    return oidc_user_id(str(claims.get("iss", "")), str(claims.get("sub", "")))


def fail(exc: Exception, logs_dir=None) -> None:
    """Show one plain sentence for ``exc`` and stop: our errors' own message (it says how to fix it); for any
    other error a sentence pointing at the traceback written to ``logs_dir/errors.log``."""
    st.error(str(exc) if isinstance(exc, LlamaMdError) else report_unexpected(exc, logs_dir))
    st.stop()


try:
    settings = load_settings()
except LlamaMdError as exc:  # a bad llama-md.toml or LLAMA_MD_* value
    fail(exc)
user_id = current_user()
try:
    service = load_service(
        str(settings.home),
        settings.generator_backend,
        settings.generator_url,
        "" if auth_configured() else user_id,
    )
except Exception as exc:  # noqa: BLE001 - every error ends as one sentence on the page
    fail(exc, settings.logs_dir)
bot, history = service.assistant, service.history

session_id = st.query_params.get("session")
if session_id and not history.exists(session_id, owner=user_id):
    st.error(REFUSED)  # someone else's (or a deleted) chat: no hint which, and the URL's text is not echoed
    if st.button("Start a new chat", key="refused-new"):
        st.query_params["session"] = history.new_session(user_id)
        st.rerun()
    st.stop()
if not session_id:
    session_id = history.new_session(user_id)
    st.query_params["session"] = session_id
if st.session_state.get("session_id") != session_id:
    st.session_state.session_id = session_id
    st.session_state.messages = history.messages(session_id, owner=user_id)


# Sidebar: who, what is loaded, the settings, the chats, the uploads ----------------------------------------
def delete_my_data() -> None:
    chats, files = service.delete_user_data(user_id)
    st.session_state.pop("session_id", None)
    st.query_params.clear()
    st.toast(f"Deleted {chats} chat(s) and {files} uploaded file(s).")


with st.sidebar:
    st.header("llama-md")
    if auth_configured():
        st.text(f"Signed in as {st.user.get('email') or st.user.get('name') or 'you'}")
        st.button("Log out", on_click=st.logout)
    loaded = bot.describe()
    st.text(f"Specialty: {loaded.specialty or 'not chosen'}")
    st.text(f"Model: {loaded.model}")
    st.text(f"Adapter: {loaded.run or 'none'}")
    if not auth_configured() and st.button("Load the newest fine-tuned run", key="swap"):
        bot.swap_generator("auto")  # loads off the request path; queued answers go on with the current one
        st.toast("Loading the newest run; answers go on with the current model until it is ready.")
    if loaded.chunks is not None:
        st.text(f"Library: {loaded.chunks} passages")
    for hint in loaded.hints:
        st.info(hint)
    top_k = st.slider("top_k (passages)", 1, 10, settings.top_k)
    temperature = st.slider("temperature", 0.0, 1.5, settings.temperature, 0.05)
    max_new_tokens = st.slider("max_new_tokens", 32, 1024, settings.max_new_tokens, 32)
    has_store = loaded.chunks is not None
    use_rag = st.toggle("Retrieval", value=has_store, disabled=not has_store)
    use_adapter = st.toggle("Fine-tuned adapter", value=loaded.has_adapter, disabled=not loaded.has_adapter)
    compare = st.toggle(
        "Compare base vs fine-tuned", value=False, disabled=not loaded.has_adapter, key="compare"
    )

    st.subheader("Your chats")
    if st.button("New chat"):
        st.query_params["session"] = history.new_session(user_id)
        st.rerun()
    for chat in history.sessions(user_id):
        if not chat.n_messages and chat.id != session_id:
            continue
        here = chat.id == session_id
        title = re.sub(r"([\\`*_\[\]()#+!|<>{}~-])", r"\\\1", chat.title)  # a label is Markdown: keep it text
        label = ("▸ " if here else "") + (title or "New chat")
        if st.button(label, key=f"chat-{chat.id}", disabled=here):
            st.query_params["session"] = chat.id
            st.rerun()
    if st.button("Delete this chat", key="delete-chat"):
        history.delete(session_id, owner=user_id)
        st.query_params["session"] = history.new_session(user_id)
        st.rerun()
    with st.expander("Delete my data"):
        st.text("Deletes all your chats and every file you uploaded. This can't be undone.")
        sure = st.checkbox("Yes, delete everything of mine", key="delete-sure")
        st.button("Delete my data", key="delete-all", disabled=not sure, on_click=delete_my_data)
    if settings.retention_days:
        st.caption(
            f"Chats not used for {settings.retention_days} days, and uploads older than that, are deleted."
        )

    st.subheader("Your documents")
    st.caption("PDFs you add are searched for your questions only, and cited as your document.")
    uploads = st.file_uploader(
        "PDF files",
        type=["pdf"],
        accept_multiple_files=True,
        max_upload_size=MAX_UPLOAD_BYTES // 2**20,
        key="uploads",
    )
    if uploads and st.button("Add to my documents", key="ingest"):
        from assistant.chat.uploads import add_upload

        for upload in uploads:  # each in its own process, with page, time and memory limits
            with st.spinner(f"Reading {len(upload.getvalue()) / 2**20:.1f} MiB..."):
                result = add_upload(upload.name, upload.getvalue(), settings, user_id)
            (st.success if result.ok else st.error)(result.message, icon="📄")

st.title("llama-md")
st.caption(DISCLAIMER)


DETAILS = ("evidence", "groundedness", "unsupported", "flags")  # kept with each answer in the chat history


def show_page(file: str, page: int, label: str, sentence: str | None, key: str, uploaded: bool) -> None:
    """A "Show page" switch; when on, the PDF page as an image with ``sentence`` highlighted (rendered once).
    ``uploaded``: the file is this user's own upload (opened from their folder only, never the library's)."""
    if not st.toggle(f"Show page {label}", key=key):
        return
    try:
        pdf = upload_path(settings, user_id, file) if uploaded else find_pdf(file, settings)
        png = render_page(pdf, page, highlight=sentence, cache_dir=settings.cache_dir / "pages")
    except LlamaMdError as exc:
        st.warning(str(exc))
        return
    except Exception as exc:  # noqa: BLE001 - one page that fails to render never breaks the chat
        st.error(report_unexpected(exc, settings.logs_dir))
        return
    caption = f"{file}, page {label}" + (" (quoted sentence highlighted)" if sentence else "")
    st.image(str(png), caption=caption, output_format="PNG")  # "auto" re-encodes as JPEG: blurred small print


def show_evidence(evidence: list[dict], key: str) -> None:
    """The quotes as plain text: 'From <title or file>, p. <label>: “sentence”', each with its page on demand."""
    for i, ev in enumerate(evidence):
        quote = Evidence(**ev)
        st.text(quote.citation())  # the CLI's and the number check's wording
        label = quote.page_label or str(quote.page)
        show_page(quote.file, quote.page, label, quote.sentence, f"{key}-quote{i}", quote.uploaded)


def show_sources(sources: list[dict], evidence: list[dict], key: str) -> None:
    """One expander per source: the passage (plain text) and its page, with the quote from that page marked."""
    for i, src in enumerate(sources):
        label = src.get("page_label") or src["page"]
        quote = next(
            (
                e["sentence"]
                for e in evidence
                if (e["file"], e["page"], e.get("uploaded", False))
                == (src["file"], src["page"], src.get("uploaded", False))
            ),
            None,
        )
        mine = "your document: " if src.get("uploaded") else ""
        title = f"[{src['number']}] {mine}{src['file']}, page {label} (score {src['score']:.2f})"
        # keyed and tracked, so an opened source stays open when the answer is redrawn from the history
        with st.expander(title, key=f"{key}-source{i}-open", on_change="rerun"):
            st.text(src["text"])
            show_page(
                src["file"], src["page"], str(label), quote, f"{key}-source{i}", bool(src.get("uploaded"))
            )


def show_details(message: dict, key: str, top) -> None:
    """What follows an answer's text (see the module docstring); with low groundedness the note and the quotes go
    into ``top``, a container placed above the answer."""
    evidence = message.get("evidence") or []
    low = "low_groundedness" in (message.get("flags") or [])
    if low:  # the answer's own notice says so; the quotes go above it
        with top:
            show_evidence(evidence, key)
    else:
        show_evidence(evidence, key)
    if message.get("groundedness") is not None:
        share = f"supported: {message['groundedness']:.0%} of sentences"
        st.badge(share, color="orange" if low else "green")
    unsupported = message.get("unsupported") or []
    if unsupported:
        st.warning("A number in these sentences is not in any passage given to the model; check the quotes:")
        for item in unsupported:
            amounts = ", ".join(str(q) for q in item.get("quantities") or [])
            replaced = " (replaced by the quoted evidence)" if item.get("replaced_by") else ""
            st.text(
                f"\u2022 \u201c{item['sentence']}\u201d" + (f" [{amounts}]" if amounts else "") + replaced
            )
    show_sources(message.get("sources") or [], evidence, key)


def ask(question: str, past: list[dict], adapter_on: bool, cancel: threading.Event):
    """Screen, retrieve and compose now (raises EmptyQuestionError); the answer streams when read."""
    return bot.ask(
        question,
        past,
        use_rag=use_rag,
        use_adapter=adapter_on,
        top_k=top_k,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        user_id=user_id,
        cancel=cancel,
    )


def stream_text(slot, stream) -> None:
    """Write the stream into ``slot`` as plain text (the model's words are never rendered as Markdown)."""
    shown = ""
    for piece in stream:
        shown += piece
        slot.text(shown)


def answer_into(container, stream, key: str) -> dict:
    """Stream one answer into ``container``; returns the assistant message to store (``key``: its widgets')."""
    with container:
        if stream.answer.urgency == "emergency":  # red: call the emergency number now
            st.error(banner(stream.answer.screening), icon="🚨")
        elif stream.answer.urgency == "urgent":  # amber: be seen today
            st.warning(banner(stream.answer.screening), icon="⚠️")
        top = st.container()
        slot = st.empty()
        stream_text(slot, stream)
        answer = stream.answer
        # the number check and the low-groundedness notice come after the stream: show the checked answer
        slot.text(answer.full_text)
        message = {
            "role": "assistant",
            "content": answer.full_text,
            "sources": [vars(s) for s in answer.sources],
            "evidence": [asdict(e) for e in answer.evidence],
            "groundedness": answer.groundedness,
            "unsupported": answer.unsupported,
            "flags": answer.flags,
        }
        show_details(message, key, top)
        st.caption(f"{answer.ttft_ms:.0f} ms to first token · {answer.tokens_per_s:.1f} tokens/s")
    return message


def wait_for_turn(ticket) -> None:
    """Show this answer's place in the queue until it may generate (a closed or rerun page stops here)."""
    place = st.empty()
    while not ticket.wait(0.5):
        ahead = ticket.position
        place.info(f"Waiting for the model: {ahead} question(s) ahead of yours.", icon="⏳")
    place.empty()


for index, message in enumerate(st.session_state.messages):
    with st.chat_message(message["role"]):
        top = st.container()
        st.text(message["content"])
        if message["role"] == "assistant":
            show_details(message, f"m{index}", top)

question = st.chat_input("Ask about symptoms, pregnancy, medicines...")
if question is not None:
    past = [{"role": m["role"], "content": m["content"]} for m in st.session_state.messages]
    # a place in line per person (queue_max_waiting_per_user): in single-user mode every visitor is the one local
    # owner, so there each browser tab counts as one person
    tab = st.session_state.setdefault("tab", uuid.uuid4().hex)
    try:
        ticket = service.queue.join(user_id if auth_configured() else f"{user_id} tab {tab}")
    except QueueFullError as exc:
        st.warning(str(exc))
        st.stop()
    cancel = threading.Event()  # set when this page is closed or rerun: generation stops within one token
    with ticket:
        try:
            wait_for_turn(ticket)
            modes = (False, True) if compare else (use_adapter,)
            streams = [ask(question, past, adapter_on, cancel) for adapter_on in modes]
        except EmptyQuestionError as exc:
            st.warning(str(exc))
            st.stop()
        except Exception as exc:  # noqa: BLE001
            cancel.set()
            fail(exc, settings.logs_dir)
        with st.chat_message("user"):
            st.text(question)
        st.session_state.messages.append({"role": "user", "content": question, "sources": []})
        history.add(session_id, "user", question, owner=user_id)
        with st.chat_message("assistant"):
            try:
                key = f"m{len(st.session_state.messages)}"  # the index the stored answer gets
                if compare:
                    left, right = st.columns(2)
                    left.text("Base model")
                    right.text("Fine-tuned")
                    answer_into(left, streams[0], key + "-base")
                    message = answer_into(right, streams[1], key)
                else:
                    message = answer_into(st.container(), streams[0], key)
            except Exception as exc:  # noqa: BLE001
                fail(exc, settings.logs_dir)
            finally:
                cancel.set()
    st.session_state.messages.append(message)
    history.add(
        session_id,
        "assistant",
        message["content"],
        message["sources"],
        {k: message[k] for k in DETAILS},
        owner=user_id,
    )
