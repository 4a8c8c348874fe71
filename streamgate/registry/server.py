"""A Confluent-compatible schema registry (the REST subset confluent-kafka's clients use), for local runs.

Production deployments use Confluent Schema Registry (see docker-compose.yml); this one exists so the
Confluent wire format is exercised end to end here, through confluent-kafka's own serializers, with no
Docker. Compatibility is enforced with streamgate's own Avro resolution checker.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from schemas.compat import check_backward
from streamgate.config import Settings
from streamgate.registry.store import KafkaRegistryStore, SubjectVersion, canonical

JSON = "application/vnd.schemaregistry.v1+json"
LEVELS = {"NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL",
          "FULL_TRANSITIVE"}


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")


def _error(status: int, code: int, message: str) -> web.Response:
    return _json({"error_code": code, "message": message}, status)


def _version_body(sv: SubjectVersion) -> dict[str, Any]:
    return {"subject": sv.subject, "version": sv.version, "id": sv.schema_id, "schema": sv.schema,
            "schemaType": "AVRO", "references": []}


class RegistryApp:
    def __init__(self, store: KafkaRegistryStore) -> None:
        self.store = store
        self.state = store.state

    def level(self, subject: str) -> str:
        return self.state.config.get(subject) or self.state.config.get("", "BACKWARD")

    def incompatibilities(self, subject: str, schema_str: str, versions: list[SubjectVersion]) -> list[str]:
        level = self.level(subject)
        if level == "NONE" or not versions:
            return []
        new = json.loads(schema_str)
        against = versions if level.endswith("TRANSITIVE") else versions[-1:]
        problems: list[str] = []
        for old in against:
            old_schema = json.loads(old.schema)
            if level.startswith(("BACKWARD", "FULL")):
                problems += check_backward(old_schema, new)
            if level.startswith(("FORWARD", "FULL")):
                problems += check_backward(new, old_schema)
        return problems

    async def register(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        body = await request.json()
        if body.get("schemaType", "AVRO") != "AVRO":
            return _error(422, 42201, "only AVRO schemas are supported by this registry")
        schema_str = body.get("schema", "")
        try:
            canon = canonical(schema_str)
        except Exception as exc:
            return _error(422, 42201, f"invalid Avro schema: {exc}")
        with self.store.lock:
            versions = self.state.live(subject)
            for sv in versions:
                if canonical(sv.schema) == canon:
                    return _json({"id": sv.schema_id, "version": sv.version, "subject": subject,
                                  "schema": sv.schema})
            problems = self.incompatibilities(subject, schema_str, versions)
            if problems:
                return _error(409, 40901, f"schema is incompatible with {self.level(subject)}: "
                                          + "; ".join(problems))
            schema_id = self.state.ids_by_canonical.get(canon) or self.state.next_id()
            version = max((v.version for v in self.state.subjects.get(subject, [])), default=0) + 1
            self.store.append({"keytype": "SCHEMA", "subject": subject, "version": version},
                              {"type": "SCHEMA", "subject": subject, "version": version, "id": schema_id,
                               "schema": schema_str})
        return _json({"id": schema_id, "version": version, "subject": subject, "schema": schema_str})

    async def lookup(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        body = await request.json()
        versions = self.state.live(subject)
        if not versions:
            return _error(404, 40401, f"subject {subject!r} not found")
        try:
            canon = canonical(body.get("schema", ""))
        except Exception as exc:
            return _error(422, 42201, f"invalid Avro schema: {exc}")
        for sv in versions:
            if canonical(sv.schema) == canon:
                return _json(_version_body(sv))
        return _error(404, 40403, "schema not found under this subject")

    async def schema_by_id(self, request: web.Request) -> web.Response:
        schema_id = int(request.match_info["id"])
        schema = self.state.schemas.get(schema_id)
        if schema is None:
            return _error(404, 40403, f"schema id {schema_id} not found")
        if request.path.endswith("/schema"):
            return web.Response(text=schema, content_type="application/json")
        return _json({"schema": schema, "schemaType": "AVRO", "references": []})

    async def subjects(self, _request: web.Request) -> web.Response:
        return _json(sorted(s for s in self.state.subjects if self.state.live(s)))

    async def versions(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        live = self.state.live(subject)
        if not live:
            return _error(404, 40401, f"subject {subject!r} not found")
        return _json([v.version for v in live])

    def _find(self, subject: str, version: str) -> SubjectVersion | web.Response:
        live = self.state.live(subject)
        if not live:
            return _error(404, 40401, f"subject {subject!r} not found")
        if version in ("latest", "-1"):
            return live[-1]
        for sv in live:
            if str(sv.version) == version:
                return sv
        return _error(404, 40402, f"version {version} not found")

    async def version(self, request: web.Request) -> web.Response:
        found = self._find(request.match_info["subject"], request.match_info["version"])
        return found if isinstance(found, web.Response) else _json(_version_body(found))

    async def delete_subject(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        live = self.state.live(subject)
        if not live:
            return _error(404, 40401, f"subject {subject!r} not found")
        with self.store.lock:
            for sv in live:
                self.store.append({"keytype": "SCHEMA", "subject": subject, "version": sv.version},
                                  {"type": "SCHEMA", "subject": subject, "version": sv.version,
                                   "id": sv.schema_id, "schema": sv.schema, "deleted": True})
        return _json([v.version for v in live])

    async def get_config(self, request: web.Request) -> web.Response:
        subject = request.match_info.get("subject", "")
        return _json({"compatibilityLevel": self.level(subject)})

    async def put_config(self, request: web.Request) -> web.Response:
        subject = request.match_info.get("subject", "")
        level = str((await request.json()).get("compatibility", "")).upper()
        if level not in LEVELS:
            return _error(422, 42203, f"invalid compatibility level {level!r}")
        with self.store.lock:
            self.store.append({"keytype": "CONFIG", "subject": subject},
                              {"type": "CONFIG", "subject": subject, "compatibility": level})
        return _json({"compatibility": level})

    async def compatibility(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        body = await request.json()
        found = self._find(subject, request.match_info["version"])
        if isinstance(found, web.Response):
            return found
        problems = check_backward(json.loads(found.schema), json.loads(body.get("schema", "{}")))
        return _json({"is_compatible": not problems, "messages": problems})

    async def health(self, _request: web.Request) -> web.Response:
        return _json({"status": "ok", "schemas": len(self.state.schemas)})


def build_app(store: KafkaRegistryStore) -> web.Application:
    r = RegistryApp(store)
    app = web.Application()
    app.router.add_post("/subjects/{subject}/versions", r.register)
    app.router.add_post("/subjects/{subject}", r.lookup)
    app.router.add_get("/subjects", r.subjects)
    app.router.add_get("/subjects/{subject}/versions", r.versions)
    app.router.add_get("/subjects/{subject}/versions/{version}", r.version)
    app.router.add_delete("/subjects/{subject}", r.delete_subject)
    app.router.add_get("/schemas/ids/{id}", r.schema_by_id)
    app.router.add_get("/schemas/ids/{id}/schema", r.schema_by_id)
    app.router.add_get("/config", r.get_config)
    app.router.add_put("/config", r.put_config)
    app.router.add_get("/config/{subject}", r.get_config)
    app.router.add_put("/config/{subject}", r.put_config)
    app.router.add_post("/compatibility/subjects/{subject}/versions/{version}", r.compatibility)
    app.router.add_get("/health", r.health)
    return app


def serve(settings: Settings, host: str, port: int, topic: str = "_schemas") -> None:
    web.run_app(build_app(KafkaRegistryStore(settings, topic)), host=host, port=port, print=None)
