//! Rendering compiled fields against a real store: each shape a field takes (constant text, exactly
//! one secret, secrets among text and message values) gives the same text, escaped as the field asks.

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use veil_core::{Accepts, FieldSpec, Msg, RenderCtx, Rendered};
use veil_tests::TempStore;

const FIELDS: &[FieldSpec] = &[
    FieldSpec::secret_template("/plain/*"),
    FieldSpec::secret_template("/body/*").json_escaped(),
    FieldSpec::secret("/file", Accepts::Any),
];

#[tokio::test]
async fn every_field_shape_renders_the_value_of_the_moment() {
    let env = TempStore::new().await;
    let quoted = "p\"a\\ss\nwörd";
    env.text("token", "t0ken").await;
    env.text("quoted", quoted).await;
    env.file("cert", [0xff, 0xfe, 0x00]).await;
    let config = json!({
        "plain": {
            "constant": "application/json",
            "empty": "",
            "alone": "$<secret:quoted>",
            "mixed": "Bearer $<secret:token> for ${device} at $[temperature] / $<secret:quoted>",
        },
        "body": {
            "alone": "$<secret:quoted>",
            "clean": "$<secret:token>",
            "mixed": "{\"t\": \"$<secret:quoted>\", \"d\": \"$[name]\"}",
        },
        "file": "$<secret:cert>",
    });
    let mut problems = Vec::new();
    let compiled = veil_core::compile(&config, FIELDS, "", &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    let mut msg = Msg::new("T", "o", json!({"temperature": 21.5, "name": "dev \"7\""}));
    msg.metadata.insert("device".into(), "d-1".into());
    let ctx = RenderCtx::new(&env.store, env.admin.tenant_id, Some(&msg));
    let render = |pointer: &str| -> String {
        let template = compiled.template(pointer).unwrap_or_else(|| panic!("{pointer} is a template"));
        let rendered: Rendered<'_> = ctx.render(template).unwrap_or_else(|e| panic!("{pointer}: {e}"));
        assert_eq!(format!("{rendered:?}"), "Rendered([REDACTED])");
        let owned = rendered.expose_secret().to_owned();
        assert_eq!(rendered.into_owned().expose_secret(), owned, "{pointer}: kept as rendered");
        owned
    };
    let json_inner = |s: &str| {
        let quoted = serde_json::to_string(s).unwrap();
        quoted[1..quoted.len() - 1].to_owned()
    };

    assert_eq!(render("/plain/constant"), "application/json");
    assert_eq!(render("/plain/empty"), "");
    assert_eq!(render("/plain/alone"), quoted);
    assert_eq!(render("/plain/mixed"), format!("Bearer t0ken for d-1 at 21.5 / {quoted}"));
    assert_eq!(render("/body/alone"), json_inner(quoted));
    assert_eq!(render("/body/clean"), "t0ken");
    let body: Value = serde_json::from_str(&render("/body/mixed")).expect("the body stays JSON");
    assert_eq!(body, json!({"t": quoted, "d": "dev \"7\""}));

    // A rotation is seen by the next render.
    env.rotate("token", "rotated").await;
    assert_eq!(render("/body/clean"), "rotated");

    // A FILE secret with bytes that are not text is refused where text is rendered, by name.
    let err = ctx.render(compiled.template("/file").unwrap()).unwrap_err();
    assert!(err.to_string().contains("'cert'"), "{err}");
    assert_eq!(ctx.resolve("cert").unwrap().expose_bytes(), [0xff, 0xfe, 0x00]);
}
