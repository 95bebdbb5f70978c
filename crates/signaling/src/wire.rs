//! The WebSocket JSON of `kvs-api.md` §13.5 (client → server) and §13.6 (server → client).
//!
//! Inbound member names are matched case-insensitively: the JS SDK sends `messagePayload`, the
//! C SDK `MessagePayload` (§13.5). Unknown members (the C SDK's `IceServerList`) are ignored.
//! Outbound keys are camelCase exactly as in §13.6; absent values are omitted, not `null`.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use kvs_core::ErrorKind;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::channel::Action;
use crate::error::{Error, Result};

/// Standard alphabet; padding optional, so an unpadded payload from a hand-rolled client is not
/// refused for a cosmetic reason. The payload is relayed verbatim either way.
const PAYLOAD_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Longest `correlationId` (§13.5, §15.1).
const MAX_CORRELATION_ID_LEN: usize = 256;

/// A client frame, parsed as far as the `correlationId`.
#[derive(Debug)]
pub(crate) struct Parsed {
    /// The `correlationId` to echo in a `STATUS_RESPONSE`, if the client gave a usable one.
    pub(crate) correlation_id: Option<String>,
    /// The rest of the message, or why it is refused.
    pub(crate) message: Result<ClientMessage>,
}

/// A valid client message (§13.5).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ClientMessage {
    pub(crate) action: Action,
    /// base64, relayed verbatim.
    pub(crate) payload: String,
    /// Non-empty `recipientClientId`, not yet validated: only the master's is used.
    pub(crate) recipient: Option<String>,
}

/// Parses a client text frame. `Err` means not even a `correlationId` could be read, so the
/// refusal is silent; refusals inside [`Parsed::message`] can be answered.
pub(crate) fn parse(text: &str, max_payload_len: usize) -> Result<Parsed> {
    let value: Value = serde_json::from_str(text).map_err(Error::MalformedJson)?;
    let Value::Object(obj) = value else {
        return Err(Error::NotAnObject);
    };
    // A correlationId that is not a string of 1..=256 characters is not echoed: it could be
    // anything, and a client that sent it cannot match a reply to it anyway.
    let correlation_id = match member(&obj, "correlationId")? {
        None => None,
        Some(id) if id.len() > MAX_CORRELATION_ID_LEN => return Err(Error::InvalidCorrelationId),
        Some(id) => Some(id.to_owned()),
    };
    let message = parse_message(&obj, correlation_id.as_deref(), max_payload_len);
    Ok(Parsed {
        correlation_id,
        message,
    })
}

fn parse_message(
    obj: &Map<String, Value>,
    correlation_id: Option<&str>,
    max_payload_len: usize,
) -> Result<ClientMessage> {
    if let Some(id) = correlation_id
        && !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(Error::InvalidCorrelationId);
    }
    let action = member(obj, "action")?.ok_or(Error::MissingMember { member: "action" })?;
    let action = Action::from_wire(action).ok_or_else(|| Error::unknown_action(action))?;
    let payload = member(obj, "messagePayload")?.ok_or(Error::MissingMember {
        member: "messagePayload",
    })?;
    if payload.len() > max_payload_len {
        return Err(Error::PayloadTooLarge {
            len: payload.len(),
            max: max_payload_len,
        });
    }
    PAYLOAD_BASE64
        .decode(payload)
        .map_err(Error::PayloadNotBase64)?;
    let recipient = member(obj, "recipientClientId")?.map(str::to_owned);
    Ok(ClientMessage {
        action,
        payload: payload.to_owned(),
        recipient,
    })
}

/// The string member `name`, matched case-insensitively. Absent, `null` and `""` are `None`: the
/// C SDK always sends `"RecipientClientId": ""` when it has no recipient (§13.5).
fn member<'a>(obj: &'a Map<String, Value>, name: &'static str) -> Result<Option<&'a str>> {
    let mut found = None;
    for (key, value) in obj {
        if key.eq_ignore_ascii_case(name) {
            if found.is_some() {
                return Err(Error::DuplicateMember { member: name });
            }
            found = Some(value);
        }
    }
    match found {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::MemberNotString { member: name }),
    }
}

/// A server → client message (§13.6).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServerMessage<'a> {
    message_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_payload: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sender_client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_response: Option<StatusResponse<'a>>,
}

/// The `statusResponse` object (§13.6). Only failures are reported, so no `success` member.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusResponse<'a> {
    correlation_id: &'a str,
    error_type: &'a str,
    /// A string, as KVS sends it; the C SDK parses the digits quoted or not.
    status_code: &'a str,
    description: &'a str,
}

fn render(msg: &ServerMessage<'_>) -> String {
    serde_json::to_string(msg).expect("a struct of strings always serializes")
}

fn bare(message_type: &str) -> String {
    render(&ServerMessage {
        message_type,
        message_payload: None,
        sender_client_id: None,
        status_response: None,
    })
}

