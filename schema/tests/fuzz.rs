//! Property tests (bounded, for CI) feeding the parsers what a hostile user or agent could send:
//! schedules, import documents, agent protocol frames, dependency expressions, placeholders in
//! commands and alert templates, and names. Whatever the input: no panic, no stack
//! overflow, and a refusal names the field it is about.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use baton_schema::agent::v1::parse_agent_frame;
use baton_schema::dependency::DependencyExpr;
use baton_schema::document::Document;
use baton_schema::names::Target;
use baton_schema::placeholder::{expand, expand_command, PlaceholderContext};
use baton_schema::schedule::{preview, Schedule, ScheduleDraft};
use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::Value;

/// JSON values of bounded depth and size, with keys the parsers know among random ones.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("type".to_string()),
        Just("kind".to_string()),
        Just("version".to_string()),
        Just("instances".to_string()),
        Just("name".to_string()),
        Just("tasks".to_string()),
        Just("groups".to_string()),
        Just("dependency".to_string()),
        Just("schedule".to_string()),
        Just("seq".to_string()),
        Just("run_id".to_string()),
        Just("event".to_string()),
        "[a-z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "[ -~]{0,24}".prop_map(Value::String),
        Just(Value::from(1)),
        Just(Value::String("hello".into())),
        Just(Value::String("event".into())),
        Just(Value::String("baton.definitions".into())),
    ];
    leaf.prop_recursive(6, 64, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn schedules_parse_or_are_refused(
        trigger in proptest::option::of("[0-9:, a-z]{0,20}"),
        frequency in proptest::option::of("[0-9:, a-z-]{0,20}"),
        cron in proptest::option::of("[0-9*/,\\- LW#?a-zA-Z]{0,30}"),
        days in proptest::option::of("[01 a-z]{0,16}"),
        timezone in prop_oneof![Just("UTC".to_string()), Just("Europe/London".to_string()), "[A-Za-z/_]{0,20}"],
    ) {
        let draft = ScheduleDraft { trigger_times: trigger, run_frequency: frequency, cron, days, timezone, calendar: None };
        match Schedule::parse(&draft) {
            Ok(s) => {
                let from = Utc.with_ymd_and_hms(2026, 3, 28, 0, 0, 0).unwrap();
                prop_assert!(preview(&s, None, from, 2).len() <= 2);
            }
            Err(errors) => prop_assert!(errors.0.iter().all(|e| !e.message.is_empty() && !e.rule.is_empty())),
        }
    }

    #[test]
    fn import_documents_parse_or_are_refused_with_a_path(doc in json_value(), text in "[ -~]{0,64}") {
        for parsed in [Document::from_value(doc.clone()), Document::from_json(&text), Document::from_json(&doc.to_string())] {
            match parsed {
                Ok(d) => {
                    if let Err(errors) = d.validate() {
                        prop_assert!(errors.0.iter().all(|e| !e.field.is_empty()));
                    }
                }
                Err(errors) => prop_assert!(errors.0.iter().all(|e| e.field.starts_with('$'))),
            }
        }
    }

    #[test]
    fn dependency_expressions_parse_or_are_refused(
        src in "[ -~]{0,80}",
        tokens in proptest::collection::vec(
            prop_oneof![Just("S:a"), Just("F:b"), Just("E:c"), Just("and"), Just("or"), Just("not"),
                        Just("("), Just(")"), Just(" "), Just("G:g"), Just("S:"), Just("x")],
            0..40,
        ),
    ) {
        for text in [src, tokens.concat(), tokens.join(" ")] {
            if let Ok(e) = DependencyExpr::parse(&text) {
                // What parses prints back to what parses the same.
                let again = DependencyExpr::parse(&e.to_string());
                prop_assert!(again.is_ok(), "{text:?} printed {e} which does not parse");
            }
        }
    }

    #[test]
    fn placeholders_expand_or_are_refused_naming_the_field(text in "([ -~]|\\$\\{|[ETPC]:|\\}){0,40}") {
        let values = std::collections::HashMap::from([("T:task_name".to_string(), "load".to_string())]);
        for ctx in [PlaceholderContext::Command, PlaceholderContext::Alert, PlaceholderContext::Header] {
            if let Err(e) = expand(&text, ctx, &values) {
                prop_assert!(!e.field.is_empty() && !e.rule.is_empty());
            }
        }
        if let Err(e) = expand_command(&text, &values) {
            prop_assert!(!e.field.is_empty() && !e.rule.is_empty());
        }
    }

    #[test]
    fn names_parse_or_are_refused(text in "[ -~]{0,300}") {
        if let Err(e) = Target::parse(&text) {
            prop_assert!(!e.rule.is_empty());
        }
    }

    #[test]
    fn agent_frames_parse_or_are_refused(frame in json_value(), text in "[ -~]{0,64}") {
        for t in [frame.to_string(), text] {
            if let Err(e) = parse_agent_frame(&t) {
                prop_assert!(!e.is_empty());
            }
        }
    }
}

#[test]
fn deep_json_is_an_error_not_a_crash() {
    let deep = format!("{}1{}", "[".repeat(200_000), "]".repeat(200_000));
    assert!(Document::from_json(&deep).is_err());
    assert!(parse_agent_frame(&deep).is_err());
}
