"""The streaming zip reader against zips written by Python's zipfile (seekable and streamed, stored and
deflated, ZIP64), fed in arbitrary pieces; cut short or corrupted ones must be reported."""

from __future__ import annotations

import contextlib
import io
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hamsrv.sync.zipstream import ZipError, ZipStream
from tests.testdata import TESTDATA


class Unseekable(io.RawIOBase):
    """Makes zipfile write data descriptors after each entry, as a streaming writer does."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[override]
        self.data += b
        return len(b)


def make_zip(files: dict[str, bytes], *, method: int = zipfile.ZIP_DEFLATED, streamed: bool = False,
             zip64: bool = False) -> bytes:
    out: io.BytesIO | Unseekable = Unseekable() if streamed else io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=method) as zf:  # type: ignore[arg-type]
        for name, data in files.items():
            with zf.open(zipfile.ZipInfo(name, (2024, 5, 12, 0, 0, 0)), "w", force_zip64=zip64) as f:
                f.write(data)
    return bytes(out.data if isinstance(out, Unseekable) else out.getvalue())


def read_stream(data: bytes, cuts: list[int], wanted=lambda name: True) -> dict[str, bytes]:
    stream = ZipStream(wanted)
    files: dict[str, bytearray] = {}
    order: list[str] = []
    points = sorted({c % (len(data) + 1) for c in cuts}) + [len(data)]
    start = 0
    for point in points:
        for kind, name, payload in stream.feed(data[start:point]):
            if kind == "start":
                files[name] = bytearray()
                order.append(name)
            elif kind == "data":
                files[name] += payload
        start = point
    stream.close()
    return {name: bytes(files[name]) for name in order}


def test_real_uls_files_in_a_zip():
    files = {name: (TESTDATA / "fcc_uls" / name).read_bytes() for name in ("AM.dat", "EN.dat", "HD.dat", "HS.dat")}
    data = make_zip(files)
    assert read_stream(data, [1, 7, 100, 3000]) == files
    only = read_stream(data, [50], wanted=lambda name: name in ("EN.dat", "HD.dat"))
    assert only == {"EN.dat": files["EN.dat"], "HD.dat": files["HD.dat"]}


file_sets = st.dictionaries(st.text("ABCDEFGH.dat", min_size=1, max_size=12), st.binary(max_size=3000) |
                            st.text("EN|123 ", max_size=5000).map(str.encode), min_size=0, max_size=4)


@settings(max_examples=150, deadline=None)
@given(file_sets, st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]), st.booleans(), st.booleans(),
       st.lists(st.integers(0, 20000), max_size=8))
def test_any_zip_in_any_pieces_reads_back(files, method, streamed, zip64, cuts):
    data = make_zip(files, method=method, streamed=streamed, zip64=zip64)
    assert read_stream(data, cuts) == files


@settings(max_examples=150, deadline=None)
@given(file_sets.filter(bool), st.booleans(), st.data())
def test_a_cut_short_zip_is_reported(files, streamed, data):
    whole = make_zip(files, streamed=streamed)
    cut = data.draw(st.integers(0, len(whole) - 1))
    with pytest.raises(ZipError, match="truncated|corrupt|not a zip"):
        read_stream(whole[:cut], [cut // 2])


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=1, max_size=4000), st.data())
def test_a_flipped_data_byte_fails_the_check(payload, data):
    whole = bytearray(make_zip({"EN.dat": payload}, method=zipfile.ZIP_STORED))
    at = 30 + len("EN.dat") + data.draw(st.integers(0, len(payload) - 1))  # inside the stored data
    whole[at] ^= 0xFF
    with pytest.raises(ZipError, match="CRC"):
        read_stream(bytes(whole), [])


@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=4))
def test_any_bytes_give_entries_or_a_zip_error(data, cuts):
    with contextlib.suppress(ZipError):
        read_stream(data, cuts)


def test_html_instead_of_a_zip():
    with pytest.raises(ZipError, match="not a zip file"):
        read_stream(b"<!DOCTYPE html><html><body>Error</body></html>", [])


def test_a_stored_entry_with_a_trailing_descriptor_is_found_by_its_crc():
    payload = b"EN|1|" + b"PK\x07\x08" * 3 + b"x" * 100  # descriptor signatures inside the data
    data = make_zip({"EN.dat": payload, "AM.dat": b"AM|1"}, method=zipfile.ZIP_STORED, streamed=True)
    assert read_stream(data, [10, 40]) == {"EN.dat": payload, "AM.dat": b"AM|1"}
