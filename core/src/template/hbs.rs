//! Handlebars under bounds. A message template is user text evaluated per message, often on data
//! an unauthenticated device sent, so nothing in it may exhaust the stack, the CPU or the heap:
//!
//! - at compile, before handlebars sees the text: at most [`MAX_TEMPLATE_BYTES`] per field, no
//!   partials, inline partials or decorators (a partial can call itself), block nesting and
//!   sub-expression nesting at most [`MAX_TEMPLATE_DEPTH`] (handlebars renders and drops blocks
//!   recursively);
//! - compile time linear in size: handlebars computes every element's line and column from the
//!   start of the text (quadratic), so a long template is compiled in pieces cut between two
//!   plain expressions at the top level, where nothing crosses the cut;
//! - at render: every write and every block helper call (`each` by the items it walks) counts
//!   against [`MAX_TEMPLATE_WORK`], and the output against [`MAX_RENDERED_BYTES`].

use std::cell::Cell;

use handlebars::{
    BlockContext, BlockParams, Context, Handlebars, Helper, HelperDef, HelperResult, JsonTruthy, Output,
    RenderContext, RenderError, RenderErrorReason, Renderable, Template,
};
use serde_json::Value;

use crate::limits::limit_error;

/// The longest message template one field may hold (bytes of its text).
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;
/// The deepest nesting of blocks (`{{#if}}`, `{{#each}}` …) and of sub-expressions in a template.
pub const MAX_TEMPLATE_DEPTH: usize = 16;
/// The most work one render may do: each piece of text written and each block helper call counts
/// one, `each` one more per item it walks.
pub const MAX_TEMPLATE_WORK: u64 = 200_000;
/// The longest text one render may produce.
pub const MAX_RENDERED_BYTES: usize = 16 * 1024 * 1024;
/// Tags per compiled piece: handlebars' compile is quadratic within a piece, linear across them.
const TAGS_PER_PIECE: usize = 64;

/// What kind of `{{…}}` tag a scanner found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    /// `{{path}}`, `{{helper a b}}`, `{{{path}}}`: nothing crosses it.
    Plain,
    /// `{{#block}}`, `{{^inverse}}`.
    Open,
    /// `{{/block}}`.
    Close,
    /// `{{else}}`, `{{^}}`, `{{else if …}}`.
    Else,
    /// `{{! comment }}`.
    Comment,
}

/// One tag: where it is, its kind, and whether it strips whitespace on either side (`~`).
#[derive(Debug, Clone, Copy)]
struct Scanned {
    start: usize,
    kind: Tag,
    strips_before: bool,
    strips_after: bool,
}

