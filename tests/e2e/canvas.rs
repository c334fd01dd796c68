//! The rule chain canvas in headless Chromium: a chain built only by dragging, the form that fits
//! the node, positions kept, undo and redo, a lit test path, a ThingsBoard import with its report,
//! and a 200-node chain panned at a measured frame rate. Screenshots go to `VEIL_UI_SCREENSHOTS`.

use fantoccini::Locator;
use fantoccini::key::Key;
use serde_json::{Value, json};

use crate::support::{ADMIN_PASSWORD, Api, Browser, Receiver, RecordingProxy, Server, assert_no_leak};
use crate::ui::{key_icons, log_in, screenshot, select, use_secret, visit};

const TOKEN: &str = "canvas-tok-\"9\"-PLAIN";
const MQTT_PASSWORD: &str = "mqtt-PLAIN-pw-4";

/// Where each node is drawn: `translate(x y)` of its group, by index.
async fn drawn_positions(browser: &Browser) -> Vec<(f64, f64)> {
    let found: Value = browser
        .client
        .execute(
            "return [...document.querySelectorAll('svg.chain-canvas g.node')].map(g => \
             g.getAttribute('transform').match(/translate\\(([-\\d.]+) ([-\\d.]+)\\)/).slice(1).map(Number))",
            vec![],
        )
        .await
        .unwrap();
    found.as_array().unwrap().iter().map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap())).collect()
}

async fn node_count(browser: &Browser) -> usize {
    browser.client.find_all(Locator::Css("svg.chain-canvas g.node")).await.unwrap().len()
}

/// Drags a palette item onto the canvas at `offset` from its centre.
async fn drop_node(browser: &Browser, node_type: &str, offset: (f64, f64)) {
    let before = node_count(browser).await;
    let item = browser.find(&format!(".palette-item[data-type='{node_type}']")).await;
    let canvas = browser.find("svg.chain-canvas").await;
    browser.drag(&item, (0.0, 0.0), &canvas, offset).await;
    browser.find(&format!("svg.chain-canvas g.node[data-index='{before}']")).await;
}

/// Connects node `from` to node `to` by dragging from its port, choosing `relation`.
async fn connect(browser: &Browser, from: usize, to: usize, relation: &str) {
    let port = browser.find(&format!("circle[data-port='{from}']")).await;
    let target = browser.find(&format!("g.node[data-index='{to}']")).await;
    browser.drag(&port, (0.0, 0.0), &target, (0.0, 0.0)).await;
    browser.find("#relation-dialog").await;
    browser.click(&format!("#relation-dialog input[value='{relation}']")).await;
    browser.click("#relation-dialog button[data-action=submit]").await;
    browser.gone("#relation-dialog").await;
    browser.find(&format!("g.edge[data-from='{from}'][data-to='{to}'][data-relation='{relation}']")).await;
}

async fn open_node(browser: &Browser, index: usize) {
    let node = browser.find(&format!("g.node[data-index='{index}']")).await;
    browser.double_click(&node).await;
    browser.find(&format!(".node-panel input[data-pointer='/nodes/{index}/name']")).await;
}

