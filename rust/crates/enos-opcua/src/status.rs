//! OPC UA status codes in words for people: the common ones said plainly, every one with the
//! specification's name and number (what a server's manual and log use).

use opcua::types::StatusCode;

/// "the server refused the user name or password (BadIdentityTokenRejected, 0x80210000)".
pub fn words(code: StatusCode) -> String {
    let name = code.sub_code().name();
    let plain = match name {
        "BadUserAccessDenied" => "this user may not do that on the server",
        "BadNotWritable" => "the node is not writable",
        "BadNotReadable" => "the node is not readable",
        "BadWriteNotSupported" => "the server does not support writing this node",
        "BadTypeMismatch" => "the server expects another data type for this node",
        "BadOutOfRange" => "the value is outside the range the server allows",
        "BadNodeIdUnknown" | "BadNodeIdInvalid" => "the server has no such node",
        "BadAttributeIdInvalid" => "the node has no value",
        "BadIdentityTokenRejected" | "BadIdentityTokenInvalid" | "BadUserSignatureInvalid" => {
            "the server refused the user name, password or user certificate"
        }
        "BadCertificateUntrusted" => "the certificate is not trusted",
        "BadSecurityChecksFailed" => "the secure channel failed its security checks (a certificate not trusted by the other side?)",
        "BadCommunicationError" | "BadConnectionClosed" | "BadNotConnected" => "the connection to the server is down",
        "BadServerHalted" | "BadShutdown" => "the server is shutting down",
        "BadTimeout" | "BadRequestTimeout" => "the server did not answer in time",
        "BadTooManySessions" => "the server has too many sessions",
        "BadSessionIdInvalid" | "BadSessionClosed" => "the server no longer knows the session",
        "BadWaitingForInitialData" => "the server has no value yet",
        "BadSensorFailure" => "the server reports a sensor failure",
        "BadDeviceFailure" => "the server reports a device failure",
        "BadOutOfService" => "the server reports the source out of service",
        "UncertainLastUsableValue" => "the server kept the last usable value (its source stopped updating)",
        "UncertainSubstituteValue" => "the server substituted the value",
        "UncertainSensorNotAccurate" => "the server says the sensor is not accurate",
        "UncertainEngineeringUnitsExceeded" => "the value is outside its engineering range",
        _ => "",
    };
    let named = format!("{name}, 0x{:08X}", code.bits());
    if plain.is_empty() {
        format!("the server says {named}")
    } else {
        format!("{plain} ({named})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_said_in_words_with_their_name() {
        assert_eq!(words(StatusCode::BadNotWritable), "the node is not writable (BadNotWritable, 0x803B0000)");
        assert_eq!(words(StatusCode::BadInvalidState), "the server says BadInvalidState, 0x80AF0000");
    }
}
