//! Placeholders and templates: parse, compile once, render per execution.

mod compile;
mod hbs;
mod placeholder;
mod render;

pub use self::compile::{Accepts, CompiledConfig, Escape, FieldSpec, SecretUse, Template, compile};
pub use self::hbs::{MAX_RENDERED_BYTES, MAX_TEMPLATE_BYTES, MAX_TEMPLATE_DEPTH, MAX_TEMPLATE_WORK};
pub use self::placeholder::{Piece, escape, mentions_placeholder, parse, placeholder};
pub use self::render::{RenderCtx, Rendered};
