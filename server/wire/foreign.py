"""Request fields known from other servers' APIs (vLLM, llama.cpp, Ollama) that are not served.

Such a field is never silently ignored: a request that sets it to anything but its "off" value
gets a 400 naming it. Clients that send a whole settings panel (`typical_p: 1`, `mirostat: 0`,
`use_beam_search: false`) still work, because a field at its off value changes nothing. Fields
no server is known to use stay ignored. The fields this server does implement from those APIs
(`top_k`, `min_p`, `repetition_penalty`, `min_tokens`, `add_generation_prompt`,
`continue_final_message`, ...) are declared in `openai.py` instead.

Pure msgspec, like `openai.py` which builds on it: `server/api/unsupported.py` does the refusing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType


def _falsy(value: Any) -> bool:
    return value is None or value is False or value == [] or value == {} or value == ""


def _one(value: Any) -> bool:
    return value is None or value == 1


def _zero(value: Any) -> bool:
    return value is None or value == 0


def _true(value: Any) -> bool:
    return value is None or value is True


Off = Callable[[Any], bool]
"""True when a value leaves the field's feature off."""

_STRUCTURED = "structured output is requested with response_format, not this field"
_SAMPLER = "this sampler is not implemented; use temperature, top_p, top_k or min_p"
_TEMPLATE = "the model's own chat template is always used"

REFUSED: dict[str, tuple[Off, str]] = {
    # vLLM
    "best_of": (_one, "this server generates exactly the n choices asked for"),
    "use_beam_search": (_falsy, "beam search is not implemented"),
    "length_penalty": (_one, "beam search is not implemented"),
    "echo": (_falsy, "echo scores a final message on /v1/chat/completions only"),
    "ignore_eos": (_falsy, "replies always end at the end-of-turn token"),
    "stop_token_ids": (_falsy, "use stop strings"),
    "include_stop_str_in_output": (_falsy, "stop strings are never returned"),
    "skip_special_tokens": (_true, "special tokens are never part of the text"),
    "spaces_between_special_tokens": (_true, "special tokens are never part of the text"),
    "prompt_logprobs": (_falsy, "prompt logprobs are not computed"),
    "allowed_token_ids": (_falsy, "use logit_bias"),
    "bad_words": (_falsy, "use logit_bias"),
    "truncate_prompt_tokens": (_falsy, "prompts are never truncated; an overlong one is refused"),
    "return_tokens_as_token_ids": (_falsy, "tokens are returned as text and bytes"),
    "add_special_tokens": (_falsy, "the chat template writes the special tokens"),
    "chat_template": (_falsy, _TEMPLATE),
    "chat_template_kwargs": (_falsy, _TEMPLATE),
    "documents": (_falsy, _TEMPLATE),
    "mm_processor_kwargs": (_falsy, "the model takes text only"),
    "logits_processors": (_falsy, "custom logits processors are not loaded"),
    "priority": (_zero, "requests are served in arrival order"),
    "guided_json": (_falsy, _STRUCTURED),
    "guided_regex": (_falsy, _STRUCTURED),
    "guided_choice": (_falsy, _STRUCTURED),
    "guided_grammar": (_falsy, _STRUCTURED),
    "guided_decoding_backend": (_falsy, _STRUCTURED),
    "guided_whitespace_pattern": (_falsy, _STRUCTURED),
    "structured_outputs": (_falsy, _STRUCTURED),
    # llama.cpp server
    "n_predict": (_falsy, "use max_tokens"),
    "typical_p": (_one, _SAMPLER),
    "tfs_z": (_one, _SAMPLER),
    "top_n_sigma": (lambda v: v is None or v <= 0, _SAMPLER),
    "mirostat": (_zero, _SAMPLER),
    "mirostat_tau": (lambda v: True, _SAMPLER),
    "mirostat_eta": (lambda v: True, _SAMPLER),
    "dynatemp_range": (_zero, _SAMPLER),
    "xtc_probability": (_zero, _SAMPLER),
    "dry_multiplier": (_zero, _SAMPLER),
    "repeat_penalty": (_one, "use repetition_penalty"),
    "repeat_last_n": (lambda v: True, "use repetition_context_size"),
    "penalize_nl": (_falsy, "use repetition_penalty"),
    "samplers": (_falsy, "the sampler order is fixed"),
    "grammar": (_falsy, _STRUCTURED),
    "json_schema": (_falsy, _STRUCTURED),
    "n_probs": (_zero, "use logprobs and top_logprobs"),
    "n_keep": (_zero, "prompts are never truncated"),
    "image_data": (_falsy, "the model takes text only"),
    # Ollama
    "options": (_falsy, "send sampling fields at the top level, by their OpenAI or vLLM names"),
    "format": (_falsy, _STRUCTURED),
    "keep_alive": (lambda v: v is None, "the model stays loaded while the server runs"),
    "think": (_falsy, "this model does not reason in a separate channel"),
    "raw": (_falsy, "use /v1/completions for a raw prompt"),
    "template": (_falsy, _TEMPLATE),
    "context": (_falsy, "send the conversation as messages"),
    "images": (_falsy, "the model takes text only"),
}
"""Field -> (its off test, why it is refused)."""

ForeignFields: Any = msgspec.defstruct(
    "ForeignFields",
    [(name, Any | UnsetType, UNSET) for name in REFUSED],
    frozen=True,
    kw_only=True,
)
"""A base Struct declaring every refused field, so a request can be checked for them."""
