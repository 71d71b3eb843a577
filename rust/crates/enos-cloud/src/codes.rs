//! Reply codes the gateway answers cloud commands with (docs/cloud-protocol.md).
//! The field-side codes of a failed write (2001-2008, 2099) are `WriteFailure::cloud_code`.

use enos_model::device::WriteFailure;

pub const OK: i64 = 200;
/// The parameters are not what the method takes.
pub const BAD_PARAMS: i64 = 460;
/// The command is larger than the gateway takes.
pub const TOO_LARGE: i64 = 1008;
/// A service the gateway has no handler for.
pub const NO_HANDLER: i64 = 1101;
pub const NOT_JSON: i64 = 1220;
pub const EMPTY: i64 = 1251;
/// The method does not match the topic.
pub const METHOD_MISMATCH: i64 = 1260;
/// An update the gateway could not hand to its update agent.
pub const UPDATE_DECLINED: i64 = 2010;

/// Whether a code refusing a request of ours says the cloud cannot take it now rather than that
/// the request is wrong: too many requests (429), the cloud's own timeout (6205), a server error
/// (5xx). Telemetry refused so is sent again until it is taken, never given up (the cache's
/// bounds decide what waits); any other refusal counts towards `sender.max_attempts`.
pub fn is_transient(code: i64) -> bool {
    matches!(code, 429 | 6205 | 500..=599)
}

/// The reply code of a write that failed on the field side.
pub fn write_failed(f: Option<WriteFailure>) -> i64 {
    f.unwrap_or(WriteFailure::Internal).cloud_code() as i64
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_busy_or_failing_cloud_is_transient_a_wrong_request_is_not() {
        for c in [429, 500, 502, 503, 599, 6205] {
            assert!(super::is_transient(c), "{c}");
        }
        for c in [200, 400, 401, 402, 460, 600, 1008, 1009, 1220, 1251, 1260] {
            assert!(!super::is_transient(c), "{c}");
        }
    }
}
