//! `cargo xtask`: the project's two commands and what they need.
//!
//! - `cargo xtask run [-- ARGS]`: builds everything (the wasm UI included) and starts `baton serve`.
//! - `cargo xtask test`: installs and starts what the tests need, then runs every check and test.
//! - `cargo xtask ui`: builds only the wasm UI into web/dist.
//!
//! The wasm-bindgen step uses the `wasm-bindgen-cli-support` library at the exact version of the
//! `wasm-bindgen` crate in Cargo.lock, so no CLI has to be installed or downloaded.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-unknown-unknown";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn step(what: &str) {
    eprintln!("\n==> {what}");
}

/// Runs a command in the workspace root, failing with its name when it fails.
fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.current_dir(root()).status().with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.current_dir(root()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // A parent cargo's settings must not leak into nested builds.
    for v in ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "CARGO_BUILD_TARGET", "RUSTC_WORKSPACE_WRAPPER"] {
        c.env_remove(v);
    }
    c
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_some_and(|s| s.trim() == "0")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Runs a command as root: directly when we are root, through `sudo -n` otherwise.
fn as_root(args: &[&str]) -> Command {
    if is_root() {
        let mut c = Command::new(args[0]);
        c.args(&args[1..]);
        c
    } else {
        let mut c = Command::new("sudo");
        c.arg("-n").args(args);
        c
    }
}

fn have(program: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {program}")).output().is_ok_and(|o| o.status.success())
}

fn apt_install(packages: &[&str]) -> Result<()> {
    static UPDATED: std::sync::Once = std::sync::Once::new();
    let mut update_result = Ok(());
    UPDATED.call_once(|| {
        update_result = run(as_root(&["apt-get", "update", "-qq"]).env("DEBIAN_FRONTEND", "noninteractive"))
    });
    update_result?;
    let mut args = vec!["apt-get", "install", "-y", "-qq", "--no-install-recommends"];
    args.extend_from_slice(packages);
    run(as_root(&args).env("DEBIAN_FRONTEND", "noninteractive"))
}

fn ensure_wasm_target() -> Result<()> {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if !installed.lines().any(|l| l.trim() == WASM_TARGET) {
        step("adding the wasm32-unknown-unknown target");
        run(Command::new("rustup").args(["target", "add", WASM_TARGET]))?;
    }
    Ok(())
}

