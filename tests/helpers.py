"""What the tests build for themselves, in one place: real PDFs, settings, an untrained adapter, fine-tuning data
and configs, and the browser helpers. Fixtures live in ``conftest.py``."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

from benchmarks.browser import CHROMIUM, CHROMIUM_ARGS, free_port, start_streamlit  # noqa: F401 - tests import them here

REPO = Path(__file__).resolve().parents[1]

# PDFs -----------------------------------------------------------------------------------------------------
# One writer: a hand-written PDF with a Helvetica text layer, then pypdf for page labels and encryption.


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_bytes(pages: list[list[str]]) -> bytes:
    """A valid PDF: one page per list of lines (Helvetica 11 pt, top to bottom); an empty list draws a box only."""
    objects: list[bytes] = []
    n_pages = len(pages)
    font_id = 3 + 2 * n_pages
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n_pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    for i, lines in enumerate(pages):
        if lines:
            ops = ["BT /F1 11 Tf 13 TL 72 760 Td"] + [f"({_escape(line)}) Tj T*" for line in lines] + ["ET"]
        else:
            ops = ["0 0 1 RG 100 100 300 300 re S"]  # a drawing, no text layer
        stream = "\n".join(ops).encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    return serialize_pdf(objects)


def serialize_pdf(objects: list[bytes]) -> bytes:
    """A PDF file of ``objects`` (numbered from 1; object 1 is the catalog) with its cross-reference table."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def shared_stream_pdf_bytes(n_pages: int, lines: list[str]) -> bytes:
    """An inflation bomb (issue #15): ``n_pages`` pages whose /Contents all reference ONE content stream holding
    ``lines``, so a small file extracts to ``n_pages`` times that text."""
    stream = "\n".join(["BT /F1 11 Tf 13 TL 72 760 Td"] + [f"({_escape(x)}) Tj T*" for x in lines] + ["ET"])
    data = stream.encode("latin-1")
    page_ids = list(range(5, 5 + n_pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{' '.join(f'{i} 0 R' for i in page_ids)}] /Count {n_pages} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream",
    ] + [
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 3 0 R >> >> >>"
    ] * n_pages
    return serialize_pdf(objects)


def write_pdf(
    path: Path,
    pages: list[list[str]] | list[str],
    *,
    password: str | None = None,
    roman_pages: int = 0,
    label_prefix: str = "",
    title: str | None = None,
) -> Path:
    """Write ``pages`` to ``path``: each page a list of lines, or a paragraph (wrapped at 80 characters).

    ``password`` encrypts it (``""`` = empty user password); the first ``roman_pages`` pages get the labels
    i, ii, ... and the rest 1, 2, ...; ``label_prefix`` goes before every page label (then 1, 2, ... when
    ``roman_pages`` is 0); ``title`` is written as the document's /Title.
    """
    pages = [textwrap.wrap(p, 80, break_on_hyphens=False) if isinstance(p, str) else p for p in pages]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pdf_bytes(pages))
    if password is None and not roman_pages and not label_prefix and title is None:
        return path
    from pypdf import PdfReader, PdfWriter
    from pypdf.constants import PageLabelStyle

    writer = PdfWriter(clone_from=PdfReader(path))
    if title is not None:
        writer.add_metadata({"/Title": title})
    if label_prefix and not roman_pages:
        writer.set_page_label(0, len(pages) - 1, style=PageLabelStyle.DECIMAL, prefix=label_prefix)
    if roman_pages:
        writer.set_page_label(0, roman_pages - 1, style=PageLabelStyle.LOWERCASE_ROMAN)
        writer.set_page_label(roman_pages, len(pages) - 1, style=PageLabelStyle.DECIMAL)
    if password is not None:
        writer.encrypt(user_password=password, owner_password="owner-secret", algorithm="RC4-128")
    with path.open("wb") as fh:
        writer.write(fh)
    return path


def empty_pdf(path: Path) -> Path:
    """A well-formed PDF with 0 pages."""
    from pypdf import PdfWriter

    with path.open("wb") as fh:
        PdfWriter().write(fh)
    return path


TOPICS = [
    "iron and folic acid supplements reduce anaemia in pregnant women",
    "exclusive breastfeeding for the first six months protects the newborn",
    "postpartum depression screening at the six week visit",
    "kangaroo mother care for preterm babies keeps them warm",
    "tetanus toxoid vaccination during pregnancy prevents neonatal tetanus",
    "delayed umbilical cord clamping improves iron stores in infants",
    "calcium supplementation lowers the risk of pre-eclampsia",
    "skin to skin contact right after birth helps the first breastfeed",
]


def topic_pages(doc: int, n_pages: int, lines_per_page: int = 24) -> list[list[str]]:
    """Deterministic English-like pages: page p of document d is about TOPICS[(d + p) % len(TOPICS)]."""
    pages = []
    for p in range(n_pages):
        topic = TOPICS[(doc + p) % len(TOPICS)]
        pages.append(
            [f"Document {doc} page {p + 1}: {topic}."]
            + [
                f"Point {k} on this page: health workers explain that {topic}, as trial {doc}-{p}-{k} showed."
                for k in range(lines_per_page)
            ]
        )
    return pages


