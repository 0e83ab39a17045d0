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
# against the field's type) are checked against that other field.
FREE_FORM = {"settings", "condition", "steps", "expr", "default_value", "value", "sections"}
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
