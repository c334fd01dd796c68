use serde_json::{Value, json};

use crate::support::{Api, Server, assert_no_leak};

/// The example export (examples/thingsboard): a JS filter, a REST call and an MQTT publish with
/// ThingsBoard secret placeholders, and a timeseries node Veil has no equivalent for.
const EXPORT: &str = include_str!("../../examples/thingsboard/telemetry-forwarder.json");
const API_TOKEN: &str = "tb-\"api\"-token-77";
const MQTT_PASSWORD: &str = "mqtt-pa55-\\w0rd";

fn export() -> Value {
    serde_json::from_str(EXPORT).unwrap()
}

fn paths(problems: &Value) -> Vec<&str> {
    problems.as_array().unwrap().iter().map(|p| p["path"].as_str().unwrap()).collect()
}

/// The parts of a chain the editor and the engine read, without ids and times.
fn shape(chain: &Value) -> Value {
    let nodes: Vec<Value> = chain["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| json!([n["type"], n["name"], n["configuration"], n["additionalInfo"], n["debugMode"]]))
        .collect();
    json!({"name": chain["name"], "first": chain["firstNodeIndex"], "nodes": nodes, "connections": chain["connections"]})
}

#[tokio::test]
async fn node_positions_are_stored_returned_and_optional() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let info = json!({"layoutX": 120.5, "layoutY": 80, "description": "entry", "color": "#3366ff"});
    let chain = json!({
        "name": "Positions",
        "nodes": [
            {"type": "log", "name": "A", "configuration": {}, "additionalInfo": info},
            {"type": "log", "name": "B", "configuration": {}}
        ],
        "connections": [{"fromIndex": 0, "toIndex": 1, "type": "Success"}]
    });
    let (status, created) = api.post("/api/rule-chains", chain.clone()).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (_, stored) = api.get(&format!("/api/rule-chains/{id}")).await;
    assert_eq!(stored["nodes"][0]["additionalInfo"], info, "kept as written, other keys too");
    assert!(stored["nodes"][1].get("additionalInfo").is_none(), "{stored}");

    let mut wrong = chain.clone();
    wrong["nodes"][0]["additionalInfo"] = json!({"layoutX": "left", "layoutY": 5, "description": 7});
    let (status, answer) = api.put(&format!("/api/rule-chains/{id}"), wrong.clone()).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        paths(&answer["problems"]),
        ["/nodes/0/additionalInfo/layoutX", "/nodes/0/additionalInfo/description"],
        "{answer}"
    );
    wrong["nodes"][0]["additionalInfo"] = info.clone();
    wrong["nodes"][1]["additionalInfo"] = json!("beside A");
    let (status, answer) = api.put(&format!("/api/rule-chains/{id}"), wrong).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(paths(&answer["problems"]), ["/nodes/1/additionalInfo"], "{answer}");
    assert!(answer["problems"][0]["message"].as_str().unwrap().contains("expected a map"), "{answer}");
    let (_, unchanged) = api.get(&format!("/api/rule-chains/{id}")).await;
    assert_eq!(unchanged["nodes"][0]["additionalInfo"], info);
}