/// A relayed `SDP_OFFER` / `SDP_ANSWER` / `ICE_CANDIDATE`. `sender` is the viewer's client id, or
/// `None` for messages from the master (§13.6 allows omitting it; the JS SDK maps a missing
/// sender to `"MASTER"`).
pub(crate) fn relay(action: Action, payload: &str, sender: Option<&str>) -> String {
    render(&ServerMessage {
        message_type: action.as_wire(),
        message_payload: Some(payload),
        sender_client_id: sender,
        status_response: None,
    })
}

/// `{"messageType":"GO_AWAY"}`: the server is going away; reconnect (§13.6).
pub fn go_away() -> String {
    bare("GO_AWAY")
}

/// `{"messageType":"RECONNECT_ICE_SERVER"}`.
pub(crate) fn reconnect_ice_server() -> String {
    bare("RECONNECT_ICE_SERVER")
}

/// A `STATUS_RESPONSE` for a refused message.
pub(crate) fn status_response(correlation_id: &str, error: &Error) -> String {
    let (error_type, status_code) = aws_error(error.kind());
    let description = error.to_string();
    render(&ServerMessage {
        message_type: "STATUS_RESPONSE",
        message_payload: None,
        sender_client_id: None,
        status_response: Some(StatusResponse {
            correlation_id,
            error_type,
            status_code,
            description: &description,
        }),
    })
}

