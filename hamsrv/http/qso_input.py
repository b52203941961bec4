"""QSOs in JSON use one vocabulary in and out: ADIF field names (any case; answers use lower case), plus
the read-only `id`, `created` and `updated`. A QSO fetched with GET can be sent back with PATCH as is.

Input goes through the same normalisation and checks as ADIF import (hamsrv.ingest.normalize), so the
API and the importer accept and reject exactly the same things.
"""

from __future__ import annotations

import re
from operator import itemgetter
from typing import Any

from hamsrv.db.database import Row, json_value
from hamsrv.errors import InputError
from hamsrv.ingest.normalize import QSO_COLUMNS, Qso, Reject, normalize, to_fields
from hamsrv.model import is_adif_field

_FIELD_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
READ_ONLY = ("id", "created", "updated")
NUMBERS = {"FREQ": float, "FREQ_RX": float, "DXCC": int}  # the rest are ADIF text, as in a file
# Filled from cty.dat for the CALL: a PATCH that changes the CALL fills them again.
_FROM_CALL = ("DXCC", "COUNTRY", "CONT", "CQZ")


_QSO_VALUES = itemgetter(*QSO_COLUMNS)


def _row_qso(row: Row) -> Qso:
    return Qso(*_QSO_VALUES(row))


def qso_json(row: Row) -> dict[str, Any]:
    """A stored QSO as the API shows it: `id`, its ADIF fields by lower-case name, `created`, `updated`.
    Written for speed (a call lookup answers with up to 100 of them): bulk key renaming, then the few numbers."""
    fields = to_fields(_row_qso(row))
    out: dict[str, Any] = {"id": row["id"]}
    out.update(zip(map(str.lower, fields), fields.values(), strict=True))
    for name, number in NUMBERS.items():
        if name in fields:
            out[name.lower()] = number(fields[name])
    created = out["created"] = json_value(row["created_at"])
    out["updated"] = created if row["updated_at"] == row["created_at"] else json_value(row["updated_at"])
    return out


def row_from_json(body: dict[str, Any], base: Row | None = None) -> dict[str, Any]:
    """Fields of `body` over those of the stored row `base` (PATCH); a null value removes a field.
    Read-only keys are refused unless they repeat the stored value (a GET sent back)."""
    current = qso_json(base) if base is not None else {}
    fields = to_fields(_row_qso(base)) if base is not None else {}
    stored_extra = set(base["extra"]) if base is not None else set()
    given: dict[str, str | None] = {}
    for key, value in body.items():
        name = str(key).upper()
        if str(key).lower() in READ_ONLY:
            if base is None or value != current.get(str(key).lower()):
                raise InputError(f"{key} is read-only", field=str(key))
            continue
        if not _FIELD_NAME.match(name) or not (is_adif_field(name) or name in stored_extra):
            raise InputError(f"{key!r} is not an ADIF field name (ADIF QSO fields, APP_PROGRAM_NAME or "
                             "USERDEFn)", field=str(key))
        given[name] = _text(key, name, value)
    if base is not None and (given.get("CALL") or base["call"]).upper() != base["call"]:
        for name in _FROM_CALL:
            if name not in given:
                fields.pop(name, None)
    for name, text in given.items():
        if text is None:
            fields.pop(name, None)
        else:
            fields[name] = text
    result = normalize(fields)
    if isinstance(result, Reject):
        raise InputError(result.reason, field=result.field.lower() if result.field else None)
    return result._asdict()


def _text(key: str, name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        raise InputError(f"{key} is not a number any field holds", field=name.lower())  # str() of a
        # 4,300-digit int raises, and no ADIF value is that long
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    raise InputError(f"{key} must be a string or a number", field=name.lower())
