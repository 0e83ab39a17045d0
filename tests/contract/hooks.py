"""Schemathesis hooks for the CRM API contract run.

positive_data_acceptance is configured to let schema-valid requests be refused with
400/422 (see schemathesis.toml): a schema cannot say that a referenced record must
exist and be visible, that a stage's entry criteria hold, that a quote is in the right
status, that two fields go together, or that a date lies in a window around today.
This check keeps what that permission would otherwise lose: such a refusal must name
a rule the schema cannot state. A 400/422 that complains about the request's *shape*
(a type, a length, a range, an unknown field, a format the spec could have
described) means the spec is wrong, and fails the run.
"""

import schemathesis

# Problem codes and field-error codes that describe the shape of a request: the
# document states all of these, so a schema-valid request must never get them.
SHAPE_CODES = {
    "malformed_json",
    "invalid_path",
    "invalid_limit",
    "invalid_character",
    "unsupported_media_type",
    "invalid_if_match",
    "invalid_idempotency_key",
}
# Free-form JSON (field settings, conditions, approval steps, default values): its
# keys and nested strings are not described, so a NUL found in them is not a gap in
# the document. Values whose type depends on another field (a custom field's default
# against the field's type) are checked against that other field. A capture form's
# `mapping` is keyed by the website form's own field names.
FREE_FORM = {"settings", "condition", "steps", "expr", "filter", "params", "default_value", "value", "sections", "mapping", "triggers", "actions"}
FIELD_SHAPE_CODES = {
    "invalid_type",
    "unknown_field",
    "length",
    "range",
    "too_precise",
    "invalid_character",
}


@schemathesis.check
def refusals_of_valid_data_name_a_rule(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if response.status_code not in (400, 422):
        return None
    try:
        problem = response.json()
    except Exception:
        raise AssertionError("a 400/422 must be problem+json")
    code = problem.get("code")
    if code == "invalid_path" and not _path_is_schema_valid(case):
        # Schemathesis's stateful phase can fill a path parameter from a null field of
        # an earlier response (it sends the text `None`): such a request is not
        # schema-valid, and refusing it is right.
        return None
    if code in SHAPE_CODES:
        raise AssertionError(f"schema-valid request refused for its shape: {code}: {problem.get('detail')}")
    if code == "invalid_query" and "expected" in str(problem.get("detail", "")):
        raise AssertionError(f"schema-valid query refused for its shape: {problem.get('detail')}")
    for err in problem.get("errors") or []:
        # Which custom fields exist, and their types, is configuration that
        # `GET /meta/{object}` describes at run time, not the OpenAPI document.
        field = str(err.get("field", ""))
        if field.startswith("custom."):
            continue
        segments = {part.split("[")[0] for part in field.split(".")}
        if segments & FREE_FORM:
            continue
        if err.get("code") in FIELD_SHAPE_CODES:
            raise AssertionError(
                f"schema-valid request refused for the shape of `{err.get('field')}`: "
                f"{err.get('code')}: {err.get('message')}"
            )
    return None


# The committed document, to check what a failure claims against what it says.
_SPEC = None


def _spec():
    global _SPEC
    if _SPEC is None:
        import json
        import pathlib

        path = pathlib.Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
        _SPEC = json.loads(path.read_text())
    return _SPEC


def _body_schema(case):
    op = _spec()["paths"].get(case.operation.path, {}).get(case.method.lower(), {})
    schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return None
    while "$ref" in schema:
        schema = _spec()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _path_is_schema_valid(case):
    """Whether every path parameter of the case matches its documented uuid format."""
    import uuid

    op = _spec()["paths"].get(case.operation.path, {})
    params = list(op.get("parameters", [])) + list(op.get(case.method.lower(), {}).get("parameters", []))
    for p in params:
        if p.get("in") != "path":
            continue
        value = (case.path_parameters or {}).get(p["name"])
        if p.get("schema", {}).get("format") == "uuid":
            try:
                uuid.UUID(str(value))
            except ValueError:
                return False
    return True


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Drop a "schema-violating request accepted" whose violation is not in the document.

    Schemathesis's coverage phase sometimes builds a "missing required property" case
    for a property the operation's body does not require (seen on PATCH bodies whose
    create counterpart requires it). The case is then a valid request, and accepting
    it is right. Only that claim is checked and dropped; every other failure stands.
    """
    if getattr(failure, "code", None) != "ST201":
        return True
    marker = "Missing required property: "
    message = str(getattr(failure, "message", ""))
    if marker not in message:
        return True
    key = message.split(marker, 1)[1].split()[0].strip("`'\"")
    schema = _body_schema(case)
    if schema is None or key not in schema.get("properties", {}):
        return True
    return key in schema.get("required", [])
