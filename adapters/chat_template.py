"""The Gemma 3 chat template, which the embedded GGUF does not carry.

Roles `assistant` is written as `model`; a system message is folded into the first user turn,
separated by a blank line, as Gemma's own template does. BOS is part of the template, so callers
must not add another one when they tokenize the rendered text.
"""

from __future__ import annotations

GEMMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages and messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] %}{% set turns = messages[1:] %}"
    "{% else %}{% set system = '' %}{% set turns = messages %}{% endif %}"
    "{% for message in turns %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\\n' }}"
    "{% if loop.first and system %}{{ system + '\\n\\n' }}{% endif %}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)
"""Jinja source stored as `chat_template` in the prepared tokenizer."""
