//! Sandboxed Rhai for scripted nodes and converters. A registry's sandbox ([`Scripts`]) has one
//! engine that sets every limit (operations, call depth, string/array/map sizes, wall-clock time
//! per run); each node keeps only its compiled AST. Runs happen on a small pool of threads with
//! large stacks, off the async
//! workers, so a slow script cannot stall the API and deep data cannot overflow a worker's stack;
//! a script's value is turned into JSON there, with its depth checked first.
//!
//! `secret("name")` is registered volatile, so the optimizer can never evaluate it at compile time
//! and bake a value into the AST; names must be string literals, found statically in the AST at
//! deploy and tracked like placeholders; at run time only those names resolve (the run's state is
//! thread-local to the pool thread). `print`/`debug` go to the run's notes (redacted later).

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rhai::{
    AST, ASTNode, Array, Blob, Dynamic, Engine, EvalAltResult, Expr, FuncRegistration, Map,
    OptimizationLevel, Position, Scope, Stmt,
};
use veil_store::validate_name;

use crate::error::ScriptProblem;
use crate::limits::{Limits, limit_error};
use crate::pool::FairPool;
use crate::run::{Halt, RUN, RunBudget, RunState, note};
use crate::sealed::{self, Sealed};
use crate::secrets::Secrets;

/// Operations one run may take (a runaway loop stops here).
pub const MAX_OPERATIONS: u64 = 200_000;
/// Stack of each script thread. Rhai walks values recursively (dropping, size checks), and the
/// sandbox's size limits still allow values nested thousands deep; the pages are only touched
/// when used.
const SCRIPT_STACK_BYTES: usize = 256 * 1024 * 1024;

/// What the shared sandbox runs under: the script limits of [`Limits`].
#[derive(Debug, Clone, Copy)]
struct Settings {
    timeout: Duration,
    per_message: Duration,
    threads: usize,
    max_data_depth: usize,
}

impl From<&Limits> for Settings {
    fn from(l: &Limits) -> Self {
        Self {
            timeout: l.script_timeout,
            // A message may always take one whole run.
            per_message: l.max_script_time_per_message.max(l.script_timeout),
            threads: l.script_threads.max(1),
            max_data_depth: l.max_data_depth,
        }
    }
}

/// A registry's script sandbox: its limits (time per run and per message, threads, data depth),
/// its sandboxed engine and its script threads (started on first use, ended when the last script
/// compiled with it is gone). Each registry owns one, so registries with different limits run
/// side by side in one process.
pub struct Scripts {
    settings: Settings,
    /// Built on first use: a registry replaced by one with other limits never builds its own.
    engine: OnceLock<Engine>,
    pool: OnceLock<FairPool>,
}

impl std::fmt::Debug for Scripts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripts").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Default for Scripts {
    /// A sandbox under the default limits.
    fn default() -> Self {
        Self { settings: Settings::from(&Limits::default()), engine: OnceLock::new(), pool: OnceLock::new() }
    }
}

impl Scripts {
    /// A sandbox under the script limits of `limits`.
    pub fn new(limits: &Limits) -> Arc<Self> {
        Arc::new(Self { settings: Settings::from(limits), engine: OnceLock::new(), pool: OnceLock::new() })
    }

    /// The script time one incoming message may take on the script threads.
    pub fn time_per_message(&self) -> Duration {
        self.settings.per_message
    }

    /// How deep a script's value may nest (`maxDataDepth`).
    pub fn max_data_depth(&self) -> usize {
        self.settings.max_data_depth
    }

    fn engine(&self) -> &Engine {
        self.engine.get_or_init(sandbox_engine)
    }

    fn pool(&self) -> &FairPool {
        self.pool.get_or_init(|| FairPool::start(self.settings.threads, SCRIPT_STACK_BYTES))
    }
}

/// Most operations a run may take on the caller's (async) thread before it moves to the script
/// threads: enough for the usual filter or transform, too few to build deep values.
const INLINE_OPERATIONS: u64 = 2_000;
/// Operations between two reads of the clock (one operation can take a fraction of a millisecond).
const CLOCK_EVERY: u64 = 4;
/// Longest a run may take on the caller's thread before it moves to the script threads.
const INLINE_TIME: Duration = Duration::from_micros(500);

