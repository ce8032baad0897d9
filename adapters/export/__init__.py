"""`persona export`: take a trained persona out of persona studio, one module per format.

Every format module has `refusal(source) -> str | None` (why the export could not be faithful)
and `write(source, folder, options)`, which fills a staging folder that `stage.staged` renames
into place. `source.resolve_source` turns a served model id into the checkpoint, run record,
persona card and base model an export needs.
"""
