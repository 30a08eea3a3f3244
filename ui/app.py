"""llama-md chat: retrieval-grounded answers from the fine-tuned generator, with page citations.

    streamlit run ui/app.py            # http://localhost:8501

Models and the store load once per process (st.cache_resource); the chat lives in st.session_state.messages and
in SQLite under $LLAMA_MD_HOME/chats, so a reload (same ?session= URL) keeps it, quotes and badges included.

Under each answer: the quoted evidence (plain text, never Markdown: it comes from PDFs), each quote and source
with a "Show page" switch that renders the PDF page with the sentence highlighted (assistant/rag/render.py, cached
under $LLAMA_MD_HOME/cache/pages), a groundedness badge, and a warning listing sentences whose numbers no passage
supports. When groundedness is low the evidence comes first, above the answer.
"""

from __future__ import annotations

from dataclasses import asdict

import streamlit as st

from assistant.chat.answer import Assistant
from assistant.chat.evidence import Evidence
from assistant.chat.history import ChatHistory
from assistant.chat.safety import DISCLAIMER, emergency_banner
from assistant.chat.uploads import MAX_UPLOAD_BYTES, UploadError, save_upload
from assistant.config import load_settings
from assistant.errors import LlamaMdError, report_unexpected
from assistant.prompts import EmptyQuestionError
from assistant.rag.render import find_pdf, render_page

st.set_page_config(page_title="llama-md", page_icon="🩺", layout="wide")


@st.cache_resource(show_spinner="Loading the model and the document store...")
def load_assistant(home: str) -> Assistant:
    return Assistant.from_settings(load_settings({"home": home}), "auto")


def fail(exc: Exception, logs_dir=None) -> None:
    """Show one plain sentence for ``exc`` and stop: our errors' own message (it says how to fix it); for any
    other error a sentence pointing at the traceback written to ``logs_dir/errors.log``."""
    st.error(str(exc) if isinstance(exc, LlamaMdError) else report_unexpected(exc, logs_dir))
    st.stop()


try:
    settings = load_settings()
except LlamaMdError as exc:  # a bad llama-md.toml or LLAMA_MD_* value
    fail(exc)
try:
    bot = load_assistant(str(settings.home))
except Exception as exc:  # noqa: BLE001 - every error ends as one sentence on the page
    fail(exc, settings.logs_dir)

history = ChatHistory(settings.chats_dir)
session_id = st.query_params.get("session")
if not session_id or not history.exists(session_id):
    session_id = history.new_session()
    st.query_params["session"] = session_id
if st.session_state.get("session_id") != session_id:
    st.session_state.session_id = session_id
    st.session_state.messages = history.messages(session_id)

# Sidebar: what is loaded, and the settings ----------------------------------------------------------------
with st.sidebar:
    st.header("llama-md")
    loaded = bot.describe()
    st.markdown(f"**Specialty:** {loaded.specialty or 'not chosen'}")
    st.markdown(f"**Model:** `{loaded.model}`")
    st.markdown(f"**Adapter:** `{loaded.run or 'none'}`")
    if loaded.chunks is not None:
        st.markdown(f"**Library:** {loaded.chunks} passages")
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
    if st.button("New chat"):
        st.query_params["session"] = history.new_session()
        st.rerun()

    st.subheader("Add PDFs to the library")
    uploads = st.file_uploader(
        "PDF files",
        type=["pdf"],
        accept_multiple_files=True,
        max_upload_size=MAX_UPLOAD_BYTES // 2**20,
        key="uploads",
    )
    if uploads and st.button("Ingest uploaded PDFs", key="ingest"):
        saved = []
        for upload in uploads:
            try:
                saved.append(save_upload(upload.name, upload.getvalue(), settings.uploads_dir))
            except UploadError as exc:
                st.error(str(exc))
        if saved:
            from assistant.rag.ingest import ingest_paths

            bar = st.progress(0.0, text="Ingesting...")
            try:
                report = ingest_paths(
                    saved,
                    settings,
                    specialty=settings.specialty or "uploads",
                    wait=False,  # a CLI ingest holds the store: say so instead of freezing the page
                    progress=lambda done, total, name: bar.progress(done / total, text=name),
                )
            except Exception as exc:  # noqa: BLE001
                fail(exc, settings.logs_dir)
            st.success(f"Ingested {len(saved)} file(s): {report}")
            load_assistant.clear()
            st.rerun()

