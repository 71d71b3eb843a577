//! Golden tests: each directory of `test-files/` holds a collector configuration (`input.toml`,
//! maybe a `points.csv` it names) and `expected.txt`: the configuration as loaded (JSON) or the
//! error exactly as the service says it. `UPDATE_GOLDEN=1` rewrites the expected files; review
//! the diff before committing it.

use enos_collector_config::CollectorConfig;
use std::path::Path;

/// What loading the case gives, with the case's directory left out of the paths.
fn outcome(case: &Path) -> String {
    let shown = |s: String| s.replace(&format!("{}/", case.display()), "");
    match CollectorConfig::load(&case.join("input.toml")) {
        Ok(cfg) => format!("ok\n{}\n", serde_json::to_string_pretty(&cfg).expect("json")),
        Err(e) => format!("error\n{}\n", shown(e.to_string())),
    }
}

#[test]
fn every_case_loads_as_expected() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-files");
    let mut cases: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    cases.sort();
    assert!(cases.len() >= 6, "{}", root.display());
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut wrong = Vec::new();
    for case in &cases {
        let got = outcome(case);
        let file = case.join("expected.txt");
        if update {
            std::fs::write(&file, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&file).unwrap_or_default();
        if got != want {
            wrong.push(format!("== {}\n-- expected\n{want}-- got\n{got}", case.display()));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
