"""``History``: one invocation's journal as a file, for replay tests (docs/testing.md).

``ritornello invocations export ID`` writes it from the admin API's ``GET /invocations/{id}``
(``History.from_admin``), ``Harness.export`` from the harness's own engine; ``replay`` reads
it (``History.load``). The document (version 1)::

    {"format": "ritornello-history", "version": 1,
     "invocation": {"id", "service", "handler", "key", "status", "result"},
     "journal": [entry, ...],            # entry n at position n; entry 0 is the input
     "completions": [{"index", "value" | "failure"}, ...]}

Entries are the protocol's (docs/protocol.md), as stored, with ``at`` (their commit time,
informational) kept; completions are those of the journal's waiting entries (read from the
store, ``of_record``, also the engine's signals: a cancellation is index -1).

Invariant: ``load`` accepts what ``to_dict`` writes, and refuses (``HarnessError``) a document
that is not one, so a replay never runs against half a journal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ritornello.protocol import Completion, Entry
from ritornello.store import InvocationRecord

from .errors import HarnessError

FORMAT = "ritornello-history"
VERSION = 1


@dataclass(frozen=True)
class History:
    """One invocation and its journal (see the module docstring)."""

    invocation_id: str
    service: str
    handler: str
    key: str | None
    journal: list[Entry]
    completions: list[Completion] = field(default_factory=list)
    #: the status when it was exported (``completed``, ``suspended``, ...)
    status: str = ""
    #: ``{"value"}`` or ``{"failure"}`` once finished
    result: dict[str, Any] | None = None

    @property
    def target(self) -> str:
        return f"{self.service}/{self.handler}"

    @property
    def finished(self) -> bool:
        """Whether the journal ends with the invocation's output."""
        return self.journal[-1].get("kind") == "output"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "invocation": {
                "id": self.invocation_id,
                "service": self.service,
                "handler": self.handler,
                "key": self.key,
                "status": self.status,
                "result": self.result,
            },
            "journal": self.journal,
            "completions": self.completions,
        }

    def dumps(self) -> str:
        """The document as indented JSON text (what the CLI writes)."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def of_record(
        cls, rec: InvocationRecord, entries: list[str], completions: list[str]
    ) -> History:
        """From the store: an invocation's record, journal and completions (JSON texts)."""
        done: list[Completion] = sorted(map(json.loads, completions), key=lambda c: c["index"])
        return cls(
            invocation_id=rec.id,
            service=rec.service,
            handler=rec.handler,
            key=rec.key,
            journal=[json.loads(e) for e in entries],
            completions=done,
            status=rec.status,
            result=json.loads(rec.result) if rec.result else None,
        )

    @classmethod
    def from_admin(cls, detail: Mapping[str, Any]) -> History:
        """From the admin API's ``GET /invocations/{id}`` (the journal with each entry's
        ``index`` and folded ``completion``)."""
        journal: list[Entry] = []
        completions: list[Completion] = []
        for item in detail.get("journal") or []:
            entry = {k: v for k, v in item.items() if k not in ("index", "completion")}
            done = item.get("completion")
            if isinstance(done, dict):
                completions.append({"index": item["index"], **done})  # type: ignore[typeddict-item]
            journal.append(entry)  # type: ignore[arg-type]
        invocation = {k: detail.get(k) for k in ("id", "service", "handler", "key", "status")}
        invocation["result"] = detail.get("result")
        document = {
            "format": FORMAT,
            "version": VERSION,
            "invocation": invocation,
            "journal": journal,
            "completions": completions,
        }
        return cls.load(document)

    @classmethod
    def load(cls, source: str | Path | Mapping[str, Any] | History) -> History:
        """From a file path, the document's JSON text, a parsed document, or a ``History``."""
        if isinstance(source, History):
            return source
        doc: Any = source
        is_text = isinstance(source, str) and source.lstrip().startswith("{")
        if isinstance(source, (str, Path)) and not is_text:
            try:
                doc = json.loads(Path(source).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise HarnessError(f"cannot read the history {str(source)!r}: {exc}") from None
        elif isinstance(source, str):
            try:
                doc = json.loads(source)
            except ValueError as exc:
                raise HarnessError(f"the history is not JSON: {exc}") from None
        return cls._parse(doc)

    @classmethod
    def _parse(cls, doc: Any) -> History:
        def bad(why: str) -> HarnessError:
            return HarnessError(f"not a {FORMAT} document: {why}")

        if not isinstance(doc, Mapping) or doc.get("format") != FORMAT:
            raise bad(f"'format' must be {FORMAT!r}")
        if doc.get("version") != VERSION:
            raise bad(f"version {doc.get('version')!r} (this harness reads {VERSION})")
        inv, journal, completions = (doc.get(k) for k in ("invocation", "journal", "completions"))
        if not isinstance(inv, Mapping):
            raise bad("'invocation' must be an object")
        for name in ("id", "service", "handler"):
            if not isinstance(inv.get(name), str) or not inv[name]:
                raise bad(f"invocation.{name} must be a non-empty string")
        if inv.get("key") is not None and not isinstance(inv["key"], str):
            raise bad("invocation.key must be a string or null")
        if not isinstance(journal, list) or not journal:
            raise bad("'journal' must be a non-empty list")
        if not all(isinstance(e, dict) and isinstance(e.get("kind"), str) for e in journal):
            raise bad("every journal entry must be an object with a 'kind'")
        if journal[0]["kind"] != "input":
            raise bad("the journal must start with the input entry")
        if not isinstance(completions, list) or not all(
            isinstance(c, dict) and isinstance(c.get("index"), int) for c in completions
        ):
            raise bad("'completions' must be a list of {index, value|failure}")
        result = inv.get("result")
        return cls(
            invocation_id=inv["id"],
            service=inv["service"],
            handler=inv["handler"],
            key=inv.get("key"),
            journal=list(journal),
            completions=list(completions),
            status=str(inv.get("status") or ""),
            result=result if isinstance(result, dict) else None,
        )
