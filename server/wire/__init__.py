"""The server's JSON as msgspec Structs, by domain: OpenAI's chat, completions and models
(openai.py), the Responses API (responses.py), drafts, personas and records, and the fields of
other servers' APIs that are refused by name (foreign.py).

Pure msgspec: these modules import only msgspec, `data/` and each other, so the stores beside
`server/api/` persist them and the TUI decodes the server's replies with these very Structs.
"""
