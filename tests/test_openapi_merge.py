"""``moderation.register_openapi(spec)``: the extension's routes in the host's own OpenAPI document.

Hosts are real: a flask-smorest ``Api`` serving its document, and plain apispec
specs with and without the marshmallow plugin, at OpenAPI 3.0.3 and 3.1.0. Each merged
document is validated with openapi-spec-validator for its version; the extension's paths must
reach only components named with its prefix, and the host's own ``Participant`` must be left
exactly as it was.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import marshmallow as ma
import pytest
from apispec import APISpec
from apispec.exceptions import APISpecError, DuplicateComponentNameError
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask
from flask_smorest import Api
from flask_smorest import Blueprint as SmorestBlueprint
from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator, validate

from flask_livekit_moderation import LiveKitModeration
from tests.helpers import in_process
from tests.openapi_checks import openapi_document, reached_components

VERSIONS = ["3.0.3", "3.1.0"]
PREFIX = "LiveKitModeration"


class HostParticipant(ma.Schema):
    """The host's own idea of a participant: one of its users."""

    id = ma.fields.Integer(required=True)
    email = ma.fields.Email(required=True)


def smorest_host(app: Flask, version: str) -> Api:
    """A flask-smorest API with its own ``Participant`` schema, served at ``/openapi.json``."""
    app.config.update(API_TITLE="Host", API_VERSION="1", OPENAPI_VERSION=version, OPENAPI_URL_PREFIX="/")
    api = Api(app)
    people = SmorestBlueprint("people", __name__, url_prefix="/people")

    # flask_smorest ships no type information.
    @people.route("/<int:person_id>")  # type: ignore[untyped-decorator]
    @people.response(200, HostParticipant)  # type: ignore[untyped-decorator]
    def person(person_id: int) -> dict[str, Any]:
        return {"id": person_id, "email": "ada@example.com"}

    api.spec.components.schema("Participant", schema=HostParticipant)
    api.register_blueprint(people)
    return api


def validate_as(document: dict[str, Any], version: str) -> None:
    """Valid OpenAPI of exactly ``version``, checked by that version's validator."""
    assert document["openapi"] == version
    validate(document, cls=OpenAPIV30SpecValidator if version.startswith("3.0") else OpenAPIV31SpecValidator)


def routed(app: Flask, endpoint_prefix: str) -> set[tuple[str, str]]:
    """(path, method) of every rule of an instance's blueprint."""
    return {
        (rule.rule, method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith(endpoint_prefix)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }


def operations_under(document: dict[str, Any], base: str) -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in document["paths"].items()
        if path.startswith(base + "/")
        for method in item
    }


def assert_only_own_components(document: dict[str, Any], base: str, prefix: str) -> set[str]:
    """The paths under ``base`` reach components named with ``prefix`` only; returns them."""
    paths = [path for path in document["paths"] if path.startswith(base + "/")]
    assert paths
    reached = reached_components(document, paths)
    foreign = sorted(name for name in reached if not name.split("/", 1)[1].startswith(prefix))
    assert foreign == []
    assert "schemas/" + prefix + "ListParticipantsResponse" in reached
    assert {
        "securitySchemes/" + prefix + "BearerAuth",
        "securitySchemes/" + prefix + "ApiKeyQuery",
    } <= reached
    return reached


def snapshot(value: Any) -> Any:
    return json.loads(json.dumps(value))


@pytest.mark.parametrize("version", VERSIONS)
def test_a_flask_smorest_host_gets_every_route_and_keeps_its_own_participant(app, version):
    api = smorest_host(app, version)
    host_participant = snapshot(api.spec.to_dict()["components"]["schemas"]["Participant"])
    moderation = LiveKitModeration(app)

    moderation.register_openapi(api.spec)

    with in_process(app) as served:
        document = served.request("GET", "/openapi.json").json()
        own = served.request("GET", "/livekit/openapi.json").json()
    validate_as(document, version)
    assert document["components"]["schemas"]["Participant"] == host_participant
    assert set(host_participant["properties"]) == {"id", "email"}
    person = document["paths"]["/people/{person_id}"]["get"]["responses"]["200"]
    assert person["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Participant"}
    # Every route of the instance, at its real URL, with its answers and security schemes.
    assert operations_under(document, "/livekit") == routed(app, "livekit_moderation.")
    reached = assert_only_own_components(document, "/livekit", PREFIX)
    for path, item in own["paths"].items():
        for method, operation in item.items():
            merged = document["paths"][path][method]
            assert sorted(merged["responses"]) == sorted(operation["responses"])
            assert merged["security"] == operation["security"]
            assert merged["operationId"] == operation["operationId"]
    # The served document names the same components; at 3.1 they are identical.
    assert reached == reached_components(own, list(own["paths"]))
    for section in ("schemas", "securitySchemes"):
        for name, component in own["components"][section].items():
            assert name.startswith(PREFIX)
            if version == own["openapi"]:
                assert document["components"][section][name] == component
    if version == own["openapi"]:
        assert {path: document["paths"][path] for path in own["paths"]} == own["paths"]


