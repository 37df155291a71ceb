"""Checkpoints of the ledger's hash chains: what an auditor keeps to compare with later.

Every ledger entry is chained to the previous entry of its account
(``ledger.domain.entry_hash``); the chain proves an entry was edited, deleted or inserted
only as long as the head cannot be rewritten along with the history. A checkpoint exports
every account's head (sequence number and hash) once a day — to a file, and as a
``ledger.checkpoint`` event (with the file's digest) for consumers and webhooks — so a
later ``loyalist ledger verify --checkpoint FILE`` proves the history up to it unchanged.

File format (JSON, UTF-8)::

    {"format": "loyalist.ledger-checkpoint/1", "date": "2026-06-10",
     "taken_at": "2026-06-09T16:10:00.000000Z", "accounts": 2, "entries": 7,
     "heads": [[account_id, chain_seq, head_hash_or_null], …],
     "digest": sha256 hex of the canonical JSON of "heads"}
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from loyalist.events import service as events
from loyalist.ledger import service as ledger

FORMAT = "loyalist.ledger-checkpoint/1"


@dataclass(frozen=True)
class Checkpoint:
    date: str
    path: Path
    accounts: int
    entries: int
    digest: str


def heads_digest(heads: list[list[Any]]) -> str:
    body = json.dumps(heads, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def build(session: Session, now: datetime, local_date: str) -> dict[str, Any]:
    """The checkpoint document of every account's chain head, as of this transaction."""
    found = ledger.chain_heads(session)
    heads: list[list[Any]] = [[h.account_id, h.seq, h.hash] for h in found]
    return {
        "format": FORMAT,
        "date": local_date,
        "taken_at": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "accounts": len(heads),
        "entries": sum(h.seq for h in found),
        "heads": heads,
        "digest": heads_digest(heads),
    }


def write(directory: Path, doc: dict[str, Any]) -> Path:
    """Write ``ledger-checkpoint-<date>.json`` atomically (a rerun replaces it)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"ledger-checkpoint-{doc['date']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, path)
    return path


def take(session: Session, now: datetime, local_date: str, directory: Path) -> Checkpoint:
    """Export the chain heads to a file and announce it with a ``ledger.checkpoint`` event."""
    doc = build(session, now, local_date)
    path = write(directory, doc)
    events.emit(
        session,
        "ledger.checkpoint",
        {
            "date": doc["date"],
            "taken_at": doc["taken_at"],
            "accounts": doc["accounts"],
            "entries": doc["entries"],
            "digest": doc["digest"],
            "file": path.name,
        },
    )
    return Checkpoint(doc["date"], path, doc["accounts"], doc["entries"], doc["digest"])


def read_checkpoint(path: Path) -> list[ledger.ChainHead]:
    """The heads of a checkpoint file; ValueError if it is not one or was altered."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"not a ledger checkpoint (format {FORMAT} expected)")
    heads = doc.get("heads")
    if not isinstance(heads, list) or heads_digest(heads) != doc.get("digest"):
        raise ValueError("the file's heads do not match its digest (the file was altered)")
    out: list[ledger.ChainHead] = []
    for h in heads:
        if (
            not isinstance(h, list)
            or len(h) != 3
            or not isinstance(h[0], int)
            or not isinstance(h[1], int)
            or not (h[2] is None or isinstance(h[2], str))
        ):
            raise ValueError(f"malformed head {h!r}")
        out.append(ledger.ChainHead(h[0], h[1], h[2]))
    return out
