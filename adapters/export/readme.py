"""The `README.md` model card every export carries.

It says what the weights are and where they came from: the persona card, the base model, the
training settings, the dataset's size and hashes, the validation loss, and the checkpoint's
latest eval scores when `persona eval` stored some in `run.json`. The YAML front matter is the
Hugging Face model card header, so the folder can be pushed to a hub as it is.
"""

from __future__ import annotations

import json

import msgspec

from .source import ExportSource
from .stage import MARK


def system_flag(source: ExportSource) -> str:
    """` -sys '<prompt>'` for llama-cli, shell-quoted; empty when the persona has none."""
    import shlex

    prompt = source.card.system_prompt if source.card else ""
    return f" -sys {shlex.quote(prompt)}" if prompt.strip() else ""


def model_card(source: ExportSource, fmt: str, files: dict[str, str], usage: str) -> str:
    """Markdown for one export; `files` maps each file written to what it is."""
    m, card, record = source.manifest, source.card, source.record
    title = (card.display_name or card.name) if card else m.persona
    lines = [
        "---",
        f"base_model: {source.base_name}",
        *(["library_name: peft"] if fmt == "peft" else []),
        "tags: [persona-studio, "
        + ("lora" if m.lora.fine_tune_type != "full" else "fine-tune")
        + f", {fmt}]",
        "---",
        "",
        f"# {title} ({source.model_id}, {fmt})",
        "",
    ]
    if card and card.description:
        lines += [card.description, ""]
    lines += [f"{MARK} from checkpoint `{source.model_id}`.", ""]
    lines += ["## Files", "", "| file | what |", "|---|---|"]
    lines += [f"| `{name}` | {what} |" for name, what in files.items()]
    lines += ["", "## Use", "", usage.rstrip(), ""]
    lines += ["## Persona", ""]
    system = card.system_prompt if card else (record.config.system_prompt if record else "")
    if system:
        lines += ["System prompt:", "", *[f"> {line}" for line in system.splitlines()], ""]
    if card:
        sampling = msgspec.to_builtins(card.sampling)
        if sampling:
            lines += ["Sampling defaults:", "", "| setting | value |", "|---|---|"]
            lines += [f"| `{k}` | {json.dumps(v)} |" for k, v in sampling.items()]
            lines.append("")
    lines += ["## Base model", "", f"`{source.base_name}` (content hash `{m.base_hash}`)", ""]
    lines += _training(source)
    lines += _dataset(source)
    lines += _losses(source)
    if source.eval:
        lines += ["## Evaluation (`persona eval`, this checkpoint)", ""]
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in source.eval.items()]
        lines.append("")
    return "\n".join(lines)


def _training(source: ExportSource) -> list[str]:
    lora, record = source.lora, source.record
    rows = [
        ("fine_tune_type", lora.fine_tune_type),
        ("rank", lora.rank),
        ("scale (alpha / rank)", lora.scale),
        ("layers adapted (last N blocks)", lora.num_layers),
        ("modules", ", ".join(lora.keys) if lora.keys else "every linear layer of those blocks"),
        ("step", source.manifest.step),
        ("epoch", source.manifest.epoch),
    ]
    if record is not None:
        t = record.config.training
        rows += [
            ("learning_rate", t.learning_rate),
            ("lr_schedule", f"{t.lr_schedule}, warmup {t.warmup}"),
            ("batch_size", t.batch_size),
            ("epochs / iters", record.config.iters or t.epochs),
            ("max_seq_length", t.max_seq_length),
            ("dropout", t.dropout),
            ("seed", t.seed),
        ]
    lines = ["## Training", "", "| setting | value |", "|---|---|"]
    return [*lines, *(f"| {k} | {v} |" for k, v in rows), ""]


def _dataset(source: ExportSource) -> list[str]:
    if source.record is None:
        return ["## Dataset", "", "No run record (`run.json`) was found for this checkpoint.", ""]
    d = source.record.dataset
    rows = [
        ("training rows", d.train_rows),
        ("validation rows", d.valid_rows),
        ("training tokens", d.train_tokens),
        ("learned (reply) tokens", d.learned_tokens),
        ("train sha256", f"`{d.train_sha256}`"),
        ("valid sha256", f"`{d.valid_sha256}`" if d.valid_sha256 else "split from train"),
    ]
    lines = ["## Dataset", "", "| | |", "|---|---|"]
    return [*lines, *(f"| {k} | {v} |" for k, v in rows), ""]


def _losses(source: ExportSource) -> list[str]:
    metrics, record = source.manifest.metrics, source.record
    rows = [(k, f"{v:.4f}") for k, v in metrics.items() if k in ("train_loss", "val_loss")]
    if record is not None and record.best_val_loss is not None:
        best = f"{record.best_val_loss:.4f} (step {record.best_step})"
        rows.append(("best val_loss of the run", best))
    if not rows:
        return []
    lines = ["## Losses at this checkpoint", "", "| | |", "|---|---|"]
    return [*lines, *(f"| {k} | {v} |" for k, v in rows), ""]
