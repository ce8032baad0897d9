"""`persona data draft PERSONA --teacher-url URL --teacher-model ID`: draft data to quota."""

from __future__ import annotations

import argparse
import asyncio
import sys

import msgspec

from data.authoring.drafts.events import Done, Drafted, DraftEvent, Failed, Start


def configure(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `draft` subcommand to `persona data`."""
    draft = sub.add_parser(
        "draft", help="ask a teacher model for conversations that fill the dataset's gaps"
    )
    draft.add_argument("persona", metavar="PERSONA", help="persona name or folder")
    draft.add_argument("--teacher-url", required=True, help="OpenAI-compatible base URL (…/v1)")
    draft.add_argument("--teacher-model", required=True, metavar="ID", help="teacher model id")
    draft.add_argument("--api-key", default="not-needed", help="the teacher's API key")
    draft.add_argument("--count", type=int, help="drafts to ask for (default: enough to fill)")
    draft.add_argument("--seed", type=int, default=0)
    draft.add_argument(
        "--max-tokens", type=int, default=1024, help="longest teacher answer (default 1024)"
    )
    draft.add_argument("--json", action="store_true", help="print one JSON event per line")
    draft.add_argument(
        "--no-tokenizer", action="store_true", help="skip checks that need the tokenizer"
    )


def run_draft(args: argparse.Namespace) -> int:
    """Draft and report; 0 when done, 1 when the teacher failed (drafts written stay), 2 usage."""
    from data.authoring.drafts.run import Teacher, draft
    from data.cards.folder import card_tags
    from data.dataset import read_datasets

    from .imports import ImportUsageError, writable_persona
    from .paths import load_tokenizer

    try:
        entry = writable_persona(args.persona)
    except ImportUsageError as exc:
        print(f"persona data draft: {exc}", file=sys.stderr)
        return 2
    if args.count is not None and args.count < 1:
        print("persona data draft: --count must be at least 1", file=sys.stderr)
        return 2
    folder, card = entry.folder, entry.card
    records = [r.record for r in read_datasets(entry.data_files).rows]
    tokenizer = None
    if not args.no_tokenizer:
        tokenizer, note = load_tokenizer(card.base_model)
        if note:
            print(f"note: {note}", file=sys.stderr)
    progress = Progress(args.json)
    teacher = Teacher(
        args.teacher_url, args.teacher_model, args.api_key, max_tokens=args.max_tokens
    )

    async def go() -> Done | Failed:
        try:
            return await draft(
                folder, card, records, teacher, args.count, progress, tokenizer,
                card_tags(folder), args.seed,
            )  # fmt: skip
        finally:
            await teacher.aclose()

    result = asyncio.run(go())
    return 0 if isinstance(result, Done) else 1


class Progress:
    """Prints events: JSON lines with `--json`, else a progress bar and a summary on stderr."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.total = 0
        self.kept = 0
        self.dropped = 0

    def __call__(self, event: DraftEvent) -> None:
        """Show one event."""
        if self.as_json:
            sys.stdout.write(msgspec.json.encode(event).decode() + "\n")
            sys.stdout.flush()
            return
        if isinstance(event, Start):
            self.total = event.count
            if not event.count:
                print(
                    "nothing to draft: the dataset has no gap to fill; --count N drafts anyway",
                    file=sys.stderr,
                )
                return
            gaps = "; ".join(event.gaps) or "none the stats warn about"
            print(
                f"drafting {event.count} for {event.persona} with {event.teacher}", file=sys.stderr
            )
            print(f"gaps: {gaps}", file=sys.stderr)
        elif isinstance(event, Drafted):
            self.kept += event.kept
            self.dropped += not event.kept
            self._bar()
            if not event.kept:
                sys.stderr.write(f"\n  dropped ({event.target.describe()}): {event.reason}\n")
        elif isinstance(event, Failed):
            print(f"\npersona data draft: {event.message}", file=sys.stderr)
        elif self.total:
            print(
                f"\n{event.kept} drafts kept, {event.dropped} dropped; review them in the TUI "
                f"(Data, Review) or {event.file}",
                file=sys.stderr,
            )

    def _bar(self, width: int = 30) -> None:
        done = min(self.kept, self.total)
        filled = width * done // max(self.total, 1)
        bar = "#" * filled + "-" * (width - filled)
        sys.stderr.write(f"\r[{bar}] {done}/{self.total} kept, {self.dropped} dropped")
        sys.stderr.flush()
