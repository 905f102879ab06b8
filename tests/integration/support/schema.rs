//! Every JSON document the suite sees is checked against the published
//! schemas in `docs/schema/`: `plan -o json`, `status -o json`, and each
//! line of a `--log-format json` log. The helpers that run the binary call
//! [`check_run`], so no test can print a JSON output the contract does not
//! describe.

use std::sync::OnceLock;

use jsonschema::Validator;

fn load(name: &str) -> Validator {
    let path = format!(
        "{}/docs/schema/{name}.schema.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::draft202012::new(&schema).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn validator(name: &'static str) -> &'static Validator {
    static PLAN: OnceLock<Validator> = OnceLock::new();
    static STATUS: OnceLock<Validator> = OnceLock::new();
    static LOG: OnceLock<Validator> = OnceLock::new();
    let cell = match name {
        "plan" => &PLAN,
        "status" => &STATUS,
        "log" => &LOG,
        _ => unreachable!("no schema {name}"),
    };
    cell.get_or_init(|| load(name))
}

/// Panics unless `text` is one JSON document valid against `schema`.
#[track_caller]
pub fn assert_valid(schema: &'static str, text: &str) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("not JSON ({e}), for schema {schema}:\n{text}"));
    let errors: Vec<String> = validator(schema)
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "invalid against {schema}.schema.json: {errors:#?}\n{text}"
    );
    doc
}

/// Checks every JSON log line of `stderr`: a line that starts with `{` is an
/// event and must be valid.
#[track_caller]
pub fn check_log(stderr: &str) {
    for line in stderr.lines().filter(|l| l.starts_with('{')) {
        assert_valid("log", line);
    }
}

/// Checks the outputs of one run of `pgtenant ARGS` with environment `env`:
/// its stdout when it asked for `-o json`, its stderr when it asked for JSON
/// logs.
#[track_caller]
pub fn check_run(args: &[&str], env: &[(&str, &str)], stdout: &str, stderr: &str) {
    let flag_value = |long: &str, short: Option<&str>| {
        args.windows(2)
            .find(|w| w[0] == long || Some(w[0]) == short)
            .map(|w| w[1])
            .or_else(|| {
                args.iter()
                    .find_map(|a| a.strip_prefix(long).and_then(|v| v.strip_prefix('=')))
            })
    };
    let json_logs = flag_value("--log-format", None) == Some("json")
        || env
            .iter()
            .any(|(k, v)| *k == "PGTENANT_LOG_FORMAT" && *v == "json");
    if json_logs {
        check_log(stderr);
    }
    if flag_value("--output", Some("-o")) == Some("json") && !stdout.is_empty() {
        let command = args.iter().find(|a| matches!(**a, "plan" | "status"));
        match command {
            Some(&"plan") => {
                assert_valid("plan", stdout);
            }
            Some(&"status") => {
                assert_valid("status", stdout);
            }
            _ => {}
        }
    }
}
