//! How every service reads its configuration file and reports what is wrong in it.
//!
//! Validation collects every finding, each with its place: the key path for machines
//! (`device[2].point[5].bit`) and, for people, the device and point by their names.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", file.display())]
    Read { file: PathBuf, source: std::io::Error },
    /// `message` is the TOML parser's own, with its caret diagram on lines of their own.
    #[error("{}: {message}", file.display())]
    Syntax { file: PathBuf, message: String },
    #[error("{}: cannot be written as TOML: {message}", file.display())]
    Unwritable { file: PathBuf, message: String },
    #[error("{}", lines(file, findings))]
    Invalid { file: PathBuf, findings: Vec<Finding> },
    #[error("{}", lines(file, errors))]
    PointTable { file: PathBuf, errors: Vec<RowError> },
}

/// One line per problem, each naming the file.
fn lines<T: fmt::Display>(file: &Path, items: &[T]) -> String {
    items.iter().map(|i| format!("{}: {i}", file.display())).collect::<Vec<_>>().join("\n")
}

#[derive(Debug, Clone, PartialEq)]
/// One problem of a row of a table file (a CSV point table).
pub struct RowError {
    /// 1-based line in the file (the header is line 1).
    pub line: usize,
    pub column: String,
    pub reason: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.column.is_empty() {
            write!(f, "line {}: {}", self.line, self.reason)
        } else {
            write!(f, "line {}, column {:?}: {}", self.line, self.column, self.reason)
        }
    }
}

/// One problem of a configuration, with its place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The key path, e.g. `device[0].point[3].scale`.
    pub key: String,
    /// The device's id (as written), when the finding is inside a device.
    pub device: Option<String>,
    /// The point's name, when the finding is inside a point.
    pub point: Option<String>,
    /// The field inside the innermost device or point (`scale`, `serial.baud`), else the key.
    pub field: String,
    pub reason: String,
}

impl Finding {
    /// A finding at a top-level key (`cloud.uri`, `listen`).
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Finding {
        Scope::root().finding(key, reason)
    }

    /// The finding as the error of loading `file`.
    pub fn in_file(self, file: &Path) -> ConfigError {
        ConfigError::Invalid { file: file.to_owned(), findings: vec![self] }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.device, &self.point) {
            (Some(d), Some(p)) => write!(f, "device {d:?}, point {p:?}, {}: {}", self.field, self.reason),
            (Some(d), None) => write!(f, "device {d:?}, {}: {}", self.field, self.reason),
            (None, Some(p)) => write!(f, "point {p:?}, {}: {}", self.field, self.reason),
            (None, None) => write!(f, "{}: {}", self.key, self.reason),
        }
    }
}

/// Where the checks are: the key prefix and the device and point being checked. A device or
/// point is named by its id or name when it has a usable one, else by its index.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    prefix: String,
    device: Option<String>,
    point: Option<String>,
}

impl Scope {
    pub fn root() -> Scope {
        Scope::default()
    }

    fn entry(&self, table: &str, index: usize) -> String {
        if self.prefix.is_empty() {
            format!("{table}[{index}]")
        } else {
            format!("{}.{table}[{index}]", self.prefix)
        }
    }

    /// The `index`th `[[device]]`, with id `id`.
    pub fn device(&self, index: usize, id: &str) -> Scope {
        Scope { prefix: self.entry("device", index), device: usable(id), point: None }
    }

    /// The `index`th point of the current device, named `name`.
    pub fn point(&self, index: usize, name: &str) -> Scope {
        Scope { prefix: self.entry("point", index), device: self.device.clone(), point: usable(name) }
    }

    /// A finding at `field` of this scope.
    pub fn finding(&self, field: impl Into<String>, reason: impl Into<String>) -> Finding {
        let field = field.into();
        let key = if self.prefix.is_empty() { field.clone() } else { format!("{}.{field}", self.prefix) };
        // Without a name to show, the key path is the place.
        let named = self.device.is_some() || self.point.is_some();
        Finding {
            field: if named { field } else { key.clone() },
            key,
            device: self.device.clone(),
            point: self.point.clone(),
            reason: reason.into(),
        }
    }
}

/// A name worth showing (an empty or absurd one is shown by its index instead).
fn usable(name: &str) -> Option<String> {
    (!name.is_empty() && name.len() <= 64 && !name.chars().any(char::is_control)).then(|| name.to_owned())
}