#[tokio::test]
async fn a_thingsboard_export_imports_with_positions_secrets_and_a_report_and_exports_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;

    let (status, answer) = api.post("/api/rule-chains/import", export()).await;
    assert_eq!(status, 200, "{answer}");
    let (chain, report) = (&answer["chain"], &answer["report"]);
    assert_eq!(chain["name"], "Telemetry forwarder");
    let types: Vec<&str> =
        chain["nodes"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["script", "rest_api_call", "mqtt"], "the timeseries node is left out: {chain}");
    assert_eq!(
        chain["nodes"][0]["configuration"],
        json!({"mode": "filter", "script": "return msg.temperature > 0;"})
    );
    assert_eq!(
        chain["nodes"][1]["additionalInfo"],
        json!({"description": "", "layoutX": 580, "layoutY": 90})
    );
    let rest = &chain["nodes"][1]["configuration"];
    assert_eq!(rest["headers"]["Authorization"], "Bearer $<secret:api-token>");
    assert_eq!(rest["restEndpointUrlPattern"], "http://127.0.0.1:9/ingest/${deviceName}");
    assert_eq!(chain["nodes"][2]["configuration"]["credentials"]["password"], "$<secret:mqtt-password>");
    assert_eq!(
        chain["connections"],
        json!([{"fromIndex": 0, "toIndex": 1, "type": "True"}, {"fromIndex": 0, "toIndex": 2, "type": "True"}])
    );
    // The report: every node, the settings Veil's nodes do not have, what was left out, and the
    // secrets to create.
    let outcomes: Vec<&str> =
        report["nodes"].as_array().unwrap().iter().map(|n| n["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["imported", "imported", "imported", "leftOut"]);
    assert_eq!(report["nodes"][3]["name"], "Save timeseries");
    assert_eq!(report["nodes"][3]["reason"], "Veil has no node that does what it does");
    let ignored = report["nodes"][1]["ignoredSettings"].as_array().unwrap();
    assert!(ignored.contains(&json!("/useSimpleClientHttpFactory")), "{ignored:?}");
    assert!(!ignored.contains(&json!("/proxyHost")), "nulls are absent values, not settings: {ignored:?}");
    assert_eq!(report["nodes"][2]["ignoredSettings"], json!(["/appendClientIdSuffix", "/parseToPlainText"]));
    // The broker's user name is written out in the export, not a secret: said, to be moved.
    assert_eq!(report["nodes"][2]["writtenOutCredentials"], json!(["/credentials/username"]));
    assert!(report["nodes"][1].get("writtenOutCredentials").is_none(), "placeholders only: {report}");
    assert_eq!(
        report["leftOut"],
        json!([
            "connection 'Success' from 'Post to the API' to 'Save timeseries': a node it joins was left out"
        ])
    );
    assert_eq!(
        report["missingSecrets"],
        json!([{"name": "api-token", "type": "TEXT"}, {"name": "mqtt-password", "type": "TEXT"}])
    );

    // Saving needs the secrets: the chain does not deploy without them.
    let (status, refused) = api.post("/api/rule-chains", chain.clone()).await;
    assert_eq!(status, 400, "{refused}");
    for (name, value) in [("api-token", API_TOKEN), ("mqtt-password", MQTT_PASSWORD)] {
        let (status, _) =
            api.post("/api/secrets", json!({"name": name, "type": "TEXT", "value": value})).await;
        assert_eq!(status, 201);
    }
    let (status, answer) = api.post("/api/rule-chains/import?keepUnsupported=true", export()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["report"]["missingSecrets"], json!([]));
    assert_eq!(answer["report"]["nodes"][3]["outcome"], "placeholder");
    let kept = &answer["chain"];
    assert_eq!(kept["nodes"][3]["type"], "placeholder");
    assert_eq!(
        kept["nodes"][3]["configuration"],
        json!({
            "originalType": "org.thingsboard.rule.engine.telemetry.TbMsgTimeseriesNode",
            "reason": "Veil has no node that does what it does"
        })
    );
    assert_eq!(kept["nodes"][3]["additionalInfo"]["layoutX"], 880);
    assert_eq!(kept["connections"].as_array().unwrap().len(), 3);

    let (status, saved) = api.post("/api/rule-chains", kept.clone()).await;
    assert_eq!(status, 201, "{saved}");
    let id = saved["id"].as_str().unwrap();
    // A message that reaches the placeholder fails there, naming what it stands for.
    let message = json!({"data": {"temperature": 3}, "metadata": {"deviceName": "d1"}});
    let (status, run) = api.post(&format!("/api/rule-chains/{id}/messages?wait=true"), message).await;
    assert_eq!(status, 200, "{run}");
    assert_no_leak(&run.to_string(), &[API_TOKEN, MQTT_PASSWORD]);
    let mut from_placeholder = kept.clone();
    from_placeholder["firstNodeIndex"] = json!(3);
    let (status, other) = api.post("/api/rule-chains", from_placeholder).await;
    assert_eq!(status, 201, "{other}");
    let path = format!("/api/rule-chains/{}/messages?wait=true", other["id"].as_str().unwrap());
    let (_, run) = api.post(&path, json!({"data": {}})).await;
    assert_eq!(run["trace"][0]["relation"], json!(["Failure"]), "{run}");
    assert_eq!(
        run["trace"][0]["error"],
        "this node stands for 'org.thingsboard.rule.engine.telemetry.TbMsgTimeseriesNode', which Veil does not \
         run (Veil has no node that does what it does): replace it with a node that does the work"
    );

    // Out again in ThingsBoard's format, and back in: the same chain.
    let (status, exported) = api.get(&format!("/api/rule-chains/{id}/export")).await;
    assert_eq!(status, 200, "{exported}");
    let nodes = &exported["metadata"]["nodes"];
    assert_eq!(nodes[1]["type"], "org.thingsboard.rule.engine.rest.TbRestApiCallNode");
    assert_eq!(nodes[1]["configuration"]["headers"]["Authorization"], "Bearer ${secret:api-token;type:TEXT}");
    assert_eq!(nodes[3]["type"], "org.thingsboard.rule.engine.telemetry.TbMsgTimeseriesNode");
    assert_eq!(nodes[2]["additionalInfo"]["layoutY"], 230);
    assert_no_leak(&exported.to_string(), &[API_TOKEN, MQTT_PASSWORD]);
    let (status, again) = api.post("/api/rule-chains/import?keepUnsupported=true", exported).await;
    assert_eq!(status, 200, "{again}");
    let (_, stored) = api.get(&format!("/api/rule-chains/{id}")).await;
    assert_eq!(shape(&again["chain"]), shape(&stored));
}

#[tokio::test]
async fn scripts_that_are_not_rhai_and_broken_exports_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let mut doc = export();
    // A JavaScript object literal is a block in Rhai: this script does not run as written.
    doc["metadata"]["nodes"][0] = json!({
        "type": "org.thingsboard.rule.engine.transform.TbTransformMsgNode",
        "name": "Reshape",
        "configuration": {"scriptLang": "JS", "jsScript": "var x = {a: 1}; return {msg: x, metadata: metadata, msgType: msgType};"}
    });
    let (status, answer) = api.post("/api/rule-chains/import", doc).await;
    assert_eq!(status, 200, "{answer}");
    let first = &answer["report"]["nodes"][0];
    assert_eq!(first["outcome"], "leftOut", "{first}");
    assert!(first["reason"].as_str().unwrap().starts_with("its JS script does not run as Rhai: "), "{first}");
    // The first node went: the chain starts at the first node kept.
    assert_eq!(answer["chain"]["firstNodeIndex"], 0);
    assert_eq!(answer["chain"]["connections"], json!([]));

    let (status, answer) =
        api.post("/api/rule-chains/import", json!({"ruleChain": {}, "metadata": {"nodes": 3}})).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(paths(&answer["problems"]), ["/metadata/nodes"], "{answer}");
}
