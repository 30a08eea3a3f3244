"""An Ollama Modelfile from a run's ``llama-md.json``: the same chat template, system prompt and stop tokens.

Exported models that never stop or babble are most often served under a default template without the end-of-turn
token (LlamaFactory #6320, #7228; ollama #8363). So the Modelfile's ``TEMPLATE`` is derived from the run's own
Jinja chat template, not written from a table of known formats:

1. render the Jinja template on sentinel conversations (system; system + user; system + user + assistant; and with
   the generation prompt), each a prefix of the next;
2. cut each rendering at the sentinels: what comes before and after a role's content is its prefix and suffix,
   what the generation prompt adds is the assistant header;
3. write those strings into a Go template over Ollama's ``.System`` and ``.Messages`` (a subset of
   ``text/template``: ``if``, ``range``, ``eq``, field access; https://github.com/ollama/ollama/blob/main/docs/template.md).

:func:`render_go_template` renders exactly that subset, so a test can check that the TEMPLATE gives the very text
the Jinja template gives for a conversation. Ollama itself is not needed (nor run) to write or check the file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from assistant.adapters import AdapterInfo
from assistant.errors import LlamaMdError

SENTINELS = {"system": "\x01SYSTEM\x01", "user": "\x01USER\x01", "assistant": "\x01ASSISTANT\x01"}


class ModelfileError(LlamaMdError, ValueError):
    """The run's chat template can't be written as an Ollama TEMPLATE."""


def render_jinja(tokenizer, info: AdapterInfo, messages: list[dict], generation: bool = False) -> str:
    """``messages`` rendered with the run's Jinja chat template, as fine-tuning rendered them (transformers)."""
    return tokenizer.apply_chat_template(
        messages, chat_template=info.chat_template, tokenize=False, add_generation_prompt=generation
    )


def role_formats(tokenizer, info: AdapterInfo) -> dict[str, tuple[str, str]]:
    """``{role: (prefix, suffix)}`` for system, user and assistant, plus ``"generation": (header, "")``.

    Raises:
        ModelfileError: a rendering is not a prefix of the next (the template is not turn-by-turn), or a sentinel
            did not come out once.
    """
    msgs = [{"role": r, "content": s} for r, s in SENTINELS.items()]
    steps = [render_jinja(tokenizer, info, msgs[:n]) for n in (1, 2, 3)]
    generation = render_jinja(tokenizer, info, msgs[:2], generation=True)
    formats, done = {}, ""
    for (role, sentinel), text in zip(SENTINELS.items(), steps, strict=True):
        if not text.startswith(done) or text.count(sentinel) != 1:
            raise ModelfileError(
                f"The run's chat template does not render turn by turn (the {role} turn changes what comes before "
                f"it): found {text!r}. Fix: write the Modelfile TEMPLATE by hand for this template, or export "
                "with --to gguf and use the template stored in the GGUF."
            )
        prefix, suffix = text[len(done) :].split(sentinel)
        formats[role] = (prefix, suffix)
        done = text
    if not generation.startswith(steps[1]):
        raise ModelfileError(f"The generation prompt changes the turns before it: {generation!r}.")
    formats["generation"] = (generation[len(steps[1]) :], "")
    return formats


def _literal(text: str) -> str:
    if "{{" in text or "}}" in text:
        raise ModelfileError(
            f"Template text {text!r} holds '{{{{' or '}}}}', which Go templates can't quote."
        )
    return text


def go_template(tokenizer, info: AdapterInfo) -> str:
    """The Ollama TEMPLATE equivalent to ``info.chat_template`` (no whitespace trimming, so literals stay exact)."""
    f = {
        role: tuple(_literal(part) for part in parts) for role, parts in role_formats(tokenizer, info).items()
    }
    return (
        f"{{{{ if .System }}}}{f['system'][0]}{{{{ .System }}}}{f['system'][1]}{{{{ end }}}}"
        "{{ range .Messages }}"
        f'{{{{ if eq .Role "user" }}}}{f["user"][0]}{{{{ .Content }}}}{f["user"][1]}'
        f'{{{{ else if eq .Role "assistant" }}}}{f["assistant"][0]}{{{{ .Content }}}}{f["assistant"][1]}'
        "{{ end }}{{ end }}"
        f"{f['generation'][0]}"
    )


def _quote(text: str) -> str:
    """A Modelfile value in triple quotes (which the value must not contain)."""
    if '"""' in text:
        raise ModelfileError(f'A Modelfile value can\'t hold """: {text[:80]!r}.')
    return f'"""{text}"""'


