//! Access control end to end: the permission matrix, customers and shared secrets, the audit log,
//! logins and sessions.

mod audit;
mod matrix;
mod sessions;
mod sharing;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Api, SYSADMIN_PASSWORD, Server};

/// The password of every user these tests create.
pub(super) const USER_PASSWORD: &str = "user password 1234";
/// A closed port on loopback: chains that call it fail fast, after resolving their secrets.
pub(super) const DEAD_URL: &str = "http://127.0.0.1:9/x";
pub(super) const SHARED_VALUE: &str = r#"shared-a-value-"q"\b-4f1c"#;
pub(super) const TENANT_VALUE: &str = "tenant-only-value-9b2e";
pub(super) const OTHER_VALUE: &str = "other-tenant-value-77d1";

/// The callers of the matrix, in the order of its columns.
pub(super) const ROLES: [&str; 7] = ["admin", "manager", "author", "cust-a", "cust-b", "sysadmin", "other"];

/// Every route against every role. A route is `METHOD PATH [NOTE]`; `{key}` in the path is an
/// object made in setup, or with `new-` a throwaway one made for that cell alone (as admin, as
/// cust-a for `A-` objects, as sysadmin for tenants), so the order of the rows does not matter.
/// The note says what a body refers to. The second column is the operation a 403 names on the
/// route's resource (`permission denied: missing permission SECRET:WRITE`), or "" when the
/// missing permission depends on the caller. A 404 must be `not_found`, a 400 `invalid_config`,
/// a 409 `secret_in_use`. Columns: admin, manager, author, cust-a, cust-b, sysadmin, other-tenant admin.
#[rustfmt::skip]
pub(super) const MATRIX: &[(&str, &str, [u16; 7])] = &[
    // route                                             403 names  adm  mgr  aut  c-a  c-b  sys  oth
    ("GET /api/secrets",                                 "READ",   [200, 200, 200, 200, 200, 403, 200]),
    ("POST /api/secrets",                                "CREATE", [201, 201, 403, 403, 403, 403, 201]),
    ("GET /api/secrets/{tenant-only}",                   "READ",   [200, 200, 200, 404, 404, 404, 404]),
    ("GET /api/secrets/{shared-a}",                      "READ",   [200, 200, 200, 200, 404, 404, 404]),
    ("GET /api/secrets/{other-secret}",                  "READ",   [404, 404, 404, 404, 404, 404, 200]),
    ("PATCH /api/secrets/{new-secret}",                  "WRITE",  [200, 200, 403, 404, 404, 404, 404]),
    ("PATCH /api/secrets/{new-A-secret}",                "WRITE",  [200, 200, 403, 403, 404, 404, 404]),
    ("DELETE /api/secrets/{new-secret}",                 "DELETE", [204, 204, 403, 404, 404, 404, 404]),
    ("DELETE /api/secrets/{new-A-secret}",               "DELETE", [204, 204, 403, 403, 404, 404, 404]),
    ("DELETE /api/secrets/{tenant-only} in use",         "DELETE", [409, 409, 403, 404, 404, 404, 404]),
    ("GET /api/secrets/{tenant-only}/usages",            "READ",   [200, 200, 200, 404, 404, 404, 404]),
    ("GET /api/secrets/{shared-a}/usages",               "READ",   [200, 200, 200, 200, 404, 404, 404]),
    ("POST /api/secrets/{new-secret}/shares to A",       "",       [200, 200, 403, 404, 404, 404, 404]),
    ("POST /api/secrets/{new-A-secret}/shares to B",     "",       [200, 200, 403, 403, 404, 404, 404]),
    ("DELETE /api/secrets/{new-A-secret}/shares/{A}",    "",       [200, 200, 403, 403, 404, 404, 404]),
    ("DELETE /api/secrets/{shared-a}/shares/{A} in use", "",       [409, 409, 403, 403, 404, 404, 404]),
    ("GET /api/rule-chains",                             "READ",   [200, 403, 200, 200, 200, 403, 200]),
    ("POST /api/rule-chains",                            "CREATE", [201, 403, 201, 201, 201, 403, 201]),
    ("POST /api/rule-chains using tenant-only",          "",       [201, 403, 201, 400, 400, 403, 400]),
    ("POST /api/rule-chains using shared-a",             "",       [201, 403, 201, 201, 400, 403, 400]),
    ("GET /api/rule-chains/{tenant-chain}",              "READ",   [200, 403, 200, 404, 404, 404, 404]),
    ("GET /api/rule-chains/{A-chain}",                   "READ",   [200, 403, 200, 200, 404, 404, 404]),
    ("GET /api/rule-chains/{other-chain}",               "READ",   [404, 404, 404, 404, 404, 404, 200]),
    ("PUT /api/rule-chains/{new-chain}",                 "WRITE",  [200, 403, 200, 404, 404, 404, 404]),
    ("PUT /api/rule-chains/{new-A-chain}",               "WRITE",  [200, 403, 200, 200, 404, 404, 404]),
    ("DELETE /api/rule-chains/{new-chain}",              "DELETE", [204, 403, 204, 404, 404, 404, 404]),
    ("DELETE /api/rule-chains/{new-A-chain}",            "DELETE", [204, 403, 204, 204, 404, 404, 404]),
    ("POST /api/rule-chains/{tenant-chain}/messages",    "WRITE",  [200, 403, 200, 404, 404, 404, 404]),
    ("POST /api/rule-chains/{A-chain}/messages",         "WRITE",  [200, 403, 200, 200, 404, 404, 404]),
    ("GET /api/integrations",                            "READ",   [200, 403, 200, 403, 403, 403, 200]),
    ("POST /api/integrations to tenant-chain",           "CREATE", [201, 403, 201, 403, 403, 403, 400]),
    ("GET /api/integrations/{integration}",              "READ",   [200, 403, 200, 404, 404, 404, 404]),
    ("PUT /api/integrations/{new-integration}",          "WRITE",  [200, 403, 200, 404, 404, 404, 404]),
    ("DELETE /api/integrations/{new-integration}",       "DELETE", [204, 403, 204, 404, 404, 404, 404]),
    ("GET /api/customers",                               "READ",   [200, 403, 403, 403, 403, 403, 200]),
    ("POST /api/customers",                              "CREATE", [201, 403, 403, 403, 403, 403, 201]),
    ("GET /api/customers/{A}",                           "READ",   [200, 403, 403, 403, 404, 404, 404]),
    ("DELETE /api/customers/{new-customer}",             "DELETE", [204, 403, 403, 404, 404, 404, 404]),
    ("GET /api/users",                                   "READ",   [200, 403, 403, 403, 403, 403, 200]),
    ("POST /api/users",                                  "CREATE", [201, 403, 403, 403, 403, 403, 201]),
    ("GET /api/users/{bystander}",                       "READ",   [200, 403, 403, 404, 404, 404, 404]),
    ("GET /api/users/{colleague-of-A}",                  "READ",   [200, 403, 403, 403, 404, 404, 404]),
    ("PATCH /api/users/{new-user}",                      "WRITE",  [200, 403, 403, 404, 404, 404, 404]),
    ("DELETE /api/users/{new-user}",                     "DELETE", [204, 403, 403, 404, 404, 404, 404]),
    ("GET /api/roles",                                   "READ",   [200, 403, 403, 403, 403, 403, 200]),
    ("POST /api/roles",                                  "CREATE", [201, 403, 403, 403, 403, 403, 201]),
    ("DELETE /api/roles/{new-role}",                     "DELETE", [204, 403, 403, 403, 403, 404, 404]),
    ("GET /api/audit-logs",                              "READ",   [200, 403, 403, 403, 403, 403, 200]),
    ("GET /api/tenants",                                 "READ",   [403, 403, 403, 403, 403, 200, 403]),
    ("POST /api/tenants",                                "CREATE", [403, 403, 403, 403, 403, 201, 403]),
    ("GET /api/tenants/{Other}",                         "READ",   [403, 403, 403, 403, 403, 200, 403]),
    ("DELETE /api/tenants/{new-tenant}",                 "DELETE", [403, 403, 403, 403, 403, 204, 403]),
];

