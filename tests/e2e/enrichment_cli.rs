//! Trying an enrichment plugin before running it: `weir plugin test` with grants given on the
//! command line (`--table NAME=FILE`, `--allow-http PREFIX`), and `weir dry-run` with the grants
//! of the pipeline file, both against a real API (api_server.rs) and a real CSV table.

use crate::api_server::ApiServer;
use crate::enrich_support::*;
use crate::support::*;
use serde_json::Value;

fn json_stdout(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn plugin_test_runs_a_plugin_with_the_grants_given_on_the_command_line() {
    let api = ApiServer::start();
    api.set_rate("USD", 0.5);
    let s = Scratch::new();
    s.write("customers.csv", customers_csv("gold"));
    s.write("in.jsonl", events(0..3, 2, usd));
    let config = format!(
        r#"{{"table": "customers", "rates_url": {:?}}}"#,
        api.rates_url()
    );
    let run = |grants: &[&str]| {
        weir()
            .args(["plugin", "test"])
            .arg(enrich_rs())
            .args(["--input", "in.jsonl", "--config", &config])
            .args(grants)
            .current_dir(s.dir.path())
            .output()
            .expect("weir plugin test")
    };
    let rates = api.rates_url();
    let out = run(&["--table", "customers=customers.csv", "--allow-http", &rates]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines = json_stdout(&out);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[1]["output"]["tier"], "gold1");
    assert_eq!(lines[1]["output"]["amount_eur"].as_f64(), Some(0.5));

    // Without the grants, nothing is reached: each event fails, naming what was denied.
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let lines = json_stdout(&out);
    assert!(
        lines.iter().all(|l| l["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("denied") || m.contains("no lookup tables"))),
        "{lines:?}"
    );
    assert_eq!(api.total(), 3, "the requests of the granted run only");

    // A mistake in a flag is named.
    let out = run(&["--table", "customers"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("NAME=FILE"), "{}", stderr(&out));
}

#[test]
fn dry_run_enriches_with_the_grants_of_the_pipeline_file() {
    let api = ApiServer::start();
    api.set_rate("USD", 2.0);
    let s = Scratch::new();
    s.write("customers.csv", customers_csv("silver"));
    s.write("sample.jsonl", events(0..2, 2, usd));
    let p = s.write(
        "p.toml",
        enrich_pipeline(
            "dry-enrich",
            false,
            "",
            &format!(
                "{}{}",
                file_table(""),
                plugin_toml(
                    &enrich_rs(),
                    &format!(
                        "{{ table = \"customers\", rates_url = {:?} }}",
                        api.rates_url()
                    ),
                    &["customers"],
                    Some(&format!("allow = [{:?}]", api.rates_url())),
                )
            ),
        ),
    );
    let out = weir()
        .arg("dry-run")
        .arg(&p)
        .args(["--input", "sample.jsonl"])
        .env("WEIR_STATE_DIR", s.state_dir())
        .current_dir(s.dir.path())
        .output()
        .expect("weir dry-run");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // What the sink would get, per event: the body enriched from the table and the API.
    let bodies: Vec<Value> = json_stdout(&out)
        .iter()
        .map(|l| serde_json::from_str(l["sink"]["body"].as_str().unwrap_or("null")).unwrap())
        .collect();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(bodies[1]["tier"], "silver1");
    assert_eq!(bodies[1]["amount_eur"].as_f64(), Some(2.0));
    assert_eq!(api.total(), 2);
}
