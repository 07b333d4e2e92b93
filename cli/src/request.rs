//! Request bodies built from command-line values. Only the shape is checked here (a table
//! written `DEVICE/FRAMEWORK`, three weights); the server validates the meaning and says what is
//! wrong in its own words.

use serde_json::{Map, Value, json};

use crate::cli::{CampaignCreateArgs, SearchStartArgs, TokenCreateArgs};
use crate::error::{Error, Result};

/// An architecture as typed: JSON when it looks like JSON (`{"choices": [...]}` or a bare
/// choice list), otherwise text (hex or a reference name), which the server resolves.
pub fn arch(text: &str) -> Result<Value> {
    let t = text.trim();
    if t.starts_with('{') || t.starts_with('[') {
        let v: Value = serde_json::from_str(t)
            .map_err(|e| Error::Input(format!("architecture `{t}` is not valid JSON: {e}")))?;
        return Ok(match v {
            Value::Array(_) => json!({ "choices": v }),
            other => other,
        });
    }
    if t.is_empty() {
        return Err(Error::Input("an architecture is empty".into()));
    }
    Ok(Value::String(t.to_string()))
}

/// `DEVICE/FRAMEWORK`, split at the last `/`: frameworks never hold one, device names might.
pub fn table_ref(text: &str) -> Result<Value> {
    match text.rsplit_once('/') {
        Some((device, framework)) if !device.is_empty() && !framework.is_empty() => {
            Ok(json!({ "device": device, "framework": framework }))
        }
        _ => Err(Error::Input(format!(
            "--table `{text}`: expected DEVICE/FRAMEWORK, e.g. pixel-7/wgpu-fused"
        ))),
    }
}

/// `A,L,P` crowding weights.
pub fn weights(text: &str) -> Result<Value> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let bad = || {
        Error::Input(format!(
            "--weights `{text}`: expected three non-negative numbers ACCURACY,LATENCY,PARAMS, e.g. 2,2,1"
        ))
    };
    if parts.len() != 3 {
        return Err(bad());
    }
    let mut w = [0.0f64; 3];
    for (slot, p) in w.iter_mut().zip(&parts) {
        *slot = p.parse().map_err(|_| bad())?;
        if !slot.is_finite() || *slot < 0.0 {
            return Err(bad());
        }
    }
    Ok(json!({ "accuracy": w[0], "latency": w[1], "params": w[2] }))
}

/// `proxy`, an evaluator URL, or `samples:ID`.
pub fn accuracy(text: &str) -> Result<Value> {
    let t = text.trim();
    if t == "proxy" {
        Ok(json!({ "kind": "proxy" }))
    } else if t.starts_with("http://") || t.starts_with("https://") {
        Ok(json!({ "kind": "http", "url": t }))
    } else if let Some(id) = t.strip_prefix("samples:").filter(|id| !id.is_empty()) {
        Ok(json!({ "kind": "samples", "sample_set": id }))
    } else {
        Err(Error::Input(format!(
            "--accuracy `{t}`: expected `proxy`, an evaluator URL (http://...), or samples:SAMPLE-SET-ID"
        )))
    }
}

fn insert_some<T: Into<Value>>(m: &mut Map<String, Value>, key: &str, v: Option<T>) {
    if let Some(v) = v {
        m.insert(key.to_string(), v.into());
    }
}

pub fn search(a: &SearchStartArgs) -> Result<Value> {
    let tables = a
        .tables
        .iter()
        .map(|t| table_ref(t))
        .collect::<Result<Vec<_>>>()?;
    let mut body = Map::new();
    body.insert("space".into(), a.space.clone().into());
    body.insert("tables".into(), tables.into());
    body.insert("accuracy".into(), accuracy(&a.accuracy)?);
    body.insert("population".into(), a.population.into());
    body.insert("generations".into(), a.generations.into());
    body.insert("seed".into(), a.seed.into());
    if let Some(w) = &a.weights {
        body.insert("weights".into(), weights(w)?);
    }
    let mut latency = Map::new();
    insert_some(&mut latency, "combine", a.combine.clone());
    insert_some(&mut latency, "statistic", a.statistic.clone());
    if !latency.is_empty() {
        body.insert("latency".into(), latency.into());
    }
    let mut constraints = Map::new();
    insert_some(&mut constraints, "max_latency_ms", a.max_latency_ms);
    insert_some(&mut constraints, "max_params", a.max_params);
    insert_some(&mut constraints, "max_macs", a.max_macs);
    if !constraints.is_empty() {
        body.insert("constraints".into(), constraints.into());
    }
    Ok(body.into())
}