/// `secret(name)` inside a run: only the names the script declared, for the run's tenant.
fn secret(name: &str) -> Result<Dynamic, Box<EvalAltResult>> {
    let found = RUN.with(|r| {
        let run = r.borrow();
        let (secrets, allowed) = run.as_ref()?.secrets.as_ref()?;
        allowed.iter().any(|a| a == name).then(|| secrets.clone())
    });
    let Some(secrets) = found else {
        return Err(format!(
            "secret '{name}' is not declared by this script: call secret(\"{name}\") with a literal name"
        )
        .into());
    };
    let value = secrets.resolve(name).map_err(|e| e.to_string())?;
    let max_len = secrets.store().max_value_bytes(secrets.tenant(), name).unwrap_or(value.len());
    Ok(Dynamic::from(Sealed::new(secrets.tenant(), secrets.scope(), name, value.expose_bytes(), max_len)))
}

/// The time origin of [`coarse_now`].
static CLOCK_ORIGIN: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

/// Now, rounded down to the millisecond (from a fixed origin): what scripts' `timestamp()` gives.
fn coarse_now() -> Instant {
    let origin = *CLOCK_ORIGIN;
    origin + Duration::from_millis(u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX))
}

const STOPPED_TEXT: &str = "its rule chain was deleted or redeployed while it ran";

/// A new sandboxed engine, as every script runs in: limits on operations, call depth, expression
/// depth, string/array/map sizes and time; no `eval`; no file or network access (Rhai has none);
/// helpers a script author needs with secrets. Each [`Scripts`] has one.
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
    engine.on_progress(|ops| {
        // The clock is read every few operations: a short script reads it not at all.
        if ops % CLOCK_EVERY != 0 {
            return None;
        }
        RUN.with(|r| {
            let mut run = r.borrow_mut();
            let run = run.as_mut()?;
            let now = Instant::now();
            let inline_time = run.inline.map_or(Duration::ZERO, |(_, time)| time);
            let (deadline, inline_until) =
                *run.deadlines.get_or_insert((now + run.timeout, now + inline_time));
            match run.inline {
                Some((max_ops, _)) if ops > max_ops || now >= inline_until => {
                    Some(Dynamic::from(Halt::MoveToPool))
                }
                _ if now >= deadline => Some(Dynamic::from(Halt::TimedOut)),
                _ if run.stop.as_ref().is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed)) => {
                    Some(Dynamic::from(Halt::Stopped))
                }
                _ => None,
            }
        })
    });
    FuncRegistration::new("secret").with_volatility(true).register_into_engine(&mut engine, secret);
    // The clock at millisecond resolution: timing a one-way helper on a secret must not measure
    // its length (a finer clock shows the microseconds a longer value takes).
    FuncRegistration::new("timestamp").with_volatility(true).register_into_engine(&mut engine, coarse_now);
    engine.register_fn("elapsed", |t: Instant| coarse_now().saturating_duration_since(t).as_secs_f64());
    engine
        .register_get("elapsed", |t: &mut Instant| coarse_now().saturating_duration_since(*t).as_secs_f64());
    // Curried arguments escape the sandbox's size checks, and `f = f.curry(f)` doubles a value
    // with each step: gigabytes within the time limit. Closures still capture variables.
    engine.disable_symbol("curry");
    engine.register_fn("base64_encode", |s: &str| STANDARD.encode(s));
    engine.register_fn("base64_encode", |b: Blob| STANDARD.encode(b));
    engine.register_fn("base64_decode", |s: &str| -> Result<Dynamic, Box<EvalAltResult>> {
        let bytes = STANDARD.decode(s.trim()).map_err(|_| "base64_decode: not valid base64".to_string())?;
        Ok(match String::from_utf8(bytes) {
            Ok(text) => text.into(),
            Err(e) => Dynamic::from_blob(e.into_bytes()),
        })
    });
    crate::sealed::register(&mut engine);
    engine
}

fn problem_at(pos: Position, message: impl Into<String>) -> ScriptProblem {
    ScriptProblem { line: pos.line(), column: pos.position(), message: message.into() }
}

