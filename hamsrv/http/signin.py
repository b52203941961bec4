"""Sign-in and sessions over HTTP: who am I, the FCC e-mail code (trust medium), the QRZ biography
token (trust low), logout and log out everywhere, and the per-IP rate limit on the whole API.
(The LoTW certificate sign-in, trust high, is on its own listener: http/mtls.py.)

Sign-in routes do not replay Idempotency-Key answers: those carry credentials, which are kept only
hashed. Their POSTs are refused from another site's pages (login CSRF) when the browser says so.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from quart import Blueprint, Response, current_app, jsonify, request

from hamsrv.db import accounts, callbook
from hamsrv.db.database import Row, json_value
from hamsrv.http.common import (
    ApiError,
    AppState,
    authenticated,
    client_ip,
    json_body,
    rate_limited,
    requires_trust,
    same_origin,
)
from hamsrv.identity import codes, sessions
from hamsrv.identity.mail import MailError, send_mail
from hamsrv.identity.passwords import MAX_PASSWORD, MIN_PASSWORD, hash_password
from hamsrv.identity.qrz import QrzError, fetch_page, page_has_code, page_url
from hamsrv.model import normalize_call

blueprint = Blueprint("signin", __name__)


def _state() -> AppState:
    return current_app.extensions["hamsrv"]  # type: ignore[no-any-return]


@blueprint.before_app_request
async def limit_api_per_ip() -> None:
    if request.path.startswith("/api/"):
        rate_limited(_state().identity.api_per_ip, client_ip(), "per IP address")


def who(user: Row) -> dict[str, Any]:
    return {"callsign": user["callsign"], "trust": sessions.TRUST_NAMES[user["trust"]],
            "account_trust": sessions.TRUST_NAMES[user["trust_level"]],
            "roles": ["user", *user["roles"]], "method": user["method"],
            "expires_at": json_value(user.get("expires_at"))}


def set_session_cookie(response: Response, state: AppState, token: str) -> None:
    response.set_cookie(sessions.COOKIE, token, max_age=int(state.identity.session_lifetime.total_seconds()),
                        path="/", httponly=True, samesite="Lax", secure=state.identity.secure_cookie)


async def signed_in(state: AppState, callsign: str, method: str, **extra: Any) -> Response:
    """Create the account or raise its trust to what `method` proves, start a session, and answer
    {callsign, trust, token} with the session cookie set."""
    user = await sessions.ensure_user(state.db, callsign, sessions.METHOD_TRUST[method])
    token = await sessions.start_session(state.db, user["id"], method, client_ip(),
                                         state.identity.session_lifetime)
    response = jsonify({"callsign": user["callsign"], "trust": sessions.TRUST_NAMES[sessions.METHOD_TRUST[method]],
                        "account_trust": sessions.TRUST_NAMES[user["trust_level"]], "token": token, **extra})
    set_session_cookie(response, state, token)
    return response


def _signin_guard() -> None:
    """The per-IP sign-in rate and the login-CSRF check every sign-in POST passes first."""
    if "Origin" in request.headers and not same_origin():
        raise ApiError(403, "cross-site sign-in refused (Origin header)", "Origin")
    rate_limited(_state().identity.signin_per_ip, client_ip(), "sign-in attempts from this address")


def _callsign(body: dict[str, Any]) -> str:
    text = body.get("callsign")
    call = normalize_call(text) if isinstance(text, str) else None
    if call is None:
        raise ApiError(400, "callsign is required (e.g. W1AW)", "callsign")
    return call


def _text(body: dict[str, Any], name: str, limit: int = 200) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ApiError(400, f"{name} is required (a string of at most {limit} characters)", name)
    return value.strip()


@blueprint.get("/api/me")
@authenticated
async def me(user: Row) -> Response:
    """Who is signed in (the page shows it); 401 when nobody is."""
    return jsonify(who(user))


@blueprint.get("/api/auth/ways")
async def ways() -> Response:
    """The sign-in ways this server offers, for the page: the certificate listener's URL (on this host,
    its own port; null when off), whether e-mail codes can be sent, and QRZ (always)."""
    state = _state()
    certificate = None
    if state.auth_port:
        host = urlsplit(f"//{request.host}").hostname or "localhost"
        certificate = f"https://{f'[{host}]' if ':' in host else host}:{state.auth_port}/"
    return jsonify({"certificate": certificate, "email": state.identity.smtp_url is not None, "qrz": True})


@blueprint.post("/api/auth/logout")
@authenticated
async def logout(user: Row) -> Response:
    if user["session_id"] is None:
        raise ApiError(400, "an API token is not a session; revoke it instead of logging out")
    await sessions.end_session(_state().db, user["session_id"])
    response = jsonify({"ended": 1})
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


@blueprint.post("/api/auth/logout-everywhere")
@authenticated
async def logout_everywhere(user: Row) -> Response:
    """End every session of the account, on every device (API tokens for scripts stay)."""
    response = jsonify({"ended": await sessions.end_all_sessions(_state().db, user["id"])})
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


# ---- FCC e-mail code (trust medium)
@blueprint.post("/api/auth/email")
async def email_start() -> Response:
    """Mail a 6-digit code to the address the FCC licence record holds for the callsign."""
    _signin_guard()
    state = _state()
    call = _callsign(await json_body())
    if state.identity.smtp_url is None:
        raise ApiError(503, "e-mail sign-in is not configured on this server (HAMSRV_SMTP_URL)")
    row = await callbook.email(state.db, call)
    if row is None or not (row["email"] or "").strip():
        raise ApiError(404, f"the FCC licence data has no e-mail address for {call}; use another sign-in "
                            "(LoTW certificate or QRZ biography)", "callsign")
    if row["license_status"] not in (None, "A"):
        raise ApiError(403, f"{call}'s FCC licence is not active (status {row['license_status']})", "callsign")
    rate_limited(state.identity.codes_per_call, f"email:{call}", f"codes for {call}")
    code = codes.new_email_code()
    await codes.store(state.db, call, "email", code, codes.EMAIL_CODE_TTL)
    minutes = int(codes.EMAIL_CODE_TTL.total_seconds() // 60)
    try:
        await send_mail(state.identity.smtp_url, state.identity.mail_from, row["email"].strip(),
                        f"hamsrv sign-in code for {call}",
                        f"Your sign-in code for {call} is {code}\n\nIt is valid for {minutes} minutes. "
                        "If you did not ask for it, ignore this mail.\n")
    except MailError as exc:
        await codes.finish(state.db, call, "email")
        raise ApiError(502, str(exc)) from None
    response = jsonify({"sent_to": codes.mask_email(row["email"]), "expires_in": minutes * 60,
                        "tries": codes.MAX_TRIES})
    response.status_code = 202
    return response


@blueprint.post("/api/auth/email/verify")
async def email_verify() -> Response:
    _signin_guard()
    state = _state()
    body = await json_body()
    call, code = _callsign(body), _text(body, "code", 20)
    result = await codes.attempt(state.db, call, "email", code)
    if not result.ok:
        raise ApiError(429 if result.locked else 403, result.message, "code")
    return await signed_in(state, call, "email")


# ---- QRZ biography token (trust low)
@blueprint.post("/api/auth/qrz")
async def qrz_start() -> Response:
    """A HAMS- code to paste into the callsign's QRZ biography, and the claim secret that proves this
    client asked for it (the code itself becomes public on the page)."""
    _signin_guard()
    state = _state()
    call = _callsign(await json_body())
    rate_limited(state.identity.codes_per_call, f"qrz:{call}", f"codes for {call}")
    code, claim = codes.new_qrz_code(), secrets.token_urlsafe(24)
    await codes.store(state.db, call, "qrz", claim, codes.QRZ_CODE_TTL, public_code=code)
    response = jsonify({"code": code, "claim": claim, "page": page_url(state.identity.qrz_url, call),
                        "expires_in": int(codes.QRZ_CODE_TTL.total_seconds()),
                        "next": "put the code into your QRZ biography, then POST /api/auth/qrz/verify "
                                "with callsign and claim"})
    response.status_code = 201
    return response


@blueprint.post("/api/auth/qrz/verify")
async def qrz_verify() -> Response:
    _signin_guard()
    state = _state()
    body = await json_body()
    call, claim = _callsign(body), _text(body, "claim")
    result = await codes.attempt(state.db, call, "qrz", claim, consume=False)
    if not result.ok:
        raise ApiError(403, result.message.replace("wrong code", "wrong claim"), "claim")
    assert result.public_code is not None
    url = page_url(state.identity.qrz_url, call)
    try:
        page = await fetch_page(url, state.identity.qrz_timeout)
    except QrzError as exc:
        raise ApiError(exc.status, str(exc)) from None
    if not page_has_code(page, result.public_code):
        raise ApiError(409, f"the code {result.public_code} is not on {call}'s QRZ page ({url}) yet: put it "
                            "into the biography, save, and try again")
    await codes.finish(state.db, call, "qrz")
    return await signed_in(state, call, "qrz")


# ---- the cluster port password (trust medium)
@blueprint.post("/api/cluster-password")
@requires_trust("medium")
async def cluster_password(user: Row) -> Response:
    """Set the password for the DX-cluster port (as DXSpider's set/password); {"password": null} removes it."""
    password = (await json_body()).get("password")
    if password is not None and not (isinstance(password, str)
                                     and MIN_PASSWORD <= len(password) <= MAX_PASSWORD):
        raise ApiError(400, f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters, or null", "password")
    stored = await hash_password(password) if password is not None else None
    await accounts.set_cluster_password(_state().db, user["id"], stored)
    return jsonify({"callsign": user["callsign"], "cluster_password": password is not None})


# ---- admin
@blueprint.get("/api/admin/users")
@authenticated
async def list_users(user: Row) -> Response:
    if "admin" not in user["roles"]:
        raise ApiError(403, "this needs the admin role (hamsrv user role CALL admin)")
    rows = await accounts.users_for_admin(_state().db)
    return jsonify({"users": [{"callsign": r["callsign"], "trust": sessions.TRUST_NAMES[r["trust_level"]],
                               "roles": ["user", *r["roles"]], "created_at": json_value(r["created_at"])}
                              for r in rows]})
