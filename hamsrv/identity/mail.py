"""Sending one sign-in mail over SMTP (HAMSRV_SMTP_URL). smtplib blocks, so it runs in a worker
thread, with a deadline."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import trio

SEND_TIMEOUT = 30.0
_PORTS = {"smtp": 25, "smtps": 465, "smtp+starttls": 587}


class MailError(Exception):
    """The mail could not be handed to the mail server; the message says why."""


def _send(url: str, message: EmailMessage, timeout: float) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "localhost", parts.port or _PORTS[parts.scheme]
    try:
        smtp = (smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
                if parts.scheme == "smtps" else smtplib.SMTP(host, port, timeout=timeout))
        with smtp:
            if parts.scheme == "smtp+starttls":
                smtp.starttls(context=ssl.create_default_context())
            if parts.username:
                smtp.login(unquote(parts.username), unquote(parts.password or ""))
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"the mail server {host}:{port} did not take the mail: {exc}") from exc


async def send_mail(url: str, sender: str, to: str, subject: str, text: str,
                    timeout: float = SEND_TIMEOUT) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message.set_content(text)
    with trio.move_on_after(timeout + 5) as waited:
        await trio.to_thread.run_sync(_send, url, message, timeout, abandon_on_cancel=True)
    if waited.cancelled_caught:
        raise MailError(f"the mail server did not answer within {timeout:g} s")