/// Builds the web crate for wasm, runs wasm-bindgen on it, and writes web/dist.
fn build_ui() -> Result<()> {
    ensure_wasm_target()?;
    step("building the web UI (wasm)");
    // Without reference types, wasm-bindgen keeps JS values in a JS-side heap instead of an
    // externref table (no `table.fill`), which the binaryen Debian ships (108) can optimise.
    run(cargo()
        .args(["build", "--release", "--package", "baton-web", "--lib", "--target", WASM_TARGET])
        .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS", "-C target-feature=-reference-types"))?;
    let built = root().join("target").join(WASM_TARGET).join("release/baton_web.wasm");
    // The standard library was built with reference types and says so in `target_features`; our
    // code was not, so that section is dropped for wasm-bindgen to see what the code does.
    let wasm = root().join("target/wasm-ui/baton_web.wasm");
    std::fs::create_dir_all(root().join("target/wasm-ui"))?;
    let bytes = std::fs::read(&built).with_context(|| format!("reading {}", built.display()))?;
    std::fs::write(&wasm, without_custom_section(&bytes, "target_features")?)?;
    let dist = root().join("web/dist");
    std::fs::create_dir_all(&dist)?;
    let mut bindgen = wasm_bindgen_cli_support::Bindgen::new();
    bindgen
        .input_path(&wasm)
        .web(true)
        .map_err(|e| anyhow::anyhow!("wasm-bindgen: {e}"))?
        .omit_default_module_path(false)
        .typescript(false)
        .generate(&dist)
        .map_err(|e| anyhow::anyhow!("wasm-bindgen on {}: {e}", wasm.display()))?;
    for file in ["index.html", "start.js", "style.css"] {
        std::fs::copy(root().join("web/static").join(file), dist.join(file))
            .with_context(|| format!("copying {file}"))?;
    }
    let wasm_out = dist.join("baton_web_bg.wasm");
    let before = std::fs::metadata(&wasm_out).map(|m| m.len()).unwrap_or(0);
    optimise_wasm(&wasm_out)?;
    let size = std::fs::metadata(&wasm_out).map(|m| m.len()).unwrap_or(0);
    eprintln!("web UI written to {} (wasm {} KiB, {} KiB before wasm-opt)", dist.display(), size / 1024, before / 1024);
    Ok(())
}

/// A wasm module without the custom section `name` (the binary format: an 8-byte header, then
/// sections of an id byte and a LEB128 size; custom sections, id 0, start with their name).
fn without_custom_section(wasm: &[u8], name: &str) -> Result<Vec<u8>> {
    fn leb(b: &[u8], mut i: usize) -> Result<(usize, usize)> {
        let (mut value, mut shift) = (0usize, 0);
        loop {
            let byte = *b.get(i).context("truncated wasm")?;
            i += 1;
            value |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte < 0x80 {
                return Ok((value, i));
            }
            if shift > 28 {
                bail!("bad LEB128 in wasm");
            }
        }
    }
    if wasm.get(..4) != Some(b"\0asm") {
        bail!("not a wasm module");
    }
    let mut out = wasm[..8].to_vec();
    let mut i = 8;
    while i < wasm.len() {
        let (size, body) = leb(wasm, i + 1)?;
        let end = body + size;
        let section = wasm.get(i..end).context("truncated wasm section")?;
        let drop = wasm[i] == 0 && {
            let (len, at) = leb(wasm, body)?;
            wasm.get(at..at + len) == Some(name.as_bytes())
        };
        if !drop {
            out.extend_from_slice(section);
        }
        i = end;
    }
    Ok(out)
}

/// Shrinks the wasm with binaryen's `wasm-opt -Oz` (Debian's `binaryen`, installed when we may).
/// Without it the UI still works, only larger.
fn optimise_wasm(wasm: &Path) -> Result<()> {
    if !have("wasm-opt") && can_install() {
        step("installing binaryen (wasm-opt)");
        if let Err(e) = apt_install(&["binaryen"]) {
            eprintln!("warning: binaryen could not be installed ({e:#}); the UI is not passed through wasm-opt");
        }
    }
    if !have("wasm-opt") {
        eprintln!("warning: wasm-opt not found (sudo apt-get install binaryen); the UI is not passed through wasm-opt");
        return Ok(());
    }
    step("wasm-opt -Oz");
    let tmp = wasm.with_extension("opt.wasm");
    // The features rustc enables by default for wasm32-unknown-unknown (reference types are
    // turned off for this build, above).
    let optimised = run(Command::new("wasm-opt")
        .arg("-Oz")
        .args([
            "--enable-bulk-memory",
            "--enable-mutable-globals",
            "--enable-nontrapping-float-to-int",
            "--enable-sign-ext",
            "--enable-multivalue",
        ])
        .arg(wasm)
        .arg("-o")
        .arg(&tmp));
    if let Err(e) = optimised {
        // An older binaryen may not know what this rustc emits: keep the wasm as built.
        let _ = std::fs::remove_file(&tmp);
        eprintln!("warning: {e:#}; the UI is not passed through wasm-opt");
        return Ok(());
    }
    std::fs::rename(&tmp, wasm).with_context(|| format!("replacing {}", wasm.display()))?;
    Ok(())
}

/// PostgreSQL for the storage tests: installed and started when possible; returns the URL.
fn ensure_postgres() -> Result<Option<String>> {
    if let Ok(url) = std::env::var("BATON_TEST_DATABASE_URL") {
        return Ok(Some(url));
    }
    if !have("pg_ctlcluster") {
        step("installing PostgreSQL");
        apt_install(&["postgresql"])?;
    }
    let clusters = output(Command::new("pg_lsclusters").arg("-h")).unwrap_or_default();
    let Some(line) = clusters.lines().next() else {
        bail!("PostgreSQL is installed but has no cluster (pg_lsclusters)")
    };
    let cols: Vec<&str> = line.split_whitespace().collect();
    let (version, name, port, status) = (cols[0], cols[1], cols[2], cols[3]);
    if status != "online" {
        step(&format!("starting PostgreSQL {version}/{name} on port {port}"));
        run(&mut as_root(&["pg_ctlcluster", version, name, "start"]))?;
    }
    let sql = "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'baton') THEN \
               CREATE ROLE baton LOGIN CREATEDB PASSWORD 'baton'; END IF; END $$;";
    // No shell in between: `$$` must reach psql as it is.
    let mut psql = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "psql", "-q", "-p", port, "-c", sql]);
        c
    } else {
        let mut c = Command::new("sudo");
        c.args(["-n", "-u", "postgres", "psql", "-q", "-p", port, "-c", sql]);
        c
    };
    run(&mut psql).context("creating the test role in PostgreSQL")?;
    Ok(Some(format!("postgres://baton:baton@127.0.0.1:{port}/postgres")))
}

/// Chromium and chromedriver for the browser tests.
fn ensure_chromium() -> Result<()> {
    if !(have("chromium") && have("chromedriver")) {
        step("installing Chromium and chromedriver");
        apt_install(&["chromium", "chromium-driver"])?;
    }
    Ok(())
}