/// Checks a template's text against the bounds handlebars cannot enforce itself, and finds its
/// tags. Errors name the limit or the construct.
fn scan(text: &str) -> Result<Vec<Scanned>, String> {
    if text.len() > MAX_TEMPLATE_BYTES {
        return Err(limit_error(
            "maxTemplateBytes",
            MAX_TEMPLATE_BYTES,
            format!("the message template is {} bytes long", text.len()),
        ));
    }
    let bytes = text.as_bytes();
    let mut tags = Vec::new();
    let mut depth = 0usize;
    let mut at = 0;
    while let Some(offset) = text[at..].find("{{") {
        let start = at + offset;
        // `\{{` is literal text.
        if start > 0 && bytes[start - 1] == b'\\' {
            at = start + 2;
            continue;
        }
        if text[start..].starts_with("{{{{") {
            return Err("message template: raw blocks ({{{{raw}}}}) are not supported".into());
        }
        let mut i = start + 2;
        let triple = bytes.get(i) == Some(&b'{');
        if triple {
            i += 1;
        }
        let strips_before = bytes.get(i) == Some(&b'~');
        if strips_before {
            i += 1;
        }
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        let sigil = bytes.get(i).copied();
        if sigil == Some(b'!') {
            // A comment runs to `--}}` when it opened with `!--`, else to the first `}}`.
            let close = if text[i..].starts_with("!--") { "--}}" } else { "}}" };
            let Some(end) = text[i..].find(close).map(|e| i + e + close.len()) else {
                return Err("message template: a comment is not closed".into());
            };
            let strips_after = text[..end - 2].ends_with('~');
            tags.push(Scanned { start, kind: Tag::Comment, strips_before, strips_after });
            at = end;
            continue;
        }
        if matches!(sigil, Some(b'>' | b'*')) || text[i..].starts_with("#>") || text[i..].starts_with("#*") {
            return Err(
                "message template: partials and decorators ({{> …}}, {{#*inline …}}) are not allowed".into(),
            );
        }
        // The tag's end, skipping quoted strings; brackets and parentheses nest.
        let mut nesting = 0usize;
        let mut quote: Option<u8> = None;
        let mut end = None;
        let mut j = i;
        while j < bytes.len() {
            let b = bytes[j];
            match quote {
                Some(_) if b == b'\\' => j += 1,
                Some(q) if b == q => quote = None,
                Some(_) => {}
                None => match b {
                    b'"' | b'\'' => quote = Some(b),
                    b'(' | b'[' | b'{' if !(b == b'{' && bytes.get(j + 1) == Some(&b'{')) => {
                        nesting += 1;
                        if nesting > MAX_TEMPLATE_DEPTH {
                            return Err(limit_error(
                                "maxTemplateDepth",
                                MAX_TEMPLATE_DEPTH,
                                "a message template nests sub-expressions or literals deeper",
                            ));
                        }
                    }
                    b')' | b']' => nesting = nesting.saturating_sub(1),
                    b'}' if bytes.get(j + 1) == Some(&b'}') && nesting == 0 => {
                        end = Some(j);
                        break;
                    }
                    b'}' => nesting = nesting.saturating_sub(1),
                    _ => {}
                },
            }
            j += 1;
        }
        let Some(close) = end else {
            // Handlebars reports the unclosed tag when it compiles.
            break;
        };
        let strips_after = close > i && bytes[close - 1] == b'~';
        let mut tag_end = close + 2;
        if triple && bytes.get(tag_end) == Some(&b'}') {
            tag_end += 1;
        }
        let body = text[i..close].trim_end_matches('~').trim();
        let kind = match sigil {
            Some(b'#') => Tag::Open,
            Some(b'/') => Tag::Close,
            Some(b'^') if body.len() == 1 => Tag::Else,
            Some(b'^') => Tag::Open,
            _ if body == "else" || body.starts_with("else ") => Tag::Else,
            _ => Tag::Plain,
        };
        match kind {
            Tag::Open => {
                depth += 1;
                if depth > MAX_TEMPLATE_DEPTH {
                    return Err(limit_error(
                        "maxTemplateDepth",
                        MAX_TEMPLATE_DEPTH,
                        "a message template nests blocks ({{#if}}, {{#each}} …) deeper",
                    ));
                }
            }
            Tag::Close => depth = depth.saturating_sub(1),
            _ => {}
        }
        tags.push(Scanned { start, kind, strips_before, strips_after });
        at = tag_end;
    }
    Ok(tags)
}

/// Compiles a message template under the bounds above, in pieces of at most [`TAGS_PER_PIECE`]
/// tags cut at the top level between two plain expressions (rendered one after the other, the
/// pieces give what the whole would).
pub(crate) fn compile(text: &str) -> Result<Vec<Template>, String> {
    let tags = scan(text)?;
    let mut cuts = Vec::new();
    let mut depth = 0usize;
    let mut since_cut = 0;
    for pair in tags.windows(2) {
        let (before, next) = (pair[0], pair[1]);
        match before.kind {
            Tag::Open => depth += 1,
            Tag::Close => depth = depth.saturating_sub(1),
            _ => {}
        }
        since_cut += 1;
        let free = depth == 0
            && before.kind == Tag::Plain
            && next.kind == Tag::Plain
            && !before.strips_after
            && !next.strips_before;
        if free && since_cut >= TAGS_PER_PIECE {
            // The text between the two tags stays with the first piece.
            cuts.push(next.start);
            since_cut = 0;
        }
    }
    let mut pieces = Vec::with_capacity(cuts.len() + 1);
    let mut from = 0;
    for cut in cuts.into_iter().chain([text.len()]) {
        let piece =
            Template::compile(&text[from..cut]).map_err(|e| format!("message template: {}", e.reason()))?;
        check_tree(&piece)?;
        pieces.push(piece);
        from = cut;
    }
    Ok(pieces)
}

