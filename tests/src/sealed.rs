//! The attempts a script author could make to turn a sealed secret into data, for the tests that
//! check none of them works (in a `script` node and in a converter), and the forms of a value those
//! attempts would produce if they did.

/// How an attempt must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The run is a script error (the trace says `Failure`), which names the operation.
    Error,
    /// The run succeeds and whatever it made of the value shows as `***`.
    Masked,
}

/// One attempt: what it tries, the Rhai body (with `s` = the sealed secret, `out` = a map the
/// body fills; its value is returned as data), how it must end, and for errors a word the error
/// must contain (the operation's name).
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// What the attempt tries.
    pub what: &'static str,
    /// Rhai statements; `s` holds the secret and `out` is returned (see [`script_for`]).
    pub body: &'static str,
    /// How it must end.
    pub outcome: Outcome,
    /// For [`Outcome::Error`]: text the error must contain.
    pub error_says: &'static str,
}

const fn err(what: &'static str, body: &'static str, error_says: &'static str) -> Attempt {
    Attempt { what, body, outcome: Outcome::Error, error_says }
}

const fn masked(what: &'static str, body: &'static str) -> Attempt {
    Attempt { what, body, outcome: Outcome::Masked, error_says: "" }
}

/// At least thirty transformations and exfiltration attempts.
pub const ATTEMPTS: &[Attempt] = &[
    err("upper case", "out.v = s.to_upper();", "to_upper"),
    err("lower case", "out.v = s.to_lower();", "to_lower"),
    err("reverse by iterating", r#"let r = ""; for c in s { r = c + r; } out.v = r;"#, "iterable"),
    err("chars", "out.v = s.chars();", "chars"),
    err(
        "char codes",
        "let codes = []; for c in s.chars() { codes.push(c.to_int()); } out.v = codes;",
        "chars",
    ),
    err("index", "out.v = s[0];", "Secret"),
    err("substring", "out.v = s.sub_string(0, 6);", "sub_string"),
    err("split", r#"out.v = s.split("-");"#, "split"),
    err("hex", "out.v = s.to_hex();", "to_hex"),
    err("bytes to blob", "out.v = s.to_blob();", "to_blob"),
    err("parse int", "out.v = parse_int(s);", "parse_int"),
    err("parse float", "out.v = parse_float(s);", "parse_float"),
    err("parse JSON", "out.v = parse_json(s);", "parse_json"),
    err("throw", "throw s;", "***"),
    err("throw combined", r#"throw "leak: " + s;"#, "***"),
    err("throw in array", "throw [s, 1];", "***"),
    err("Fn name", "let f = Fn(s); out.v = f.name;", "Data type incorrect: Secret"),
    err("equality probe", r#"if s == "x" { out.v = 1 }"#, "=="),
    err("inequality probe", r#"if s != "x" { out.v = 1 }"#, "!="),
    err("ordering probe", r#"if s < "M" { out.v = 1 }"#, "<"),
    err("length probe", "out.v = s.len();", "len"),
    err("emptiness probe", "out.v = s.is_empty();", "is_empty"),
    err("prefix probe", r#"out.v = s.starts_with("S");"#, "starts_with"),
    err("contains probe", r#"out.v = "Seal" in s;"#, "contains"),
    err("index_of probe", r#"out.v = s.index_of("a");"#, "index_of"),
    err("array membership probe", r#"out.v = ["x"].contains(s);"#, "=="),
    err("map key", "let m = #{}; m[s] = 1; out.v = m;", "Data type incorrect: Secret"),
    err("metadata key", r#"metadata[s] = "x"; out.v = 1;"#, "Data type incorrect: Secret"),
    err("append", r#"let t = "x"; t.append(s); out.v = t;"#, "append"),
    err("pad", r#"out.v = s.pad(40, '.');"#, "pad"),
    err("to_int", "out.v = s.to_int();", "to_int"),
    err("multiply", "out.v = s * 2;", "*"),
    err("catch and read", "try { throw s; } catch (e) { out.v = e.to_upper(); }", "to_upper"),
    err("base64 decode probe", "out.v = base64_decode(s);", "base64_decode"),
    err(
        "length by the size limit",
        "let t = s; for i in 0..12 { t = t + t; } out.v = 1;",
        "could be longer than",
    ),
    err(
        "swallowing a decryption failure",
        r#"[1, 2].dedup(|a, b| { aes_gcm_decrypt(s, "000000000000000000000000", "00"); true }); out.v = 1;"#,
        "aes_gcm_decrypt",
    ),
    err("many copies", "let a = []; for i in 0..300 { a.push(s); } out.v = a;", "could take more than"),
    err(
        "catching a decryption failure",
        r#"try { aes_gcm_decrypt(s, "000000000000000000000000", "00"); } catch (e) { out.v = 1; }"#,
        "aes_gcm_decrypt",
    ),
    masked("print and debug", r#"print(s); debug(s); print("key: " + s); debug([s]); out.v = 1;"#),
    masked("interpolation", "out.v = `key=${s}`;"),
    masked("to_string", "out.v = s.to_string();"),
    masked("to_json of a map", "out.v = #{k: s}.to_json();"),
    masked("value in data", "out.v = s;"),
    masked("combined in data", r#"out.v = "Bearer " + s;"#),
    masked("+= into text", r#"let t = "Bearer "; t += s; out.v = t;"#),
    masked("base64 of it", "out.v = base64_encode(s);"),
    masked("basic auth", r#"out.v = basic_auth("user", s);"#),
    masked("inside an array", "out.v = [s, s + s];"),
    masked("switch on it", r#"out.v = switch s { "x" => 1, _ => 2 };"#),
    masked("type_of", "out.v = type_of(s);"),
    masked("caught value", "try { throw s; } catch (e) { out.v = e; print(e); }"),
    masked("metadata value", "metadata.leak = s; out.v = 1;"),
];

/// A transform script running `attempt` with `s = secret(name)`: returns `#{msg: out, metadata}`.
pub fn script_for(attempt: &Attempt, name: &str) -> String {
    format!(
        "let s = secret(\"{name}\"); let out = #{{}};\n{}\n#{{msg: out, metadata: metadata}}",
        attempt.body
    )
}

/// The forms of `value` the attempts above would have produced had they worked: the case
/// changes, the reverse, hex, character codes, spaced characters, and the substrings of 6
/// characters or more from each end.
pub fn derived_forms(value: &str) -> Vec<String> {
    let chars: Vec<char> = value.chars().collect();
    let mut forms = vec![
        value.to_owned(),
        value.to_uppercase(),
        value.to_lowercase(),
        chars.iter().rev().collect(),
        value.bytes().map(|b| format!("{b:02x}")).collect(),
        value.bytes().map(|b| b.to_string()).collect::<Vec<_>>().join(","),
        value.bytes().map(|b| b.to_string()).collect::<Vec<_>>().join(", "),
        chars.iter().map(char::to_string).collect::<Vec<_>>().join("\", \""),
    ];
    for n in 6..chars.len() {
        forms.push(chars[..n].iter().collect());
        forms.push(chars[chars.len() - n..].iter().collect());
    }
    forms
}
