"""The route table: every route of the extension, feature by feature.

A feature declares its routes on its views (:class:`~.routing.Routes`); adding a feature adds
its folder and a line here. The blueprint (:func:`~.routing.make_blueprint`) and the OpenAPI
document (:mod:`.openapi`) are both built from this one table.
"""

from . import bans, lobby, openapi, participants
from .audit import views as audit
from .routing import Route

ROUTES: tuple[Route, ...] = (
    *participants.routes,
    *bans.routes,
    *lobby.routes,
    *audit.routes,
    *openapi.routes,
)