/// What the scanner promises, checked again on the compiled tree (without recursion): no partial
/// or decorator, no deeper nesting.
fn check_tree(template: &Template) -> Result<(), String> {
    use handlebars::template::TemplateElement as E;
    let mut stack = vec![(template, 0usize)];
    while let Some((t, depth)) = stack.pop() {
        if depth > MAX_TEMPLATE_DEPTH {
            return Err(limit_error(
                "maxTemplateDepth",
                MAX_TEMPLATE_DEPTH,
                "a message template nests blocks deeper",
            ));
        }
        for element in &t.elements {
            match element {
                E::DecoratorExpression(_)
                | E::DecoratorBlock(_)
                | E::PartialExpression(_)
                | E::PartialBlock(_) => {
                    return Err(
                        "message template: partials and decorators ({{> …}}, {{#*inline …}}) are not allowed"
                            .into(),
                    );
                }
                E::HelperBlock(h) => {
                    stack.extend(h.template.iter().chain(&h.inverse).map(|inner| (inner, depth + 1)));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

thread_local! {
    /// Work done by the render in progress on this thread (renders are synchronous).
    static WORK: Cell<u64> = const { Cell::new(0) };
}

fn charge(units: u64) -> Result<(), RenderErrorReason> {
    WORK.with(|w| {
        let done = w.get().saturating_add(units);
        w.set(done);
        if done > MAX_TEMPLATE_WORK {
            Err(RenderErrorReason::Other(limit_error(
                "maxTemplateWork",
                MAX_TEMPLATE_WORK,
                "rendering the message template took more steps",
            )))
        } else {
            Ok(())
        }
    })
}

/// The block helpers a template may use, written here so that every call counts against the
/// render's work (`each` one more per item); they behave as handlebars' own.
#[derive(Clone, Copy)]
enum Block {
    If,
    Unless,
    Each,
    With,
}

/// A block's context: based at the parameter's path in the data, or on a copy of its value.
fn block_for<'rc>(param: &handlebars::PathAndJson<'rc>) -> BlockContext<'rc> {
    let mut block = BlockContext::new();
    match param.context_path() {
        Some(path) => block.base_path_mut().clone_from(path),
        None => block.set_base_value(param.value().clone()),
    }
    block
}

/// The block parameters of one `each` step (`as |value key|`).
fn each_params<'rc>(
    h: &Helper<'rc>,
    by_path: bool,
    key: &Value,
    value: &Value,
) -> Result<Option<BlockParams<'rc>>, RenderError> {
    let mut params = BlockParams::new();
    let (name, key_name) = match (h.block_param(), h.block_param_pair()) {
        (Some(name), _) => (name, None),
        (None, Some((name, key_name))) => (name, Some(key_name)),
        (None, None) => return Ok(None),
    };
    if by_path {
        params.add_path(name, Vec::new())?;
    } else {
        params.add_value(name, value.clone())?;
    }
    if let Some(key_name) = key_name {
        params.add_value(key_name, key.clone())?;
    }
    Ok(Some(params))
}

impl HelperDef for Block {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let name = match self {
            Self::If => "if",
            Self::Unless => "unless",
            Self::Each => "each",
            Self::With => "with",
        };
        let param = h.param(0).ok_or(RenderErrorReason::ParamNotFoundForIndex(name, 0))?;
        charge(1)?;
        match self {
            Self::If | Self::Unless => {
                let include_zero =
                    h.hash_get("includeZero").and_then(|v| v.value().as_bool()).unwrap_or(false);
                let truthy = param.value().is_truthy(include_zero) == matches!(self, Self::If);
                match if truthy { h.template() } else { h.inverse() } {
                    Some(t) => t.render(r, ctx, rc, out),
                    None => Ok(()),
                }
            }
            Self::With => {
                if !param.value().is_truthy(false) {
                    return h.inverse().map_or(Ok(()), |t| t.render(r, ctx, rc, out));
                }
                let mut block = block_for(param);
                // @index, @key … of the enclosing block stay visible, as in handlebars.js.
                if let Some(parent) = rc.block() {
                    block.local_variables_mut().clone_from(parent.local_variables());
                }
                if let Some(name) = h.block_param() {
                    let mut params = BlockParams::new();
                    match param.context_path() {
                        Some(_) => params.add_path(name, Vec::new())?,
                        None => params.add_value(name, param.value().clone())?,
                    }
                    block.set_block_params(params);
                }
                rc.push_block(block);
                let rendered = h.template().map_or(Ok(()), |t| t.render(r, ctx, rc, out));
                rc.pop_block();
                rendered
            }
            Self::Each => {
                let Some(template) = h.template() else { return Ok(()) };
                let entries: Vec<(Value, &Value, String)> = match param.value() {
                    Value::Array(items) if !items.is_empty() || h.inverse().is_none() => {
                        items.iter().enumerate().map(|(i, v)| (Value::from(i), v, i.to_string())).collect()
                    }
                    Value::Object(map) if !map.is_empty() || h.inverse().is_none() => {
                        map.iter().map(|(k, v)| (Value::from(k.as_str()), v, k.clone())).collect()
                    }
                    _ => return h.inverse().map_or(Ok(()), |t| t.render(r, ctx, rc, out)),
                };
                charge(entries.len() as u64)?;
                let is_object = param.value().is_object();
                let base = param.context_path();
                rc.push_block(block_for(param));
                let len = entries.len();
                for (i, (key, value, segment)) in entries.into_iter().enumerate() {
                    if let Some(block) = rc.block_mut() {
                        block.set_local_var("first", Value::from(i == 0));
                        block.set_local_var("last", Value::from(i + 1 == len));
                        block.set_local_var("index", Value::from(i));
                        if is_object {
                            block.set_local_var("key", key.clone());
                        }
                        match base {
                            Some(path) => {
                                let mut item = Vec::with_capacity(path.len() + 1);
                                item.extend_from_slice(path);
                                item.push(segment);
                                *block.base_path_mut() = item;
                            }
                            None => block.set_base_value(value.clone()),
                        }
                        if let Some(params) = each_params(h, base.is_some(), &key, value)? {
                            block.set_block_params(params);
                        }
                    }
                    if let Err(e) = template.render(r, ctx, rc, out) {
                        rc.pop_block();
                        return Err(e);
                    }
                }
                rc.pop_block();
                Ok(())
            }
        }
    }
}

