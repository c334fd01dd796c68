"""Prepares a fresh `veil serve` for the schemathesis run (tests/fuzz/openapi.sh): secrets with
known values (TEXT and FILE), a customer with a user, one secret shared with it. Prints shell
assignments: ADMIN_TOKEN, CUSTOMER_TOKEN, VALUES (one per line)."""

import base64
import json
import shlex
import sys
import urllib.request

base, admin_password = sys.argv[1], sys.argv[2]


def call(method, path, body=None, token=None):
    request = urllib.request.Request(base + path, method=method)
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", "Bearer " + token)
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(request, data) as answer:
        text = answer.read()
        return json.loads(text) if text else None


admin = call("POST", "/api/auth/login", {"username": "admin", "password": admin_password})["token"]
values = ["fuzz-text-canary-5c1d9e", "fuzz-shared-canary-8a2b7f", "fuzz-file-canary-3e6f0a"]
call("POST", "/api/secrets", {"name": "fuzz-text", "type": "TEXT", "value": values[0]}, admin)
shared = call("POST", "/api/secrets", {"name": "fuzz-shared", "type": "TEXT", "value": values[1]}, admin)
file_value = base64.b64encode(values[2].encode()).decode()
call("POST", "/api/secrets", {"name": "fuzz-file", "type": "FILE", "fileName": "f.pem", "value": file_value}, admin)
customer = call("POST", "/api/customers", {"name": "Fuzz customer"}, admin)
customer_password = "fuzz-customer-password-1"
call(
    "POST",
    "/api/users",
    {"username": "fuzz-customer", "password": customer_password, "customerId": customer["id"], "roles": ["CUSTOMER_USER"]},
    admin,
)
call("POST", f"/api/secrets/{shared['id']}/shares", {"customerId": customer["id"]}, admin)
customer_token = call("POST", "/api/auth/login", {"username": "fuzz-customer", "password": customer_password})["token"]
print(f"ADMIN_TOKEN={shlex.quote(admin)}")
print(f"CUSTOMER_TOKEN={shlex.quote(customer_token)}")
print(f"VALUES={shlex.quote(chr(10).join(values))}")
