//! `pglite speedtest` runs every file on every target and reports them all.

use std::process::Command;

#[test]
fn speedtest_runs_each_file_in_process_and_through_the_server() {
    let suite = tempfile::tempdir().unwrap();
    let names = [
        "1", "2", "2.1", "3", "3.1", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14",
        "15", "16",
    ];
    for (i, name) in names.iter().enumerate() {
        // Later files use tables made by earlier ones, as in the real suite.
        let sql = if i == 0 {
            "CREATE TABLE s (n int); INSERT INTO s VALUES (0);".to_string()
        } else {
            format!("INSERT INTO s SELECT max(n) + 1 FROM s; SELECT {i}")
        };
        std::fs::write(suite.path().join(format!("benchmark{name}.sql")), sql).unwrap();
    }
    let json = suite.path().join("out.json");
    let out = Command::new(env!("CARGO_BIN_EXE_pglite"))
        .args(["speedtest", "--no-native", "--runs", "1", "--suite"])
        .arg(suite.path())
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for target in ["pglite (in-process)", "pglite serve (TCP)"] {
        let ms = report["targets"][target]["ms"].as_object().expect(target);
        assert_eq!(ms.len(), names.len(), "{target}");
        assert!(report["targets"][target]["geomean_ms"].as_f64().unwrap() > 0.0);
        assert_eq!(
            report["targets"][target]["runs_ms"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }
    // The server child's memory was read from /proc.
    assert!(report["rss_mb"]["serve_after_suite"].as_f64().unwrap() > 0.0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l.starts_with("geo")), "{stdout}");
}
