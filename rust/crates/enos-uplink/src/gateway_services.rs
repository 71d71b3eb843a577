//! Services of the gateway's own EnOS model: `thing.service.{identifier}` addressed to the gateway
//! itself (not to a sub-device). The EnOS protocol has no MQTT methods for resource packages,
//! remote configuration or log uploads; the gateway's model defines them as services
//! (docs/cloud-protocol.md lists each with its parameters), answered on the service's `_reply`
//! with a code, a message and output parameters.
//!
//! One home for the dispatch: a service is one line in [`call`] and a module of its own.

use crate::state::Shared;
use enos_cloud::codes;
use std::sync::Arc;

/// A service's answer: the reply's code and message, and its output parameters (`data`).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub code: i64,
    pub message: String,
    pub data: serde_json::Value,
}

impl Answer {
    pub fn ok(data: serde_json::Value) -> Answer {
        Answer { code: codes::OK, message: String::new(), data }
    }

    pub fn refused(code: i64, message: impl Into<String>) -> Answer {
        Answer { code, message: message.into(), data: serde_json::json!({}) }
    }
}

/// Runs the gateway service `service` with its input parameters (an object, `{}` when the cloud
/// sent none); `request` is the cloud's request id (audit lines and log uploads name it).
pub async fn call(shared: &Arc<Shared>, request: &str, service: &str, params: &serde_json::Value) -> Answer {
    match service {
        "getConfig" => crate::remote_config::get_config(shared).await,
        "setParameter" => crate::remote_config::set_parameter(shared, request, params).await,
        "uploadLogs" => crate::log_upload::upload(shared, request, params).await,
        "applyResourcePackage" => crate::packages::apply(shared, params).await,
        "getResourcePackages" => crate::packages::list(shared).await,
        _ => Answer::refused(codes::NO_HANDLER, format!("the gateway has no service \"{service}\"")),
    }
}
