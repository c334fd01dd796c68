use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    ADMIN_PASSWORD, Api, Receiver, SECRET_INFO_KEYS, SYSADMIN_PASSWORD, Server, assert_no_leak, leaks,
    sorted_keys,
};

/// The password of every user these tests create.
const USER_PASSWORD: &str = "user password 1234";
/// A closed port on loopback: chains that call it fail fast, after resolving their secrets.
const DEAD_URL: &str = "http://127.0.0.1:9/x";
const SHARED_VALUE: &str = r#"shared-a-value-"q"\b-4f1c"#;
const TENANT_VALUE: &str = "tenant-only-value-9b2e";
const OTHER_VALUE: &str = "other-tenant-value-77d1";

/// The callers of the matrix, in the order of its columns.
const ROLES: [&str; 7] = ["admin", "manager", "author", "cust-a", "cust-b", "sysadmin", "other"];

/// Every route against every role. A route is `METHOD PATH [NOTE]`; `{key}` in the path is an
/// object made in setup, or with `new-` a throwaway one made for that cell alone (as admin, as
/// cust-a for `A-` objects, as sysadmin for tenants), so the order of the rows does not matter.
/// The note says what a body refers to. The second column is the operation a 403 names on the
/// route's resource (`permission denied: missing permission SECRET:WRITE`), or "" when the
/// missing permission depends on the caller. A 404 must be `not_found`, a 400 `invalid_config`,
/// a 409 `secret_in_use`. Columns: admin, manager, author, cust-a, cust-b, sysadmin, other-tenant admin.
#[rustfmt::skip]
const MATRIX: &[(&str, &str, [u16; 7])] = &[
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
fn chain(name: &str, secret: Option<&str>, url: &str) -> Value {
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

fn integration(name: &str, chain_id: &str) -> Value {
    json!({
        "name": name,
        "type": "HTTP",
        "ruleChainId": chain_id,
        "configuration": {"enableSecurity": false},
        "uplinkConverter": "#{deviceName: \"device\", telemetry: payload}"
    })
}

/// A user holding SECRET_MANAGER.
fn secret_manager(username: &str) -> Value {
    json!({"username": username, "password": USER_PASSWORD, "roles": ["SECRET_MANAGER"]})
}

/// A custom role that may read secrets.
fn secret_reader_role(name: &str) -> Value {
    json!({"name": name, "permissions": [{"resource": "SECRET", "operations": ["READ"]}]})
}

/// The problems of a chain whose token refers to a secret the caller cannot see.
fn does_not_exist(secret: &str) -> Value {
    let message = format!("secret '{secret}' does not exist");
    json!([{"path": "/nodes/0/configuration/credentials/token", "message": message}])
}

/// `RESOURCE` of a route's path: `/api/rule-chains/...` is `RULE_CHAIN`.
fn resource(path: &str) -> String {
    let segment = path.split('/').nth(2).unwrap_or_default();
    segment.trim_end_matches('s').replace('-', "_").to_uppercase()
}

fn id_of(body: &Value) -> String {
    body["id"].as_str().unwrap_or_else(|| panic!("no id in {body}")).to_owned()
}

/// A short description of an answer for mismatch reports.
fn describe(status: u16, body: &Value) -> String {
    match (body["error"].as_str(), body["message"].as_str()) {
        (Some(code), Some(message)) => format!("{status} {code}: {message}"),
        _ => {
            let text = body.to_string();
            format!("{status} {}", text.chars().take(160).collect::<String>())
        }
    }
}

/// Whether an answer is what the matrix expects; `permission` is `RESOURCE:OP` or "".
fn matches(expected: u16, permission: &str, status: u16, body: &Value) -> bool {
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
struct World<'a> {
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
async fn world(server: &Server) -> World<'_> {
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
fn listed(page: &Value, known: &[&str]) -> BTreeSet<String> {
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

#[tokio::test]
async fn every_route_answers_every_role_as_its_permissions_say() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let w = world(&server).await;
    let mut mismatches = Vec::new();
    let mut cells = 0;
    for (route, operation, expected) in MATRIX {
        let path = route.split(' ').nth(1).unwrap();
        let permission =
            if operation.is_empty() { String::new() } else { format!("{}:{operation}", resource(path)) };
        for (role, &expected) in ROLES.iter().zip(expected) {
            cells += 1;
            let (status, body) = w.call(route, w.caller(role)).await;
            if !matches(expected, &permission, status, &body) {
                let wanted = match expected {
                    403 if !permission.is_empty() => format!("403 {permission}"),
                    403 => "403 forbidden".to_owned(),
                    404 => "404 not_found".to_owned(),
                    400 => "400 invalid_config".to_owned(),
                    409 => "409 secret_in_use".to_owned(),
                    other => other.to_string(),
                };
                mismatches
                    .push(format!("{route} as {role}: expected {wanted}, got {}", describe(status, &body)));
            }
        }
    }

    // What the listings show: only what each caller can see.
    let secrets = ["shared-a", "tenant-only", "other-secret"];
    let chains = ["Tenant chain", "Chain of A", "Other chain"];
    let both = ["shared-a", "tenant-only"];
    for (role, seen_secrets, seen_chains) in [
        ("admin", &both[..], &chains[..2]),
        ("manager", &both[..], &[][..]),
        ("author", &both[..], &chains[..2]),
        ("cust-a", &["shared-a"][..], &["Chain of A"][..]),
        ("cust-b", &[][..], &[][..]),
        ("other", &["other-secret"][..], &["Other chain"][..]),
    ] {
        let api = w.caller(role);
        let (_, page) = w.send(api, Method::GET, "/api/secrets?pageSize=1000", None).await;
        let want: BTreeSet<String> = seen_secrets.iter().map(|s| s.to_string()).collect();
        if listed(&page, &secrets) != want {
            mismatches.push(format!("GET /api/secrets as {role}: expected {want:?}, got {page}"));
        }
        let (_, page) = w.send(api, Method::GET, "/api/rule-chains?pageSize=1000", None).await;
        let want: BTreeSet<String> = seen_chains.iter().map(|s| s.to_string()).collect();
        // (The manager may not list chains at all: a 403 the matrix checks.)
        if role != "manager" && listed(&page, &chains) != want {
            mismatches.push(format!("GET /api/rule-chains as {role}: expected {want:?}, got {page}"));
        }
    }
    // Each tenant's audit log is its own.
    for (role, foreign) in [("admin", &["other-secret"][..]), ("other", &["shared-a", "tenant-only"][..])] {
        let (_, log) = w.send(w.caller(role), Method::GET, "/api/audit-logs?pageSize=1000", None).await;
        let names: Vec<&str> =
            log["data"].as_array().unwrap().iter().filter_map(|e| e["targetName"].as_str()).collect();
        if names.iter().any(|n| foreign.contains(n)) {
            mismatches
                .push(format!("GET /api/audit-logs as {role} shows another tenant's secrets: {names:?}"));
        }
    }
    // A role that may write rule chains but not USE secrets cannot reference one (403, naming it).
    let role = json!({"name": "chain editor", "permissions": [
        {"resource": "RULE_CHAIN", "operations": ["READ", "CREATE", "WRITE", "DELETE"]}]});
    w.setup(w.admin(), Method::POST, "/api/roles", role, 201).await;
    let user = json!({"username": "editor", "password": USER_PASSWORD, "roles": ["chain editor"]});
    w.setup(w.admin(), Method::POST, "/api/users", user, 201).await;
    let editor = Api::as_user(&server, "editor", USER_PASSWORD).await;
    let body = chain("Editor chain", Some("tenant-only"), DEAD_URL);
    let (status, refused) = w.send(&editor, Method::POST, "/api/rule-chains", Some(body)).await;
    if status != 403
        || refused["error"] != "forbidden"
        || refused["problems"][0]["path"] != "/nodes/0/configuration/credentials/token"
        || !refused.to_string().contains("SECRET:USE")
    {
        mismatches
            .push(format!("POST /api/rule-chains using tenant-only as a role without SECRET:USE: {refused}"));
    }
    let body = chain("Editor chain", None, DEAD_URL);
    let (status, created) = w.send(&editor, Method::POST, "/api/rule-chains", Some(body)).await;
    if status != 201 {
        mismatches.push(format!("POST /api/rule-chains without secrets as that role: {status} {created}"));
    }

    // No answer ever carried a value, in any form.
    let values = w.values.borrow().clone();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    for body in w.bodies.borrow().iter() {
        for leak in leaks(body.as_bytes(), &values) {
            mismatches.push(format!("a value leaked ({leak}) in: {body}"));
        }
    }
    println!("{cells} cells, {} bodies checked", w.bodies.borrow().len());
    assert!(mismatches.is_empty(), "{} mismatches:\n{}", mismatches.len(), mismatches.join("\n"));
}

#[tokio::test]
async fn a_customer_uses_a_shared_secret_without_ever_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let admin = Api::new(&server).await;
    let receiver = Receiver::start().await;
    let value = r#"cust-token-"q"\x-51e0"#;
    let mut bodies = Vec::new();
    let mut customers = BTreeMap::new();
    for name in ["A", "B"] {
        let (status, c) = admin.post("/api/customers", json!({"name": format!("Customer {name}")})).await;
        assert_eq!(status, 201, "{c}");
        customers.insert(name, id_of(&c));
    }
    for (username, customer) in [("cust-a", "A"), ("cust-b", "B")] {
        let body = json!({"username": username, "password": USER_PASSWORD, "customerId": customers[customer],
                          "roles": ["CUSTOMER_USER"]});
        let (status, user) = admin.post("/api/users", body).await;
        assert_eq!(status, 201, "{user}");
    }
    let (status, secret) =
        admin.post("/api/secrets", json!({"name": "api-token", "type": "TEXT", "value": value})).await;
    assert_eq!(status, 201, "{secret}");
    let secret_id = id_of(&secret);
    let (status, tenant_only) = admin
        .post("/api/secrets", json!({"name": "tenant-only", "type": "TEXT", "value": TENANT_VALUE}))
        .await;
    assert_eq!(status, 201);
    let tenant_only_id = id_of(&tenant_only);
    let (status, shared) =
        admin.post(&format!("/api/secrets/{secret_id}/shares"), json!({"customerId": customers["A"]})).await;
    assert_eq!((status, &shared["sharedWith"]), (200, &json!([customers["A"]])), "{shared}");

    // cust-a deploys a chain that sends the token to a real service, and it works.
    let cust_a = Api::as_user(&server, "cust-a", USER_PASSWORD).await;
    let mut doc = chain("Customer uplink", Some("api-token"), &format!("{}/ingest", receiver.url));
    doc["nodes"][0]["debugMode"] = json!(true);
    let (status, created) = cust_a.post("/api/rule-chains", doc).await;
    assert_eq!(status, 201, "{created}");
    let chain_id = id_of(&created);
    let node_id = created["nodes"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["nodes"][0]["configuration"]["credentials"]["token"], "$<secret:api-token>");
    let path = format!("/api/rule-chains/{chain_id}/messages?wait=true");
    let (status, result) = cust_a.post(&path, json!({"data": {"temperature": 21}})).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["trace"][0]["relation"], json!(["Success"]), "{result}");
    let seen = receiver.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers["authorization"], format!("Bearer {value}"));
    bodies.extend([created.clone(), result]);

    // A customer's script cannot hold the value (it could print or encode it).
    let script = json!({"name": "Peek", "nodes": [{"type": "script", "name": "Peek", "configuration":
        {"mode": "transform", "script": "#{msg: #{t: secret(\"api-token\")}}"}}]});
    let (status, refused) = cust_a.post("/api/rule-chains", script).await;
    assert_eq!(
        (status, refused["problems"][0]["path"].clone()),
        (400, json!("/nodes/0/configuration/script"))
    );
    // Nor does it learn which other customers a secret is shared with.
    let (_, also_b) =
        admin.post(&format!("/api/secrets/{secret_id}/shares"), json!({"customerId": customers["B"]})).await;
    assert_eq!(also_b["sharedWith"].as_array().unwrap().len(), 2);
    let (_, seen_by_a) = cust_a.get(&format!("/api/secrets/{secret_id}")).await;
    assert_eq!(seen_by_a["sharedWith"], json!([customers["A"]]));
    let (status, _) = admin.delete(&format!("/api/secrets/{secret_id}/shares/{}", customers["B"])).await;
    assert_eq!(status, 200);

    // The chain stays the customer's: the tenant admin cannot slip an unshared secret into it.
    let mut edited = chain("Customer uplink", Some("tenant-only"), &format!("{}/ingest", receiver.url));
    edited["nodes"][0]["id"] = json!(node_id);
    let (status, refused) = admin.put(&format!("/api/rule-chains/{chain_id}"), edited).await;
    assert_eq!((status, refused["problems"].clone()), (400, does_not_exist("tenant-only")), "{refused}");

    // No route gives cust-a the value: metadata, listing, usages, the chain, its debug events.
    let (status, got) = cust_a.get(&format!("/api/secrets/{secret_id}")).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(sorted_keys(&got), SECRET_INFO_KEYS, "metadata only");
    let (status, page) = cust_a.get("/api/secrets").await;
    assert_eq!(status, 200);
    let names: Vec<&str> =
        page["data"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["api-token"], "only the shared secret is listed");
    let (status, usages) = cust_a.get(&format!("/api/secrets/{secret_id}/usages")).await;
    assert_eq!(status, 200, "{usages}");
    let references = json!([{"id": chain_id, "name": "Customer uplink", "nodes": [
        {"id": node_id, "name": "Call", "path": "/nodes/0/configuration/credentials/token"}]}]);
    assert_eq!(usages["RULE_CHAIN"], references);
    let (status, stored) = cust_a.get(&format!("/api/rule-chains/{chain_id}")).await;
    assert_eq!(status, 200);
    let (status, events) = cust_a.get(&format!("/api/rule-chains/{chain_id}/events")).await;
    assert_eq!(status, 200, "{events}");
    assert!(!events.as_array().unwrap().is_empty(), "the node is in debug mode");
    // cust-a may change its own chain (it stays A's and keeps its reference).
    let (status, updated) = cust_a.put(&format!("/api/rule-chains/{chain_id}"), stored.clone()).await;
    assert_eq!((status, &updated["nodes"][0]["configuration"]), (200, &stored["nodes"][0]["configuration"]));
    let patch =
        cust_a.patch(&format!("/api/secrets/{secret_id}"), json!({"value": "cust-a-overwrite"})).await;
    assert_eq!((patch.0, patch.1["error"].as_str()), (403, Some("forbidden")), "{}", patch.1);
    bodies.extend([got, page, usages, stored, updated, events, patch.1]);

    // tenant-only does not exist for cust-a: not readable, not listed, not referable.
    let (status, missing) = cust_a.get(&format!("/api/secrets/{tenant_only_id}")).await;
    assert_eq!((status, missing["error"].as_str()), (404, Some("not_found")), "{missing}");
    let (_, usages) = cust_a.get(&format!("/api/secrets/{tenant_only_id}/usages")).await;
    assert_eq!(usages["error"], "not_found");
    let (status, refused) =
        cust_a.post("/api/rule-chains", chain("Sneaky", Some("tenant-only"), DEAD_URL)).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_config")), "{refused}");
    assert_eq!(refused["problems"], does_not_exist("tenant-only"));
    bodies.extend([missing, usages, refused]);

    // cust-b: the secret is not shared with B, so it does not exist; A's chain neither.
    let cust_b = Api::as_user(&server, "cust-b", USER_PASSWORD).await;
    let (status, refused) =
        cust_b.post("/api/rule-chains", chain("B uplink", Some("api-token"), DEAD_URL)).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_config")), "{refused}");
    assert_eq!(refused["problems"], does_not_exist("api-token"));
    let (status, hidden) = cust_b.get(&format!("/api/secrets/{secret_id}")).await;
    assert_eq!((status, hidden["error"].as_str()), (404, Some("not_found")));
    let (status, other_chain) = cust_b.get(&format!("/api/rule-chains/{chain_id}")).await;
    assert_eq!((status, other_chain["error"].as_str()), (404, Some("not_found")));
    let (_, page) = cust_b.get("/api/secrets").await;
    assert_eq!(page["totalElements"], 0, "{page}");
    bodies.extend([refused, hidden, other_chain, page]);

    // Unsharing is refused while A's chain uses the secret; once the chain is gone it is allowed.
    let unshare = format!("/api/secrets/{secret_id}/shares/{}", customers["A"]);
    let (status, in_use) = admin.delete(&unshare).await;
    assert_eq!((status, in_use["error"].as_str()), (409, Some("secret_in_use")), "{in_use}");
    assert_eq!(in_use["references"]["RULE_CHAIN"], references);
    assert_eq!(
        admin.get(&format!("/api/secrets/{secret_id}")).await.1["sharedWith"],
        json!([customers["A"]])
    );
    assert_eq!(cust_a.delete(&format!("/api/rule-chains/{chain_id}")).await.0, 204);
    let (status, unshared) = admin.delete(&unshare).await;
    assert_eq!((status, &unshared["sharedWith"]), (200, &json!([])), "{unshared}");
    let (status, gone) = cust_a.get(&format!("/api/secrets/{secret_id}")).await;
    assert_eq!((status, gone["error"].as_str()), (404, Some("not_found")), "no longer shared");
    bodies.extend([in_use, unshared, gone]);

    let values = [value, TENANT_VALUE];
    for body in &bodies {
        assert_no_leak(&body.to_string(), &values);
    }
    assert_no_leak(&server.logs(), &values);
}

