"""The controller's state kept in the study, so that a rerun and parallel workers continue one
controller.

The whole controller (LSTM and head weights, Adam's state, the baseline and the running RMS of
the advantage, the vocabulary, the update count) is ``torch.save``'d (it loads with
``torch.load(weights_only=True)``), base64 encoded and stored in the study's system attributes in
chunks of ``CHUNK`` characters (keys ``netspec.rl:state:<slot>:<i>``) with a header
(``netspec.rl:state``: slot, chunk count, SHA-256, a write id). Writes alternate between two
slots, each write is read back and checked before the header that points to it is written, so a
reader never mixes two states; a reader that meets a checksum mismatch (a writer lapped it) reads
again, and after a few tries goes on with its own state rather than failing the trial. Two
workers finishing within the same few milliseconds may lose one of the two updates (last writer
wins), which costs a sample's worth of learning, nothing else.

Optuna has no public interface to a study's system attributes: they are read and written through
``study._storage`` and ``study._study_id``.
"""
from __future__ import annotations

import base64
import hashlib
import io
import random
import time
import uuid
import warnings

import torch

KEY = "netspec.rl:state"          # the header; the chunks are KEY:<slot>:<i>
CHUNK = 32_000                    # characters per system attribute (MySQL's TEXT holds 64 KiB)


def save_state(study, state: dict, info: dict, attempts: int = 5) -> str | None:
    """Write ``state`` into the study: the chunks into the slot the header does not point to,
    read back and checked, then the header (with ``info`` in it). The new state's id, or None
    when other workers kept writing the same slot (the update is then not saved)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    text = base64.b64encode(buf.getvalue()).decode("ascii")
    sha = hashlib.sha256(text.encode()).hexdigest()
    chunks = [text[i:i + CHUNK] for i in range(0, len(text), CHUNK)] or [""]
    storage, sid = study._storage, study._study_id
    for attempt in range(attempts):
        header = storage.get_study_system_attrs(sid).get(KEY) or {}
        slot = 1 - int(header.get("slot", 1))
        for i, chunk in enumerate(chunks):
            storage.set_study_system_attr(sid, f"{KEY}:{slot}:{i}", chunk)
        if read_slot(storage.get_study_system_attrs(sid), slot, len(chunks)) == sha:
            break
        # another worker wrote the same slot at the same moment: write again, a bit later
        time.sleep(0.02 * (attempt + 1) * (1 + random.random()))
    else:
        warnings.warn("strategy=rl: could not write the controller state consistently (other "
                      "workers kept writing at the same moment); this update is not saved",
                      stacklevel=3)
        return None
    state_id = uuid.uuid4().hex
    storage.set_study_system_attr(sid, KEY, {"slot": slot, "chunks": len(chunks), "sha256": sha,
                                             "id": state_id, **info})
    return state_id


def read_slot(attrs: dict, slot: int, chunks: int, text: list | None = None) -> str | None:
    """The SHA-256 of a slot's chunks as stored (None if some are missing); the joined chunks
    are appended to ``text`` where given."""
    try:
        joined = "".join(attrs[f"{KEY}:{slot}:{i}"] for i in range(int(chunks)))
    except KeyError:
        return None
    if text is not None:
        text.append(joined)
    return hashlib.sha256(joined.encode()).hexdigest()


def load_state(study, known_id: str | None, attempts: int = 5) -> tuple[dict, str] | None:
    """The state saved in the study and its id, if it is not the one of ``known_id``."""
    storage, sid = study._storage, study._study_id
    for attempt in range(attempts):
        attrs = storage.get_study_system_attrs(sid)
        header = attrs.get(KEY)
        if not header or header.get("id") == known_id:
            return None
        text: list = []
        if read_slot(attrs, header["slot"], header["chunks"], text) == header["sha256"]:
            state = torch.load(io.BytesIO(base64.b64decode(text[0])), weights_only=True)
            return state, header["id"]
        time.sleep(0.02 * (attempt + 1))     # a writer is between chunks and header
    warnings.warn(f"strategy=rl: the controller state in the study does not match its "
                  f"header ({KEY}) after {attempts} reads; going on with this worker's own "
                  f"state (the next update rewrites it)", stacklevel=3)
    return None