def test_a_nullable_field_is_written_for_the_host_s_version(app):
    api = smorest_host(app, "3.0.3")
    LiveKitModeration(app).register_openapi(api.spec)

    permission = api.spec.to_dict()["components"]["schemas"][PREFIX + "Participant"]["properties"][
        "permission"
    ]

    dumped = json.dumps(permission)
    assert '"nullable": true' in dumped and '"null"' not in dumped
    assert f"#/components/schemas/{PREFIX}Permission" in dumped


def _plain_spec(version: str, with_marshmallow: bool) -> APISpec:
    if not with_marshmallow:
        spec = APISpec("Host", "1", version)
        spec.components.schema(
            "Participant",
            {"type": "object", "properties": {"id": {"type": "integer"}, "email": {"type": "string"}}},
        )
        return spec
    spec = APISpec("Host", "1", version, plugins=[MarshmallowPlugin()])
    spec.components.schema("Participant", schema=HostParticipant)
    return spec


@pytest.mark.parametrize("with_marshmallow", [False, True], ids=["no-plugins", "marshmallow"])
@pytest.mark.parametrize("version", VERSIONS)
def test_a_plain_apispec_spec_works_the_same(app, version, with_marshmallow):
    spec = _plain_spec(version, with_marshmallow)
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    spec.path(
        path="/people/{id}",
        operations={
            "get": {
                "operationId": "getPerson",
                "parameters": [{"in": "path", "name": "id", "required": True, "schema": {"type": "integer"}}],
                "responses": {
                    "200": {
                        "description": "A person.",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Participant"}}
                        },
                    }
                },
            }
        },
    )
    before = snapshot(spec.to_dict())
    moderation = LiveKitModeration(app, url_prefix="/api")

    moderation.register_openapi(spec)

    document = snapshot(spec.to_dict())
    validate_as(document, version)
    for section, components in before["components"].items():
        for name, component in components.items():
            assert document["components"][section][name] == component
    assert document["paths"]["/people/{id}"] == before["paths"]["/people/{id}"]
    assert operations_under(document, "/api/livekit") == routed(app, "livekit_moderation.")
    assert_only_own_components(document, "/api/livekit", PREFIX)


def test_two_instances_on_one_app_share_one_document(app):
    api = smorest_host(app, "3.1.0")
    public = LiveKitModeration(app, name="public", url_prefix="/a", openapi_prefix="LiveKitPublic")
    staff = LiveKitModeration(app, name="staff", url_prefix="/b", openapi_prefix="LiveKitStaff")

    public.register_openapi(api.spec)
    staff.register_openapi(api.spec)

    with in_process(app) as served:
        document = served.request("GET", "/openapi.json").json()
        own = {base: served.request("GET", f"{base}/livekit/openapi.json").json() for base in ("/a", "/b")}
    validate_as(document, "3.1.0")
    assert operations_under(document, "/a/livekit") == routed(app, "public.")
    assert operations_under(document, "/b/livekit") == routed(app, "staff.")
    assert_only_own_components(document, "/a/livekit", "LiveKitPublic")
    assert_only_own_components(document, "/b/livekit", "LiveKitStaff")
    for served_document in own.values():
        mine = served_document["paths"]
        assert {path: document["paths"][path] for path in mine} == mine
        for name, schema in served_document["components"]["schemas"].items():
            assert document["components"]["schemas"][name] == schema
    assert {tag["name"] for tag in document["tags"]} >= {"LiveKitPublic", "LiveKitStaff"}


def test_two_instances_with_one_prefix_are_refused_in_one_spec_and_it_is_left_alone(app):
    spec = APISpec("Host", "1", "3.1.0")
    LiveKitModeration(app, name="public", url_prefix="/a").register_openapi(spec)
    before = snapshot(spec.to_dict())

    with pytest.raises(APISpecError, match="operationId LiveKitModerationRemoveParticipant.*openapi_prefix="):
        LiveKitModeration(app, name="staff", url_prefix="/b").register_openapi(spec)

    assert snapshot(spec.to_dict()) == before


def test_a_name_the_host_already_uses_is_never_replaced(app):
    spec = APISpec(
        "Host",
        "1",
        "3.1.0",
        components={"securitySchemes": {PREFIX + "BearerAuth": {"type": "http", "scheme": "basic"}}},
    )
    spec.components.schema(PREFIX + "Participant", {"type": "object", "properties": {"id": {}}})
    spec.components.schema(PREFIX + "Track", {"type": "string"}, lazy=True)
    before = snapshot(spec.to_dict())
    moderation = LiveKitModeration(app)

    with pytest.raises(DuplicateComponentNameError) as raised:
        moderation.register_openapi(spec)

    message = str(raised.value)
    for clash in ("securitySchemes/LiveKitModerationBearerAuth", "schemas/LiveKitModerationParticipant"):
        assert clash in message
    assert "schemas/LiveKitModerationTrack" in message  # registered lazily: not in to_dict() yet
    assert "openapi_prefix=" in message
    assert snapshot(spec.to_dict()) == before
    assert spec.components.schemas_lazy[PREFIX + "Track"] == {"type": "string"}


