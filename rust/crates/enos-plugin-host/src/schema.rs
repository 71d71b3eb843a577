//! The subset of JSON Schema a plugin's settings are described with: an object of properties,
//! each a string, integer, number or boolean with `enum`, `minimum`/`maximum`, `maxLength`,
//! `default` and `description`; `required` and `additionalProperties: false`. Small on purpose:
//! the web center builds a form from it and the host checks settings with it before `init`.

use serde_json::{Map, Value};

#[derive(Debug, Clone, Default)]
pub struct Schema {
    props: Vec<Property>,
    required: Vec<String>,
    closed: bool,
}

#[derive(Debug, Clone)]
pub struct Property {
    pub name: String,
    pub kind: Kind,
    pub description: String,
    pub default: Option<Value>,
    choices: Vec<Value>,
    min: Option<f64>,
    max: Option<f64>,
    max_len: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Text,
    Integer,
    Number,
    Boolean,
}

impl Kind {
    fn words(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Integer => "a whole number",
            Kind::Number => "a number",
            Kind::Boolean => "true or false",
        }
    }
}

impl Schema {
    /// Takes any object.
    pub fn any() -> Schema {
        Schema::default()
    }

    pub fn parse(v: &Value) -> Result<Schema, String> {
        let o = v.as_object().ok_or("must be a table")?;
        if o.get("type").is_some_and(|t| t != "object") {
            return Err("type: the settings are an object".into());
        }
        let mut s = Schema { closed: o.get("additionalProperties") == Some(&Value::Bool(false)), ..Schema::default() };
        for (name, p) in o.get("properties").and_then(Value::as_object).into_iter().flatten() {
            s.props.push(Property::parse(name, p).map_err(|e| format!("properties.{name}: {e}"))?);
        }
        for r in o.get("required").and_then(Value::as_array).into_iter().flatten() {
            let r = r.as_str().ok_or("required: must list property names")?;
            if !s.props.iter().any(|p| p.name == r) {
                return Err(format!("required: \"{r}\" is not among the properties"));
            }
            s.required.push(r.to_string());
        }
        Ok(s)
    }

    pub fn properties(&self) -> &[Property] {
        &self.props
    }

    /// The settings with defaults filled in, or every finding, each naming the setting.
    pub fn check(&self, settings: &Value) -> Result<Value, Vec<String>> {
        let empty = Map::new();
        let given = match settings {
            Value::Null => &empty,
            Value::Object(o) => o,
            _ => return Err(vec!["settings: must be a table".into()]),
        };
        let mut out = Map::new();
        let mut findings = Vec::new();
        for (k, v) in given {
            match self.props.iter().find(|p| p.name == *k) {
                Some(p) => match p.check(v) {
                    Ok(()) => {
                        out.insert(k.clone(), v.clone());
                    }
                    Err(e) => findings.push(format!("settings.{k}: {e}")),
                },
                None if self.closed => {
                    let known: Vec<&str> = self.props.iter().map(|p| p.name.as_str()).collect();
                    findings.push(format!("settings.{k}: not a setting of this protocol (it has {})", known.join(", ")))
                }
                None => {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        for p in &self.props {
            if out.contains_key(&p.name) || given.contains_key(&p.name) {
                continue;
            }
            if self.required.contains(&p.name) {
                let what = if p.description.is_empty() { String::new() } else { format!(" ({})", p.description) };
                findings.push(format!("settings.{}: required{what}", p.name));
            } else if let Some(d) = &p.default {
                out.insert(p.name.clone(), d.clone());
            }
        }
        if findings.is_empty() {
            Ok(Value::Object(out))
        } else {
            Err(findings)
        }
    }
}

impl Property {
    fn parse(name: &str, v: &Value) -> Result<Property, String> {
        let kind = match v.get("type").and_then(Value::as_str) {
            Some("string") => Kind::Text,
            Some("integer") => Kind::Integer,
            Some("number") => Kind::Number,
            Some("boolean") => Kind::Boolean,
            Some(t) => return Err(format!("type \"{t}\" is not one of string, integer, number, boolean")),
            None => return Err("needs a type".into()),
        };
        let num = |k: &str| v.get(k).map(|x| x.as_f64().ok_or(format!("{k}: must be a number"))).transpose();
        let p = Property {
            name: name.into(),
            kind,
            description: v.get("description").and_then(Value::as_str).unwrap_or_default().into(),
            default: v.get("default").cloned(),
            choices: v.get("enum").and_then(Value::as_array).cloned().unwrap_or_default(),
            min: num("minimum")?,
            max: num("maximum")?,
            max_len: v.get("maxLength").and_then(Value::as_u64),
        };
        if let Some(d) = &p.default {
            p.check(d).map_err(|e| format!("default: {e}"))?;
        }
        Ok(p)
    }

    fn check(&self, v: &Value) -> Result<(), String> {
        let ok = match self.kind {
            Kind::Text => v.is_string(),
            Kind::Integer => v.is_i64() || v.is_u64(),
            Kind::Number => v.is_number(),
            Kind::Boolean => v.is_boolean(),
        };
        if !ok {
            return Err(format!("{v} is not {}", self.kind.words()));
        }
        if !self.choices.is_empty() && !self.choices.contains(v) {
            let c: Vec<String> = self.choices.iter().map(Value::to_string).collect();
            return Err(format!("{v} is not one of {}", c.join(", ")));
        }
        if let Some(x) = v.as_f64() {
            if let Some(min) = self.min.filter(|m| x < *m) {
                return Err(format!("{v} is below the minimum {min}"));
            }
            if let Some(max) = self.max.filter(|m| x > *m) {
                return Err(format!("{v} is above the maximum {max}"));
            }
        }
        if let (Some(s), Some(n)) = (v.as_str(), self.max_len) {
            if s.chars().count() as u64 > n {
                return Err(format!("longer than {n} characters"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_are_checked_and_defaults_filled_in() {
        let s = Schema::parse(&json!({
            "type": "object",
            "properties": {
                "timeout_ms": {"type": "integer", "minimum": 100, "default": 3000},
                "mode": {"type": "string", "enum": ["a", "b"]},
            },
            "required": ["mode"],
            "additionalProperties": false
        }))
        .unwrap();
        assert_eq!(s.check(&json!({"mode": "a"})).unwrap(), json!({"mode": "a", "timeout_ms": 3000}));
        let e = s.check(&json!({"timeout_ms": 50, "colour": 1})).unwrap_err();
        assert_eq!(
            e,
            [
                "settings.colour: not a setting of this protocol (it has mode, timeout_ms)",
                "settings.timeout_ms: 50 is below the minimum 100",
                "settings.mode: required",
            ]
        );
    }
}