/// A compiled script: its AST (run by the shared engine) and the secrets it may use.
pub struct Script {
    ast: Arc<AST>,
    secrets: Arc<[String]>,
    handle: Secrets,
    /// The sandbox it was compiled for and runs in.
    scripts: Arc<Scripts>,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script").field("secrets", &self.secrets).finish_non_exhaustive()
    }
}

/// How a run ended: the converted value or the error text (redact before showing it), and
/// printed lines.
pub struct ScriptRun<T> {
    /// The script's value, or why it failed.
    pub result: Result<T, String>,
    /// `print`/`debug` output, in order.
    pub notes: Vec<String>,
}

/// A JSON value as a Rhai value (for a script's inputs), as rhai's serde support makes it:
/// integers that fit an `i64` stay integers, larger ones become floats; maps, arrays and strings
/// become Rhai's own. Built directly, without serde's round of visitor calls per value.
pub fn to_dynamic(value: &serde_json::Value) -> Dynamic {
    use serde_json::Value;
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => rhai::ImmutableString::from(s.as_str()).into(),
        Value::Array(items) => Dynamic::from_array(items.iter().map(to_dynamic).collect()),
        Value::Object(entries) => {
            Dynamic::from_map(entries.iter().map(|(k, v)| (k.as_str().into(), to_dynamic(v))).collect())
        }
    }
}

/// A message's metadata (text to text) as a Rhai map of strings.
pub fn metadata_to_dynamic(metadata: &std::collections::BTreeMap<String, String>) -> Dynamic {
    Dynamic::from_map(
        metadata
            .iter()
            .map(|(k, v)| (k.as_str().into(), rhai::ImmutableString::from(v.as_str()).into()))
            .collect(),
    )
}

/// `value` as JSON when it holds only what JSON has (unit, booleans, integers, floats, characters,
/// strings, arrays, maps): what rhai's serde support would give, built directly. `None` for
/// anything else (a blob, a timestamp, a function pointer, a custom type), which takes the serde
/// path and its error. The caller bounded the depth first ([`inspect`]).
fn plain_json(value: &Dynamic) -> Option<serde_json::Value> {
    use serde_json::Value;
    if value.is_unit() {
        return Some(Value::Null);
    }
    if let Ok(b) = value.as_bool() {
        return Some(Value::Bool(b));
    }
    if let Ok(i) = value.as_int() {
        return Some(Value::Number(i.into()));
    }
    if let Ok(f) = value.as_float() {
        // As serde_json reads a float: NaN and the infinities are null.
        return Some(serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number));
    }
    if let Ok(c) = value.as_char() {
        return Some(Value::String(c.to_string()));
    }
    if let Some(s) = value.read_lock::<rhai::ImmutableString>() {
        return Some(Value::String(s.as_str().to_owned()));
    }
    if let Some(items) = value.read_lock::<Array>() {
        return items.iter().map(plain_json).collect::<Option<Vec<_>>>().map(Value::Array);
    }
    if let Some(entries) = value.read_lock::<Map>() {
        let mut out = serde_json::Map::new();
        for (k, v) in entries.iter() {
            out.insert(k.to_string(), plain_json(v)?);
        }
        return Some(Value::Object(out));
    }
    None
}

/// Whether `value` nests arrays and maps more than `depth` deep (the walk stops at that depth,
/// so it is bounded however deep the value is), and how many bytes its sealed values may hold
/// (by their bounds, each copy counted: each becomes a marker of its own).
fn inspect(value: &Dynamic, depth: usize, sealed: &mut usize) -> bool {
    if let Some(items) = value.read_lock::<Array>() {
        return depth == 0 || items.iter().any(|v| inspect(v, depth - 1, sealed));
    }
    if let Some(entries) = value.read_lock::<Map>() {
        return depth == 0 || entries.values().any(|v| inspect(v, depth - 1, sealed));
    }
    if let Some(s) = value.read_lock::<Sealed>() {
        *sealed = sealed.saturating_add(s.bound().max(1));
    }
    false
}

