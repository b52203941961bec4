"""The JSON API and the page, as a quart-trio app: create_app puts the routes of each resource together
(one module each under hamsrv/http/). Errors are JSON with a 4xx status naming the field."""

from __future__ import annotations

from quart_trio import QuartTrio

from hamsrv.http import (
    bus,
    dns,
    errors,
    imports,
    logbook,
    observability,
    propagation,
    qsl,
    settings,
    signin,
    site,
    spots,
    syncs,
)
from hamsrv.http.common import AppState


def create_app(state: AppState) -> QuartTrio:
    app = QuartTrio(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = state.max_upload_bytes
    app.extensions["hamsrv"] = state
    errors.install(app)
    observability.install(app, state)
    for resource in (site, logbook, spots, propagation, syncs, signin, dns, settings, qsl):
        app.register_blueprint(resource.blueprint)
    imports.register(app, state)
    bus.register(app, state)
    return app