/// A chain with one `rest_api_call` node sending a bearer token from `secret` to `url`, or with
/// one `log` node when there is no secret.
pub(super) fn chain(name: &str, secret: Option<&str>, url: &str) -> Value {
    match secret {
        Some(secret) => {
            json!({"name": name, "nodes": [{"type": "rest_api_call", "name": "Call", "configuration": {
                "restEndpointUrlPattern": url,
                "requestMethod": "POST",
                "credentials": {"type": "bearer", "token": format!("$<secret:{secret}>")}
            }}]})
        }
        None => json!({"name": name, "nodes": [{"type": "log", "name": "Log", "configuration": {}}]}),
    }
}

pub(super) fn integration(name: &str, chain_id: &str) -> Value {
    json!({
        "name": name,
        "type": "HTTP",
        "ruleChainId": chain_id,
        "configuration": {"enableSecurity": false},
        "uplinkConverter": "#{deviceName: \"device\", telemetry: payload}"
    })
}

/// A user holding SECRET_MANAGER.
pub(super) fn secret_manager(username: &str) -> Value {
    json!({"username": username, "password": USER_PASSWORD, "roles": ["SECRET_MANAGER"]})
}

/// A custom role that may read secrets.
pub(super) fn secret_reader_role(name: &str) -> Value {
    json!({"name": name, "permissions": [{"resource": "SECRET", "operations": ["READ"]}]})
}