/// Python with aiosmtpd and trustme in `target/pyenv`, for the SMTP server the e-mail alert tests
/// start; returns its interpreter.
fn ensure_smtp_python() -> Result<std::path::PathBuf> {
    let venv = root().join("target/pyenv");
    let python = venv.join("bin/python");
    let ready =
        || Command::new(&python).args(["-c", "import aiosmtpd, trustme"]).output().is_ok_and(|o| o.status.success());
    if ready() {
        return Ok(python);
    }
    if !have("python3") && can_install() {
        apt_install(&["python3", "python3-venv"])?;
    }
    step("creating target/pyenv with aiosmtpd and trustme (the e-mail tests' SMTP server)");
    let made = run(Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv));
    if made.is_err() {
        if !can_install() {
            bail!("python3 -m venv failed; install Debian's python3-venv");
        }
        apt_install(&["python3-venv"])?;
        run(Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv))?;
    }
    run(Command::new(venv.join("bin/pip")).args(["install", "-q", "aiosmtpd==1.4.6", "trustme==1.2.1"]))?;
    if !ready() {
        bail!("{} cannot import aiosmtpd and trustme", python.display());
    }
    Ok(python)
}

/// libpq is built with OpenSSL (PostgreSQL over TLS), from the system's headers: installed
/// when missing and we may.
fn ensure_openssl_headers() -> Result<()> {
    let found = || Command::new("pkg-config").args(["--exists", "openssl"]).status().is_ok_and(|s| s.success());
    if found() {
        return Ok(());
    }
    if !can_install() {
        eprintln!("warning: OpenSSL's headers were not found (sudo apt-get install libssl-dev pkg-config); the build may fail");
        return Ok(());
    }
    step("installing OpenSSL's headers (libssl-dev, pkg-config)");
    apt_install(&["libssl-dev", "pkg-config"])
}

fn can_install() -> bool {
    is_root() || Command::new("sudo").args(["-n", "true"]).output().is_ok_and(|o| o.status.success())
}

fn test() -> Result<()> {
    let mut env: Vec<(String, String)> = Vec::new();
    if can_install() {
        match ensure_postgres() {
            Ok(Some(url)) => env.push(("BATON_TEST_DATABASE_URL".into(), url)),
            Ok(None) => {}
            Err(e) if !in_ci() => eprintln!("warning: PostgreSQL unavailable, its tests are skipped: {e:#}"),
            Err(e) => return Err(e),
        }
        ensure_chromium()?;
    } else if std::env::var("BATON_TEST_DATABASE_URL").is_err() {
        eprintln!(
            "warning: not root and no password-less sudo, so PostgreSQL and Chromium were not installed.\n\
             Install them with: sudo apt-get install postgresql chromium chromium-driver\n\
             PostgreSQL tests run when BATON_TEST_DATABASE_URL names a database server they may create databases on."
        );
    }
    match ensure_smtp_python() {
        Ok(python) => env.push(("BATON_TEST_PYTHON".into(), python.display().to_string())),
        Err(e) if !in_ci() => eprintln!("warning: no Python SMTP server, the e-mail tests are skipped: {e:#}"),
        Err(e) => return Err(e),
    }
    ensure_openssl_headers()?;
    tidy()?;
    build_ui()?;
    step("cargo fmt --check");
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    step("cargo clippy --workspace --all-targets -- -D warnings");
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    step("the domain core compiles for wasm32");
    run(cargo().args(["check", "--package", "baton-schema", "--target", WASM_TARGET]))?;
    step("building the binaries");
    run(cargo().args(["build", "--workspace", "--bins"]))?;
    step("cargo test --workspace");
    let mut t = cargo();
    t.args(["test", "--workspace"]);
    for (k, v) in &env {
        t.env(k, v);
    }
    run(&mut t)?;
    eprintln!("\nall checks passed");
    Ok(())
}

#[cfg(test)]
mod tidy;

/// The house rules (`tidy.rs`), checked without building the workspace's crates.
fn tidy() -> Result<()> {
    step("tidy: the house rules");
    run(cargo().args(["test", "--package", "xtask", "--", "tidy::"]))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ui") => build_ui(),
        Some("tidy") => tidy(),
        Some("test") => test(),
        Some("run") => {
            ensure_openssl_headers()?;
            build_ui()?;
            step("building and starting baton serve");
            let extra: Vec<&str> = args[1..].iter().map(String::as_str).filter(|a| *a != "--").collect();
            run(cargo()
                .args(["run", "--release", "--package", "baton-server", "--bin", "baton", "--", "serve"])
                .args(extra))
        }
        _ => {
            eprintln!("usage: cargo xtask <run [-- SERVE-ARGS] | test | tidy | ui>");
            std::process::exit(2);
        }
    }
}
