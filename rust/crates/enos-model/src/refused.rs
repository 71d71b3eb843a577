//! Why a document sent over D-Bus or HTTP was refused before anything was done with it.

/// The field that is wrong (when one is) and why, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{reason}", field.map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct Refused {
    pub field: Option<&'static str>,
    pub reason: String,
}

impl Refused {
    pub fn field(field: &'static str, reason: impl Into<String>) -> Refused {
        Refused { field: Some(field), reason: reason.into() }
    }

    pub fn whole(reason: impl Into<String>) -> Refused {
        Refused { field: None, reason: reason.into() }
    }
}

/// For callers that hand the message on as text (HTTP answers, D-Bus errors).
impl From<Refused> for String {
    fn from(r: Refused) -> String {
        r.to_string()
    }
}
