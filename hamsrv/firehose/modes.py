"""The mode vocabulary of the firehose, in one place: the words spotters, RBN, filters and `set/skimmer`
use for modes, and the spot modes each stands for. No I/O.

Four vocabularies, because four audiences write modes differently: spot comments (`599 TKS USB`),
RBN's first comment word (`FT8 -12 dB`), DXSpider filter words (`on hf/phone`) and the `set/skimmer`
kinds of cmd/set/wantrbn.pl (CW, RTTY, FT, BEACON, PSK). All map onto the modes spots carry.
"""

from __future__ import annotations

import re

from hamsrv.model import Spot

# Comment words that name a mode, as spotters write them -> the mode we report. FT4/JS8/PSK31 are kept
# as spotters say them (ADIF would log them as MFSK/PSK submodes).
MODE_WORDS = {
    "CW": "CW", "SSB": "SSB", "USB": "SSB", "LSB": "SSB", "RTTY": "RTTY", "FT8": "FT8", "FT4": "FT4",
    "PSK": "PSK31", "PSK31": "PSK31", "BPSK": "PSK31", "BPSK31": "PSK31", "PSK63": "PSK63",
    "PSK125": "PSK125", "JS8": "JS8", "JS8CALL": "JS8", "JT65": "JT65", "JT9": "JT9", "Q65": "Q65",
    "MSK144": "MSK144", "FST4": "FST4", "WSPR": "WSPR", "SSTV": "SSTV", "OLIVIA": "OLIVIA",
    "MFSK": "MFSK", "HELL": "HELL", "FM": "FM", "VARA": "VARA",
}

# Modes that RBN (and decoders such as JTAlert) put first in a `MODE SNR dB` comment.
SKIMMER_MODES = frozenset({"CW", "RTTY", "FT8", "FT4", "PSK31", "PSK63", "PSK125", "BPSK31", "MSK144",
                           "JT65", "JT9", "Q65", "FST4", "FST4W", "WSPR", "JS8", "SSB", "FM", "AM"})

PHONE = frozenset({"SSB", "USB", "LSB", "AM", "FM"})
# Mode words a filter may use, each with the spot modes it stands for (None: every digital mode).
FILTER_MODES: dict[str, frozenset[str] | None] = {
    "cw": frozenset({"CW"}), "ssb": frozenset({"SSB", "USB", "LSB"}), "phone": PHONE,
    "rtty": frozenset({"RTTY"}), "data": None, "digi": None,
    **{m.lower(): frozenset({m}) for m in ("FT8", "FT4", "PSK31", "PSK63", "JT65", "JT9", "JS8",
                                           "MSK144", "Q65", "FM", "AM", "SSTV", "OLIVIA")},
}
NOT_DIGITAL = PHONE | {"CW", "RTTY"}

# `set/skimmer` kinds (cmd/set/wantrbn.pl), the words a user may type for them, and how replies name them.
SKIMMER_ALL = frozenset({"CW", "RTTY", "FT", "BEACON", "PSK"})
SKIMMER_WORDS = re.compile(r"(FT|BCN|BEA|DXF|CW|PSK|MSK|FSK|RTT|NO)")
SKIMMER_WORD_KIND = {"BCN": "BEACON", "BEA": "BEACON", "DXF": "BEACON", "MSK": "PSK", "FSK": "PSK", "RTT": "RTTY"}
SKIMMER_KIND_NAMES = {"CW": "CW", "BEACON": "BEACONS", "PSK": "PSK, FSK", "RTTY": "RTTY", "FT": "FT8 & FT4"}


def is_skimmer(spot: Spot) -> bool:
    return spot.skimmer or spot.spotter.endswith("-#")


def skimmer_kind(spot: Spot) -> str:
    """Which `set/skimmer` word lets this skimmer spot through (cmd/set/wantrbn.pl: FT, BEACON, CW,
    PSK, RTTY)."""
    if spot.extra.get("rbn_type") in ("BEACON", "NCDXF B"):
        return "BEACON"
    mode = (spot.mode or "").upper()
    if mode.startswith("FT"):
        return "FT"
    if mode == "RTTY":
        return "RTTY"
    if mode.startswith(("PSK", "BPSK", "MSK", "FSK")):
        return "PSK"
    return "CW"
