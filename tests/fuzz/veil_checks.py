"""Schemathesis checks of Veil's own: no answer carries a value of the secrets the run made.

Loaded by tests/fuzz/openapi.sh with SCHEMATHESIS_HOOKS=veil_checks. The values come from
VEIL_FUZZ_SECRET_VALUES (one per line); each is looked for as the redactor masks it: as is,
base64 (standard and URL-safe, padded or not), percent-encoded, and JSON-escaped.
"""

import base64
import json
import os
import urllib.parse

import schemathesis

VALUES = [v for v in os.environ.get("VEIL_FUZZ_SECRET_VALUES", "").split("\n") if v]


def forms(value: str) -> set[bytes]:
    raw = value.encode()
    found = {raw, json.dumps(value)[1:-1].encode(), urllib.parse.quote(value, safe="").encode()}
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        found.add(encoded)
        found.add(encoded.rstrip(b"="))
    return {f for f in found if f}


FORMS = {value: forms(value) for value in VALUES}


@schemathesis.check
def no_secret_value(ctx, response, case):
    """No secret value, in any form the redactor masks, in an answer's body or headers."""
    headers = "\n".join(f"{k}: {v}" for k, values in response.headers.items() for v in values).encode()
    for value, masked in FORMS.items():
        for form in masked:
            if form in response.content or form in headers:
                raise AssertionError(
                    f"the value of a secret the run made ({value[:6]}...) appears in the answer "
                    f"to {case.method} {case.path}"
                )
    return True