def write_modelfile(
    out_dir: Path,
    gguf_name: str,
    tokenizer,
    info: AdapterInfo,
    *,
    temperature: float,
    repeat_penalty: float,
    num_predict: int,
) -> Path:
    """Write ``out_dir/Modelfile`` for the GGUF ``out_dir/gguf_name``; returns its path.

    Args:
        gguf_name: file name of the GGUF beside the Modelfile (``FROM ./<gguf_name>``).
        tokenizer: the run's tokenizer (renders the Jinja template).
        info: the run's template, system prompt and stop tokens.
        temperature, repeat_penalty, num_predict: the chat's sampling settings (``assistant.config.Settings``);
            ``num_predict`` is the answer budget in tokens.

    Raises:
        ModelfileError: the template can't be expressed (see :func:`role_formats`) or a value can't be quoted.
    """
    lines = [
        f"# Exported by llama-md from run {out_dir.parent.parent.name} (preset {info.preset}, base {info.base_model}).",
        f"FROM ./{gguf_name}",
        f"TEMPLATE {_quote(go_template(tokenizer, info))}",
        f"SYSTEM {_quote(info.system_prompt)}",
        *(f"PARAMETER stop {json.dumps(token)}" for token in info.stop_tokens),
        f"PARAMETER temperature {temperature}",
        f"PARAMETER repeat_penalty {repeat_penalty}",
        f"PARAMETER num_predict {num_predict}",
    ]
    path = out_dir / "Modelfile"
    path.write_text("\n".join(lines) + "\n")
    return path


def parse_modelfile(text: str) -> dict:
    """``{"FROM": str, "TEMPLATE": str, "SYSTEM": str, "PARAMETER": [(name, value), ...]}`` of a Modelfile.

    Reads the instructions llama-md writes: one per line, a value in triple quotes may span lines; ``#`` comments.
    """
    fields: dict = {"PARAMETER": []}
    pos = 0
    while pos < len(text):
        end = text.find("\n", pos)
        line = text[pos : end if end >= 0 else len(text)]
        key, _, value = line.partition(" ")
        if value.startswith('"""'):
            close = text.index('"""', pos + len(key) + 4)
            value, end = text[pos + len(key) + 4 : close], text.find("\n", close)
        pos = end + 1 if end >= 0 else len(text)
        if not key or key.startswith("#"):
            continue
        if key == "PARAMETER":
            name, raw = value.split(" ", 1)
            fields["PARAMETER"].append((name, json.loads(raw) if raw.startswith('"') else float(raw)))
        else:
            fields[key] = value
    return fields


# A renderer for the Go-template subset go_template() writes ------------------------------------------------

_TAG = re.compile(r"\{\{\s*(.*?)\s*\}\}", re.S)


def render_go_template(template: str, system: str, messages: list[dict]) -> str:
    """Render ``template`` as Ollama would for ``.System`` = ``system`` and ``.Messages`` = ``messages``.

    Supports ``{{ if .System }}``, ``{{ range .Messages }}``, ``{{ if eq .Role "x" }}``, ``{{ else if ... }}``,
    ``{{ else }}``, ``{{ end }}`` and ``{{ .System }}`` / ``{{ .Content }}`` / ``{{ .Role }}``; anything else
    raises ``ValueError`` (so a template outside the subset is never "checked" by accident).
    """
    tokens, pos = [], 0
    for m in _TAG.finditer(template):
        tokens += [("text", template[pos : m.start()]), ("tag", m.group(1))]
        pos = m.end()
    tokens.append(("text", template[pos:]))
    tree, rest = _parse(tokens, 0)
    if rest != len(tokens):
        raise ValueError(f"unbalanced {{{{ end }}}} in template at token {rest}")
    return _run(tree, {"System": system, "Messages": messages})


def _parse(tokens, i, stop=("end",)):
    """Nodes until a tag in ``stop``; returns ``(nodes, index of that tag)``."""
    nodes = []
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == "text":
            nodes.append(("text", value))
            i += 1
        elif value == "end" or value == "else" or value.startswith("else if "):
            return nodes, i
        elif value.startswith(("if ", "range ")):
            i = _parse_block(tokens, i, nodes)
        elif re.fullmatch(r"\.\w+", value):
            nodes.append(("field", value[1:]))
            i += 1
        else:
            raise ValueError(f"unsupported template action {{{{ {value} }}}}")
    return nodes, i


def _parse_block(tokens, i, nodes):
    head = tokens[i][1]
    branches = []  # (condition, body)
    cond = head
    i += 1
    while True:
        body, i = _parse(tokens, i)
        if i >= len(tokens):
            raise ValueError(f"{{{{ {head} }}}} has no {{{{ end }}}}")
        branches.append((cond, body))
        tag = tokens[i][1]
        i += 1
        if tag == "end":
            break
        cond = "if true" if tag == "else" else tag[len("else ") :]
    nodes.append(("block", branches))
    return i


def _truthy(cond: str, scope: dict) -> bool:
    if cond == "if true":
        return True
    if m := re.fullmatch(r'if eq \.(\w+) "([^"]*)"', cond):
        return scope.get(m.group(1)) == m.group(2)
    if m := re.fullmatch(r"if \.(\w+)", cond):
        return bool(scope.get(m.group(1)))
    raise ValueError(f"unsupported condition {cond!r}")


def _run(nodes, scope: dict) -> str:
    out = []
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "field":
            out.append(str(scope[node[1].capitalize() if node[1] not in scope else node[1]]))
        else:
            for cond, body in node[1]:
                if m := re.fullmatch(r"range \.(\w+)", cond):
                    out += [
                        _run(body, {**scope, **{k.capitalize(): v for k, v in item.items()}})
                        for item in scope[m.group(1)]
                    ]
                    break
                if _truthy(cond, scope):
                    out.append(_run(body, scope))
                    break
    return "".join(out)