PREGNANCY_PAGES = [
    "Nutrition in pregnancy. During the third trimester, eat a varied diet with vegetables, fruit, whole grains, "
    "beans, dairy and protein foods. Daily oral iron and folic acid supplements are recommended for pregnant "
    "women to prevent maternal anaemia. Limit caffeine to 300 mg a day.",
    "Breastfeeding. Mothers should be supported to start breastfeeding within the first hour after birth, and "
    "newborns should be exclusively breastfed for the first six months.",
    "Warning signs in pregnancy. Severe headache with blurred vision, heavy vaginal bleeding, or reduced fetal "
    "movements need urgent care at a health facility.",
]


# Settings and adapters ------------------------------------------------------------------------------------


def make_settings(home: Path, **overrides):
    """Settings with ``home`` and ``overrides`` only (no environment, no llama-md.toml)."""
    from assistant.config import load_settings

    return load_settings({"home": str(home), **overrides}, environ={})


def make_adapter(settings, run_name: str = "smollm2-135m-test") -> Path:
    """An untrained LoRA adapter on the bundled SmolLM2 in the shared adapter format; returns adapter/."""
    from peft import LoraConfig, get_peft_model

    from assistant.adapters import DEFAULT_SYSTEM_PROMPT, AdapterInfo
    from assistant.config import EMBEDDED_GENERATOR
    from assistant.models import load_generator

    model, tokenizer = load_generator(None, settings, device="cpu")
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    adapter_dir = settings.runs_dir / run_name / "adapter"
    peft_model.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    AdapterInfo(
        EMBEDDED_GENERATOR,
        "smollm2-135m",
        DEFAULT_SYSTEM_PROMPT,
        tokenizer.chat_template,
        ["<|im_end|>"],
        512,
    ).save(adapter_dir)
    (adapter_dir.parent / "report.json").write_text(
        '{"status": "completed"}'
    )  # a finished run, as chat wants
    return adapter_dir


# Fine-tuning data and configs -----------------------------------------------------------------------------

SYMPTOMS = ["a cough", "a headache", "back pain", "a rash", "a sore throat", "dizziness", "nausea", "a fever"]


def qa_rows(n: int = 40) -> list[dict]:
    """Short, varied question/answer pairs (instruction schema, like ChatDoctor)."""
    return [
        {
            "instruction": "If you are a doctor, please answer the medical questions based on the patient's description.",
            "input": f"Doctor, I have had {SYMPTOMS[i % len(SYMPTOMS)]} for {i + 1} days. What should I do?",
            "output": f"It may be a mild infection. Rest, drink fluids and see a doctor if it lasts over {i + 2} days.",
        }
        for i in range(n)
    ]


def write_jsonl(path, rows) -> str:
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return str(path)


def tiny_config(tiny_model, tiny_dataset, out: Path, **kw):
    """A FinetuneConfig for the tiny Llama: 4 steps on 32 samples, checkpoints every 2, fp32."""
    from assistant.finetuning.config import FinetuneConfig

    values = dict(
        model=str(tiny_model),
        dataset=tiny_dataset,
        output_dir=out,
        home=out.parent / "home",
        eval_samples=8,
        max_samples=32,
        max_steps=4,
        save_steps=2,
        logging_steps=1,
        learning_rate=1e-2,
        stop_prompts=2,
        sample_answers=2,
        max_new_tokens=4,
        precision="fp32",
    )
    return FinetuneConfig.from_preset("smollm2-135m", **{**values, **kw})


def lora_b_norm(adapter_dir: Path) -> float:
    """Sum of the LoRA B matrices' norms (0 for an untrained adapter: B starts at zero)."""
    from safetensors.torch import load_file

    tensors = load_file(adapter_dir / "adapter_model.safetensors")
    return sum(float(t.norm()) for k, t in tensors.items() if "lora_B" in k)


# A real browser against `streamlit run` -----------------------------------------------------------------


def ask_in_browser(url: str, question: str, source_pattern: str, screenshot: Path, then=None) -> str:
    """Open the app, ask ``question``, wait for a source expander matching ``source_pattern`` and open it; then
    ``then(page)`` (a Playwright page) when given, before the screenshot. Returns the page's text."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url, timeout=120_000)
        box = page.get_by_test_id("stChatInputTextArea")
        box.wait_for(timeout=300_000)
        box.fill(question)
        box.press("Enter")
        page.get_by_text(re.compile(source_pattern)).first.wait_for(timeout=300_000)
        page.get_by_test_id("stChatMessage").last.get_by_text(re.compile(source_pattern)).first.click()
        page.wait_for_timeout(1000)
        if then is not None:
            then(page)
        page.screenshot(path=str(screenshot), full_page=True)
        text = page.inner_text("body")
        browser.close()
    return text


def passage(text: str, *, score: float = 0.7, file: str = "guide.pdf", page: int = 1, title: str = ""):
    """A retrieval hit (:class:`assistant.rag.retrieve.Hit`) as the answer path receives it, for tests of what
    happens after retrieval (evidence, number check)."""
    from assistant.rag.retrieve import Hit

    return Hit(text, score, file, page, str(page), "pregnancy", title, f"{file}:{page}")
