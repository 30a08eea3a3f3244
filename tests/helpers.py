"""Small real inputs the tests build themselves: PDFs with a text layer, an untrained LoRA adapter."""

from __future__ import annotations

import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PREGNANCY_PAGES = [
    "Nutrition in pregnancy. During the third trimester, eat a varied diet with vegetables, fruit, whole grains, "
    "beans, dairy and protein foods. Daily oral iron and folic acid supplements are recommended for pregnant "
    "women to prevent maternal anaemia. Limit caffeine to 300 mg a day.",
    "Breastfeeding. Mothers should be supported to start breastfeeding within the first hour after birth, and "
    "newborns should be exclusively breastfed for the first six months.",
    "Warning signs in pregnancy. Severe headache with blurred vision, heavy vaginal bleeding, or reduced fetal "
    "movements need urgent care at a health facility.",
]


def write_pdf(path: Path, pages: list[str]) -> Path:
    """Write a real PDF (matplotlib, TrueType text layer) with one page per string; returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    path.parent.mkdir(parents=True, exist_ok=True)
    with plt.rc_context({"pdf.fonttype": 42}), PdfPages(path) as pdf:
        for text in pages:
            fig = plt.figure(figsize=(8.27, 11.69))
            fig.text(0.08, 0.92, "\n".join(textwrap.wrap(text, 80)), va="top", fontsize=11)
            pdf.savefig(fig)
            plt.close(fig)
    return path


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
    return adapter_dir
