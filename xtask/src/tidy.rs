//! Tidy: the workspace's house rules, checked on its source files and manifests without
//! building them (`cargo xtask tidy`, and part of `cargo test --workspace`; as rust-analyzer's
//! `tidy.rs`): every file says why it exists, the domain core cannot reach the disk or the
//! clock, the server reads the time only from its clock, crates depend only on what
//! ARCHITECTURE.md allows, modules and folders import one another one way only, no file outgrows
//! what a newcomer can hold in their head, and every test the threat model in SECURITY.md names
//! exists.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates' source directories whose modules the import checks look at.
const SOURCE_DIRS: [&str; 5] = ["server/src", "agent/src", "web/src", "graphql/src", "schema/src"];

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
fn manifest(krate: &str) -> toml::Table {
    toml::from_str(&std::fs::read_to_string(root().join(krate).join("Cargo.toml")).unwrap()).unwrap()
}

/// A crate's dependencies, with whether each is optional (behind a feature).
fn dependencies_of(krate: &str) -> Vec<(String, bool)> {
    let manifest = manifest(krate);
    let mut tables: Vec<&toml::Table> = Vec::new();
    for section in ["dependencies", "build-dependencies"] {
        tables.extend(manifest.get(section).and_then(|v| v.as_table()));
        // Platform-specific tables: [target.'cfg(..)'.dependencies].
        if let Some(targets) = manifest.get("target").and_then(|v| v.as_table()) {
            tables.extend(targets.values().filter_map(|t| t.get(section)).filter_map(|t| t.as_table()));
        }
    }
    let mut deps: Vec<(String, bool)> = tables
        .into_iter()
        .flat_map(|t| t.iter())
        .map(|(name, spec)| (name.clone(), spec.get("optional").and_then(|o| o.as_bool()).unwrap_or(false)))
        .collect();
    deps.sort();
    deps.dedup();
    deps
}

