//! Sandboxed Rhai for scripted nodes and converters. One factory sets every limit; engines and
//! compiled ASTs are built once per node. `secret("name")` is registered volatile, so the
//! optimizer can never evaluate it at compile time and bake a value into the AST; names must be
//! string literals, found statically in the AST at deploy and tracked like placeholders; at run
//! time only those names resolve. `print`/`debug` go to the execution's notes (redacted later).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rhai::{
    AST, ASTNode, Blob, Dynamic, Engine, EvalAltResult, Expr, FuncRegistration, OptimizationLevel, Position,
    Scope, Stmt,
};
use veil_store::{Store, TenantId, validate_name};

/// Operations one run may take (a runaway loop stops here).
pub const MAX_OPERATIONS: u64 = 200_000;

thread_local! {
    /// Lines printed by the script running on this thread (runs are synchronous).
    static NOTES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// At most this many printed lines per run are kept, each cut to [`MAX_NOTE_BYTES`].
pub const MAX_NOTES: usize = 100;
/// The longest printed line kept.
pub const MAX_NOTE_BYTES: usize = 4096;

fn note(mut line: String) {
    NOTES.with(|n| {
        let mut notes = n.borrow_mut();
        if notes.len() < MAX_NOTES {
            if line.len() > MAX_NOTE_BYTES {
                let mut cut = MAX_NOTE_BYTES;
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                line.truncate(cut);
                line.push_str(" [cut]");
            }
            notes.push(line);
        }
    });
}

/// The sandbox: limits on operations, call depth, expression depth, string/array/map sizes; no
/// `eval`; no file or network access (Rhai has none); helpers a script author needs with secrets.
pub fn sandbox_engine() -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(MAX_OPERATIONS)
        .set_max_call_levels(32)
        .set_max_expr_depths(64, 32)
        .set_max_string_size(1 << 20)
        .set_max_array_size(10_000)
        .set_max_map_size(10_000)
        .set_max_variables(1_000)
        .set_max_functions(100)
        .set_optimization_level(OptimizationLevel::Full)
        .disable_symbol("eval");
    engine.on_print(|text| note(text.to_owned()));
    engine.on_debug(|text, _, pos| note(format!("[debug {pos}] {text}")));
    engine.register_fn("hmac_sha256_hex", |key: &str, data: &str| hmac_hex(key.as_bytes(), data.as_bytes()));
    engine.register_fn("hmac_sha256_hex", |key: Blob, data: &str| hmac_hex(&key, data.as_bytes()));
    engine.register_fn("base64_encode", |s: &str| STANDARD.encode(s));
    engine.register_fn("base64_encode", |b: Blob| STANDARD.encode(b));
    engine.register_fn("base64_decode", |s: &str| -> Result<Dynamic, Box<EvalAltResult>> {
        let bytes = STANDARD.decode(s.trim()).map_err(|_| "base64_decode: not valid base64".to_string())?;
        Ok(match String::from_utf8(bytes) {
            Ok(text) => text.into(),
            Err(e) => Dynamic::from_blob(e.into_bytes()),
        })
    });
    engine.register_fn("basic_auth", |user: &str, pass: &str| {
        format!("Basic {}", STANDARD.encode(format!("{user}:{pass}")))
    });
    engine
}