/// Saves; a new chain's page becomes the saved chain's.
async fn save(browser: &Browser) {
    let new = browser.client.current_url().await.unwrap().fragment() == Some("/chains/new");
    browser.click("button[data-action=save]").await;
    browser.gone("button[data-action=save].unsaved").await;
    for _ in 0..100 {
        if !new || browser.client.current_url().await.unwrap().fragment() != Some("/chains/new") {
            browser.find("button[data-action=save]").await;
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the new chain's page never became the saved chain's");
}

/// The view's zoom: screen pixels per canvas unit.
/// The pointers under `base` in the open node panel (fields, their groups and rows), in the
/// order they are shown.
async fn form_order(browser: &Browser, base: &str) -> Vec<String> {
    let inputs =
        browser.client.find_all(Locator::Css(".node-panel .config-form [data-pointer]")).await.unwrap();
    let mut shown = Vec::new();
    for input in &inputs {
        let pointer = input.attr("data-pointer").await.unwrap().unwrap();
        if let Some(field) = pointer.strip_prefix(base)
            && !shown.iter().any(|s| s == field)
        {
            shown.push(field.to_owned());
        }
    }
    shown
}

/// rest_api_call's fields as `GET /api/node-types` declares them, for credentials of `variant`
/// (a map's entries are rows under it, not fields of their own).
async fn descriptor_order(api: &Api<'_>, variant: &str) -> Vec<String> {
    let (_, types) = api.get("/api/node-types").await;
    let rest = types.as_array().unwrap().iter().find(|t| t["type"] == "rest_api_call").unwrap();
    let mut fields: Vec<String> = Vec::new();
    for f in rest["form"].as_array().unwrap() {
        let pointer = f["pointer"].as_str().unwrap();
        let of_variant = f["variant"].is_null() || f["variant"]["value"] == variant;
        if of_variant && !pointer.contains('*') && !fields.iter().any(|p| p == pointer) {
            fields.push(pointer.to_owned());
        }
    }
    fields
}

async fn zoom(browser: &Browser) -> f64 {
    let transform = browser.find("g.viewport").await.attr("transform").await.unwrap().unwrap();
    transform.rsplit("scale(").next().unwrap().trim_end_matches(')').parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium (VEIL_TEST_CHROMEDRIVER)"]
async fn a_chain_is_built_by_dragging_tested_on_the_canvas_and_imported_from_thingsboard() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let proxy = RecordingProxy::start(&server.base).await;
    let receiver = Receiver::start().await;
    let browser = Browser::start().await;
    let base = proxy.url.clone();
    let api = Api::new(&server).await;
    let (status, _) =
        api.post("/api/secrets", json!({"name": "api-token", "type": "TEXT", "value": TOKEN})).await;
    assert_eq!(status, 201);
    log_in(&browser, &base, "admin", ADMIN_PASSWORD).await;

    // Five nodes, only by dragging: palette → canvas, then connections port → node.
    visit(&browser, &base, "#/chains/new").await;
    browser.type_into("input[data-pointer='/name']", "Five").await;
    for (node_type, offset) in [
        ("script", (-280.0, -120.0)),
        ("rest_api_call", (-40.0, -120.0)),
        ("log", (200.0, -190.0)),
        ("log", (-40.0, 90.0)),
        ("log", (200.0, -30.0)),
    ] {
        drop_node(&browser, node_type, offset).await;
    }
    assert_eq!(node_count(&browser).await, 5);
    connect(&browser, 0, 1, "True").await;
    connect(&browser, 0, 3, "False").await;
    connect(&browser, 1, 2, "Success").await;
    connect(&browser, 1, 4, "Failure").await;

    // The form fits the node: basic credentials show a user name and a password, each with the
    // key icon, and nothing of the other types.
    open_node(&browser, 1).await;
    select(&browser, "select[data-pointer='/nodes/1/configuration/credentials/type']", "basic").await;
    let credentials = ".node-panel fieldset[data-pointer='/nodes/1/configuration/credentials']";
    assert_eq!(
        key_icons(&browser, credentials).await,
        ["/nodes/1/configuration/credentials/password", "/nodes/1/configuration/credentials/username"]
    );
    let fields = browser.find(credentials).await.text().await.unwrap();
    assert!(!fields.contains("Token") && !fields.contains("Ca cert"), "{fields}");
    select(&browser, "select[data-pointer='/nodes/1/configuration/credentials/type']", "bearer").await;
    use_secret(&browser, "/nodes/1/configuration/credentials/token", "api-token", Some("canvas-node-form"))
        .await;
    browser
        .type_into(
            "input[data-pointer='/nodes/1/configuration/restEndpointUrlPattern']",
            &format!("{}/in", receiver.url),
        )
        .await;
    browser.type_into(".node-panel input[data-pointer='/nodes/1/name']", "Post").await;
    // A header built around the placeholder: the picker inserts at the cursor.
    browser
        .type_into("input[data-pointer='/nodes/1/configuration/headers/Content-Type']", "text/plain")
        .await;
    open_node(&browser, 0).await;
    let script = browser.find("textarea[data-pointer='/nodes/0/configuration/script']").await;
    assert_eq!(script.attr("data-code").await.unwrap().as_deref(), Some("rhai"));
    browser.find(".node-panel .code-editor .gutter").await;
    save(&browser).await;
    let url = browser.client.current_url().await.unwrap();
    let id = url.fragment().unwrap().trim_start_matches("/chains/").to_owned();
    let (_, chain) = api.get(&format!("/api/rule-chains/{id}")).await;
    assert_eq!(chain["nodes"].as_array().unwrap().len(), 5, "{chain}");
    assert_eq!(chain["connections"].as_array().unwrap().len(), 4, "{chain}");
    assert_eq!(
        chain["nodes"][1]["configuration"]["credentials"],
        json!({"type": "bearer", "token": "$<secret:api-token>"})
    );
    let saved: Vec<(f64, f64)> = chain["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["additionalInfo"]["layoutX"].as_f64().unwrap(),
                n["additionalInfo"]["layoutY"].as_f64().unwrap(),
            )
        })
        .collect();

    // Reloaded: the same positions, and the form's fields in the descriptor's order (the order
    // the type declares them), not the alphabet of the saved document.
    visit(&browser, &base, &format!("#/chains/{id}")).await;
    assert_eq!(drawn_positions(&browser).await, saved);
    open_node(&browser, 1).await;
    let declared = descriptor_order(&api, "bearer").await;
    let mut shown = form_order(&browser, "/nodes/1/configuration").await;
    shown.retain(|pointer| declared.contains(pointer));
    assert_eq!(shown, declared);
    assert_eq!(declared[..2], ["/restEndpointUrlPattern", "/requestMethod"]);
    browser.click(".node-panel button[aria-label='Close']").await;

    // Move a node, undo, redo.
    let node = browser.find("g.node[data-index='2']").await;
    let k = zoom(&browser).await;
    browser.drag_by(&node, 100.0, 60.0).await;
    let moved = drawn_positions(&browser).await[2];
    let (dx, dy) = (moved.0 - saved[2].0, moved.1 - saved[2].1);
    assert!((dx * k - 100.0).abs() < 3.0 && (dy * k - 60.0).abs() < 3.0, "moved by {dx},{dy} at zoom {k}");
    let canvas = browser.find("svg.chain-canvas").await;
    canvas.send_keys(&format!("{}z", Key::Control)).await.unwrap();
    assert_eq!(drawn_positions(&browser).await[2], saved[2], "undone");
    canvas.send_keys(&format!("{}{}z", Key::Control, Key::Shift)).await.unwrap();
    assert_eq!(drawn_positions(&browser).await[2], moved, "redone");
    // Delete a node (after a confirmation), then bring it back.
    browser.find("g.node[data-index='4']").await.click().await.unwrap();
    canvas.send_keys(&Key::Delete.to_string()).await.unwrap();
    browser.click("#delete-nodes button[data-action=submit]").await;
    browser.gone("g.node[data-index='4']").await;
    assert!(
        browser.client.find_all(Locator::Css("g.edge[data-relation='Failure']")).await.unwrap().is_empty()
    );
    canvas.send_keys(&format!("{}z", Key::Control)).await.unwrap();
    browser.find("g.node[data-index='4']").await;
    save(&browser).await;

    // A test message: the path it took lights up, nodes and arrows.
    browser.type_into("textarea[aria-label='Message data']", r#"{"temperature": 30}"#).await;
    browser.click(".test-panel button.primary").await;
    browser.text_of("#trace", "Success").await;
    for lit in [
        "g.node[data-index='0'].lit",
        "g.node[data-index='1'].lit",
        "g.node[data-index='2'].lit",
        "g.edge.lit[data-from='0'][data-to='1']",
    ] {
        browser.find(lit).await;
    }
    assert!(browser.client.find_all(Locator::Css("g.node[data-index='3'].lit")).await.unwrap().is_empty());
    assert_eq!(receiver.requests().last().unwrap().headers["authorization"], format!("Bearer {TOKEN}"));
    // A node of the path, clicked: what it got and what it sent.
    browser.find("g.node[data-index='1']").await.click().await.unwrap();
    let step = browser.text_of("#step-io", "Post: Success").await;
    assert!(step.contains("\"temperature\": 30"), "the input: {step}");
    assert!(step.contains("\"statusCode\": \"200\""), "the output's metadata: {step}");
    screenshot(&browser, "canvas-test-path").await;

    // Debug mode is a toggle on the node; its events show live under the canvas.
    browser.click("#fit").await;
    browser.find("g.node[data-index='2'] g.debug-toggle").await.click().await.unwrap();
    browser.find("g.node[data-index='2'] g.debug-toggle.on").await;
    save(&browser).await;
    browser.click("#show-events").await;
    browser.text_of("#events", "No debug events yet").await;
    browser.click(".test-panel button.primary").await;
    let row = browser.text_of("#events tbody tr", "log 3").await;
    assert!(row.contains("Success"), "{row}");

    // A ThingsBoard export: the report, placeholders greyed out, the missing secret created there.
    visit(&browser, &base, "#/chains").await;
    browser.click("#import-chain").await;
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/thingsboard/telemetry-forwarder.json");
    let file = std::fs::canonicalize(file).unwrap();
    browser.find("#import-dialog input[type=file]").await.send_keys(file.to_str().unwrap()).await.unwrap();
    browser.unready().await;
    browser.click("#import-dialog button[data-action=submit]").await;
    browser.ready().await;
    let report = browser.text_of("#import-report", "Save timeseries").await;
    assert!(report.contains("placeholder: Veil has no node that does what it does"), "{report}");
    assert!(report.contains("settings left out: /appendClientIdSuffix, /parseToPlainText"), "{report}");
    browser.find("g.node.disabled[data-type='placeholder']").await;
    assert_eq!(
        drawn_positions(&browser).await,
        [(280.0, 150.0), (580.0, 90.0), (580.0, 230.0), (880.0, 150.0)]
    );
    screenshot(&browser, "import-report").await;
    browser.click("li[data-secret='mqtt-password'] button").await;
    assert_eq!(
        browser.find("#add-secret input[name=name]").await.prop("value").await.unwrap().as_deref(),
        Some("mqtt-password")
    );
    browser.type_into("#add-secret input[name=value]", MQTT_PASSWORD).await;
    browser.click("#add-secret button[data-action=submit]").await;
    browser.text_of("li[data-secret='mqtt-password']", "created").await;
    save(&browser).await;
    let (_, list) = api.get("/api/rule-chains?textSearch=Telemetry").await;
    assert!(list.to_string().contains("Telemetry forwarder"), "{list}");
    // Two chains named alike are told apart by owner and id.
    let (status, _) = api.post("/api/customers", json!({"name": "Acme"})).await;
    assert_eq!(status, 201);
    let (_, customers) = api.get("/api/customers").await;
    let acme = customers["data"][0]["id"].clone();
    let user = json!({"username": "acme-user", "password": "acme-password-7", "roles": ["CUSTOMER_USER"], "customerId": acme});
    assert_eq!(api.post("/api/users", user).await.0, 201);
    let acme_api = Api::as_user(&server, "acme-user", "acme-password-7").await;
    let theirs = json!({"name": "Five", "nodes": [{"type": "log", "name": "L", "configuration": {}}]});
    let (status, theirs) = acme_api.post("/api/rule-chains", theirs).await;
    assert_eq!(status, 201, "{theirs}");
    visit(&browser, &base, "#/chains").await;
    let ours = browser.text_of(&format!("tr[data-id='{id}'] td.owner"), "Tenant").await;
    let other =
        browser.text_of(&format!("tr[data-id='{}'] td.owner", theirs["id"].as_str().unwrap()), "Acme").await;
    assert_eq!((ours.as_str(), other.as_str()), ("Tenant", "Customer Acme"));

    let exposed = browser.exposed().await;
    assert_no_leak(&exposed, &[TOKEN, MQTT_PASSWORD]);
    assert_no_leak(&proxy.all_text(), &[TOKEN, MQTT_PASSWORD]);
    browser.close().await;
}

/// A chain with a switch and five branches, for the guide's screenshot; and 200 nodes panned
/// at a measured frame rate (requestAnimationFrame while the view follows the pointer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium (VEIL_TEST_CHROMEDRIVER)"]
async fn a_switch_with_five_branches_draws_and_200_nodes_pan_smoothly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let browser = Browser::start().await;
    let api = Api::new(&server).await;
    log_in(&browser, &server.base, "admin", ADMIN_PASSWORD).await;

    let branches = ["cold", "cool", "mild", "warm", "hot"];
    let mut nodes = vec![json!({"type": "script", "name": "By temperature", "configuration": {
        "mode": "switch",
        "script": "let t = msg.temperature; if t < 0 { [\"cold\"] } else if t < 10 { [\"cool\"] } else if t < 20 { [\"mild\"] } else if t < 30 { [\"warm\"] } else { [\"hot\"] }"
    }})];
    let mut connections = Vec::new();
    for (i, branch) in branches.iter().enumerate() {
        nodes.push(json!({"type": "log", "name": format!("Log {branch}"), "configuration": {"prefix": format!("{branch}: ")}}));
        connections.push(json!({"fromIndex": 0, "toIndex": i + 1, "type": branch}));
    }
    let (status, chain) = api
        .post("/api/rule-chains", json!({"name": "Switch", "nodes": nodes, "connections": connections}))
        .await;
    assert_eq!(status, 201, "{chain}");
    visit(&browser, &server.base, &format!("#/chains/{}", chain["id"].as_str().unwrap())).await;
    // Made through the API without positions: laid out in columns from the first node.
    let drawn = drawn_positions(&browser).await;
    assert_eq!(drawn.len(), 6);
    assert!(drawn[1..].iter().all(|p| p.0 > drawn[0].0), "{drawn:?}");
    assert_eq!(browser.client.find_all(Locator::Css("g.edge")).await.unwrap().len(), 5);
    screenshot(&browser, "canvas").await;

    let many: Vec<Value> =
        (0..200).map(|i| json!({"type": "log", "name": format!("n{i}"), "configuration": {}})).collect();
    let links: Vec<Value> =
        (0..199).map(|i| json!({"fromIndex": i, "toIndex": i + 1, "type": "Success"})).collect();
    let (status, big) =
        api.post("/api/rule-chains", json!({"name": "Big", "nodes": many, "connections": links})).await;
    assert_eq!(status, 201);
    visit(&browser, &server.base, &format!("#/chains/{}", big["id"].as_str().unwrap())).await;
    assert_eq!(node_count(&browser).await, 200);
    let fps = browser
        .client
        .execute(
            "const svg = document.querySelector('svg.chain-canvas');
             const box = svg.getBoundingClientRect();
             const at = (x) => ({clientX: x, clientY: box.top + 20, bubbles: true, pointerId: 7, button: 0});
             return new Promise((resolve) => {
               let x = box.left + 20, frames = 0;
               svg.dispatchEvent(new PointerEvent('pointerdown', at(x)));
               const start = performance.now();
               const tick = (now) => {
                 frames++;
                 x += 4;
                 svg.dispatchEvent(new PointerEvent('pointermove', at(x)));
                 if (now - start < 1500) requestAnimationFrame(tick);
                 else {
                   svg.dispatchEvent(new PointerEvent('pointerup', at(x)));
                   resolve(frames * 1000 / (now - start));
                 }
               };
               requestAnimationFrame(tick);
             });",
            vec![],
        )
        .await
        .unwrap();
    let fps = fps.as_f64().unwrap();
    println!("200-node chain: {fps:.1} frames per second while panning");
    assert!(fps >= 30.0, "{fps} frames per second");
    let transform = browser.find("g.viewport").await.attr("transform").await.unwrap().unwrap();
    assert!(!transform.starts_with("translate(0 0)"), "the view followed the pointer: {transform}");
    browser.close().await;
}
