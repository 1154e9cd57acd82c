//! Metric names in the deploy files: every PromQL expression of the
//! Grafana dashboards (`deploy/grafana/dashboards/*.json`) and of the
//! Prometheus rules (`deploy/prometheus/alerts.yml`), and the metric names
//! each selects. A small PromQL reader, not a parser: it knows enough
//! (strings, label matchers, ranges, functions, aggregation clauses,
//! Grafana variables) to list the selected series names, which is what
//! `observability.rs` checks against live `/metrics`.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use serde_json::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Every metric name in the dashboards and alert rules, with where it was
/// found.
pub fn referenced_metrics() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let dashboards = deploy_dir().join("grafana/dashboards");
    let mut files: Vec<_> = std::fs::read_dir(&dashboards)
        .expect("deploy/grafana/dashboards exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboard in {dashboards:?}");
    for file in files {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap())
            .unwrap_or_else(|e| panic!("{file:?} is not JSON: {e}"));
        let mut exprs = Vec::new();
        collect_exprs(&doc, &mut exprs);
        assert!(!exprs.is_empty(), "{file:?} has no PromQL");
        for expr in exprs {
            for name in metric_names(&expr) {
                out.entry(name)
                    .or_insert_with(|| format!("{file:?}: {expr}"));
            }
        }
    }
    let rules = std::fs::read_to_string(deploy_dir().join("prometheus/alerts.yml")).unwrap();
    let exprs = yaml_exprs(&rules);
    let alerts = rules.matches("- alert:").count();
    assert_eq!(exprs.len(), alerts, "every alert rule has one expr");
    for expr in exprs {
        for name in metric_names(&expr) {
            out.entry(name)
                .or_insert_with(|| format!("alerts.yml: {expr}"));
        }
    }
    out
}

/// Every `"expr"` string anywhere in a dashboard.
fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// The `expr:` values of a rules file: inline, or a `|`/`>` block of the
/// lines indented deeper than the key.
pub fn yaml_exprs(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(value) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let indent = line.len() - line.trim_start().len();
        let value = value.trim();
        if !value.starts_with('|') && !value.starts_with('>') {
            out.push(value.trim_matches(['"', '\'']).to_string());
            continue;
        }
        let block: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
            .map(|l| l.trim())
            .collect();
        out.push(block.join(" "));
    }
    out
}

/// PromQL words that are not metric names.
const KEYWORDS: [&str; 24] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "inf",
];

/// The metric names a PromQL expression selects: identifiers that are not
/// keywords, functions (followed by `(`), label names (inside `{}` or the
/// label list of `by`/`on`/…) or Grafana variables.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let text = strip_delimited(&strip_strings(expr));
    let chars: Vec<char> = text.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let mut skip_list = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '$' || c.is_ascii_digit() || c == '.' {
            // A variable or a number (1e3, 0.99): skip the whole word.
            i += 1;
            while i < chars.len() && (chars[i].is_alphanumeric() || "_.:{}".contains(chars[i])) {
                i += 1;
            }
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == '_' || c == ':') {
            if c == '(' && skip_list {
                // The label list after by/without/on/ignoring/group_*.
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                skip_list = false;
            }
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let next = chars[i..].iter().find(|c| !c.is_whitespace());
        let lower = word.to_ascii_lowercase();
        if [
            "by",
            "without",
            "on",
            "ignoring",
            "group_left",
            "group_right",
        ]
        .contains(&lower.as_str())
        {
            skip_list = true;
        } else if !KEYWORDS.contains(&lower.as_str()) && lower != "nan" && next != Some(&'(') {
            names.insert(word);
        }
    }
    names
}

/// `expr` without the contents of string literals.
fn strip_strings(expr: &str) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in expr.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                    out.push(c);
                }
            }
            None => {
                if c == '"' || c == '\'' || c == '`' {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out
}

/// `expr` without label matchers (`{…}`) and range/subquery brackets.
fn strip_delimited(expr: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for c in expr.chars() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}