/// A script's value as JSON, or why it has none (nesting deeper than `depth`, its sandbox's
/// [`Scripts::max_data_depth`], or not JSON-shaped).
/// Sealed values become markers (see [`crate::Sealed`]): they travel in the message, never
/// their value.
pub fn from_dynamic(value: &Dynamic, depth: usize) -> Result<serde_json::Value, String> {
    let mut sealed_bytes = 0;
    if inspect(value, depth, &mut sealed_bytes) {
        return Err(limit_error("maxDataDepth", depth, "the script's value nests arrays and maps deeper"));
    }
    if sealed_bytes > sealed::MAX_SEALED_BYTES {
        return Err(format!(
            "the script's value holds Secrets that could take more than {} bytes (each copy counts, by the \
             largest value of its secrets' types)",
            sealed::MAX_SEALED_BYTES
        ));
    }
    let convert = |value: &Dynamic| match plain_json(value) {
        Some(json) => Ok(json),
        None => rhai::serde::from_dynamic(value),
    };
    let converted = if sealed_bytes > 0 {
        let mut owned = value.clone();
        sealed::markers_for_output(&mut owned);
        convert(&owned)
    } else {
        convert(value)
    };
    converted.map_err(|e| sealed::error_text(format!("cannot convert the script's value: {e}")))
}

