//! Every example scenario shipped in deploy/scenarios/ loads and validates.

use std::collections::BTreeMap;
use std::path::Path;

#[test]
fn shipped_examples_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/scenarios");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("deploy/scenarios exists") {
        let path = entry.expect("dir entry").path();
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "toml")
        ) {
            let scenario = stampede_coordinator::scenario::load_with_env(&path, BTreeMap::new())
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(scenario.total_agents() >= 1);
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "found only {checked} examples in {}",
        dir.display()
    );
}
