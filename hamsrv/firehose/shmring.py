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
_HEADER = struct.Struct("=IIQQQQ")  # magic, version, slots, capacity, last_seq, data_head
_HEADER_SIZE = 64
_LAST_SEQ = 3  # 8-byte word indexes into the header
_DATA_HEAD = 4
_FLOOR = 5  # the writer's spot-id floor after a crash (firehose/history.py), for the readers' resets
_SLOT_SIZE = 32  # a slot: seq (busy bit while written), data offset (absolute), length, unused
_BUSY = 1 << 63
# Shared fields are read and written as aligned 8-byte words through a memoryview cast to "Q": one load
# or store each. struct.pack_into must not touch them: it zero-fills its target before writing, so a
# reader racing the writer saw the data head at 0 and took an overwritten record for a whole one (found
# under load by tests/firehose/test_shmring.py::test_readers_in_other_processes).


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
        self._words = buf[:self._data_at].cast("Q")
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
        return int(self._words[_LAST_SEQ])

    @property
    def floor(self) -> int:
        """Ids below it were given out before a crash of the writer's node: readers answer `reset`."""
        return int(self._words[_FLOOR])

    @floor.setter
    def floor(self, value: int) -> None:
        if not self._writer:
            raise PermissionError("this process opened the ring for reading")
        self._words[_FLOOR] = value

    @property
    def first_seq(self) -> int:
        """Oldest sequence number that may still be readable (a hint: data reuse can evict sooner)."""
        return max(1, self.last_seq - self.slots + 1)

    def append(self, record: bytes, seq: int | None = None) -> int:
        """Write one record as `seq` (default: the next number; a later one skips numbers, which readers
        find lapped, as when the writer's own numbering continues a saved history); returns its sequence
        number. One process at a time may write."""
        if not self._writer:
            raise PermissionError("this process opened the ring for reading")
        n = len(record)
        if n > self.max_record:
            raise ValueError(f"record of {n} bytes is larger than the ring allows ({self.max_record})")
        buf, words, cap = self._buf, self._words, self.capacity
        if seq is None:
            seq = words[_LAST_SEQ] + 1
        elif seq <= words[_LAST_SEQ]:
            raise ValueError(f"record {seq} is not newer than {words[_LAST_SEQ]}")
        off = words[_DATA_HEAD]
        if off % cap + n > cap:  # never wrap a record: skip to the start of the data area
            off += cap - off % cap
        words[_DATA_HEAD] = off + n  # announce the bytes about to be overwritten
        slot = (_HEADER_SIZE + (seq % self.slots) * _SLOT_SIZE) // 8
        words[slot] = seq | _BUSY
        start = self._data_at + off % cap
        buf[start:start + n] = record
        words[slot + 1] = off
        words[slot + 2] = n
        words[slot] = seq
        words[_LAST_SEQ] = seq
        return seq

    def read(self, seq: int) -> bytes | None:
        """The record `seq`: None when it is not written yet; raises Lapped when it is gone."""
        buf = self._buf
        if seq < 1:
            raise ValueError("sequence numbers start at 1")
        if seq > self.last_seq:
            return None
        words = self._words
        slot = (_HEADER_SIZE + (seq % self.slots) * _SLOT_SIZE) // 8
        if words[slot] != seq:
            raise Lapped(seq)
        off, n = words[slot + 1], words[slot + 2]
        start = self._data_at + off % self.capacity
        record = bytes(buf[start:start + n])
        if words[slot] != seq or words[_DATA_HEAD] - off > self.capacity:
            raise Lapped(seq)
        return record

    def close(self) -> None:
        """Detach; the creating process also frees the memory."""
        self._words.release()
        self._buf.release()
        self._shm.close()
        if self._owner:
            self._shm.unlink()