impl Script {
    /// Compiles `source` under full optimization with `inputs` as known variables, and finds every
    /// `secret("name")` call. A call with anything but a string literal is a problem.
    pub fn compile(
        scripts: &Arc<Scripts>,
        secrets: &Secrets,
        source: &str,
        inputs: &[&str],
    ) -> Result<Self, Vec<ScriptProblem>> {
        let mut scope = Scope::new();
        for input in inputs {
            scope.push_dynamic(*input, Dynamic::UNIT);
        }
        let ast = scripts
            .engine()
            .compile_with_scope(&scope, source)
            .map_err(|e| vec![problem_at(e.1, e.0.to_string())])?;
        let mut names = BTreeSet::new();
        let mut problems = Vec::new();
        ast.walk(&mut |path: &[ASTNode]| {
            let call = match path.last() {
                Some(ASTNode::Expr(Expr::FnCall(call, pos) | Expr::MethodCall(call, pos))) => Some((call, pos)),
                // A call standing alone as a statement.
                Some(ASTNode::Stmt(Stmt::FnCall(call, pos))) => Some((call, pos)),
                _ => None,
            };
            if let Some((call, pos)) = call
                && call.name == "secret" {
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
            true
        });
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            ast: Arc::new(ast),
            secrets: names.into_iter().collect(),
            handle: secrets.clone(),
            scripts: Arc::clone(scripts),
        })
    }

    /// How deep the script's value may nest (see [`from_dynamic`]).
    pub fn max_data_depth(&self) -> usize {
        self.scripts.max_data_depth()
    }

    /// The names `secret(...)` is called with.
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// The compiled AST (for inspection: it never holds a secret's value).
    pub fn ast(&self) -> &AST {
        &self.ast
    }

    /// Runs the script for one message, charged to its `budget`. It starts on the caller's
    /// thread with a small budget (`INLINE_OPERATIONS`, `INLINE_TIME`) — most scripts finish
    /// there, at the cost of a function call — and a run that needs more starts again from the
    /// beginning on the script threads (scripts have no side effects to repeat), with a copy of
    /// `input`, in the queue of the message's tenant (tenants take turns), where it may take
    /// `scriptTimeoutMs` and no more than the script time the message has left; that time is
    /// charged. `fill` puts `input` into the scope; `output` turns the script's value into what
    /// the caller needs on the thread that ran it, so no deep Rhai value is dropped on an async
    /// worker. Secrets resolved count as used by the caller's use context.
    pub async fn run<I, T>(
        &self,
        budget: &RunBudget<'_>,
        input: &I,
        fill: fn(&I, &mut Scope<'static>),
        output: impl FnOnce(Dynamic) -> Result<T, String> + Send + 'static,
    ) -> ScriptRun<T>
    where
        I: Clone + Send + 'static,
        T: Send + 'static,
    {
        let inline = Some((INLINE_OPERATIONS, INLINE_TIME));
        match self.execute(&|scope| fill(input, scope), inline, None) {
            Attempt::Done(result, notes) => return ScriptRun { result: result.and_then(output), notes },
            Attempt::MoveToPool => {}
        }
        let failed = |error: String| ScriptRun { result: Err(error), notes: Vec::new() };
        if budget.stopped() {
            return failed(format!("script error: {}", STOPPED_TEXT));
        }
        let left = match budget.script_time_left() {
            Ok(left) => left,
            Err(error) => return failed(format!("script stopped: {error}")),
        };
        let this = Self {
            ast: Arc::clone(&self.ast),
            secrets: Arc::clone(&self.secrets),
            handle: self.handle.clone(),
            scripts: Arc::clone(&self.scripts),
        };
        let input = input.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let stop = budget.stop_flag();
        let time_error = budget.script_time_error();
        self.scripts.pool().spawn(budget.tenant(), move || {
            let started = Instant::now();
            let job =
                || match this.execute(&|scope| fill(&input, scope), None, Some((stop, left, time_error))) {
                    Attempt::Done(result, notes) => ScriptRun { result: result.and_then(output), notes },
                    Attempt::MoveToPool => unreachable!("a run on the script threads does not move"),
                };
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            RUN.with(|r| r.borrow_mut().take());
            let run = run.unwrap_or_else(|_| ScriptRun {
                result: Err("script error: the script engine failed".into()),
                notes: Vec::new(),
            });
            let _ = tx.send((run, started.elapsed()));
        });
        match rx.await {
            Ok((run, spent)) => {
                budget.charge_script(spent);
                run
            }
            Err(_) => failed("script error: the script threads are gone".into()),
        }
    }

    /// One attempt on this thread.
    /// `pooled`: the stop flag of the message's chain, the script time the message has left and
    /// the error that names its limit (a run on the script threads); `None` for the first attempt
    /// on the caller's thread.
    fn execute(
        &self,
        inputs: &dyn Fn(&mut Scope<'static>),
        inline: Option<(u64, Duration)>,
        pooled: Option<(Arc<std::sync::atomic::AtomicBool>, Duration, String)>,
    ) -> Attempt {
        let per_run = self.scripts.settings.timeout;
        let timeout = pooled.as_ref().map_or(per_run, |(_, left, _)| (*left).min(per_run));
        let secrets = (!self.secrets.is_empty()).then(|| (self.handle.clone(), Arc::clone(&self.secrets)));
        let state = RunState {
            secrets,
            timeout,
            stop: pooled.as_ref().map(|(stop, ..)| Arc::clone(stop)),
            inline,
            deadlines: None,
            notes: Vec::new(),
            sealed_bytes: 0,
            failed: None,
        };
        RUN.with(|r| *r.borrow_mut() = Some(state));
        let mut scope = Scope::new();
        inputs(&mut scope);
        // Sealed values the message carries are sealed values again (markers of this tenant).
        if sealed::any_sealed() {
            let names: Vec<String> = scope.iter_raw().map(|(name, ..)| name.to_owned()).collect();
            for name in names {
                if let Some(value) = scope.get_mut(&name) {
                    let to = (self.handle.tenant(), self.handle.scope());
                    sealed::reseal_input(value, to, self.handle.opens_sealed());
                }
            }
        }
        let result = self.scripts.engine().eval_ast_with_scope::<Dynamic>(&mut scope, &self.ast);
        drop(scope);
        let (notes, failed) =
            RUN.with(|r| r.borrow_mut().take()).map(|run| (run.notes, run.failed)).unwrap_or_default();
        let result = match failed {
            // A secret-dependent failure decides the run, even if the script went on.
            Some(reason) => Err(Halt::Failed(reason).error()),
            None => result,
        };
        let result = match result {
            Ok(value) => Ok(value),
            Err(e) => match *e {
                EvalAltResult::ErrorTerminated(token, _) if token.is::<Halt>() => {
                    match token.cast::<Halt>() {
                        Halt::MoveToPool => return Attempt::MoveToPool,
                        Halt::Failed(reason) => Err(format!("script error: {reason}")),
                        Halt::Stopped => Err(format!("script error: {STOPPED_TEXT}")),
                        Halt::TimedOut => match pooled {
                            Some((_, _, time_error)) if timeout < per_run => {
                                Err(format!("script stopped: {time_error}"))
                            }
                            _ => Err(limit_error(
                                "scriptTimeoutMs",
                                per_run.as_millis(),
                                "the script ran longer",
                            )),
                        },
                    }
                }
                EvalAltResult::ErrorTooManyOperations(_) => {
                    Err(format!("script stopped: more than {MAX_OPERATIONS} operations (an endless loop?)"))
                }
                other => Err(sealed::error_text(format!("script error: {other}"))),
            },
        };
        Attempt::Done(result, notes)
    }
}

/// How an attempt ended.
enum Attempt {
    /// With the script's value or error, and its printed lines.
    Done(Result<Dynamic, String>, Vec<String>),
    /// Out of the budget of the caller's thread: start again on the script threads.
    MoveToPool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_see_the_clock_to_the_millisecond() {
        let engine = sandbox_engine();
        let spans: Vec<f64> = (0..50)
            .map(|_| {
                engine
                    .eval::<f64>("let t = timestamp(); let n = 0; for i in 0..200 { n += i; } t.elapsed")
                    .unwrap()
            })
            .collect();
        for span in spans {
            let ms = span * 1000.0;
            assert!((ms - ms.round()).abs() < 1e-6, "{ms} ms is not a whole number of milliseconds");
        }
    }

    /// What rhai's serde support made of `value` before the direct conversions.
    fn through_serde(value: &serde_json::Value) -> serde_json::Value {
        rhai::serde::from_dynamic(&rhai::serde::to_dynamic(value).unwrap()).unwrap()
    }

    fn json_values() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter("JSON has no NaN", |f| f.is_finite()).prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(".{0,8}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn direct_conversions_give_what_serde_gave(value in json_values()) {
            let direct = to_dynamic(&value);
            let old = rhai::serde::to_dynamic(&value).unwrap();
            proptest::prop_assert_eq!(format!("{direct:?}"), format!("{old:?}"));
            proptest::prop_assert_eq!(direct.type_name(), old.type_name());
            proptest::prop_assert_eq!(from_dynamic(&direct, 64).unwrap(), through_serde(&value));
        }
    }

    #[test]
    fn script_values_convert_as_serde_converted_them() {
        let engine = sandbox_engine();
        for script in [
            "()",
            "1.5",
            "0.0 / 0.0",
            "'x'",
            "[1, 2.5, \"a\", 'c', true, (), #{n: -3}]",
            "#{a: #{b: [#{c: 9223372036854775807}]}, \"\": 1}",
            "let x = 1; let f = || x; x = 2; #{captured: x, f: f.call()}",
        ] {
            let value: Dynamic = engine.eval(script).unwrap_or_else(|e| panic!("{script}: {e}"));
            assert_eq!(
                from_dynamic(&value, 64).unwrap(),
                rhai::serde::from_dynamic::<serde_json::Value>(&value).unwrap(),
                "{script}"
            );
        }
        // What JSON does not have still fails as it did.
        for script in ["timestamp()", "blob(2)", "Fn(\"f\")"] {
            let value: Dynamic = engine.eval(script).unwrap();
            let ours = from_dynamic(&value, 64).unwrap_err();
            let theirs = rhai::serde::from_dynamic::<serde_json::Value>(&value).unwrap_err().to_string();
            assert!(ours.contains(&theirs), "{script}: {ours} / {theirs}");
        }
        let metadata = std::collections::BTreeMap::from([("k".to_owned(), "v".to_owned())]);
        assert_eq!(
            format!("{:?}", metadata_to_dynamic(&metadata)),
            format!("{:?}", rhai::serde::to_dynamic(&metadata).unwrap())
        );
    }

    #[test]
    fn curry_is_not_available() {
        assert!(sandbox_engine().compile("let f = Fn(\"x\"); f = f.curry(f); true").is_err());
        assert!(sandbox_engine().compile("let f = Fn(\"x\"); f = curry(f, 1); true").is_err());
    }
}
