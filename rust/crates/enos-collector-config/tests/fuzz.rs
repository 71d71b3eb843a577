//! Property tests of the collector's configuration (docs/fault-campaign.md, "Fuzzing"): any
//! text, or a real configuration damaged line by line, loads or is refused in words (through
//! `enos_config::parse_toml`, the TOML reader of every service); any CSV table gives points or
//! errors naming line and column; points exported to CSV read back as they were; an OPC UA node
//! id reads back from its text.
//!
//! Cases per property: `PROPTEST_CASES` (256 by default); long runs by hand, e.g.
//! `PROPTEST_CASES=20000 cargo test -p enos-collector-config --test fuzz --release`.

use enos_collector_config::opcua::NodeRef;
use enos_collector_config::{points_csv, CollectorConfig, Protocol};
use proptest::prelude::*;
use std::path::Path;

/// A message for people: no Rust debug output in it (the input it echoes may hold anything,
/// so only what debug output of ours would add is looked for).
fn assert_words(s: &str) {
    assert!(!s.is_empty());
    for debug in ["Some(", "None", "Ok(", "Err("] {
        assert!(!s.contains(debug), "message with Rust debug output: {s}");
    }
}

/// The golden cases' configurations, the real files to damage.
fn golden() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-files");
    let mut cases: Vec<_> =
        std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path().join("input.toml")).filter(|p| p.exists()).collect();
    cases.sort();
    cases.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect()
}

/// A file where no point table can be found: loading reads none from disk.
const NOWHERE: &str = "/nonexistent/enos-fuzz/collector.toml";

/// What a value in a line can be replaced by.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("-1".to_string()),
        Just("0".to_string()),
        Just("65536".to_string()),
        Just("9223372036854775807".to_string()),
        Just("1e309".to_string()),
        Just("nan".to_string()),
        Just("\"\"".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("true".to_string()),
        Just("\"x\"".to_string()),
        "[ -~]{0,12}",
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    Drop(usize),
    Duplicate(usize),
    /// The value after `=` replaced.
    Value(usize, String),
    Line(usize, String),
    Cut(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::Drop),
        any::<usize>().prop_map(Edit::Duplicate),
        (any::<usize>(), token()).prop_map(|(i, t)| Edit::Value(i, t)),
        (any::<usize>(), "[ -~]{0,30}").prop_map(|(i, t)| Edit::Line(i, t)),
        any::<usize>().prop_map(Edit::Cut),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    for e in edits {
        if lines.is_empty() {
            break;
        }
        let n = lines.len();
        match e {
            Edit::Drop(i) => {
                lines.remove(i % n);
            }
            Edit::Duplicate(i) => lines.insert(i % n, lines[i % n].clone()),
            Edit::Value(i, t) => {
                if let Some((k, _)) = lines[i % n].split_once('=') {
                    lines[i % n] = format!("{k}= {t}");
                }
            }
            Edit::Line(i, t) => lines[i % n] = t.clone(),
            Edit::Cut(i) => {
                let l = &mut lines[i % n];
                let at = (0..=l.len()).filter(|c| l.is_char_boundary(*c)).nth(i % (l.len() + 1)).unwrap_or(0);
                l.truncate(at);
            }
        }
    }
    lines.join("\n")
}

fn protocol() -> impl Strategy<Value = Protocol> {
    prop::sample::select(vec![
        Protocol::ModbusTcp,
        Protocol::ModbusRtu,
        Protocol::Iec104,
        Protocol::Dlt645,
        Protocol::Dnp3,
        Protocol::Opcua,
    ])
}

