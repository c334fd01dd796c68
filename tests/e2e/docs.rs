//! The guides cannot drift from the code: every relative link in every README resolves (the file,
//! and the heading an anchor names), and every `veil …` command line they show parses with the real
//! command-line definition.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// Every README.md of the repository (not under target/ or hidden folders).
fn readmes() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" && name != "node_modules" {
                    walk(&path, out);
                }
            } else if name == "README.md" {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root(), &mut out);
    out.sort();
    out
}

/// The text outside fenced code blocks, and the lines inside them.
fn prose_and_code(text: &str) -> (String, Vec<String>) {
    let (mut prose, mut code, mut fenced) = (String::new(), Vec::new(), false);
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if fenced {
            code.push(line.to_owned());
        } else {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    (prose, code)
}

/// GitHub's anchor for a heading: lowercase, punctuation other than `-` and `_` dropped, spaces
/// as `-`; repeated headings get `-1`, `-2`, ….
fn anchors(text: &str) -> BTreeSet<String> {
    let (prose, _) = prose_and_code(text);
    let mut seen = BTreeSet::new();
    for line in prose.lines().filter(|l| l.starts_with('#')) {
        let heading = line.trim_start_matches('#').trim();
        let slug: String = heading
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut unique = slug.clone();
        let mut n = 0;
        while !seen.insert(unique.clone()) {
            n += 1;
            unique = format!("{slug}-{n}");
        }
    }
    seen
}

/// The targets of the Markdown links and images in `prose`.
fn link_targets(prose: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = prose;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        match after.find(')') {
            Some(end) => {
                out.push(after[..end].split_whitespace().next().unwrap_or("").to_owned());
                rest = &after[end..];
            }
            None => break,
        }
    }
    out
}

#[test]
fn every_relative_link_in_every_readme_resolves() {
    let files = readmes();
    assert!(files.len() >= 8, "the guides: {files:?}");
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let (prose, _) = prose_and_code(&text);
        for target in link_targets(&prose) {
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let resolved = if path.is_empty() { file.clone() } else { file.parent().unwrap().join(path) };
            if !resolved.exists() {
                broken.push(format!("{}: {target} (no such file)", file.display()));
                continue;
            }
            if let Some(anchor) = anchor
                && resolved.extension().is_some_and(|e| e == "md")
                && !anchors(&std::fs::read_to_string(&resolved).unwrap()).contains(anchor)
            {
                broken.push(format!("{}: {target} (no such heading)", file.display()));
            }
        }
    }
    assert!(checked > 50, "only {checked} links found: is the scan right?");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The `veil …` command lines of a fenced code line: each command of a pipeline that starts with
/// `veil`, up to a comment, redirection or the next command. `<name>` placeholders stand for one
/// word.
fn commands_in_code(line: &str) -> Vec<String> {
    let line = line.trim_start_matches("$ ");
    line.split(['|', ';'])
        .flat_map(|part| part.split("&&"))
        .map(str::trim)
        .filter(|part| part.starts_with("veil "))
        .map(|part| {
            let mut command = String::new();
            let mut chars = part.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    // A placeholder: `<chain id>` is one word.
                    '<' if chars.peek().is_some_and(|n| n.is_alphanumeric()) => {
                        for c in chars.by_ref() {
                            if c == '>' {
                                break;
                            }
                        }
                        command.push_str("PLACEHOLDER");
                    }
                    '#' | '<' | '>' => break,
                    c => command.push(c),
                }
            }
            command.trim().to_owned()
        })
        .collect()
}

/// The inline code spans of `prose` that are a `veil …` command line (or name a command: then its
/// required arguments may be left out).
fn commands_in_prose(prose: &str) -> Vec<String> {
    prose
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| span.starts_with("veil ") && !span.contains('…') && !span.contains('\n'))
        .flat_map(commands_in_code)
        .collect()
}

#[test]
fn every_veil_command_line_in_the_readmes_parses() {
    let mut failed = Vec::new();
    let mut checked = BTreeSet::new();
    for file in readmes() {
        let text = std::fs::read_to_string(&file).unwrap();
        let (prose, code) = prose_and_code(&text);
        let commands = code.iter().flat_map(|l| commands_in_code(l)).map(|c| (c, false));
        for (command, mention) in commands.chain(commands_in_prose(&prose).into_iter().map(|c| (c, true))) {
            let Some(words) = shlex::split(&command) else {
                failed.push(format!("{}: {command}: unbalanced quotes", file.display()));
                continue;
            };
            if let Err(e) = veil_server::parse_command_line(&words)
                && !(mention && e.kind() == clap::error::ErrorKind::MissingRequiredArgument)
            {
                let first = e.to_string().lines().next().unwrap_or_default().to_owned();
                failed.push(format!("{}: {command}: {first}", file.display()));
            }
            checked.insert(command);
        }
    }
    assert!(checked.len() > 30, "only {} command lines found: is the scan right?", checked.len());
    assert!(failed.is_empty(), "command lines that do not parse:\n{}", failed.join("\n"));
}

/// The text of `file` between `<!-- {tag}:start -->` and `<!-- {tag}:end -->`.
fn between_markers(file: &str, tag: &str) -> String {
    let text = std::fs::read_to_string(root().join(file)).unwrap();
    let start = format!("<!-- {tag}:start -->\n");
    let from = text.find(&start).unwrap_or_else(|| panic!("{file}: no {start}")) + start.len();
    let to = text.find(&format!("<!-- {tag}:end -->")).unwrap_or_else(|| panic!("{file}: no end marker"));
    text[from..to].to_owned()
}

#[test]
fn the_node_and_integration_references_are_what_veil_docs_prints() {
    use veil_server::{Reference, reference};
    for (file, tag, which, command) in [
        ("nodes/README.md", "node-reference", Reference::Nodes, "veil docs nodes"),
        (
            "integrations/README.md",
            "integration-reference",
            Reference::Integrations,
            "veil docs integrations",
        ),
    ] {
        let generated = reference(which);
        assert!(generated.contains("| Field | Holds |"), "{command}: {generated}");
        assert_eq!(
            between_markers(file, tag),
            generated,
            "{file} is not what `{command}` prints: run it and paste its output between the markers"
        );
    }
}
