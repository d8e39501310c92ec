//! `stampede validate`: checks scenario files without sending load; every
//! error names the file, the line, the field and why.

mod support;

use std::time::Duration;
use support::spawn;

#[test]
fn examples_pass_and_bad_files_fail_with_file_line_field_and_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = "target:\n  url: http://127.0.0.1:9/\nload:\n  model: open\n  rate: 100\n  duration: 2s\nregions:\n  - name: us-east\n  - name: eu-west\n    weight: 2\n";
    let cases = [
        (
            "rate: 100",
            "rate: 0",
            5,
            "load.rate",
            "must be a positive number",
        ),
        (
            "weight: 2",
            "weight: -2",
            10,
            "regions[1].weight",
            "must be a positive number",
        ),
        (
            "  duration: 2s\n",
            "  duration: 2s\n  surprise: 1\n",
            7,
            "load.surprise",
            "unknown field `surprise`",
        ),
        (
            "model: open",
            "model: sideways",
            4,
            "load.model",
            "expected `open` or `closed`",
        ),
    ];
    let good_path = dir.path().join("good.yaml");
    std::fs::write(&good_path, good).expect("write");
    let mut p = spawn(
        "validate good",
        &["validate", good_path.to_str().expect("utf-8")],
    );
    let (status, stderr) = p.wait(Duration::from_secs(30));
    assert!(status.success(), "{stderr}");

    for (i, (from, to, line, field, why)) in cases.into_iter().enumerate() {
        assert!(good.contains(from));
        let path = dir.path().join(format!("bad-{i}.yaml"));
        std::fs::write(&path, good.replacen(from, to, 1)).expect("write");
        let mut p = spawn("validate bad", &["validate", path.to_str().expect("utf-8")]);
        let (status, stderr) = p.wait(Duration::from_secs(30));
        assert!(!status.success(), "{field} must fail");
        let expected = format!("{}:{line}: {field}: ", path.display());
        assert!(
            stderr.contains(&expected),
            "expected {expected:?} in:\n{stderr}"
        );
        assert!(stderr.contains(why), "expected {why:?} in:\n{stderr}");
    }

    // Every shipped example validates.
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/scenarios");
    let files: Vec<String> = std::fs::read_dir(examples)
        .expect("examples")
        .filter_map(|e| e.ok().map(|e| e.path().display().to_string()))
        .filter(|p| p.ends_with(".yaml") || p.ends_with(".toml"))
        .collect();
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let mut p = spawn("validate examples", &args);
    let (status, stderr) = p.wait(Duration::from_secs(30));
    assert!(status.success(), "{stderr}");
}
