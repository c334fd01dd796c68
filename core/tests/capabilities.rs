//! A node reaches only the secrets its configuration declared: whatever the store holds, another
//! name does not resolve, through its execution context or the handle it kept at build time.

use serde_json::json;
use veil_core::{
    Accepts, BoxFuture, BuildCtx, ChainRuntime, CompiledConfig, FieldSpec, Msg, Node, NodeCtx,
    NodeDescriptor, NodeResult, Problem, Registry, Secrets, relation,
};
use veil_tests::TempStore;

/// A node that tries both its declared secret (`/token`) and one it names itself (`/other`, a
/// plain field: not a declaration), through the context and through the handle it kept.
struct Prober {
    kept: Secrets,
    other: String,
}

static PROBER: NodeDescriptor = NodeDescriptor {
    type_name: "prober",
    description: "tries to resolve secrets",
    default_config: || json!({"token": "", "other": ""}),
    fields: &[FieldSpec::secret("/token", Accepts::Text)],
    schema: veil_core::empty_schema,
    relations: &["Success"],
    named_relations: false,
    build: |ctx: &BuildCtx<'_>, config: CompiledConfig| -> Result<Box<dyn Node>, Vec<Problem>> {
        let other = config.plain()["other"].as_str().unwrap_or_default().to_owned();
        Ok(Box::new(Prober { kept: ctx.secrets(), other }))
    },
};

impl Node for Prober {
    fn process<'a>(&'a self, ctx: &'a NodeCtx<'a>, mut msg: Msg) -> BoxFuture<'a, NodeResult> {
        Box::pin(async move {
            let outcome = |r: Result<veil_store::SecretValue, veil_core::RenderError>| match r {
                Ok(v) => json!({"value": v.expose_text()}),
                Err(e) => json!({"error": e.to_string()}),
            };
            msg.data = json!({
                "ctx_a": outcome(ctx.resolve("a")),
                "ctx_b": outcome(ctx.resolve(&self.other)),
                "kept_a": outcome(self.kept.resolve("a")),
                "kept_b": outcome(self.kept.resolve(&self.other)),
                "names": ctx.secrets().names(),
            });
            Ok(vec![(relation::SUCCESS.into(), msg)])
        })
    }
}

#[tokio::test]
async fn a_node_that_declares_a_cannot_resolve_b() {
    let env = TempStore::new().await;
    env.text("a", "value-of-a").await;
    env.text("b", "value-of-b").await;
    let (store, admin) = (&env.store, &env.admin);
    let registry = Registry::new().with(&PROBER);
    let chain = json!({"name": "probe", "nodes": [{"type": "prober", "name": "P", "debugMode": true,
        "configuration": {"token": "$<secret:a>", "other": "b"}}]});
    let deployment = veil_core::deploy(&registry, store, admin, &chain).unwrap();
    let references: Vec<&str> = deployment.references.iter().map(|r| r.secret_name.as_str()).collect();
    assert_eq!(references, ["a"], "only the declared secret is a reference");
    let runtime = ChainRuntime::new(uuid::Uuid::new_v4(), admin.tenant_id, store.clone(), deployment);
    let trace = runtime.process(Msg::new("T", "o", json!({}))).await;
    assert_eq!(trace[0].relation, ["Success"], "{trace:?}");
    let data = &runtime.debug_events()[0].outputs[0].msg["data"];
    assert_eq!(data["names"], json!(["a"]));
    // The declared value is masked in the event, which shows it was resolved.
    assert_eq!(data["ctx_a"], json!({"value": "***"}));
    assert_eq!(data["kept_a"], json!({"value": "***"}));
    let refused = "secret 'b' is not declared by this configuration and cannot be used";
    assert_eq!(data["ctx_b"], json!({"error": refused}));
    assert_eq!(data["kept_b"], json!({"error": refused}));
}
