from __future__ import annotations

import uuid


def new_id(prefix: str) -> str:
    """Prefixed random ids (``ent_…``, ``hold_…``) so a log line says what an id names."""
    return f"{prefix}_{uuid.uuid4().hex}"