/// The problems of a chain whose token refers to a secret the caller cannot see.
pub(super) fn does_not_exist(secret: &str) -> Value {
    let message = format!("secret '{secret}' does not exist");
    json!([{"path": "/nodes/0/configuration/credentials/token", "message": message}])
}

/// `RESOURCE` of a route's path: `/api/rule-chains/...` is `RULE_CHAIN`.
pub(super) fn resource(path: &str) -> String {
    let segment = path.split('/').nth(2).unwrap_or_default();
    segment.trim_end_matches('s').replace('-', "_").to_uppercase()
}

pub(super) fn id_of(body: &Value) -> String {
    body["id"].as_str().unwrap_or_else(|| panic!("no id in {body}")).to_owned()
}

/// A short description of an answer for mismatch reports.
pub(super) fn describe(status: u16, body: &Value) -> String {
    match (body["error"].as_str(), body["message"].as_str()) {
        (Some(code), Some(message)) => format!("{status} {code}: {message}"),
        _ => {
            let text = body.to_string();
            format!("{status} {}", text.chars().take(160).collect::<String>())
        }
    }
}

/// Whether an answer is what the matrix expects; `permission` is `RESOURCE:OP` or "".
pub(super) fn matches(expected: u16, permission: &str, status: u16, body: &Value) -> bool {
    let code = body["error"].as_str().unwrap_or_default();
    let message = body["message"].as_str().unwrap_or_default();
    status == expected
        && match expected {
            403 if permission.is_empty() => code == "forbidden" && message.contains("missing permission"),
            403 => {
                code == "forbidden"
                    && message == format!("permission denied: missing permission {permission}")
            }
            404 => code == "not_found",
            400 => code == "invalid_config",
            409 => code == "secret_in_use",
            _ => true,
        }
}

/// The server of the matrix with everything it needs: callers by role, named objects, every
/// value created and every body received.
pub(super) struct World<'a> {
    callers: Vec<Api<'a>>,
    ids: BTreeMap<&'static str, String>,
    counter: Cell<u32>,
    values: RefCell<Vec<String>>,
    bodies: RefCell<Vec<String>>,
}

