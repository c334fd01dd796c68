//! Every route against every role: the permission matrix.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::json;

use super::{DEAD_URL, MATRIX, ROLES, USER_PASSWORD, chain, describe, listed, matches, resource, world};
use crate::support::{Api, Server, leaks};

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
