"""A QSO given as JSON (ADIF field names, any case) becomes a qsos row through the same normalisation
as ADIF import, so the API and the importer accept and reject exactly the same things."""

from __future__ import annotations

import re
from typing import Any

from hamsrv.errors import InputError
from hamsrv.ingest.normalize import QSO_COLUMNS, Qso, Reject, normalize, to_fields

_FIELD_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


def row_from_json(body: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fields of `body` over those of the stored row `base` (PATCH); a null value removes a field."""
    fields = to_fields(Qso(**{c: base[c] for c in QSO_COLUMNS})) if base is not None else {}
    for key, value in body.items():
        name = str(key).upper()
        if not _FIELD_NAME.match(name):
            raise InputError(f"{key!r} is not an ADIF field name", field=str(key))
        if value is None:
            fields.pop(name, None)
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
            raise InputError(f"{key} is not a number any field holds", field=name.lower())  # str() of
            # a 4,300-digit int raises, and no ADIF value is that long
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            fields[name] = str(value)
        else:
            raise InputError(f"{key} must be a string or a number", field=name.lower())
    result = normalize(fields)
    if isinstance(result, Reject):
        raise InputError(result.reason, field=result.field.lower() if result.field else None)
    return result._asdict()