/// A CSV table: the protocol's own columns (sometimes one unknown), cells that are right,
/// wrong or odd.
fn table() -> impl Strategy<Value = (Protocol, String)> {
    let cell = prop_oneof![
        Just(String::new()),
        Just("holding".to_string()),
        Just("4x".to_string()),
        Just("u16".to_string()),
        Just("f32".to_string()),
        Just("M_ME_NC_1".to_string()),
        Just("02010100".to_string()),
        Just("ns=2;s=X".to_string()),
        Just("yes".to_string()),
        Just("\"quoted, with comma\"".to_string()),
        Just("#comment".to_string()),
        (-70000i64..70000).prop_map(|n| n.to_string()),
        "[ -~]{0,8}",
    ];
    (protocol(), prop::collection::vec(prop::collection::vec(cell, 0..12), 0..8), any::<bool>()).prop_map(|(p, rows, extra)| {
        let spec = enos_collector_config::protocols::spec(p);
        let mut header: Vec<String> = spec.point_fields().iter().map(|f| f.key.to_string()).collect();
        if extra {
            header.push("colour".into());
        }
        let mut text = header.join(",");
        for r in rows {
            text.push('\n');
            text.push_str(&r.join(","));
        }
        (p, text)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// A real configuration damaged one to five times: loaded, or refused in words.
    #[test]
    fn damaged_configurations_load_or_say_why(case in 0usize..64, edits in prop::collection::vec(edit(), 1..6)) {
        let files = golden();
        let text = apply(&files[case % files.len()], &edits);
        if let Err(e) = CollectorConfig::from_str_at(Path::new(NOWHERE), &text) {
            assert_words(&e.to_string());
        }
    }

    /// Any text at all.
    #[test]
    fn any_text_loads_or_says_why(text in "[\\[\\]={}\",.#a-z0-9 \n_-]{0,200}") {
        if let Err(e) = CollectorConfig::from_str_at(Path::new(NOWHERE), &text) {
            assert_words(&e.to_string());
        }
    }

    /// Any CSV table: points, or errors each naming a line and saying why.
    #[test]
    fn any_table_gives_points_or_errors((p, text) in table()) {
        match points_csv::parse(p, &text) {
            Ok(points) => prop_assert!(points.iter().all(|v| v["name"].is_string())),
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                for e in errors {
                    assert_words(&e.reason);
                }
            }
        }
    }

    /// Points of a loaded configuration exported as CSV (the web center's export) read back
    /// as the same points, whatever their names and units (without spaces around them: the
    /// table reader trims its cells, so " P" comes back as "P"; see the fuzzing section).
    #[test]
    fn exported_points_read_back(points in prop::collection::vec(("[!-~]([ -~]{0,10}[!-~])?", "([!-~]([ -~]{0,4}[!-~])?)?", 0u16..1000, prop::sample::select(vec!["u16", "i32", "f32"]),
                                                                  prop::sample::select(vec![1.0, 0.1, -2.5])), 1..6)) {
        let mut text = "[[device]]\nid = \"d\"\nprotocol = \"modbus-tcp\"\naddress = \"127.0.0.1:502\"\n".to_string();
        let mut names = std::collections::HashSet::new();
        for (i, (name, unit, address, t, scale)) in points.iter().enumerate() {
            if !names.insert(name.clone()) {
                continue;
            }
            text.push_str(&format!(
                "[[device.point]]\nname = {}\nunit = {}\narea = \"holding\"\naddress = {}\ntype = \"{t}\"\nscale = {scale:?}\n",
                serde_json::json!(name), serde_json::json!(unit), address * 4 + i as u16 * 4000
            ));
        }
        let cfg = match CollectorConfig::from_str_at(Path::new(NOWHERE), &text) {
            Ok(c) => c,
            // a name the configuration refuses (a quote) is not exported
            Err(e) => { assert_words(&e.to_string()); return Ok(()) }
        };
        let d = &cfg.devices[0];
        let csv = points_csv::write(&d.proto);
        let back = points_csv::parse(d.protocol(), &csv).map_err(|e| TestCaseError::fail(format!("{e:?} reading\n{csv}")))?;
        prop_assert_eq!(back, d.proto.points_json(), "through\n{}", csv);
    }

    /// An OPC UA node id reads back from the text it shows as.
    #[test]
    fn node_ids_read_back_from_their_text(text in "(ns=[0-9]{1,5};|nsu=[a-z:/.]{1,12};)?(i=[0-9]{1,10}|s=[ -~]{1,12}|g=[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|b=[A-Za-z0-9+/]{4}|[ -~]{0,12})") {
        match NodeRef::parse(&text) {
            Ok(n) => prop_assert_eq!(NodeRef::parse(&n.to_string()), Ok(n)),
            Err(e) => assert_words(&e),
        }
    }
}

/// Seen while writing `exported_points_read_back`: a point whose name begins with '#' was exported as is,
/// and the table reader took its row for a comment: the point was gone after a re-import.
#[test]
fn a_point_named_with_a_hash_survives_export() {
    let text = "[[device]]\nid = \"d\"\nprotocol = \"modbus-tcp\"\naddress = \"127.0.0.1:502\"\n\
                [[device.point]]\nname = \"#1 feeder\"\narea = \"holding\"\naddress = 0\ntype = \"u16\"\n";
    let cfg = CollectorConfig::from_str_at(Path::new(NOWHERE), text).unwrap();
    let d = &cfg.devices[0];
    let back = points_csv::parse(d.protocol(), &points_csv::write(&d.proto)).unwrap();
    assert_eq!(back, d.proto.points_json());
}