impl<'a> World<'a> {
    fn caller(&self, role: &str) -> &Api<'a> {
        &self.callers[ROLES.iter().position(|r| *r == role).unwrap()]
    }

    fn admin(&self) -> &Api<'a> {
        self.caller("admin")
    }

    fn id(&self, key: &str) -> String {
        self.ids.get(key).unwrap_or_else(|| panic!("no object {key:?}")).clone()
    }

    fn next(&self) -> u32 {
        self.counter.set(self.counter.get() + 1);
        self.counter.get()
    }

    /// A new secret value, remembered for the leak check.
    fn new_value(&self) -> String {
        let value = format!("new-value-{}-c3a8\"x", self.next());
        self.values.borrow_mut().push(value.clone());
        value
    }

    /// Any call; the body is kept for the leak check.
    async fn send(&self, api: &Api<'_>, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let request = api.req(method, path);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        let answer = api.send(request).await;
        self.bodies.borrow_mut().push(answer.1.to_string());
        answer
    }

    /// A setup call that must succeed with `status`; returns the body.
    async fn setup(&self, api: &Api<'_>, method: Method, path: &str, body: Value, status: u16) -> Value {
        let what = format!("{method} {path}");
        let (got, answer) = self.send(api, method, path, Some(body)).await;
        assert_eq!(got, status, "setup {what}: {answer}");
        answer
    }

    async fn new_secret(&self, share_with: Option<&str>) -> String {
        let body =
            json!({"name": format!("new-secret-{}", self.next()), "type": "TEXT", "value": self.new_value()});
        let id = id_of(&self.setup(self.admin(), Method::POST, "/api/secrets", body, 201).await);
        if let Some(customer) = share_with {
            let path = format!("/api/secrets/{id}/shares");
            self.setup(self.admin(), Method::POST, &path, json!({"customerId": self.id(customer)}), 200)
                .await;
        }
        id
    }

    /// The id for `{key}`: a setup object, or a new throwaway one.
    async fn object(&self, key: &str) -> String {
        let n = self.next();
        let (api, path, body) = match key {
            "new-secret" => return self.new_secret(None).await,
            "new-A-secret" => return self.new_secret(Some("A")).await,
            "new-chain" => {
                (self.admin(), "/api/rule-chains", chain(&format!("new chain {n}"), None, DEAD_URL))
            }
            "new-A-chain" => {
                (self.caller("cust-a"), "/api/rule-chains", chain(&format!("new chain {n}"), None, DEAD_URL))
            }
            "new-integration" => (
                self.admin(),
                "/api/integrations",
                integration(&format!("new integration {n}"), &self.id("tenant-chain")),
            ),
            "new-customer" => (self.admin(), "/api/customers", json!({"name": format!("new customer {n}")})),
            "new-user" => (self.admin(), "/api/users", secret_manager(&format!("new-user-{n}"))),
            "new-role" => (self.admin(), "/api/roles", secret_reader_role(&format!("new role {n}"))),
            "new-tenant" => {
                (self.caller("sysadmin"), "/api/tenants", json!({"name": format!("new tenant {n}")}))
            }
            known => return self.id(known),
        };
        id_of(&self.setup(api, Method::POST, path, body, 201).await)
    }

    /// The body a route sends, if any; `note` names what it refers to.
    fn body(&self, method: &Method, template: &str, note: &str) -> Option<Value> {
        let n = self.next();
        let referred = note.split_whitespace().last().unwrap_or_default();
        let under = |prefix: &str| template.starts_with(prefix);
        let body = match (method.as_str(), template) {
            ("POST", "/api/secrets") => {
                json!({"name": format!("made-{n}"), "type": "TEXT", "value": self.new_value()})
            }
            ("PATCH", _) if under("/api/secrets/") => json!({"value": self.new_value()}),
            ("POST", _) if template.ends_with("/shares") => json!({"customerId": self.id(referred)}),
            ("POST", "/api/rule-chains") => {
                let secret = (!referred.is_empty()).then_some(referred);
                chain(&format!("made chain {n}"), secret, DEAD_URL)
            }
            ("PUT", _) if under("/api/rule-chains/") => chain(&format!("changed chain {n}"), None, DEAD_URL),
            ("POST", _) if template.ends_with("/messages") => json!({"data": {"n": n}}),
            ("POST", "/api/integrations") => {
                integration(&format!("made integration {n}"), &self.id(referred))
            }
            ("PUT", _) if under("/api/integrations/") => {
                integration(&format!("changed integration {n}"), &self.id("tenant-chain"))
            }
            ("POST", "/api/customers") => json!({"name": format!("made customer {n}")}),
            ("POST", "/api/users") => secret_manager(&format!("made-user-{n}")),
            ("PATCH", _) if under("/api/users/") => json!({"password": "changed password 5678"}),
            ("POST", "/api/roles") => secret_reader_role(&format!("made role {n}")),
            ("POST", "/api/tenants") => json!({"name": format!("made tenant {n}")}),
            _ => return None,
        };
        Some(body)
    }

    /// Makes the objects a route needs, then calls it as `api`.
    async fn call(&self, route: &str, api: &Api<'_>) -> (u16, Value) {
        let mut parts = route.splitn(3, ' ');
        let method = Method::from_bytes(parts.next().unwrap().as_bytes()).unwrap();
        let template = parts.next().unwrap();
        let note = parts.next().unwrap_or_default();
        let mut path = String::new();
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            let end = start + rest[start..].find('}').unwrap();
            path.push_str(&rest[..start]);
            path.push_str(&self.object(&rest[start + 1..end]).await);
            rest = &rest[end + 1..];
        }
        path.push_str(rest);
        if path.ends_with("/messages") {
            path.push_str("?wait=true");
        }
        let body = self.body(&method, template, note);
        self.send(api, method, &path, body).await
    }
}

