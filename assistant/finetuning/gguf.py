"""llama.cpp's side of the export: convert a merged folder to GGUF, quantize it, read its metadata back.

The converter is llama.cpp's own ``convert_hf_to_gguf.py`` (with its ``conversion/`` package and its own
``gguf-py``, fetched by ``make serve-setup`` into ``$LLAMA_MD_LLAMA_CPP_DIR``), run as a subprocess so its gguf
package, which may be newer than the one installed, is the one it uses. k-quants (q4_k_m) come from
llama-cpp-python's ``llama_model_quantize`` over an f16 file, as llama.cpp's ``llama-quantize`` does.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

from assistant.adapters import AdapterInfo
from assistant.errors import LlamaMdError
from assistant.finetuning.evaluation import stop_token_ids

logger = logging.getLogger(__name__)

LLAMA_CPP_DIR_ENV = "LLAMA_MD_LLAMA_CPP_DIR"


class ExportError(LlamaMdError, RuntimeError):
    """An export could not be made or did not carry the run's prompt format; the message says what to do."""


def llama_cpp_dir(folder: Path | None = None) -> Path:
    """``folder``, else $LLAMA_MD_LLAMA_CPP_DIR, else ~/.cache/llama-md/llama.cpp/<llama-cpp-python version>.

    Raises:
        ExportError: the converter (or a part it imports) is missing there, naming `make serve-setup`.
    """
    raw = folder or os.environ.get(LLAMA_CPP_DIR_ENV)
    if raw is None:
        try:
            import llama_cpp

            raw = Path.home() / ".cache" / "llama-md" / "llama.cpp" / llama_cpp.__version__
        except ImportError:
            raw = Path("(llama-cpp-python not installed)")
    folder = Path(raw)
    script = folder / "convert_hf_to_gguf.py"
    needed = ["convert_hf_to_gguf.py", "gguf-py"]
    if script.is_file() and "from conversion import" in script.read_text():  # llama.cpp splits it since 2025
        needed.append("conversion")
    missing = [name for name in needed if not (folder / name).exists()]
    if missing:
        raise ExportError(
            f"llama.cpp's converter is incomplete in {folder}: {', '.join(missing)} missing (expected "
            f"{', '.join(needed)}). "
            f"Fix: run `make serve-setup` (it installs llama-cpp-python and fetches the converter), or set "
            f"{LLAMA_CPP_DIR_ENV} to a folder holding them."
        )
    return folder


def convert_to_gguf(merged_dir: Path, out_file: Path, outtype: str, converter_dir: Path) -> None:
    """Run ``convert_hf_to_gguf.py merged_dir --outfile out_file --outtype outtype`` with its own gguf-py."""
    paths = [str(converter_dir / "gguf-py"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(paths),
    }  # its own gguf first: it may be newer than ours
    cmd = [sys.executable, str(converter_dir / "convert_hf_to_gguf.py"), str(merged_dir)]
    cmd += ["--outfile", str(out_file), "--outtype", outtype]
    logger.info("Converting: %s", " ".join(cmd))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not out_file.is_file():
        missing = re.search(r"No module named '([\w.]+)'", proc.stderr)
        fix = (
            f"install the converter's dependency {missing.group(1)!r} (`make serve-setup` installs it)"
            if missing
            else "check that the converter matches the installed llama-cpp-python (`make serve-setup`)"
        )
        raise ExportError(
            f"llama.cpp's converter failed on {merged_dir} (exit {proc.returncode}):\n{proc.stderr[-2000:]}\n"
            f"Fix: {fix}."
        )


def quantize_gguf(src: Path, dst: Path, quant: str) -> None:
    """Quantize an f16 GGUF with llama.cpp's ``llama_model_quantize`` (k-quants need 256-wide rows; llama.cpp
    falls back to another type for tensors that are not)."""
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = {"q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M, "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0}[
        quant
    ]
    params.nthread = os.cpu_count() or 1
    code = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if code != 0:
        raise ExportError(f"llama_model_quantize({src.name} -> {quant}) returned {code}; see the log above.")


def gguf_metadata(path: Path) -> dict:
    """The GGUF's chat template, eos / eot / bos ids and add_bos flag, read back with gguf's GGUFReader."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    wanted = {
        "chat_template": "tokenizer.chat_template",
        "eos_token_id": "tokenizer.ggml.eos_token_id",
        "eot_token_id": "tokenizer.ggml.eot_token_id",
        "bos_token_id": "tokenizer.ggml.bos_token_id",
        "add_bos_token": "tokenizer.ggml.add_bos_token",
    }
    meta = {}
    for name, key in wanted.items():
        f = reader.fields.get(key)
        meta[name] = None if f is None else f.contents()
    return meta


def check_gguf_metadata(path: Path, info: AdapterInfo, tokenizer) -> dict:
    """Read the GGUF back; it must carry the run's chat template and stop on its end-of-turn token.

    Raises:
        ExportError: the template or the eos / eot id differs, naming what was found and expected.
    """
    meta = gguf_metadata(path)
    turn_ids = sorted(stop_token_ids(tokenizer, info.stop_tokens))
    problems = []
    if meta["chat_template"] != info.chat_template:
        problems.append(
            f"tokenizer.chat_template is {str(meta['chat_template'])[:80]!r}..., not the run's template"
        )
    if meta["eos_token_id"] not in turn_ids:
        problems.append(
            f"eos_token_id is {meta['eos_token_id']}, not one of the stop ids {turn_ids} ({info.stop_tokens})"
        )
    if meta["eot_token_id"] is not None and meta["eot_token_id"] not in turn_ids:
        problems.append(f"eot_token_id is {meta['eot_token_id']}, not one of the stop ids {turn_ids}")
    if problems:
        raise ExportError(
            f"{path} does not carry the run's prompt format: "
            + "; ".join(problems)
            + ". A model served like this "
            "does not stop where it was trained to. Fix: check export/merged/tokenizer_config.json and "
            "generation_config.json, or update the converter (`make serve-setup`)."
        )
    return meta
