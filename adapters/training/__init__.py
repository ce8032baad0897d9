"""`persona train`: LoRA, DoRA and full fine-tuning on mlx-lm, driven from code.

The pure-type modules here (`record`, `events`, `config`) import nothing heavier than msgspec, so
the server and the TUI may read run records and events without pulling in mlx.
"""