/// What a crate always depends on: its optional dependencies are checked apart.
fn dependencies(krate: &str) -> Vec<String> {
    dependencies_of(krate).into_iter().filter(|(_, optional)| !optional).map(|(name, _)| name).collect()
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

/// The ids' storage and API impls are the one place `baton-schema` may name diesel or
/// async-graphql: optional, off by default, and turned on by the server and graphql crates only.
#[test]
fn the_domain_cores_storage_and_api_features_stay_optional_and_server_side() {
    let optional: Vec<String> =
        dependencies_of("schema").into_iter().filter(|(_, optional)| *optional).map(|(name, _)| name).collect();
    assert_eq!(optional, ["async-graphql", "diesel"], "baton-schema's optional dependencies");
    let features = manifest("schema")["features"].as_table().unwrap().clone();
    assert!(features.get("default").is_none(), "baton-schema turns a feature on by default: {features:?}");
    for krate in ["agent", "web"] {
        let spec = &manifest(krate)["dependencies"]["baton-schema"];
        let on = spec.get("features").and_then(|f| f.as_array()).map_or(0, Vec::len);
        assert_eq!(on, 0, "{krate} turns on baton-schema features: {spec}");
    }
    let uses: Vec<String> = sources()
        .into_iter()
        .filter(|f| f.starts_with("schema/src/"))
        .filter(|f| {
            let text = std::fs::read_to_string(root().join(f)).unwrap();
            text.contains("diesel") || text.contains("async_graphql")
        })
        .collect();
    assert_eq!(uses, ["schema/src/ids.rs"], "files of baton-schema that name diesel or async-graphql");
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

/// A crate's modules (one per file, as paths from the crate root) and their files.
fn modules(src: &str) -> BTreeMap<Vec<String>, String> {
    let prefix = format!("{src}/");
    sources()
        .into_iter()
        .filter_map(|f| {
            let rel = f.strip_prefix(&prefix)?.strip_suffix(".rs")?.to_string();
            let mut path: Vec<String> = rel.split('/').map(str::to_string).collect();
            if matches!(path.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                path.pop();
            }
            Some((path, f))
        })
        .collect()
}

/// The module paths a file's text names after `crate::` or `super::` (from `base`), braces and all.
fn named_paths(text: &str, keyword: &str, base: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(keyword) {
        rest = &rest[at + keyword.len()..];
        let items: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
            // One level of `{a::b, c}`: each item's leading path.
            group.split('}').next().unwrap_or("").split(',').collect()
        } else {
            vec![rest]
        };
        for item in items {
            let path: String =
                item.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
            let mut full = base.to_vec();
            full.extend(path.split("::").filter(|p| !p.is_empty()).map(str::to_string));
            out.push(full);
        }
    }
    out
}

/// Whether following `edges` from `start` comes back to it.
fn reaches_itself(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>, start: &Vec<String>) -> bool {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&Vec<String>> = edges.get(start).into_iter().flatten().collect();
    while let Some(m) = todo.pop() {
        if m == start {
            return true;
        }
        if seen.insert(m) {
            todo.extend(edges.get(m).into_iter().flatten());
        }
    }
    false
}

#[test]
fn modules_import_one_another_one_way_only() {
    for src in SOURCE_DIRS {
        let mods = modules(src);
        let resolve =
            |path: &[String]| (0..=path.len()).rev().map(|i| path[..i].to_vec()).find(|p| mods.contains_key(p));
        let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
        for (module, file) in &mods {
            let text = std::fs::read_to_string(root().join(file)).unwrap();
            // Unit tests may reach anywhere.
            let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
            let parent = &module[..module.len().saturating_sub(1)];
            let named = named_paths(text, "crate::", &[]).into_iter().chain(named_paths(text, "super::", parent));
            for target in named.filter_map(|p| resolve(&p)) {
                // A module and its ancestors or descendants are one unit (the crate root's own
                // items: `modules_do_not_reach_back_into_their_crate_root`).
                if !target.starts_with(module) && !module.starts_with(&target) {
                    edges.entry(module.clone()).or_default().insert(target);
                }
            }
        }
        // Folders too: a top-level module and everything under it are one unit, and units import
        // one another one way only (the agent gateway sits above the hub and the driver).
        let mut folders: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
        for (from, tos) in &edges {
            for to in tos {
                let (a, b) = (from.iter().take(1).cloned().collect(), to.iter().take(1).cloned().collect::<Vec<_>>());
                if a != b && !b.is_empty() {
                    folders.entry(a).or_default().insert(b);
                }
            }
        }
        for start in folders.keys() {
            assert!(!reaches_itself(&folders, start), "{src}: the folder {} is in an import circle", start.join("::"));
        }
        // A circle: a module that reaches itself again.
        for start in mods.keys() {
            assert!(!reaches_itself(&edges, start), "{src}: {} is in an import circle", start.join("::"));
        }
    }
}

#[test]
fn modules_do_not_reach_back_into_their_crate_root() {
    // The root assembles its modules (routes, schema, app): a module that names the root's own
    // items would make a circle through it.
    for src in SOURCE_DIRS {
        let mods = modules(src);
        let Some(root_file) = mods.get(&Vec::new()) else { continue };
        let root_text = std::fs::read_to_string(root().join(root_file)).unwrap();
        let defined: Vec<&str> = root_text
            .lines()
            .filter_map(|l| {
                // Yew components are named by their attribute.
                if let Some(rest) = l.trim_start().strip_prefix("#[function_component(") {
                    return rest.split(')').next();
                }
                let l = l.trim_start().strip_prefix("pub ").unwrap_or(l.trim_start());
                ["struct ", "enum ", "fn ", "const ", "type ", "trait ", "static "]
                    .iter()
                    .find_map(|k| l.strip_prefix(k))
                    .map(|rest| rest.split(|c: char| !c.is_alphanumeric() && c != '_').next().unwrap_or(""))
            })
            .filter(|name| !name.is_empty())
            .collect();
        for (module, file) in mods.iter().filter(|(m, _)| !m.is_empty()) {
            let text = std::fs::read_to_string(root().join(file)).unwrap();
            for path in named_paths(&text, "crate::", &[]) {
                let first = path.first().map(String::as_str).unwrap_or("");
                assert!(!defined.contains(&first), "{src}: {} names the crate root's {first}", module.join("::"));
            }
        }
    }
}

/// Every id type is carried somewhere: an id type nothing uses is deleted, not kept "for later".
#[test]
fn every_id_type_is_used_outside_its_definition() {
    let ids = std::fs::read_to_string(root().join("schema/src/ids.rs")).unwrap();
    let defined: Vec<&str> = ids
        .split("id_type!(")
        .skip(1)
        .filter_map(|d| d.split(");").next())
        .filter_map(|d| d.split_whitespace().last())
        .collect();
    assert!(defined.len() >= 3 && defined.contains(&"RunId"), "id types read from ids.rs: {defined:?}");
    let elsewhere: String = sources()
        .into_iter()
        .filter(|f| f != "schema/src/ids.rs" && !f.starts_with("tests/"))
        .map(|f| std::fs::read_to_string(root().join(f)).unwrap())
        .collect();
    let unused: Vec<&&str> = defined.iter().filter(|d| !elsewhere.contains(**d)).collect();
    assert!(unused.is_empty(), "id types nothing uses: {unused:?}");
}

/// Every test SECURITY.md's threat model names exists where it says, so a renamed or deleted
/// test cannot leave a row that nothing checks.
#[test]
fn every_test_the_threat_model_names_exists() {
    let doc = std::fs::read_to_string(root().join("SECURITY.md")).unwrap();
    let table = doc.split("## Threat model").nth(1).unwrap().split("\n## ").next().unwrap();
    let mut missing = Vec::new();
    let mut rows = 0;
    for row in table.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| asset")) {
        rows += 1;
        let tests = row.rsplit('|').nth(1).unwrap();
        let mut file: Option<String> = None;
        for word in tests.split('`').skip(1).step_by(2) {
            if word.ends_with(".rs") {
                file = Some(if word.contains('/') { word.to_string() } else { format!("tests/tests/{word}") });
            } else if word.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
                let path = file.clone().unwrap_or_else(|| panic!("a test before its file in: {row}"));
                let source = std::fs::read_to_string(root().join(&path)).unwrap_or_default();
                if !source.contains(&format!("fn {word}(")) {
                    missing.push(format!("{path}: {word}"));
                }
            }
        }
    }
    assert!(rows >= 20, "the threat model has its rows ({rows})");
    assert!(missing.is_empty(), "named in SECURITY.md but not found:\n{}", missing.join("\n"));
}

/// The server reads the time only from its clock (`server/src/clock.rs`), which tests replace
/// with a simulated one: no `Utc::now()` in the server or the API outside tests, but for the
/// command line's one-shot commands and a server's start-up name.
#[test]
fn the_server_reads_the_time_only_from_its_clock() {
    const ALLOWED: [(&str, &str); 3] = [
        ("server/src/clock.rs", "the system clock itself"),
        ("server/src/main.rs", "one-shot commands, no server running"),
        ("server/src/lease.rs", "a server's name at start-up, when randomness fails"),
    ];
    let mut found = Vec::new();
    for file in sources().into_iter().filter(|f| f.starts_with("server/src/") || f.starts_with("graphql/src/")) {
        if ALLOWED.iter().any(|(a, _)| *a == file) {
            continue;
        }
        let text = std::fs::read_to_string(root().join(&file)).unwrap();
        // Unit tests (at the end of a file) may read the system clock.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (n, line) in code.lines().enumerate() {
            if line.contains("Utc::now()") && !line.trim_start().starts_with("//") {
                found.push(format!("{file}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "read the time from the server's clock instead:\n{}", found.join("\n"));
}
