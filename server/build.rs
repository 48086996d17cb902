//! Makes the server re-embed the web UI whenever `cargo xtask` rebuilds it, and lets a fresh
//! clone compile before the UI has ever been built (rust-embed needs the folder to exist).

fn main() {
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/dist");
    if !dist.exists() {
        let _ = std::fs::create_dir_all(&dist);
    }
    println!("cargo:rerun-if-changed=../web/dist");
    for name in ["index.html", "baton_web.js", "baton_web_bg.wasm"] {
        println!("cargo:rerun-if-changed=../web/dist/{name}");
    }
}
