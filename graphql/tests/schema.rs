//! The API's contract: the checked-in SDL matches the code.

#[test]
fn checked_in_sdl_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let current = baton_graphql::sdl();
    if std::env::var_os("BATON_UPDATE_SDL").is_some() {
        std::fs::write(&path, &current).expect("write schema.graphql");
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == current,
        "graphql/schema.graphql is stale: run `BATON_UPDATE_SDL=1 cargo test -p baton-graphql --test schema` and commit it"
    );
}
