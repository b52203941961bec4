"""Telnet line framing and the limits every cluster-protocol connection shares, sans-I/O.

The user port (session.py), feeds and links (links.py), node peering (peering.py) and the HTTP spot
input (spot_input.py) all read cluster text: they take their line reader and limits from here, so one
limit holds for all of them.
"""

from __future__ import annotations

import enum
import re

from hamsrv.model import decode_text, without_control

# A security limit for every line the cluster port and links read (users, feeds, upstream nodes): no
# real cluster line comes near it; longer input is rejected unparsed.
MAX_LINE = 1024
LOGIN_TIMEOUT = 60.0  # seconds for a login, both ways (DXSpider ExtMsg.pm uses 60)
MAX_COMMENT = 60  # user spot comments are cut here; an 80-column line shows only 30 characters


_IAC, _SB, _SE = 255, 250, 240
_OPTION_VERBS = frozenset((251, 252, 253, 254))  # WILL WONT DO DONT take one option byte
_EOL = re.compile(rb"\r\n|\r|\n")


class _Telnet(enum.Enum):
    DATA = 0
    COMMAND = 1  # after IAC
    OPTION = 2  # after IAC WILL/WONT/DO/DONT
    SUB = 3  # inside IAC SB ... IAC SE
    SUB_IAC = 4


def clean_text(raw: bytes) -> str:
    """Decode a line as a terminal would show it: backspace/DEL applied, other control bytes dropped."""
    text = decode_text(raw).replace("\t", " ")
    if "\x08" in text or "\x7f" in text:
        kept: list[str] = []
        for ch in text:
            if ch in "\x08\x7f":
                if kept:
                    kept.pop()
            else:
                kept.append(ch)
        text = "".join(kept)
    return without_control(text)


class LineReader:
    """Splits a telnet byte stream into text lines.

    Telnet negotiation is dropped (we never negotiate, so clients stay in their default line mode);
    a line longer than `max_line` bytes is discarded and reported once as None, so memory per
    connection is bounded no matter what a peer sends.
    """

    def __init__(self, max_line: int = MAX_LINE):
        if max_line < 1:
            raise ValueError("max_line must be positive")
        self.max_line = max_line
        self._buf = bytearray()
        self._telnet = _Telnet.DATA
        self._after_cr = False  # a CR ended the last chunk: a leading LF belongs to it
        self._overflow = False

    @property
    def partial(self) -> str:
        """The unterminated tail (prompts such as `login: ` arrive without a newline)."""
        return clean_text(bytes(self._buf))

    def feed(self, data: bytes) -> list[str | None]:
        """Complete lines found so far; None stands for a line dropped as too long."""
        if self._telnet is not _Telnet.DATA or _IAC in data:
            data = self._strip_telnet(data)
        if not data:
            return []
        if self._after_cr and data[0] == 0x0A:
            data = data[1:]
        self._after_cr = data.endswith(b"\r")
        *complete, tail = _EOL.split(data)
        lines = [self._finish(part) for part in complete]
        self._append(tail)
        return lines

    def _finish(self, part: bytes) -> str | None:
        too_long = self._overflow or len(self._buf) + len(part) > self.max_line
        raw = bytes(self._buf) + part
        self._buf.clear()
        self._overflow = False
        return None if too_long else clean_text(raw)

    def _append(self, part: bytes) -> None:
        if self._overflow:
            return
        if len(self._buf) + len(part) > self.max_line:
            self._overflow = True
            self._buf.clear()
        else:
            self._buf += part

    def _strip_telnet(self, data: bytes) -> bytes:
        out = bytearray()
        state = self._telnet
        for byte in data:
            if state is _Telnet.DATA:
                if byte == _IAC:
                    state = _Telnet.COMMAND
                else:
                    out.append(byte)
            elif state is _Telnet.COMMAND:
                if byte in _OPTION_VERBS:
                    state = _Telnet.OPTION
                elif byte == _SB:
                    state = _Telnet.SUB
                else:  # IAC IAC (a literal 0xFF, never valid text here) or a 2-byte command
                    state = _Telnet.DATA
            elif state is _Telnet.OPTION:
                state = _Telnet.DATA
            elif state is _Telnet.SUB:
                if byte == _IAC:
                    state = _Telnet.SUB_IAC
            else:  # SUB_IAC
                state = _Telnet.DATA if byte == _SE else _Telnet.SUB
        self._telnet = state
        return bytes(out)