/// AWS error code and HTTP status of a kind, the same as `openkvs-api`'s
/// `ApiError::code_and_status`. Duplicated because this crate sits below `api`; only the first
/// two arms are reachable from message refusals, hence the `_` arm.
// Belongs in openkvs-core so both edges share one table; see DESIGN.md, "Open questions".
fn aws_error(kind: ErrorKind) -> (&'static str, &'static str) {
    match kind {
        ErrorKind::InvalidArgument => ("InvalidArgumentException", "400"),
        ErrorKind::LimitExceeded => ("ClientLimitExceededException", "400"),
        ErrorKind::NotFound => ("ResourceNotFoundException", "404"),
        ErrorKind::NotAuthorized => ("NotAuthorizedException", "401"),
        ErrorKind::Unavailable => ("ServiceUnavailable", "503"),
        _ => ("InternalFailure", "500"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER_B64: &str = "eyJ0eXBlIjoib2ZmZXIiLCJzZHAiOiJ2PTAuLi4ifQ==";

    fn ok(action: Action, payload: &str, recipient: Option<&str>) -> Result<ClientMessage> {
        Ok(ClientMessage {
            action,
            payload: payload.to_owned(),
            recipient: recipient.map(str::to_owned),
        })
    }

    /// Inputs of §13.5 and their variations: (name, frame, want correlation id, want message).
    #[test]
    fn parse_table() {
        let js = format!(
            r#"{{"action":"SDP_OFFER","messagePayload":"{OFFER_B64}","recipientClientId":"viewer-1","correlationId":"abc.123"}}"#
        );
        let c_sdk = format!(
            "{{\n\t\"action\": \"SDP_OFFER\",\n\t\"RecipientClientId\": \"\",\n\t\"MessagePayload\": \"{OFFER_B64}\",\n\t\"CorrelationId\": \"c-1\",\n\t\"IceServerList\": [ {{\"Password\": \"p\", \"Ttl\": 287, \"Uris\": [\"turn:x\"], \"Username\": \"u\"}} ]\n}}"
        );
        let upper = r#"{"ACTION":"ICE_CANDIDATE","MESSAGEPAYLOAD":"e30=","RECIPIENTCLIENTID":"v"}"#;
        let unpadded = r#"{"action":"SDP_ANSWER","messagePayload":"e30"}"#;
        let cases: Vec<(&str, String, Option<&str>, Result<ClientMessage>)> = vec![
            ("js", js, Some("abc.123"), ok(Action::SdpOffer, OFFER_B64, Some("viewer-1"))),
            ("c sdk", c_sdk, Some("c-1"), ok(Action::SdpOffer, OFFER_B64, None)),
            ("upper case", upper.to_owned(), None, ok(Action::IceCandidate, "e30=", Some("v"))),
            ("unpadded base64", unpadded.to_owned(), None, ok(Action::SdpAnswer, "e30", None)),
            (
                "null members",
                r#"{"action":"SDP_ANSWER","messagePayload":"e30=","recipientClientId":null,"correlationId":null}"#
                    .to_owned(),
                None,
                ok(Action::SdpAnswer, "e30=", None),
            ),
            (
                "unknown action",
                r#"{"action":"GO_AWAY","messagePayload":"e30=","correlationId":"x"}"#.to_owned(),
                Some("x"),
                Err(Error::unknown_action("GO_AWAY")),
            ),
            (
                "lower-case action value",
                r#"{"action":"sdp_offer","messagePayload":"e30="}"#.to_owned(),
                None,
                Err(Error::unknown_action("sdp_offer")),
            ),
            (
                "missing action",
                r#"{"messagePayload":"e30=","correlationId":"x"}"#.to_owned(),
                Some("x"),
                Err(Error::MissingMember { member: "action" }),
            ),
            (
                "missing payload",
                r#"{"action":"SDP_OFFER","correlationId":"x"}"#.to_owned(),
                Some("x"),
                Err(Error::MissingMember { member: "messagePayload" }),
            ),
            (
                "empty payload",
                r#"{"action":"SDP_OFFER","messagePayload":""}"#.to_owned(),
                None,
                Err(Error::MissingMember { member: "messagePayload" }),
            ),
            (
                "payload not base64",
                r#"{"action":"SDP_OFFER","messagePayload":"not base64!"}"#.to_owned(),
                None,
                Err(Error::PayloadNotBase64(base64::DecodeError::InvalidByte(3, b' '))),
            ),
            (
                "payload a number",
                r#"{"action":"SDP_OFFER","messagePayload":5,"correlationId":"x"}"#.to_owned(),
                Some("x"),
                Err(Error::MemberNotString { member: "messagePayload" }),
            ),
            (
                "duplicate action",
                r#"{"action":"SDP_OFFER","Action":"SDP_ANSWER","messagePayload":"e30="}"#.to_owned(),
                None,
                Err(Error::DuplicateMember { member: "action" }),
            ),
            (
                "correlation id with a space",
                r#"{"action":"SDP_OFFER","messagePayload":"e30=","correlationId":"a b"}"#.to_owned(),
                Some("a b"),
                Err(Error::InvalidCorrelationId),
            ),
            (
                "payload too large",
                format!(r#"{{"action":"SDP_OFFER","messagePayload":"{}"}}"#, "A".repeat(12)),
                None,
                Err(Error::PayloadTooLarge { len: 12, max: 8 }),
            ),
        ];
        for (name, text, want_corr, want) in cases {
            let max = if name == "payload too large" {
                8
            } else {
                10 * 1024
            };
            let got = parse(&text, max).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got.correlation_id.as_deref(), want_corr, "{name}");
            // Errors hold sources without PartialEq; compare their debug form.
            assert_eq!(format!("{:?}", got.message), format!("{want:?}"), "{name}");
        }
    }

    /// Frames refused before a correlation id is known: never answered.
    #[test]
    fn parse_silent_refusals() {
        let long_id = format!(
            r#"{{"action":"SDP_OFFER","messagePayload":"e30=","correlationId":"{}"}}"#,
            "a".repeat(257)
        );
        let cases: Vec<(&str, String, &str)> = vec![
            ("not json", "{".to_owned(), "MalformedJson"),
            ("empty", String::new(), "MalformedJson"),
            ("array", "[1,2]".to_owned(), "NotAnObject"),
            ("string", r#""SDP_OFFER""#.to_owned(), "NotAnObject"),
            (
                "correlation id a number",
                r#"{"correlationId":5}"#.to_owned(),
                "MemberNotString",
            ),
            (
                "correlation id twice",
                r#"{"correlationId":"a","CORRELATIONID":"b"}"#.to_owned(),
                "DuplicateMember",
            ),
            ("correlation id too long", long_id, "InvalidCorrelationId"),
            ("deep nesting", "[".repeat(10_000), "MalformedJson"),
        ];
        for (name, text, want) in cases {
            let err = parse(&text, 10 * 1024).expect_err(name);
            assert!(format!("{err:?}").starts_with(want), "{name}: got {err:?}");
        }
    }

    /// The exact bytes of §13.6 (see also DESIGN.md "Wire format").
    #[test]
    fn render_table() {
        let cases: Vec<(&str, String, &str)> = vec![
            (
                "offer from a viewer",
                relay(Action::SdpOffer, "e30=", Some("viewer-1")),
                r#"{"messageType":"SDP_OFFER","messagePayload":"e30=","senderClientId":"viewer-1"}"#,
            ),
            (
                "answer from the master",
                relay(Action::SdpAnswer, "e30=", None),
                r#"{"messageType":"SDP_ANSWER","messagePayload":"e30="}"#,
            ),
            (
                "candidate",
                relay(Action::IceCandidate, "e30=", Some("v")),
                r#"{"messageType":"ICE_CANDIDATE","messagePayload":"e30=","senderClientId":"v"}"#,
            ),
            ("go away", go_away(), r#"{"messageType":"GO_AWAY"}"#),
            (
                "reconnect",
                reconnect_ice_server(),
                r#"{"messageType":"RECONNECT_ICE_SERVER"}"#,
            ),
            (
                "status",
                status_response("abc.123", &Error::MissingRecipient),
                r#"{"messageType":"STATUS_RESPONSE","statusResponse":{"correlationId":"abc.123","errorType":"InvalidArgumentException","statusCode":"400","description":"recipientClientId is required on messages from the master"}}"#,
            ),
            (
                "status, limit",
                status_response("x", &Error::PendingLimit { max: 3 }),
                r#"{"messageType":"STATUS_RESPONSE","statusResponse":{"correlationId":"x","errorType":"ClientLimitExceededException","statusCode":"400","description":"the recipient is not connected and the channel cannot hold more than 3 undelivered messages"}}"#,
            ),
        ];
        for (name, got, want) in cases {
            assert_eq!(got, want, "{name}");
        }
    }
}
