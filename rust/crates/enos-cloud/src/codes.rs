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

/// The reply code of a write that failed on the field side.
pub fn write_failed(f: Option<WriteFailure>) -> i64 {
    f.unwrap_or(WriteFailure::Internal).cloud_code() as i64
}