/// Entries of an audit page with `action`.
fn entries<'v>(log: &'v Value, action: &str) -> Vec<&'v Value> {
    log["data"].as_array().unwrap().iter().filter(|e| e["action"] == action).collect()
}

async fn login(server: &Server, username: &str, password: &str) -> reqwest::Response {
    server
        .client
        .post(server.url("/api/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_audit_log_records_every_action_and_never_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let admin = Api::new(&server).await;
    let receiver = Receiver::start().await;
    let (first, second) = ("audit-value-1-\"q\"-aa01", "audit-value-2-bb02");
    let wrong_password = "wrong password 0000";
    let (_, customer) = admin.post("/api/customers", json!({"name": "Customer A"})).await;
    let customer_id = id_of(&customer);
    let mut users = BTreeMap::new();
    for (username, role, customer) in
        [("manager", "SECRET_MANAGER", None), ("cust-a", "CUSTOMER_USER", Some(&customer_id))]
    {
        let mut body = json!({"username": username, "password": USER_PASSWORD, "roles": [role]});
        if let Some(c) = customer {
            body["customerId"] = json!(c);
        }
        let (status, user) = admin.post("/api/users", body).await;
        assert_eq!(status, 201, "{user}");
        users.insert(username, id_of(&user));
    }
    let manager = Api::as_user(&server, "manager", USER_PASSWORD).await;
    assert_eq!(login(&server, "manager", wrong_password).await.status(), 401);
    assert_eq!(login(&server, "typed-password-as-name", wrong_password).await.status(), 401);

    // The secret's life: created, rotated by the manager, described, used, shared, deleted.
    let (status, secret) =
        admin.post("/api/secrets", json!({"name": "audited", "type": "TEXT", "value": first})).await;
    assert_eq!(status, 201);
    let id = id_of(&secret);
    let secret_path = format!("/api/secrets/{id}");
    assert_eq!(manager.patch(&secret_path, json!({"value": second})).await.0, 200);
    assert_eq!(admin.patch(&secret_path, json!({"description": "rotated by the manager"})).await.0, 200);
    let (status, created) =
        admin.post("/api/rule-chains", chain("Audited chain", Some("audited"), &receiver.url)).await;
    assert_eq!(status, 201, "{created}");
    let chain_id = id_of(&created);
    let messages = 3;
    for i in 0..messages {
        let path = format!("/api/rule-chains/{chain_id}/messages?wait=true");
        let (status, result) = admin.post(&path, json!({"data": {"i": i}})).await;
        assert_eq!(status, 200, "{result}");
    }
    assert_eq!(receiver.requests().len(), messages);
    assert_eq!(admin.delete(&secret_path).await.0, 409);
    let share = format!("{secret_path}/shares");
    let unshare = format!("{secret_path}/shares/{customer_id}");
    assert_eq!(admin.post(&share, json!({"customerId": customer_id})).await.0, 200);
    assert_eq!(admin.delete(&unshare).await.0, 200);
    assert_eq!(admin.post(&share, json!({"customerId": customer_id})).await.0, 200);
    let cust_a = Api::as_user(&server, "cust-a", USER_PASSWORD).await;
    let (status, customer_chain) =
        cust_a.post("/api/rule-chains", chain("Customer chain", Some("audited"), DEAD_URL)).await;
    assert_eq!(status, 201, "{customer_chain}");
    assert_eq!(admin.delete(&unshare).await.0, 409);
    assert_eq!(cust_a.delete(&format!("/api/rule-chains/{}", id_of(&customer_chain))).await.0, 204);
    assert_eq!(admin.delete(&format!("/api/rule-chains/{chain_id}")).await.0, 204);
    assert_eq!(admin.delete(&unshare).await.0, 200);
    assert_eq!(admin.delete(&secret_path).await.0, 204);

    let (status, log) = admin.get("/api/audit-logs?pageSize=1000").await;
    assert_eq!(status, 200, "{log}");
    let all = log["data"].as_array().unwrap();
    let times: Vec<i64> = all.iter().map(|e| e["time"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");

    // One entry per action, with actor, target and outcome.
    let on_secret = |action: &str, actor: &str, outcome: &str, n: usize| {
        let found = entries(&log, action);
        assert_eq!(found.len(), n, "{action} entries: {found:#?}");
        for e in found {
            assert_eq!(
                (&e["actorName"], &e["targetType"], &e["targetId"], &e["targetName"], &e["outcome"]),
                (&json!(actor), &json!("SECRET"), &json!(id), &json!("audited"), &json!(outcome)),
                "{e}"
            );
        }
    };
    on_secret("CREATE", "admin", "SUCCESS", 1);
    on_secret("VALUE_CHANGE", "manager", "SUCCESS", 1);
    on_secret("DESCRIPTION_CHANGE", "admin", "SUCCESS", 1);
    on_secret("DELETE_REFUSED", "admin", "FAILURE", 1);
    on_secret("SHARE", "admin", "SUCCESS", 2);
    on_secret("UNSHARE", "admin", "SUCCESS", 2);
    on_secret("UNSHARE_REFUSED", "admin", "FAILURE", 1);
    on_secret("DELETE", "admin", "SUCCESS", 1);
    let change = entries(&log, "VALUE_CHANGE")[0];
    assert_eq!((&change["actorId"], &change["details"]["version"]), (&json!(users["manager"]), &json!(2)));
    assert_eq!(entries(&log, "SHARE")[0]["details"]["customerId"], json!(customer_id));
    assert_eq!(entries(&log, "UNSHARE_REFUSED")[0]["details"]["customerId"], json!(customer_id));

    // Uses: counted per chain and minute; together as many as messages were sent.
    let uses: Vec<&Value> =
        entries(&log, "USE").into_iter().filter(|e| e["actorId"] == json!(chain_id)).collect();
    assert!(!uses.is_empty(), "no USE entry for the chain: {log}");
    for e in &uses {
        assert_eq!(
            (&e["actorName"], &e["targetId"], &e["targetName"], &e["outcome"]),
            (&json!("RULE_CHAIN 'Audited chain'"), &json!(id), &json!("audited"), &json!("SUCCESS")),
            "{e}"
        );
    }
    let count: u64 = uses.iter().map(|e| e["details"]["count"].as_u64().unwrap()).sum();
    assert_eq!(count, messages as u64, "{uses:#?}");

    // Logins, successful and failed, of users of this tenant.
    let logins = entries(&log, "LOGIN");
    let manager_login = logins.iter().find(|e| e["actorName"] == "manager").expect("manager's LOGIN");
    assert_eq!(
        (&manager_login["targetType"], &manager_login["targetId"], &manager_login["outcome"]),
        (&json!("USER"), &json!(users["manager"]), &json!("SUCCESS"))
    );
    assert!(logins.iter().any(|e| e["actorName"] == "admin"));
    let failed = entries(&log, "LOGIN_FAILED");
    assert_eq!(failed.len(), 1, "unknown names are not in the tenant's log: {failed:#?}");
    assert_eq!(
        (&failed[0]["actorName"], &failed[0]["targetName"], &failed[0]["outcome"]),
        (&json!("manager"), &json!("manager"), &json!("FAILURE"))
    );

    // Filters.
    let (_, by_secret) = admin.get(&format!("/api/audit-logs?pageSize=1000&secretId={id}")).await;
    let about: Vec<&Value> = all.iter().filter(|e| e["targetId"] == json!(id)).collect();
    assert_eq!(by_secret["data"].as_array().unwrap().iter().collect::<Vec<_>>(), about);
    let actions: BTreeSet<&str> = about.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        BTreeSet::from([
            "CREATE",
            "VALUE_CHANGE",
            "DESCRIPTION_CHANGE",
            "DELETE_REFUSED",
            "SHARE",
            "UNSHARE",
            "UNSHARE_REFUSED",
            "USE",
            "DELETE"
        ])
    );
    let (_, by_actor) = admin.get("/api/audit-logs?pageSize=1000&actor=manager").await;
    let by_actor = by_actor["data"].as_array().unwrap();
    assert!(by_actor.iter().all(|e| e["actorName"] == "manager"), "{by_actor:#?}");
    let actions: BTreeSet<&str> = by_actor.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, BTreeSet::from(["LOGIN", "LOGIN_FAILED", "VALUE_CHANGE"]));
    let deleted_at = entries(&log, "DELETE")[0]["time"].as_i64().unwrap();
    let (_, since) = admin.get(&format!("/api/audit-logs?pageSize=1000&from={deleted_at}")).await;
    let (_, before) = admin.get(&format!("/api/audit-logs?pageSize=1000&to={deleted_at}")).await;
    let (since, before) = (since["data"].as_array().unwrap(), before["data"].as_array().unwrap());
    assert!(since.iter().all(|e| e["time"].as_i64().unwrap() >= deleted_at));
    assert!(since.iter().any(|e| e["action"] == "DELETE"));
    assert!(before.iter().all(|e| e["time"].as_i64().unwrap() < deleted_at));
    assert_eq!(since.len() + before.len(), all.len(), "from is inclusive, to exclusive");
    let (_, window) =
        admin.get(&format!("/api/audit-logs?pageSize=1000&from={deleted_at}&to={}", deleted_at + 1)).await;
    assert!(window["data"].as_array().unwrap().iter().all(|e| e["time"] == json!(deleted_at)), "{window}");
    let (_, first_page) = admin.get("/api/audit-logs?page=0&pageSize=2").await;
    assert_eq!(first_page["data"].as_array().unwrap()[..], all[..2]);
    assert_eq!(
        (first_page["totalElements"].as_u64(), first_page["hasNext"].as_bool()),
        (Some(all.len() as u64), Some(true))
    );

    // Never a value, a password, or a name typed at the login prompt.
    let text = format!("{log}{by_secret}{first_page}");
    assert_no_leak(
        &text,
        &[first, second, wrong_password, USER_PASSWORD, ADMIN_PASSWORD, "typed-password-as-name"],
    );
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_user() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let admin = Api::new(&server).await;
    for username in ["alice", "bob"] {
        assert_eq!(admin.post("/api/users", secret_manager(username)).await.0, 201);
    }
    for attempt in 1..=5 {
        let resp = login(&server, "alice", "not alice's password").await;
        assert_eq!(resp.status(), 401, "attempt {attempt}");
    }
    let resp = login(&server, "alice", USER_PASSWORD).await;
    assert_eq!(resp.status(), 429, "the right password after 5 failures");
    let retry_after: u64 = resp
        .headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=15 * 60).contains(&retry_after), "Retry-After: {retry_after}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "too_many_attempts", "{body}");
    assert_eq!(login(&server, "alice", "not alice's password").await.status(), 429);

    // Guesses sent in parallel cannot all slip through before the count catches up.
    assert_eq!(admin.post("/api/users", secret_manager("carol")).await.0, 201);
    let url = server.url("/api/auth/login");
    let guesses: Vec<_> = (0..20)
        .map(|_| {
            let (client, url) = (server.client.clone(), url.clone());
            tokio::spawn(async move {
                let body = json!({"username": "carol", "password": "not carol's password"});
                client.post(url).json(&body).send().await.unwrap().status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for guess in guesses {
        statuses.push(guess.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 15, "{statuses:?}");

    // Other users are not affected.
    let resp = login(&server, "bob", USER_PASSWORD).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(login(&server, "admin", ADMIN_PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn a_password_change_or_a_logout_ends_the_sessions_opened_before() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let admin = Api::new(&server).await;
    let (status, dana) = admin.post("/api/users", secret_manager("dana")).await;
    assert_eq!(status, 201, "{dana}");
    let old = Api::as_user(&server, "dana", USER_PASSWORD).await;
    assert_eq!(old.get("/api/secrets").await.0, 200);
    let changed = json!({"password": "a brand new password", "currentPassword": USER_PASSWORD});
    assert_eq!(old.patch(&format!("/api/users/{}", id_of(&dana)), changed).await.0, 200);
    let (status, refused) = old.get("/api/secrets").await;
    assert_eq!((status, refused["error"].as_str().unwrap()), (401, "unauthorized"), "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("revoked"), "{refused}");

    let new = Api::as_user(&server, "dana", "a brand new password").await;
    assert_eq!(new.get("/api/secrets").await.0, 200);
    assert_eq!(new.post("/api/auth/logout", json!({})).await.0, 204);
    assert_eq!(new.get("/api/secrets").await.0, 401);
    // Other accounts are untouched.
    assert_eq!(admin.get("/api/secrets").await.0, 200);
}

#[tokio::test]
async fn changing_your_own_password_needs_the_current_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let admin = Api::new(&server).await;
    let (status, erin) = admin.post("/api/users", secret_manager("erin")).await;
    assert_eq!(status, 201, "{erin}");
    let own = format!("/api/users/{}", id_of(&erin));
    let stolen = Api::as_user(&server, "erin", USER_PASSWORD).await;

    // A session alone cannot take the account over.
    let (status, refused) = stolen.patch(&own, json!({"password": "taken over 1234"})).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_request")), "{refused}");
    assert_eq!(refused["message"], "currentPassword: is required to change your own password");
    let wrong = json!({"password": "taken over 1234", "currentPassword": "a wrong guess"});
    let (status, refused) = stolen.patch(&own, wrong.clone()).await;
    assert_eq!((status, refused["error"].as_str()), (403, Some("forbidden")), "{refused}");
    assert_eq!(refused["message"], "currentPassword: is not your current password");
    assert_eq!(login(&server, "erin", "taken over 1234").await.status(), 401);
    // A wrong current password is recorded like a failed login.
    let (_, log) = admin.get("/api/audit-logs?actor=erin&pageSize=100").await;
    assert_eq!(entries(&log, "LOGIN_FAILED").len(), 2, "{log}");

    // With the current password it works, and the other sessions end.
    let right = json!({"password": "erin's new password", "currentPassword": USER_PASSWORD});
    assert_eq!(stolen.patch(&own, right).await.0, 200);
    assert_eq!(stolen.get("/api/secrets").await.0, 401);
    let erin_api = Api::as_user(&server, "erin", "erin's new password").await;

    // Guessing is limited like logins: 5 wrong ones, then 429 even for the right one.
    for attempt in 1..=5 {
        assert_eq!(erin_api.patch(&own, wrong.clone()).await.0, 403, "attempt {attempt}");
    }
    let right = json!({"password": "another password", "currentPassword": "erin's new password"});
    let (status, limited) = erin_api.patch(&own, right).await;
    assert_eq!((status, limited["error"].as_str()), (429, Some("too_many_attempts")), "{limited}");

    // An administrator resets someone else's password without knowing it.
    let reset = json!({"password": "reset by the admin"});
    assert_eq!(admin.patch(&own, reset).await.0, 200);
    assert_eq!(login(&server, "erin", "reset by the admin").await.status(), 200);
    // ... but changes its own only with its current one.
    let (_, me) = admin.get("/api/users?pageSize=100").await;
    let admin_id = me["data"].as_array().unwrap().iter().find(|u| u["username"] == "admin").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) =
        admin.patch(&format!("/api/users/{admin_id}"), json!({"password": "x new admin pw"})).await;
    assert_eq!(status, 400);
    let change = json!({"password": "x new admin pw", "currentPassword": ADMIN_PASSWORD});
    assert_eq!(admin.patch(&format!("/api/users/{admin_id}"), change).await.0, 200);
    assert_eq!(login(&server, "admin", "x new admin pw").await.status(), 200);
}
