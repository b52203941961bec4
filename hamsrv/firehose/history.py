"""Spot history across restarts: the ring is written to a file in the data dir at shutdown and every
`interval` seconds (one line per spot, the JSON the firehose sends, bounded by the ring's own bounds),
and read back at start. Ids then continue where they stopped, `sh/dx` and `/api/spots` show the last
hours again, and a client resuming with `since=` gets what it missed or a gap message, never ids that
mean other spots. The file format is plain JSON lines: a header `{"last_id": N, "clean": true|false}`,
then the spots.

After a crash the file is the last periodic save: ids given out since then are unknown, and numbering
on from the saved last id would give them again to other spots. So a start after a save that is not
`clean` numbers on from a point well past it (CRASH_SKIP: more ids than a node gives out between two
saves), renumbers the restored spots to just below it, and sets the ring's floor there: a client
resuming with an id of the earlier life gets a reset message instead of other spots.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio

from hamsrv.firehose.hub import Hub
from hamsrv.firehose.ring import SpotRing
from hamsrv.model import Spot, valid_khz

log = logging.getLogger(__name__)
FILE_NAME = "spot-history.jsonl"
_SPOT_KEYS = frozenset(Spot.__dataclass_fields__) - {"time", "extra"}
CRASH_SKIP = 10_000_000  # ids skipped after a crash: 60 s between saves at 160,000 spots/s


def encode_history(ring: SpotRing, *, clean: bool = False) -> bytes:
    """The snapshot: a header with the last id given out (and whether the server stopped cleanly after
    it), then every held spot, oldest first."""
    lines = [json.dumps({"last_id": ring.last_seq, "clean": clean}).encode()]
    lines += [entry.json for entry in ring.after(0)]
    return b"\n".join(lines) + b"\n"


def decode_history(data: bytes) -> tuple[int, bool, list[tuple[Spot, bytes]]]:
    """(last id, clean stop, [(spot, its JSON)]) from a snapshot; lines that are not a spot are skipped
    (a file cut short still gives what it holds)."""
    lines = data.split(b"\n")
    try:
        header = json.loads(lines[0])
        last_id, clean = int(header["last_id"]), header.get("clean") is True
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return 0, False, []
    spots = []
    for line in lines[1:]:
        spot = _spot(line)
        if spot is not None and 0 < spot.id <= last_id:
            spots.append((spot, line))
    return last_id, clean, spots


def _spot(line: bytes) -> Spot | None:
    try:
        data: dict[str, Any] = json.loads(line)
        when = datetime.fromisoformat(str(data.pop("time")).replace("Z", "+00:00")).astimezone(UTC)
        data.setdefault("comment", "")  # the lean JSON leaves empty values out
        data["freq"] = valid_khz(data.get("freq"))  # the JSON writes whole kHz as integers
        if data["freq"] is None:
            return None
        return Spot(time=when, **{k: v for k, v in data.items() if k in _SPOT_KEYS})
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def restore(hub: Hub, path: Path) -> int:
    """Put the snapshot's spots back into the hub's (empty) ring, aged by their spot time, and continue
    the ids after the last one given out (after a crash: past CRASH_SKIP, see above); returns how many
    spots came back."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    last_id, clean, spots = decode_history(data)
    ring, now, wall = hub.ring, trio.current_time(), datetime.now(UTC)
    if ring.last_seq:  # a worker restarted: the supervisor's shared ring, loaded already, is newer
        clean = True
    if not clean:
        ring.floor = ring.last_seq = last_id + CRASH_SKIP
    for spot, encoded in spots:
        added_at = now - max(0.0, (wall - spot.time).total_seconds())
        if not clean:
            ring.append(spot, added_at)  # numbered (and encoded) again, above the floor
        elif spot.id > ring.last_seq:
            ring.mirror(spot.id, spot, encoded, added_at)
    ring.last_seq = max(ring.last_seq, last_id)
    hub.flush_tick()  # restored spots count as sent: /api/spots and `since=` see them
    return len(ring)


def write_file(path: Path, data: bytes) -> None:
    """Write the snapshot atomically (a crash mid-write leaves the previous one)."""
    temp = path.with_suffix(".tmp")
    with open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


async def keep_history(hub: Hub, data_dir: Path, interval: float, *,
                       task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Restore at start, then save every `interval` seconds and once more when cancelled (shutdown)."""
    path = data_dir / FILE_NAME
    data_dir.mkdir(parents=True, exist_ok=True)
    count = restore(hub, path)
    if count or hub.ring.last_seq:
        log.info("spot history: %d spots restored, ids continue after %d%s", count, hub.ring.last_seq,
                 " (the last stop was not clean)" if hub.ring.floor else "")
    # Saved at once, not clean: a crash before the first periodic save must still number past this
    # life's ids (the file holds its last id, which after a crash lies past the old file's).
    await trio.to_thread.run_sync(write_file, path, encode_history(hub.ring))
    task_status.started()
    try:
        while True:
            await trio.sleep(interval)
            data = encode_history(hub.ring)  # on the loop: the ring changes under a thread
            await trio.to_thread.run_sync(write_file, path, data)
    finally:
        with trio.CancelScope(shield=True):
            try:
                write_file(path, encode_history(hub.ring, clean=True))
            except OSError as exc:
                log.warning("spot history not saved: %s", exc)