fn hmac_hex(key: &[u8], data: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// A compile problem: where in the script and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptProblem {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ScriptProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: {}", self.message),
            (Some(l), None) => write!(f, "line {l}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

fn problem_at(pos: Position, message: impl Into<String>) -> ScriptProblem {
    ScriptProblem { line: pos.line(), column: pos.position(), message: message.into() }
}

/// A compiled script with its engine and the secrets it may use.
pub struct Script {
    engine: Engine,
    ast: AST,
    secrets: Vec<String>,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script").field("secrets", &self.secrets).finish_non_exhaustive()
    }
}

/// How a run ended: the value or the error text (redact before showing it), and printed lines.
pub struct ScriptRun {
    /// The script's value, or why it failed.
    pub result: Result<Dynamic, String>,
    /// `print`/`debug` output, in order.
    pub notes: Vec<String>,
}

/// A JSON-shaped value as a Rhai value (for a script's inputs).
pub fn to_dynamic(value: &impl serde::Serialize) -> Dynamic {
    rhai::serde::to_dynamic(value).unwrap_or(Dynamic::UNIT)
}

/// A script's value as JSON, or why it has no JSON form.
pub fn from_dynamic(value: &Dynamic) -> Result<serde_json::Value, String> {
    rhai::serde::from_dynamic(value).map_err(|e| format!("cannot convert the script's value: {e}"))
}

impl Script {
    /// Compiles `source` under full optimization with `inputs` as known variables, and finds every
    /// `secret("name")` call. A call with anything but a string literal is a problem.
    pub fn compile(
        store: &Store,
        tenant: TenantId,
        source: &str,
        inputs: &[&str],
    ) -> Result<Self, Vec<ScriptProblem>> {
        let allowed: Arc<OnceLock<BTreeSet<String>>> = Arc::default();
        let mut engine = sandbox_engine();
        {
            let (store, allowed) = (store.clone(), Arc::clone(&allowed));
            FuncRegistration::new("secret").with_volatility(true).register_into_engine(
                &mut engine,
                move |name: &str| -> Result<Dynamic, Box<EvalAltResult>> {
                    if !allowed.get().is_some_and(|a| a.contains(name)) {
                        return Err(format!(
                            "secret '{name}' is not declared by this script: call secret(\"{name}\") with a literal name"
                        )
                        .into());
                    }
                    let value = store.resolve(tenant, name).map_err(|e| format!("secret '{name}' cannot be used: {e}"))?;
                    Ok(match value.expose_text() {
                        Some(text) => text.to_owned().into(),
                        None => Dynamic::from_blob(value.expose_bytes().to_vec()),
                    })
                },
            );
        }
        let mut scope = Scope::new();
        for input in inputs {
            scope.push_dynamic(*input, Dynamic::UNIT);
        }
        let ast =
            engine.compile_with_scope(&scope, source).map_err(|e| vec![problem_at(e.1, e.0.to_string())])?;
        let mut names = BTreeSet::new();
        let mut problems = Vec::new();
        ast.walk(&mut |path: &[ASTNode]| {
            let call = match path.last() {
                Some(ASTNode::Expr(Expr::FnCall(call, pos) | Expr::MethodCall(call, pos))) => Some((call, pos)),
                // A call standing alone as a statement.
                Some(ASTNode::Stmt(Stmt::FnCall(call, pos))) => Some((call, pos)),
                _ => None,
            };
            if let Some((call, pos)) = call {
                if call.name == "secret" {
                    match call.args.as_slice() {
                        [Expr::StringConstant(name, _)] => match validate_name(name) {
                            Ok(valid) if valid == name.as_str() => {
                                names.insert(valid);
                            }
                            Ok(_) => problems.push(problem_at(*pos, "secret name must not start or end with spaces")),
                            Err(p) => problems.push(problem_at(*pos, format!("secret {p}"))),
                        },
                        _ => problems.push(problem_at(
                            *pos,
                            "secret() takes one string literal, e.g. secret(\"api-key\"), so its use can be tracked",
                        )),
                    }
                }
            }
            true
        });
        if !problems.is_empty() {
            return Err(problems);
        }
        let secrets: Vec<String> = names.iter().cloned().collect();
        let _ = allowed.set(names);
        Ok(Self { engine, ast, secrets })
    }

    /// The names `secret(...)` is called with.
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// The compiled AST (for inspection: it never holds a secret's value).
    pub fn ast(&self) -> &AST {
        &self.ast
    }

    /// Runs the script with `scope` (synchronously, on this thread).
    pub fn run(&self, scope: &mut Scope<'_>) -> ScriptRun {
        NOTES.with(|n| n.borrow_mut().clear());
        let result = self.engine.eval_ast_with_scope::<Dynamic>(scope, &self.ast).map_err(|e| match *e {
            EvalAltResult::ErrorTooManyOperations(_) => {
                format!("script stopped: more than {MAX_OPERATIONS} operations (an endless loop?)")
            }
            other => format!("script error: {other}"),
        });
        ScriptRun { result, notes: NOTES.with(|n| std::mem::take(&mut *n.borrow_mut())) }
    }
}
