"""Character cards (V2, V3, PNG, CHARX): read them into personas and write personas back out."""
