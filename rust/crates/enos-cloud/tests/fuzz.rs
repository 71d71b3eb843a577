//! Property tests of the EnOS protocol code (docs/fault-campaign.md, "Fuzzing"): a command the
//! cloud sends, on any topic with any payload, is a command, not one, or a refusal with its
//! code and words, never a panic; a well-formed one keeps its writes in the cloud's order;
//! replies and sub-device messages likewise; any samples pack into valid JSON messages that
//! carry every routable sample.
//!
//! Cases per property: `PROPTEST_CASES` (256 by default); long runs by hand, e.g.
//! `PROPTEST_CASES=100000 cargo test -p enos-cloud --test fuzz --release`.

use enos_batch::{BatchBuilder, DecodedBatch, Quality, Value};
use enos_cloud::command::{self, CommandKind};
use enos_cloud::telemetry::{self, Stream};
use enos_cloud::{subdevices, tsl, Reply};
use proptest::prelude::*;
use std::collections::HashMap;

/// A message for people: no Rust debug output in it (the input it echoes may hold anything,
/// so only what debug output of ours would add is looked for).
fn assert_words(s: &str) {
    assert!(!s.is_empty());
    for debug in ["Some(", "None", "Ok(", "Err("] {
        assert!(!s.contains(debug), "message with Rust debug output: {s}");
    }
}

fn json(depth: u32) -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        ".{0,10}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(depth, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::vec(("[a-z]{1,6}", inner), 0..4).prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A value a set command carries. Floats are those of set-points (serde_json, without its
/// `float_roundtrip` feature, reads some extreme ones such as -2.266800265876586e-235 one ulp
/// off: not a set-point anyone sends, noted in the fuzzing section).
fn set_value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        json(0),
        (any::<i32>(), 0u32..7).prop_map(|(m, k)| serde_json::json!(m as f64 / 10f64.powi(k as i32))),
        prop::collection::vec(any::<i64>().prop_map(serde_json::Value::from), 0..3).prop_map(serde_json::Value::from),
    ]
    .prop_filter("no extreme floats", |v| !matches!(v, serde_json::Value::Number(n) if n.is_f64() && n.as_f64().is_some_and(|f| f != 0.0 && !(1e-12..1e15).contains(&f.abs()))))
}

fn topic() -> impl Strategy<Value = String> {
    let rest = prop::sample::select(vec![
        "thing/service/measurepoint/set",
        "thing/service/measurepoint/set_reply",
        "thing/service/Reset",
        "thing/service/",
        "thing/service/a/b",
        "ota/device/upgrade",
        "thing/measurepoint/post/batch_reply",
        "x",
        "",
    ]);
    prop_oneof![("[a-z0-9]{0,4}", "[a-z0-9/]{0,4}", rest).prop_map(|(pk, dk, rest)| format!("/sys/{pk}/{dk}/{rest}")), ".{0,30}",]
}

