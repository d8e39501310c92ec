//! Reading a request's intent from its path and headers: which region, which status, or which admin action.
//!
//! Pure functions over borrowed strings, so routing allocates nothing and is easy to test. Everything here
//! is client-controlled, so nothing panics on odd input: unparsable parts fall back to a default or a 400.

use hyper::StatusCode;
use hyper::header::HeaderMap;

/// Path prefix selecting a region: `/region/<name>[/rest]`.
pub const REGION_PATH_PREFIX: &str = "/region/";
/// Header selecting a region when the path does not.
pub const REGION_HEADER: &str = "x-stampede-region";
/// Path prefix of the admin endpoints, which are never delayed, stalled or counted.
pub const ADMIN_PATH_PREFIX: &str = "/__stampede/";
/// Path prefix asking for a given status code: `/status/<code>`.
const STATUS_PATH_PREFIX: &str = "/status/";

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    /// The load path: delay, answer, count.
    Load {
        /// The region the request names, if any.
        region: Option<&'a str>,
        /// The status to answer with: 200, or the one asked for with `/status/<code>`; `None` when the
        /// code asked for cannot be sent (the caller answers 400).
        status: Option<StatusCode>,
    },
    /// `POST /v1/completions` or `/v1/chat/completions` (also under a region
    /// prefix): the OpenAI-compatible mock.
    Llm { region: Option<&'a str>, chat: bool },
    /// `/__stampede/stats`.
    Stats,
    /// `/__stampede/stall`.
    Stall,
    /// Any other `/__stampede/...` path.
    UnknownAdmin,
}

/// Routes a request by its path (without the query) and headers.
pub(crate) fn route<'a>(path: &'a str, headers: &'a HeaderMap) -> Route<'a> {
    if let Some(action) = path.strip_prefix(ADMIN_PATH_PREFIX) {
        return match action {
            "stats" => Route::Stats,
            "stall" => Route::Stall,
            _ => Route::UnknownAdmin,
        };
    }
    let (path_region, rest) = split_region(path);
    let region = path_region.or_else(|| header_region(headers));
    let rest = if path_region.is_some() { rest } else { path };
    match rest {
        "/v1/completions" => {
            return Route::Llm {
                region,
                chat: false,
            };
        }
        "/v1/chat/completions" => return Route::Llm { region, chat: true },
        _ => {}
    }
    Route::Load {
        region,
        status: status_of(rest),
    }
}

/// The region a request names, by path first, then by header.
pub(crate) fn region<'a>(path: &'a str, headers: &'a HeaderMap) -> Option<&'a str> {
    split_region(path).0.or_else(|| header_region(headers))
}

/// Splits `/region/<name>/rest` into `(Some(name), "/rest")`; any other path is `(None, path)`.
fn split_region(path: &str) -> (Option<&str>, &str) {
    let Some(after) = path.strip_prefix(REGION_PATH_PREFIX) else {
        return (None, path);
    };
    let (name, rest) = match after.find('/') {
        Some(i) => after.split_at(i),
        None => (after, ""),
    };
    ((!name.is_empty()).then_some(name), rest)
}

fn header_region(headers: &HeaderMap) -> Option<&str> {
    let name = headers.get(REGION_HEADER)?.to_str().ok()?.trim();
    (!name.is_empty()).then_some(name)
}

/// The status a load-path request asks for.
///
/// `/status/<code>` asks for `<code>` if it is a final status hyper can send (200..=599; hyper cannot send
/// a 1xx as the final response); any other code gives `None`, answered with 400 so the mistake is visible.
fn status_of(path: &str) -> Option<StatusCode> {
    let Some(after) = path.strip_prefix(STATUS_PATH_PREFIX) else {
        return Some(StatusCode::OK);
    };
    let code = after.split('/').next().unwrap_or_default();
    code.parse::<u16>()
        .ok()
        .filter(|c| (200..=599).contains(c))
        .and_then(|c| StatusCode::from_u16(c).ok())
}

/// The value of `key` in a query string such as `for=1s&x=y`, if present.
pub(crate) fn query_param<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?
        .split('&')
        .find_map(|pair| match pair.split_once('=') {
            Some((k, v)) if k == key => Some(v),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn load(region: Option<&str>, status: u16) -> Route<'_> {
        Route::Load {
            region,
            status: StatusCode::from_u16(status).ok(),
        }
    }

    fn bad_code() -> Route<'static> {
        Route::Load {
            region: None,
            status: None,
        }
    }

    #[test]
    fn routes_by_path_prefix_then_header() {
        let none = HeaderMap::new();
        let mut eu = HeaderMap::new();
        eu.insert(REGION_HEADER, HeaderValue::from_static(" eu-west "));

        assert_eq!(route("/", &none), load(None, 200));
        assert_eq!(route("/anything", &eu), load(Some("eu-west"), 200));
        assert_eq!(route("/region/us-east", &none), load(Some("us-east"), 200));
        assert_eq!(
            route("/region/us-east/a/b", &eu),
            load(Some("us-east"), 200)
        );
        assert_eq!(route("/region//x", &eu), load(Some("eu-west"), 200));
        assert_eq!(route("/region/", &none), load(None, 200));
        assert_eq!(route("/regionx/us", &none), load(None, 200));
        assert_eq!(region("/region/ap/status/503", &eu), Some("ap"));
    }

    #[test]
    fn ignores_unreadable_or_empty_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            REGION_HEADER,
            HeaderValue::from_bytes(b"\xff\xfe").expect("opaque bytes are allowed"),
        );
        assert_eq!(route("/", &h), load(None, 200));
        h.insert(REGION_HEADER, HeaderValue::from_static("  "));
        assert_eq!(route("/", &h), load(None, 200));
    }

    #[test]
    fn status_codes() {
        let none = HeaderMap::new();
        assert_eq!(route("/status/503", &none), load(None, 503));
        assert_eq!(route("/status/204/extra", &none), load(None, 204));
        assert_eq!(
            route("/region/us-east/status/404", &none),
            load(Some("us-east"), 404)
        );
        for bad in [
            "/status/",
            "/status/abc",
            "/status/99",
            "/status/100",
            "/status/600",
            "/status/65536",
        ] {
            assert_eq!(route(bad, &none), bad_code(), "{bad}");
        }
        assert_eq!(route("/status", &none), load(None, 200));
    }

    #[test]
    fn admin_paths() {
        let none = HeaderMap::new();
        assert_eq!(route("/__stampede/stats", &none), Route::Stats);
        assert_eq!(route("/__stampede/stall", &none), Route::Stall);
        assert_eq!(route("/__stampede/nope", &none), Route::UnknownAdmin);
        assert_eq!(
            route("/region/x/__stampede/stats", &none),
            load(Some("x"), 200)
        );
    }

    #[test]
    fn query_params() {
        assert_eq!(query_param(Some("for=1s"), "for"), Some("1s"));
        assert_eq!(
            query_param(Some("a=b&for=250ms&for=9s"), "for"),
            Some("250ms")
        );
        assert_eq!(query_param(Some("form=1s&for"), "for"), None);
        assert_eq!(query_param(None, "for"), None);
    }
}
