//! What a gRPC status means for the report.

use crate::recorder::FailureClass;

/// The failure class of a non-OK status from the target: client-side codes
/// count as 4xx and server-side ones as 5xx, after the HTTP mapping that
/// `google.rpc.Code` documents (UNAVAILABLE is 503, INVALID_ARGUMENT 400,
/// …). The exact code is counted apart (`grpc_codes`).
pub(crate) fn failure_class(code: tonic::Code) -> FailureClass {
    use tonic::Code::*;
    match code {
        Cancelled | InvalidArgument | NotFound | AlreadyExists | PermissionDenied
        | ResourceExhausted | FailedPrecondition | Aborted | OutOfRange | Unauthenticated => {
            FailureClass::Status4xx
        }
        Ok | Unknown | DeadlineExceeded | Unimplemented | Internal | Unavailable | DataLoss => {
            FailureClass::Status5xx
        }
    }
}

/// A status the client made from a transport error (connection reset,
/// protocol error), as opposed to one the target sent in its trailers:
/// tonic keeps the error it came from as the source.
pub(crate) fn is_transport(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_side_codes_are_5xx_and_client_side_4xx() {
        assert_eq!(
            failure_class(tonic::Code::Unavailable),
            FailureClass::Status5xx
        );
        assert_eq!(
            failure_class(tonic::Code::InvalidArgument),
            FailureClass::Status4xx
        );
        assert!(!is_transport(&tonic::Status::unavailable("busy")));
    }
}
