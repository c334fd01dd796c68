//! Placeholders and templates: parse, compile once, render per execution.

mod compile;
mod placeholder;
mod render;

pub use self::compile::{Accepts, CompiledConfig, Escape, FieldSpec, SecretUse, Template, compile};
pub use self::placeholder::{Piece, escape, mentions_placeholder, parse, placeholder};
pub(crate) use self::render::json_escape_into;
pub use self::render::{RenderCtx, Rendered};