/// A handlebars registry whose block helpers count their work, without the `log` helper (a
/// template must not write message content, e.g. a sealed value's marker, to the server log).
pub(crate) fn registry() -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    hb.unregister_helper("log");
    hb.register_helper("if", Box::new(Block::If));
    hb.register_helper("unless", Box::new(Block::Unless));
    hb.register_helper("each", Box::new(Block::Each));
    hb.register_helper("with", Box::new(Block::With));
    hb
}

/// Output that counts every write against the render's work and stops at [`MAX_RENDERED_BYTES`].
struct Bounded {
    text: String,
    over: Option<String>,
}

impl Output for Bounded {
    fn write(&mut self, seg: &str) -> std::io::Result<()> {
        let over = if self.text.len() + seg.len() > MAX_RENDERED_BYTES {
            Some(limit_error(
                "maxRenderedBytes",
                MAX_RENDERED_BYTES,
                "the message template rendered more text",
            ))
        } else {
            charge(1).err().map(|e| e.to_string())
        };
        if let Some(reason) = over {
            self.over.get_or_insert(reason);
            return Err(std::io::Error::other("template limit"));
        }
        self.text.push_str(seg);
        Ok(())
    }
}

/// Renders the pieces of one compiled template against `data`, under the work and size bounds.
pub(crate) fn render(
    pieces: &[Template],
    registry: &Handlebars<'static>,
    data: &Context,
) -> Result<String, String> {
    WORK.with(|w| w.set(0));
    let mut out = Bounded { text: String::new(), over: None };
    for piece in pieces {
        let mut rc = RenderContext::new(None);
        if let Err(e) = piece.render(registry, data, &mut rc, &mut out) {
            return Err(out.over.take().unwrap_or_else(|| e.to_string()));
        }
    }
    Ok(out.text)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rendered(text: &str, data: Value) -> Result<String, String> {
        let pieces = compile(text)?;
        render(&pieces, &registry(), &Context::from(data))
    }

    #[test]
    fn pieces_render_as_the_whole_would() {
        let data = json!({"msg": {"a": 1, "b": "x", "items": [1, 2, 3]}});
        let mut text = String::new();
        for i in 0..200 {
            text.push_str(&format!("<{i}>{{{{msg.a}}}} {{{{~msg.b}}}}\n{{{{#if msg.a}}}}\n  y{{{{/if}}}}  "));
            text.push_str("{{#each msg.items}}{{this}},{{/each}}{{! c }}{{msg.b~}}   {{msg.a}}");
        }
        assert!(compile(&text).unwrap().len() > 1);
        let whole = Template::compile(&text).unwrap();
        let expected =
            whole.renders(&registry(), &Context::from(data.clone()), &mut RenderContext::new(None));
        assert_eq!(rendered(&text, data).unwrap(), expected.unwrap());
    }

    #[test]
    fn block_helpers_behave_as_handlebars_own() {
        let data = json!({"msg": {"a": 0, "list": ["x", "y"], "map": {"k1": {"v": 1}, "k2": {"v": 2}},
            "empty": [], "obj": {"name": "n"}}, "metadata": {"m": "z"}});
        for text in [
            "{{#each msg.list}}{{@index}}{{this}}{{#if @first}}F{{/if}}{{#if @last}}L{{/if}},{{/each}}",
            "{{#each msg.map}}{{@key}}={{v}}/{{../metadata.m}};{{/each}}",
            "{{#each msg.map as |val key|}}{{key}}:{{val.v}} {{/each}}",
            "{{#each msg.list as |item|}}{{item}}{{/each}}",
            "{{#each msg.empty}}x{{else}}none{{/each}}{{#each msg.nothing}}x{{/each}}",
            "{{#if msg.a}}y{{else}}n{{/if}}{{#if msg.a includeZero=true}}y{{/if}}{{#unless msg.a}}u{{/unless}}",
            "{{#with msg.obj}}{{name}}{{/with}}{{#with msg.none}}x{{else}}w{{/with}}",
            "{{#each msg.list}}{{#with ../msg.obj as |o|}}{{@index}}{{o.name}}{{/with}}{{/each}}",
            "{{#each (lookup msg \"list\")}}{{this}}{{/each}}",
        ] {
            let own = rendered(text, data.clone()).unwrap();
            let theirs = Handlebars::new().render_template(text, &data).unwrap();
            assert_eq!(own, theirs, "{text}");
        }
    }

    #[test]
    fn partials_decorators_and_deep_nesting_are_refused() {
        for text in [
            "{{#*inline \"p\"}}{{> p}}{{/inline}}{{> p}}",
            "{{> p}}",
            "{{#> layout}}x{{/layout}}",
            "{{~> p}}",
            "{{* decorator}}",
        ] {
            let e = compile(text).unwrap_err();
            assert!(e.contains("partials and decorators"), "{text}: {e}");
        }
        let deep = "{{#if msg.a}}".repeat(17) + "{{/if}}".repeat(17).as_str();
        assert!(compile(&deep).unwrap_err().contains("limit maxTemplateDepth (16)"));
        assert!(compile(&("{{#if msg.a}}".repeat(16) + "{{/if}}".repeat(16).as_str())).is_ok());
        let parens = format!("{{{{#if {}msg.a{}}}}}x{{{{/if}}}}", "(not ".repeat(17), ")".repeat(17));
        assert!(compile(&parens).unwrap_err().contains("maxTemplateDepth"));
        let long = "a".repeat(MAX_TEMPLATE_BYTES + 1) + "{{msg.a}}";
        assert!(compile(&long).unwrap_err().contains("limit maxTemplateBytes (65536)"));
    }

    #[test]
    fn work_and_output_are_bounded() {
        let items: Vec<u32> = (0..1000).collect();
        let data = json!({"msg": {"items": items, "big": "x".repeat(1 << 20)}});
        let nested =
            "{{#each msg.items}}{{#each ../msg.items}}{{#each ../../msg.items}}{{/each}}{{/each}}{{/each}}";
        assert!(rendered(nested, data.clone()).unwrap_err().contains("limit maxTemplateWork"));
        let wide = "{{#each msg.items}}{{../msg.big}}{{/each}}";
        assert!(rendered(wide, data.clone()).unwrap_err().contains("limit maxRenderedBytes"));
        assert_eq!(rendered("{{#each msg.items}}{{#if @first}}{{this}}{{/if}}{{/each}}", data).unwrap(), "0");
    }
}