/// Every finding of one configuration, in the order the checks found them.
#[derive(Debug, Default)]
pub struct Findings(pub Vec<Finding>);

impl Findings {
    pub fn add(&mut self, at: &Scope, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(at.finding(field, reason));
    }

    /// `Ok` without findings, else the error of loading `file` with all of them.
    pub fn into_result(self, file: &Path) -> Result<(), ConfigError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid { file: file.to_owned(), findings: self.0 })
        }
    }

    /// The first finding, for callers that need only to know whether it is valid.
    pub fn first(self) -> Result<(), Finding> {
        self.0.into_iter().next().map_or(Ok(()), Err)
    }
}

/// Parses TOML text into `T`; an error names the file and keeps the parser's line, column and
/// caret diagram on lines of their own. A key `T` does not know is a warning naming the file and
/// the key, not a refusal (see [`parse_toml_unknown`]).
pub fn parse_toml<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, ConfigError> {
    let (t, unknown) = parse_toml_unknown(file, text)?;
    for key in unknown {
        log::warn!("{}: {}", file.display(), unknown_key(&key));
    }
    Ok(t)
}

/// What a warning says about a key this release does not know.
pub fn unknown_key(key: &str) -> String {
    format!("{key}: not a setting this release knows, ignored (written by a newer release, or misspelt?)")
}

/// [`parse_toml`], and the keys of the file `T` does not know (`cloud.new_thing`,
/// `sub_device[1].extra`), in file order.
///
/// Unknown keys are not refused: after a rollback the older release reads a file the newer one
/// wrote, with every field it knows, and must start. A misspelt key still gets a line naming file
/// and key (log, `--check`); a misspelt *required* key is still refused, as missing.
pub fn parse_toml_unknown<T: DeserializeOwned>(file: &Path, text: &str) -> Result<(T, Vec<String>), ConfigError> {
    let syntax = |e: toml::de::Error| ConfigError::Syntax { file: file.to_owned(), message: e.to_string().trim_end().to_owned() };
    let de = toml::Deserializer::parse(text).map_err(syntax)?;
    let mut unknown = Vec::new();
    let t = serde_ignored::deserialize(de, |path| unknown.push(key_path(&path))).map_err(syntax)?;
    Ok((t, unknown))
}

/// `device[0].point[3].x` from serde_ignored's path.
fn key_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", key_path(parent)),
        P::Map { parent, key } => match key_path(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => key_path(parent),
    }
}

pub fn read_file(file: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(file).map_err(|source| ConfigError::Read { file: file.to_owned(), source })
}

/// Where a service looks for its config when none is given: the operator's copy in the
/// service's own directory on the data partition, then where a release before that layout kept
/// it, then the image's default.
pub fn default_config_path(service: &str) -> PathBuf {
    let candidates =
        [operator_config_path(service), format!("/data/enos/config/{service}.toml").into(), format!("/etc/enos/{service}.toml").into()];
    candidates.iter().find(|p| p.exists()).cloned().unwrap_or_else(|| candidates[2].clone())
}

/// The operator's copy, which only the service itself writes (`/data/enos/config/<service>/`,
/// owned by the service's user: the layer's tmpfiles).
pub fn operator_config_path(service: &str) -> PathBuf {
    format!("/data/enos/config/{service}/{service}.toml").into()
}

#[cfg(test)]
mod unknown_keys {
    #[derive(serde::Deserialize, Debug)]
    struct Inner {
        #[allow(dead_code)]
        a: u32,
    }
    #[derive(serde::Deserialize, Debug)]
    struct Outer {
        #[allow(dead_code)]
        inner: Inner,
        #[serde(default)]
        #[allow(dead_code)]
        list: Vec<Inner>,
    }

    #[test]
    fn unknown_keys_are_named_by_their_path_and_do_not_refuse() {
        let text = "future = 1\n[inner]\na = 1\nb = 2\n[[list]]\na = 1\n[[list]]\na = 2\nnew = \"x\"\n";
        let (_, unknown) = super::parse_toml_unknown::<Outer>(std::path::Path::new("x.toml"), text).unwrap();
        assert_eq!(unknown, vec!["future", "inner.b", "list[1].new"]);
        let e = super::parse_toml::<Outer>(std::path::Path::new("x.toml"), "[inner]\n").unwrap_err().to_string();
        assert!(e.starts_with("x.toml: ") && e.contains("missing field `a`"), "{e}");
    }
}
