//! A reading's quality in words, for people: one home for the communication test and the live
//! page, so both say the same thing about the same reading.

use enos_batch::Quality;

/// What a quality means, without the detail of the failure.
pub fn words(q: Quality) -> &'static str {
    match q {
        Quality::Good => "good",
        Quality::DeviceException => "the device answered with an error",
        Quality::CommFailure => "no answer from the device",
        Quality::DecodeError => "the answer does not decode as configured",
        Quality::Offline => "the device is offline",
        Quality::Invalid => "the device marks the value invalid",
        Quality::Doubtful => "the device flags the value as doubtful",
    }
}

/// The words and, for a reading that is not good, the collector's reason after them.
pub fn with_reason(q: Quality, reason: Option<&str>) -> String {
    match reason {
        Some(e) if q != Quality::Good => format!("{}: {e}", words(q)),
        _ => words(q).to_string(),
    }
}
