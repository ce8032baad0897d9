"""`persona export --to ollama` on a fresh home, from the sample adapter seeded as `serve` does.

Ollama itself does not install here, so the Modelfile is checked two ways: by a parser written
from Ollama's documented Modelfile grammar (instructions, triple-quoted strings, the PARAMETER
table and its value types), and its TEMPLATE by Go's own `text/template` (what Ollama executes),
which must render a conversation exactly as the Gemma 3 chat template the server uses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from export_files import export
from gguf import GGUFReader

from adapters.chat_template import GEMMA3_TEMPLATE
from data.personas import resolve

INSTRUCTIONS = {
    "FROM",
    "PARAMETER",
    "TEMPLATE",
    "SYSTEM",
    "ADAPTER",
    "LICENSE",
    "MESSAGE",
    "REQUIRES",
}
"""Every instruction Ollama's Modelfile reference documents."""
PARAMETER_TYPES = {
    "mirostat": int, "mirostat_eta": float, "mirostat_tau": float, "num_ctx": int,
    "repeat_last_n": int, "repeat_penalty": float, "temperature": float, "seed": int,
    "stop": str, "num_predict": int, "top_k": int, "top_p": float, "min_p": float,
}  # fmt: skip
"""The documented PARAMETER names and their value types."""

GO_RENDER = """package main

import (
\t"encoding/json"
\t"os"
\t"text/template"
)

type Message struct {
\tRole    string
\tContent string
}

type Values struct {
\tMessages []Message
\tSystem   string
}

func main() {
\tsource, err := os.ReadFile(os.Args[1])
\tif err != nil {
\t\tpanic(err)
\t}
\ttmpl := template.Must(template.New("modelfile").Parse(string(source)))
\tvar values Values
\tif err := json.NewDecoder(os.Stdin).Decode(&values); err != nil {
\t\tpanic(err)
\t}
\tif err := tmpl.Execute(os.Stdout, values); err != nil {
\t\tpanic(err)
\t}
}
"""


def parse_modelfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, argument) pairs, following Ollama's documented Modelfile format."""
    commands: list[tuple[str, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        instruction = word.upper()
        assert instruction in INSTRUCTIONS, f"unknown instruction {word!r}"
        rest = rest.strip()
        if rest.startswith('"""'):
            body = rest[3:]
            while '"""' not in body:
                assert i < len(lines), f"unterminated triple-quoted {instruction}"
                body += "\n" + lines[i]
                i += 1
            value, _, tail = body.partition('"""')
            assert not tail.strip(), f"text after the closing quotes of {instruction}"
            commands.append((instruction, value))
        else:
            commands.append((instruction, rest))
    return commands


def parameter(argument: str) -> tuple[str, object]:
    name, _, value = argument.partition(" ")
    assert name in PARAMETER_TYPES, f"PARAMETER {name} is not a documented parameter"
    kind = PARAMETER_TYPES[name]
    if kind is str:
        assert value.startswith('"'), value
        assert value.endswith('"'), value
        return name, json.loads(value)
    return name, kind(value)


@pytest.fixture(scope="module")
def ollama_dir(tmp_path_factory: pytest.TempPathFactory, embedded_model_dir: Path) -> Path:
    """`persona export juni --to ollama` on a fresh home (the sample adapter gets seeded)."""
    out = tmp_path_factory.mktemp("ollama") / "juni"
    assert export(["juni", "--to", "ollama", "--out", str(out)]) == 0
    return out


def test_modelfile_follows_the_documented_grammar(ollama_dir: Path) -> None:
    commands = parse_modelfile((ollama_dir / "Modelfile").read_text())
    kinds = [c for c, _ in commands]
    assert kinds.count("FROM") == 1
    assert kinds.count("ADAPTER") == 1
    assert kinds.count("TEMPLATE") == 1
    assert kinds.count("SYSTEM") == 1
    args = dict(commands[:2])
    assert (ollama_dir / args["FROM"]).is_file()
    assert (ollama_dir / args["ADAPTER"]).is_file()
    params = [parameter(a) for c, a in commands if c == "PARAMETER"]
    card = resolve("juni")
    sampling = card.card.sampling
    assert ("stop", "<end_of_turn>") in params
    assert dict(params) | {"stop": None} == {
        "temperature": sampling.temperature, "top_p": sampling.top_p, "min_p": sampling.min_p,
        "repeat_penalty": sampling.repetition_penalty, "num_predict": sampling.max_tokens,
        "stop": None,
    }  # fmt: skip
    assert dict(commands)["SYSTEM"] == card.card.system_prompt
    readme = (ollama_dir / "README.md").read_text()
    assert "`min_tokens`" in readme  # the card default Ollama cannot express is named


def test_lora_gguf_targets_the_base(ollama_dir: Path) -> None:
    adapter = GGUFReader(next(ollama_dir.glob("*-lora.gguf")))
    assert adapter.fields["general.type"].contents() == "adapter"
    assert adapter.fields["adapter.lora.alpha"].contents() == pytest.approx(8 * 20.0)
    names = {t.name for t in adapter.tensors}
    assert "blk.17.attn_q.weight.lora_a" in names
    assert "blk.10.ffn_down.weight.lora_b" in names
    assert not any(n.startswith("blk.9.") for n in names)  # the last 8 of 18 blocks only


def test_template_renders_like_the_gemma_chat_template(ollama_dir: Path, tmp_path: Path) -> None:
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go is not installed (apt-get install golang-go): cannot run text/template")
    import jinja2

    template = dict(parse_modelfile((ollama_dir / "Modelfile").read_text()))["TEMPLATE"]
    (tmp_path / "render.go").write_text(GO_RENDER)
    (tmp_path / "template.txt").write_text(template)
    env = {"HOME": str(tmp_path), "GOCACHE": str(tmp_path / "gocache"), "GOFLAGS": "-mod=mod",
           "PATH": str(Path(go).parent) + ":/usr/bin:/bin"}  # fmt: skip
    subprocess.run([go, "build", "-o", "render", "render.go"], cwd=tmp_path, env=env, check=True)
    conversations = [
        [{"role": "system", "content": "You are Juni."}, {"role": "user", "content": "Hi!"}],
        [{"role": "user", "content": "Why is the sea salty?"}],
        [
            {"role": "system", "content": "Be brief.\nTwo lines."},
            {"role": "user", "content": "One?"},
            {"role": "assistant", "content": "Yes, one."},
            {"role": "user", "content": "And {{ two }}?"},
        ],
    ]
    jinja = jinja2.Environment().from_string(GEMMA3_TEMPLATE)
    for messages in conversations:
        go_messages = [{"Role": m["role"], "Content": m["content"]} for m in messages]
        rendered = subprocess.run(
            [str(tmp_path / "render"), str(tmp_path / "template.txt")],
            input=json.dumps({"Messages": go_messages}), capture_output=True, text=True,
            check=True,
        ).stdout  # fmt: skip
        expected = jinja.render(messages=messages, bos_token="<bos>", add_generation_prompt=True)
        # llama.cpp adds BOS itself (the GGUF's add_bos_token); the template must not.
        assert rendered == expected.removeprefix("<bos>")
