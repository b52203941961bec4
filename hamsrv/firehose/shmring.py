"""A spot ring in shared memory: one writer process, any number of reader processes, no locks.

Records are opaque bytes addressed by sequence number (1, 2, 3, ...). Memory is fixed when the ring
is created: a header, a table of slots (one per sequence number modulo the slot count) and a circular
data area. Readers never block the writer and never see a torn record:

- Each slot works as a seqlock. The writer first marks the slot busy (its sequence number with the top
  bit set), then writes the data, the offset and the length, then the plain sequence number. A reader
  copies the record and checks that the slot still holds the sequence number it asked for.
- The data area is reused in a circle. Before overwriting bytes the writer advances `data_head` (the
  total bytes ever reserved); a record copied from offset `off` is intact only if afterwards
  `data_head - off <= capacity`, i.e. nothing has been written over its bytes yet.

A reader that fell further behind than the ring holds gets `Lapped` and tells its clients about the gap.
This relies on stores becoming visible in program order, which x86-64 (TSO) guarantees for plain
stores; on weaker memory models a fence would be needed between the steps above.
"""

from __future__ import annotations

import struct
from multiprocessing import resource_tracker, shared_memory

_MAGIC = 0x68736872  # "hshr"
_HEADER = struct.Struct("<IIQQQQ")  # magic, version, slots, capacity, last_seq, data_head
_HEADER_SIZE = 64
_LAST_SEQ_AT = 24
_DATA_HEAD_AT = 32
_SLOT = struct.Struct("<QQQ")  # seq (busy bit while written), data offset (absolute), length
_SLOT_SIZE = 32
_BUSY = 1 << 63
_U64 = struct.Struct("<Q")


class Lapped(Exception):
    """The record asked for has already been overwritten: the reader is too far behind."""


class SharedRing:
    """Create with `SharedRing.create(...)`; open by name in other processes with `SharedRing.attach(name)`."""

    def __init__(self, shm: shared_memory.SharedMemory, *, owner: bool, writer: bool):
        self._shm = shm
        self._owner = owner  # frees the memory on close
        self._writer = writer
        buf = shm.buf
        assert buf is not None
        magic, _version, self.slots, self.capacity, _, _ = _HEADER.unpack_from(buf, 0)
        if magic != _MAGIC:
            raise ValueError(f"shared memory {shm.name!r} is not a hamsrv spot ring")
        self._buf = buf
        self._data_at = _HEADER_SIZE + self.slots * _SLOT_SIZE
        self.max_record = self.capacity // 4  # so a record never evicts most of the ring at once

    @classmethod
    def create(cls, *, slots: int = 1 << 18, capacity: int = 128 << 20, name: str | None = None) -> SharedRing:
        """A new, empty ring of `slots` records and `capacity` data bytes (both fixed for its life)."""
        if slots < 2 or capacity < 1024:
            raise ValueError("a shared ring needs at least 2 slots and 1 KiB of data")
        size = _HEADER_SIZE + slots * _SLOT_SIZE + capacity
        shm = shared_memory.SharedMemory(name=name, create=True, size=size)
        assert shm.buf is not None
        _HEADER.pack_into(shm.buf, 0, _MAGIC, 1, slots, capacity, 0, 0)
        return cls(shm, owner=True, writer=True)

    @classmethod
    def attach(cls, name: str, *, writer: bool = False) -> SharedRing:
        """Open an existing ring by name in another process (the one `writer` among them may append).
        Raises FileNotFoundError if it is gone."""
        shm = shared_memory.SharedMemory(name=name)
        # A reader must not have Python's resource tracker unlink the writer's memory when it exits
        # (Python 3.13 has `track=False` for this).
        resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
        return cls(shm, owner=False, writer=writer)

    @property
    def name(self) -> str:
        return self._shm.name

    @property
    def size(self) -> int:
        return self._shm.size

    @property
    def last_seq(self) -> int:
        """Newest sequence number fully written (0 when empty)."""
        return int(_U64.unpack_from(self._buf, _LAST_SEQ_AT)[0])

    @property
    def first_seq(self) -> int:
        """Oldest sequence number that may still be readable (a hint: data reuse can evict sooner)."""
        return max(1, self.last_seq - self.slots + 1)

    def append(self, record: bytes) -> int:
        """Write one record; returns its sequence number. One process at a time may write."""
        if not self._writer:
            raise PermissionError("this process opened the ring for reading")
        n = len(record)
        if n > self.max_record:
            raise ValueError(f"record of {n} bytes is larger than the ring allows ({self.max_record})")
        buf, cap = self._buf, self.capacity
        seq = self.last_seq + 1
        off = int(_U64.unpack_from(buf, _DATA_HEAD_AT)[0])
        if off % cap + n > cap:  # never wrap a record: skip to the start of the data area
            off += cap - off % cap
        _U64.pack_into(buf, _DATA_HEAD_AT, off + n)  # announce the bytes about to be overwritten
        slot_at = _HEADER_SIZE + (seq % self.slots) * _SLOT_SIZE
        _U64.pack_into(buf, slot_at, seq | _BUSY)
        start = self._data_at + off % cap
        buf[start:start + n] = record
        _SLOT.pack_into(buf, slot_at, seq | _BUSY, off, n)
        _U64.pack_into(buf, slot_at, seq)
        _U64.pack_into(buf, _LAST_SEQ_AT, seq)
        return seq

    def read(self, seq: int) -> bytes | None:
        """The record `seq`: None when it is not written yet; raises Lapped when it is gone."""
        buf = self._buf
        if seq < 1:
            raise ValueError("sequence numbers start at 1")
        if seq > self.last_seq:
            return None
        slot_at = _HEADER_SIZE + (seq % self.slots) * _SLOT_SIZE
        stamp, off, n = _SLOT.unpack_from(buf, slot_at)
        if stamp != seq:
            raise Lapped(seq)
        start = self._data_at + off % self.capacity
        record = bytes(buf[start:start + n])
        if _U64.unpack_from(buf, slot_at)[0] != seq or _U64.unpack_from(buf, _DATA_HEAD_AT)[0] - off > self.capacity:
            raise Lapped(seq)
        return record

    def close(self) -> None:
        """Detach; the creating process also frees the memory."""
        self._buf.release()
        self._shm.close()
        if self._owner:
            self._shm.unlink()