def test_a_route_the_host_already_documents_is_refused(app):
    spec = APISpec("Host", "1", "3.1.0")
    spec.path(
        path="/livekit/participants", operations={"get": {"responses": {"200": {"description": "Ours."}}}}
    )

    with pytest.raises(APISpecError, match="GET /livekit/participants.*url_prefix="):
        LiveKitModeration(app).register_openapi(spec)

    assert list(spec.to_dict()["paths"]) == ["/livekit/participants"]


def test_registering_twice_changes_nothing(app):
    api = smorest_host(app, "3.1.0")
    moderation = LiveKitModeration(app)
    moderation.register_openapi(api.spec)
    once = copy.deepcopy(api.spec.to_dict())

    moderation.register_openapi(api.spec)

    assert api.spec.to_dict() == once


def test_a_host_tag_of_the_same_name_is_kept(app):
    spec = APISpec("Host", "1", "3.1.0", tags=[{"name": PREFIX, "description": "Moderation, by the host."}])

    LiveKitModeration(app).register_openapi(spec)

    tags = spec.to_dict()["tags"]
    assert tags == [{"name": PREFIX, "description": "Moderation, by the host."}]
    validate_as(spec.to_dict(), "3.1.0")


def test_nested_routes_are_documented_under_the_parent_once_it_is_registered(app):
    spec = APISpec("Host", "1", "3.0.3")
    api = Blueprint("api", __name__)
    moderation = LiveKitModeration()
    moderation.init_app(app, parent=api)

    with pytest.raises(RuntimeError, match="not mounted yet"):
        moderation.register_openapi(spec)
    app.register_blueprint(api, url_prefix="/api/v1")
    moderation.register_openapi(spec)

    document = spec.to_dict()
    validate_as(document, "3.0.3")
    assert operations_under(document, "/api/v1/livekit") == routed(app, "api.livekit_moderation.")
    assert set(document["paths"]) == {path for path, _ in routed(app, "api.livekit_moderation.")}


def test_with_the_document_off_its_route_is_left_out(app):
    app.config["LIVEKIT_MODERATION_OPENAPI"] = False
    spec = APISpec("Host", "1", "3.1.0")

    LiveKitModeration(app).register_openapi(spec)

    assert "/livekit/openapi.json" not in spec.to_dict()["paths"]
    assert operations_under(spec.to_dict(), "/livekit") == routed(app, "livekit_moderation.") - {
        ("/livekit/openapi.json", "get")
    }


def test_which_app_is_documented(app):
    moderation = LiveKitModeration(app)
    other = Flask("other")
    other.config.update(TESTING=True)
    moderation.init_app(other)

    with pytest.raises(RuntimeError, match="serves 2 apps and there is no app context: pass app="):
        moderation.register_openapi(APISpec("Host", "1", "3.1.0"))
    with pytest.raises(RuntimeError, match="not initialised on"):
        moderation.register_openapi(APISpec("Host", "1", "3.1.0"), Flask("stranger"))
    explicit, in_context = APISpec("Host", "1", "3.1.0"), APISpec("Host", "1", "3.1.0")
    moderation.register_openapi(explicit, app)
    with other.app_context():
        moderation.register_openapi(in_context)
    assert explicit.to_dict()["paths"] == in_context.to_dict()["paths"]


def test_what_cannot_work_is_refused(app):
    moderation = LiveKitModeration(app)

    with pytest.raises(ValueError, match="OpenAPI 3 only"):
        moderation.register_openapi(APISpec("Host", "1", "2.0"))
    with pytest.raises(ValueError, match="openapi_prefix"):
        LiveKitModeration(openapi_prefix="LiveKit Moderation")
    with pytest.raises(ValueError, match="openapi_prefix"):
        LiveKitModeration(openapi_prefix="")


def test_the_served_document_names_everything_with_the_instance_s_prefix(app):
    LiveKitModeration(app, openapi_prefix="Lk")

    with in_process(app) as served:
        document = openapi_document(served)

    validate_as(document, "3.1.0")
    names = [*document["components"]["schemas"], *document["components"]["securitySchemes"]]
    names += [operation["operationId"] for item in document["paths"].values() for operation in item.values()]
    names += [tag["name"] for tag in document["tags"]]
    assert len(names) > 30 and all(name.startswith("Lk") for name in names)
    assert "LkParticipant" in names and "LkBearerAuth" in names and "LkRemoveParticipant" in names
