"""`persona data`: the parser, its actions and what they print; the work itself is in `data`."""