st.title("llama-md")
st.caption(DISCLAIMER)


DETAILS = ("evidence", "groundedness", "unsupported", "flags")  # kept with each answer in the chat history


def show_page(file: str, page: int, label: str, sentence: str | None, key: str) -> None:
    """A "Show page" switch; when on, the PDF page as an image with ``sentence`` highlighted (rendered once)."""
    if not st.toggle(f"Show page {label}", key=key):
        return
    try:
        png = render_page(
            find_pdf(file, settings), page, highlight=sentence, cache_dir=settings.cache_dir / "pages"
        )
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
        show_page(
            quote.file, quote.page, quote.page_label or str(quote.page), quote.sentence, f"{key}-quote{i}"
        )


def show_sources(sources: list[dict], evidence: list[dict], key: str) -> None:
    """One expander per source: the passage (plain text) and its page, with the quote from that page marked."""
    for i, src in enumerate(sources):
        label = src.get("page_label") or src["page"]
        quote = next(
            (e["sentence"] for e in evidence if (e["file"], e["page"]) == (src["file"], src["page"])), None
        )
        title = f"[{src['number']}] {src['file']}, page {label} (score {src['score']:.2f})"
        # keyed and tracked, so an opened source stays open when the answer is redrawn from the history
        with st.expander(title, key=f"{key}-source{i}-open", on_change="rerun"):
            st.text(src["text"])
            show_page(src["file"], src["page"], str(label), quote, f"{key}-source{i}")


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


def ask(question: str, past: list[dict], adapter_on: bool):
    """Screen, retrieve and compose now (raises EmptyQuestionError); the answer streams when read."""
    return bot.ask(
        question,
        past,
        use_rag=use_rag,
        use_adapter=adapter_on,
        top_k=top_k,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
    )


def answer_into(container, stream, key: str) -> dict:
    """Stream one answer into ``container``; returns the assistant message to store (``key``: its widgets')."""
    with container:
        if stream.answer.emergency:
            st.error(emergency_banner(stream.answer.screening), icon="🚨")
        top = st.container()
        slot = st.empty()
        with slot:
            st.write_stream(stream)
        answer = stream.answer
        # the number check and the low-groundedness notice come after the stream: show the checked answer
        slot.markdown(answer.full_text)
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


for index, message in enumerate(st.session_state.messages):
    with st.chat_message(message["role"]):
        top = st.container()
        st.markdown(message["content"])
        if message["role"] == "assistant":
            show_details(message, f"m{index}", top)

question = st.chat_input("Ask about symptoms, pregnancy, medicines...")
if question is not None:
    past = [{"role": m["role"], "content": m["content"]} for m in st.session_state.messages]
    try:
        streams = [
            ask(question, past, adapter_on) for adapter_on in ((False, True) if compare else (use_adapter,))
        ]
    except EmptyQuestionError as exc:
        st.warning(str(exc))
        st.stop()
    except Exception as exc:  # noqa: BLE001
        fail(exc, settings.logs_dir)
    with st.chat_message("user"):
        st.markdown(question)
    st.session_state.messages.append({"role": "user", "content": question, "sources": []})
    history.add(session_id, "user", question)
    with st.chat_message("assistant"):
        try:
            if compare:
                left, right = st.columns(2)
                left.markdown("**Base model**")
                right.markdown("**Fine-tuned**")
                key = f"m{len(st.session_state.messages)}"  # the index the stored answer gets
                answer_into(left, streams[0], key + "-base")
                message = answer_into(right, streams[1], key)
            else:
                message = answer_into(st.container(), streams[0], f"m{len(st.session_state.messages)}")
        except Exception as exc:  # noqa: BLE001
            fail(exc, settings.logs_dir)
    st.session_state.messages.append(message)
    history.add(
        session_id, "assistant", message["content"], message["sources"], {k: message[k] for k in DETAILS}
    )
