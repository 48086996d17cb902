//! Tidy: the workspace's house rules, checked on its source files and manifests (as
//! rust-analyzer's `tidy.rs`): every file says why it exists, the domain core cannot reach the
//! disk or the clock, crates depend only on what ARCHITECTURE.md allows, and no file outgrows
//! what a newcomer can hold in their head.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Longest source file, in lines.
const MAX_LINES: usize = 800;

/// The workspace crates each crate may depend on, and the outside crates it must not.
const EDGES: &[(&str, &[&str], &[&str])] = &[
    ("schema", &[], &["diesel", "actix", "actix-web", "tokio", "async-graphql", "tokio-tungstenite"]),
    ("graphql", &["baton-schema"], &["diesel", "actix-web", "actix"]),
    ("agent", &["baton-schema"], &["diesel", "actix-web", "actix", "async-graphql"]),
    ("web", &["baton-schema"], &["diesel", "actix-web", "actix", "tokio"]),
    ("server", &["baton-schema", "baton-graphql"], &[]),
    ("tests", &["baton-server", "baton-schema"], &[]),
    ("xtask", &[], &[]),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Every `.rs` file of the workspace's crates, relative to the root.
fn sources() -> Vec<String> {
    let root = root();
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = EDGES.iter().map(|(c, _, _)| root.join(c)).collect();
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() && !matches!(name.as_str(), "target" | "dist" | "node_modules") && !name.starts_with('.') {
                dirs.push(p);
            } else if name.ends_with(".rs") {
                out.push(p.strip_prefix(&root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_source_file_starts_by_saying_why_it_exists() {
    let files = sources();
    for known in ["schema/src/lib.rs", "server/src/main.rs", "agent/src/main.rs", "web/src/lib.rs"] {
        assert!(files.iter().any(|f| f == known), "{known} not among the files looked at");
    }
    let missing: Vec<String> =
        files.into_iter().filter(|f| !std::fs::read_to_string(root().join(f)).unwrap().starts_with("//!")).collect();
    assert!(missing.is_empty(), "files without a leading `//!` line: {missing:?}");
}

#[test]
fn the_domain_core_reads_neither_the_disk_nor_the_clock() {
    let forbidden = ["std::fs", "Utc::now", "Local::now", "SystemTime", "Instant::now"];
    let mut found = Vec::new();
    for f in sources().into_iter().filter(|f| f.starts_with("schema/src/")) {
        let text = std::fs::read_to_string(root().join(&f)).unwrap();
        for (i, line) in text.lines().enumerate() {
            if let Some(word) = forbidden.iter().find(|w| line.contains(*w)) {
                found.push(format!("{f}:{}: {word}", i + 1));
            }
        }
    }
    assert!(found.is_empty(), "schema/src must take time and data as arguments: {found:?}");
}

/// A crate's dependency names, normal and build (not dev: tests may use more).
fn dependencies(krate: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join(krate).join("Cargo.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    let mut names = Vec::new();
    for section in ["dependencies", "build-dependencies"] {
        if let Some(t) = manifest.get(section).and_then(|v| v.as_table()) {
            names.extend(t.keys().cloned());
        }
        // Platform-specific tables: [target.'cfg(..)'.dependencies].
        if let Some(targets) = manifest.get("target").and_then(|v| v.as_table()) {
            for t in targets.values().filter_map(|t| t.get(section)).filter_map(|t| t.as_table()) {
                names.extend(t.keys().cloned());
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

#[test]
fn crates_depend_only_on_what_the_architecture_allows() {
    let mut wrong: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (krate, allowed, banned) in EDGES {
        for dep in dependencies(krate) {
            let internal = dep.starts_with("baton-");
            if (internal && !allowed.contains(&dep.as_str())) || banned.contains(&dep.as_str()) {
                wrong.entry(krate).or_default().push(dep);
            }
        }
    }
    assert!(wrong.is_empty(), "dependencies ARCHITECTURE.md forbids: {wrong:?}");
}

#[test]
fn no_source_file_is_longer_than_a_newcomer_can_hold() {
    let mut over = Vec::new();
    for f in sources() {
        let lines = std::fs::read_to_string(root().join(&f)).unwrap().lines().count();
        if lines > MAX_LINES {
            over.push(format!("{f}: {lines} lines (at most {MAX_LINES})"));
        }
    }
    assert!(over.is_empty(), "{over:?}");
}