/// A payload: an envelope of any id, method and params, random bytes, or cut JSON.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    let method = prop_oneof![
        Just(serde_json::json!("thing.service.measurepoint.set")),
        Just(serde_json::json!("thing.service.Reset")),
        Just(serde_json::json!("ota.device.upgrade")),
        json(1),
    ];
    let id = prop_oneof![".{0,70}".prop_map(serde_json::Value::from), json(1)];
    let envelope = (id, method, json(3), any::<bool>())
        .prop_map(|(id, method, params, with_params)| {
            let mut m = serde_json::Map::new();
            m.insert("id".into(), id);
            m.insert("method".into(), method);
            if with_params {
                m.insert("params".into(), params);
            }
            serde_json::to_vec(&m).expect("json")
        })
        .boxed();
    prop_oneof![
        3 => envelope.clone(),
        1 => (envelope, any::<usize>()).prop_map(|(mut b, cut)| {
            let n = b.len();
            b.truncate(cut % (n + 1));
            b
        }),
        1 => prop::collection::vec(any::<u8>(), 0..100),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// Any topic, any payload: a command, not a command topic, or a refusal with a reply topic,
    /// a code and words.
    #[test]
    fn any_command_is_parsed_or_refused(topic in topic(), payload in payload()) {
        let _ = command::id_of(&payload);
        match command::parse(&topic, &payload) {
            Ok(Some(c)) => {
                prop_assert_eq!(c.reply_topic, format!("{topic}_reply"));
                prop_assert!(c.id.len() <= 64);
                if let CommandKind::SetPoints(w) = &c.kind {
                    prop_assert!(!w.is_empty());
                }
            }
            Ok(None) => {}
            Err(m) => {
                assert_words(&m.message);
                prop_assert!(m.reply_topic.is_some() && m.code > 0);
            }
        }
    }

    /// A well-formed set command: the writes come out in the order the cloud wrote them.
    #[test]
    fn writes_keep_the_clouds_order(names in prop::collection::vec("[a-zA-Z_][a-zA-Z0-9_]{0,8}", 1..8), values in prop::collection::vec(set_value(), 8), id in "[0-9]{1,20}") {
        let mut names = names;
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(n.clone()));
        let params: Vec<String> = names.iter().zip(&values).map(|(n, v)| format!("{}:{}", serde_json::json!(n), v)).collect();
        let payload = format!(r#"{{"id":"{id}","method":"thing.service.measurepoint.set","params":{{{}}}}}"#, params.join(","));
        let c = command::parse("/sys/pk/dev/thing/service/measurepoint/set", payload.as_bytes()).expect("well-formed").expect("a command");
        let want: Vec<(String, serde_json::Value)> = names.iter().cloned().zip(values.iter().cloned()).collect();
        prop_assert_eq!(c.kind, CommandKind::SetPoints(want));
        prop_assert_eq!(c.id, id);
    }

    /// Replies, sub-device messages, device-model replies and sent telemetry: parsed or
    /// refused, never a panic.
    #[test]
    fn other_cloud_messages_are_parsed_or_refused(topic in prop_oneof![
            Just("/ext/session/pk/gw/combine/enable".to_string()), Just("/ext/session/pk/gw/combine/delete_reply".to_string()), ".{0,30}"],
        payload in payload(), data in json(3)) {
        let _ = Reply::parse(&payload);
        let _ = telemetry::rows(&payload);
        if let Some(Err((_, reply, code, words))) = subdevices::parse_downstream(&topic, &payload) {
            prop_assert!(reply.ends_with("_reply") && code > 0);
            assert_words(&words);
        }
        let r = Reply { id: "1".into(), code: 200, message: String::new(), data };
        if let Err(e) = tsl::model(&r) {
            assert_words(&e);
        }
    }

    /// Any samples pack into messages that are JSON, under the size limit unless one row alone
    /// is larger, and carry every sample of a device with keys (the others counted).
    #[test]
    fn any_samples_pack_into_json(samples in prop::collection::vec((0u8..3, "[a-z\"\\\\]{1,4}", 0u64..5, prop_oneof![
            any::<f64>().prop_map(Value::Float), any::<i64>().prop_map(Value::Int), ".{0,6}".prop_map(Value::Str), Just(Value::Null)], 0u8..7), 0..40),
        max_bytes in 64usize..2000) {
        let mut b = BatchBuilder::new();
        for (d, p, t, v, q) in &samples {
            b.push(&format!("d{d}"), p, *t, v.clone(), Quality::from_u8(*q).expect("0-6"));
        }
        let batch = DecodedBatch::decode(&b.finish()).expect("decodes");
        let keys: HashMap<String, Option<(String, String)>> =
            [("d0".to_string(), Some(("pk\"0".to_string(), "dk0".to_string()))), ("d1".to_string(), None)].into_iter().collect();
        let mut id = 0;
        let packed = telemetry::pack(&[batch], &keys, Stream::Resume, &mut || { id += 1; id }, max_bytes);
        let mut points = 0;
        for (m, n) in &packed.messages {
            let v: serde_json::Value = serde_json::from_slice(m).map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(m))))?;
            prop_assert!(m.len() <= max_bytes || v["params"].as_array().map(|a| a.len()) == Some(1));
            points += n;
        }
        prop_assert_eq!(points, samples.iter().filter(|s| s.0 != 2).count() as u64);
        prop_assert_eq!(packed.unroutable, samples.iter().filter(|s| s.0 == 2).count() as u64);
    }
}

/// Found by `any_samples_pack_into_json`: a row was added when the message plus the row plus
/// "]}" fit, forgetting the comma before it: a message could be one byte over the limit.
#[test]
fn a_full_message_is_not_one_byte_over_the_limit() {
    let mut b = BatchBuilder::new();
    b.push("d0", "p", 1, Value::Int(1), Quality::Good);
    b.push("d0", "p", 2, Value::Int(2), Quality::Good);
    let batch = DecodedBatch::decode(&b.finish()).unwrap();
    let keys: HashMap<String, Option<(String, String)>> =
        [("d0".to_string(), Some(("pk".to_string(), "dk".to_string())))].into_iter().collect();
    let one = telemetry::pack(std::slice::from_ref(&batch), &keys, Stream::Live, &mut || 1, usize::MAX);
    assert_eq!(one.messages.len(), 1, "both rows in one message");
    let limit = one.messages[0].0.len() - 1;
    let two = telemetry::pack(&[batch], &keys, Stream::Live, &mut || 1, limit);
    for (m, _) in &two.messages {
        assert!(m.len() <= limit, "a message of {} bytes under a limit of {limit}", m.len());
    }
}