pub fn campaign(a: &CampaignCreateArgs) -> Value {
    let mut body = Map::new();
    body.insert("space".into(), a.space.clone().into());
    body.insert("device".into(), a.device.clone().into());
    if !a.frameworks.is_empty() {
        body.insert("frameworks".into(), a.frameworks.clone().into());
    }
    insert_some(&mut body, "batch_size", a.batch_size);
    if a.force {
        body.insert("force".into(), true.into());
    }
    if a.references || a.validation_random.is_some() {
        body.insert(
            "validation".into(),
            json!({ "references": a.references, "random": a.validation_random.unwrap_or(0) }),
        );
    }
    let mut protocol = Map::new();
    insert_some(&mut protocol, "min_runs", a.min_runs);
    insert_some(&mut protocol, "max_runs", a.max_runs);
    insert_some(&mut protocol, "warmup_runs", a.warmup_runs);
    if !protocol.is_empty() {
        body.insert("protocol".into(), protocol.into());
    }
    body.into()
}

pub fn token(a: &TokenCreateArgs) -> Value {
    let mut body = Map::new();
    body.insert("label".into(), a.label.clone().into());
    insert_some(&mut body, "max_uses", a.max_uses);
    insert_some(&mut body, "ttl_s", a.ttl_s);
    if !a.device_labels.is_empty() {
        body.insert("device_labels".into(), a.device_labels.clone().into());
    }
    body.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command, SearchCommand};
    use clap::Parser;

    #[test]
    fn architectures_in_every_form() {
        assert_eq!(arch("MoGA-A").unwrap(), json!("MoGA-A"));
        assert_eq!(arch(" 453969358533aa ").unwrap(), json!("453969358533aa"));
        assert_eq!(arch("[0,1,2]").unwrap(), json!({"choices": [0, 1, 2]}));
        assert_eq!(
            arch(r#"{"choices": [3]}"#).unwrap(),
            json!({"choices": [3]})
        );
        assert!(
            arch("{oops")
                .unwrap_err()
                .to_string()
                .contains("not valid JSON")
        );
        assert!(arch("").is_err());
    }

    #[test]
    fn tables_split_at_the_last_slash() {
        assert_eq!(
            table_ref("lab/pixel-7/wgpu-fused").unwrap(),
            json!({"device": "lab/pixel-7", "framework": "wgpu-fused"})
        );
        for bad in ["pixel", "/wgpu", "pixel/"] {
            assert!(
                table_ref(bad)
                    .unwrap_err()
                    .to_string()
                    .contains("DEVICE/FRAMEWORK")
            );
        }
    }

    #[test]
    fn weights_and_accuracy_sources() {
        assert_eq!(
            weights("2, 2,1").unwrap(),
            json!({"accuracy": 2.0, "latency": 2.0, "params": 1.0})
        );
        for bad in ["2,2", "a,b,c", "1,-1,1", "1,2,3,4", "nan,1,1"] {
            assert!(weights(bad).is_err(), "{bad}");
        }
        assert_eq!(accuracy("proxy").unwrap(), json!({"kind": "proxy"}));
        assert_eq!(
            accuracy("http://127.0.0.1:9/eval").unwrap(),
            json!({"kind": "http", "url": "http://127.0.0.1:9/eval"})
        );
        assert_eq!(
            accuracy("samples:abc").unwrap(),
            json!({"kind": "samples", "sample_set": "abc"})
        );
        assert!(accuracy("oracle").is_err());
        assert!(accuracy("samples:").is_err());
    }

    #[test]
    fn a_search_request_carries_only_what_was_given() {
        let cli = Cli::try_parse_from([
            "gpulut",
            "search",
            "start",
            "--table",
            "dev/wgpu-fused",
            "--population",
            "8",
            "--generations",
            "3",
            "--seed",
            "7",
            "--weights",
            "2,2,1",
            "--max-latency-ms",
            "12.5",
        ])
        .unwrap();
        let Command::Search(SearchCommand::Start(a)) = cli.command else {
            panic!()
        };
        insta::assert_json_snapshot!(search(&a).unwrap(), @r#"
        {
          "accuracy": {
            "kind": "proxy"
          },
          "constraints": {
            "max_latency_ms": 12.5
          },
          "generations": 3,
          "population": 8,
          "seed": 7,
          "space": "moga-mbv3",
          "tables": [
            {
              "device": "dev",
              "framework": "wgpu-fused"
            }
          ],
          "weights": {
            "accuracy": 2.0,
            "latency": 2.0,
            "params": 1.0
          }
        }
        "#);
    }

    #[test]
    fn a_campaign_request_with_validation_and_a_short_protocol() {
        let cli = Cli::try_parse_from([
            "gpulut",
            "campaigns",
            "create",
            "--device",
            "pixel-7",
            "--framework",
            "wgpu-fused",
            "--references",
            "--validation-random",
            "2",
            "--min-runs",
            "5",
            "--max-runs",
            "15",
        ])
        .unwrap();
        let Command::Campaigns(crate::cli::CampaignsCommand::Create(a)) = cli.command else {
            panic!()
        };
        insta::assert_json_snapshot!(campaign(&a), @r#"
        {
          "device": "pixel-7",
          "frameworks": [
            "wgpu-fused"
          ],
          "protocol": {
            "max_runs": 15,
            "min_runs": 5
          },
          "space": "moga-mbv3",
          "validation": {
            "random": 2,
            "references": true
          }
        }
        "#);
    }
}