/// Customers A and B; a manager, an author, users of A and B, a bystander and a colleague of
/// cust-a; `shared-a` (shared with A) and `tenant-only`, each used by a chain; an integration; and
/// a second tenant "Other" whose admin has a secret and a chain of its own.
pub(super) async fn world(server: &Server) -> World<'_> {
    let mut w = World {
        callers: Vec::new(),
        ids: BTreeMap::new(),
        counter: Cell::new(0),
        values: RefCell::new(vec![SHARED_VALUE.into(), TENANT_VALUE.into(), OTHER_VALUE.into()]),
        bodies: RefCell::new(Vec::new()),
    };
    let admin = Api::new(server).await;
    for name in ["A", "B"] {
        let body = json!({"name": format!("Customer {name}")});
        let customer = w.setup(&admin, Method::POST, "/api/customers", body, 201).await;
        w.ids.insert(name, id_of(&customer));
    }
    for (username, role, customer, key) in [
        ("manager", "SECRET_MANAGER", None, None),
        ("author", "RULE_CHAIN_AUTHOR", None, None),
        ("cust-a", "CUSTOMER_USER", Some("A"), None),
        ("cust-b", "CUSTOMER_USER", Some("B"), None),
        ("bystander", "SECRET_MANAGER", None, Some("bystander")),
        ("colleague-a", "CUSTOMER_USER", Some("A"), Some("colleague-of-A")),
    ] {
        let mut body = json!({"username": username, "password": USER_PASSWORD, "roles": [role]});
        if let Some(c) = customer {
            body["customerId"] = json!(w.id(c));
        }
        let user = w.setup(&admin, Method::POST, "/api/users", body, 201).await;
        if let Some(key) = key {
            w.ids.insert(key, id_of(&user));
        }
    }
    for (name, value) in [("shared-a", SHARED_VALUE), ("tenant-only", TENANT_VALUE)] {
        let body = json!({"name": name, "type": "TEXT", "value": value});
        let secret = w.setup(&admin, Method::POST, "/api/secrets", body, 201).await;
        w.ids.insert(name, id_of(&secret));
    }
    let share = json!({"customerId": w.id("A")});
    let path = format!("/api/secrets/{}/shares", w.id("shared-a"));
    let shared = w.setup(&admin, Method::POST, &path, share, 200).await;
    assert_eq!(shared["sharedWith"], json!([w.id("A")]));
    let body = chain("Tenant chain", Some("tenant-only"), DEAD_URL);
    let tenant_chain = w.setup(&admin, Method::POST, "/api/rule-chains", body, 201).await;
    w.ids.insert("tenant-chain", id_of(&tenant_chain));
    let cust_a = Api::as_user(server, "cust-a", USER_PASSWORD).await;
    let body = chain("Chain of A", Some("shared-a"), DEAD_URL);
    let a_chain = w.setup(&cust_a, Method::POST, "/api/rule-chains", body, 201).await;
    w.ids.insert("A-chain", id_of(&a_chain));
    let body = integration("Tenant integration", &w.id("tenant-chain"));
    let created = w.setup(&admin, Method::POST, "/api/integrations", body, 201).await;
    w.ids.insert("integration", id_of(&created));

    let sysadmin = Api::as_user(server, "sysadmin", SYSADMIN_PASSWORD).await;
    let body = json!({"name": "Other", "admin": {"username": "other-admin", "password": USER_PASSWORD}});
    let tenant = w.setup(&sysadmin, Method::POST, "/api/tenants", body, 201).await;
    w.ids.insert("Other", id_of(&tenant));
    let other = Api::as_user(server, "other-admin", USER_PASSWORD).await;
    let body = json!({"name": "other-secret", "type": "TEXT", "value": OTHER_VALUE});
    let secret = w.setup(&other, Method::POST, "/api/secrets", body, 201).await;
    w.ids.insert("other-secret", id_of(&secret));
    let body = chain("Other chain", Some("other-secret"), DEAD_URL);
    let other_chain = w.setup(&other, Method::POST, "/api/rule-chains", body, 201).await;
    w.ids.insert("other-chain", id_of(&other_chain));

    let manager = Api::as_user(server, "manager", USER_PASSWORD).await;
    let author = Api::as_user(server, "author", USER_PASSWORD).await;
    let cust_b = Api::as_user(server, "cust-b", USER_PASSWORD).await;
    w.callers = vec![admin, manager, author, cust_a, cust_b, sysadmin, other];
    w
}

/// Names among `known` in a listing's `data`.
pub(super) fn listed(page: &Value, known: &[&str]) -> BTreeSet<String> {
    page["data"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["name"].as_str())
                .filter(|n| known.contains(n))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Entries of an audit page with `action`.
pub(super) fn entries<'v>(log: &'v Value, action: &str) -> Vec<&'v Value> {
    log["data"].as_array().unwrap().iter().filter(|e| e["action"] == action).collect()
}

pub(super) async fn login(server: &Server, username: &str, password: &str) -> reqwest::Response {
    server
        .client
        .post(server.url("/api/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
}
