//! `requests:`: a weighted mix of named requests, each with its own method,
//! URL, headers, body and timeout, whose placeholders the `data:` rows fill.
//! Results are broken down per request name.

use super::data::Data;
use super::file::RequestSection;
use super::validate::FieldError;
use super::{Target, parse_duration};
use stampede_agent::template::Template;
use std::path::Path;
use std::time::Duration;

/// Largest body file.
pub const MAX_BODY_BYTES: u64 = 4 << 20;
/// Most requests in a mix.
pub const MAX_REQUESTS: usize = 256;

/// One request of the mix, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedRequest {
    pub name: String,
    pub weight: f64,
    pub method: String,
    pub url: RequestUrl,
    /// The target's headers with this request's on top.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Option<Duration>,
}

/// Where a request goes, as written; resolved per region against the
/// region's URL (so a mix follows `region_urls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestUrl {
    /// The region's URL itself.
    Base,
    /// `/path`: on the region URL's host.
    Absolute(String),
    /// `path`: under the region URL's path.
    Relative(String),
    /// `http://…`: this URL whatever the region.
    Full(String),
}

impl RequestUrl {
    /// The URL to send to, as text (placeholders kept).
    pub fn resolve(&self, base: &url::Url) -> String {
        match self {
            RequestUrl::Base => base.to_string(),
            RequestUrl::Full(url) => url.clone(),
            RequestUrl::Absolute(path) => format!("{}{path}", base.origin().ascii_serialization()),
            RequestUrl::Relative(path) => {
                let mut dir = base.clone();
                dir.set_query(None);
                dir.set_fragment(None);
                let mut text = dir.to_string();
                if !text.ends_with('/') {
                    // Like a browser: replace the last path segment.
                    if let Some(slash) = text.rfind('/') {
                        text.truncate(slash + 1);
                    }
                }
                text.push_str(path);
                text
            }
        }
    }
}

/// Request names become labels in reports and metrics: keep them tame.
fn check_name(field: &str, name: &str) -> Result<(), FieldError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err((
            field.to_owned(),
            format!(
                "{name:?} is not a valid request name (letters, digits, '-', '_', '.', at most 63)"
            ),
        ))
    }
}

/// Checks `requests:` against the target's defaults and the data columns.
pub fn requests(
    list: &[RequestSection],
    target: &Target,
    base: &Path,
    data: Option<&Data>,
) -> Result<Vec<NamedRequest>, FieldError> {
    if list.is_empty() {
        return Err(("requests".into(), "list at least one request".into()));
    }
    if list.len() > MAX_REQUESTS {
        return Err((
            "requests".into(),
            format!("{} requests; at most {MAX_REQUESTS}", list.len()),
        ));
    }
    let mut out: Vec<NamedRequest> = Vec::with_capacity(list.len());
    for (i, r) in list.iter().enumerate() {
        let at = |f: &str| format!("requests[{i}].{f}");
        check_name(&at("name"), &r.name)?;
        if out.iter().any(|x| x.name == r.name) {
            return Err((at("name"), format!("request {:?} is listed twice", r.name)));
        }
        let weight = r.weight.unwrap_or(1.0);
        if !(weight.is_finite() && weight > 0.0) {
            return Err((at("weight"), format!("{weight}: must be a positive number")));
        }
        let method = r.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err((at("method"), format!("{method:?} is not an HTTP method")));
        }
        let url = match r.url.as_deref().map(str::trim) {
            None | Some("") => RequestUrl::Base,
            Some(u) if u.starts_with("http://") => RequestUrl::Full(u.to_owned()),
            Some(u) if u.contains("://") => {
                return Err((
                    at("url"),
                    format!("{u:?}: only http:// URLs are supported so far"),
                ));
            }
            Some(u) if u.starts_with('/') => RequestUrl::Absolute(u.to_owned()),
            Some(u) => RequestUrl::Relative(u.to_owned()),
        };
        let mut headers = target.headers.clone();
        for (name, value) in &r.headers {
            let field = at(&format!("headers.{name}"));
            if name.is_empty() || name.bytes().any(|b| !b.is_ascii_graphic() || b == b':') {
                return Err((field, "is not a valid header name".into()));
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n') {
                return Err((field, "header values cannot contain line breaks".into()));
            }
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            headers.push((name.clone(), value.clone()));
        }
        let body = match (&r.body, &r.body_file) {
            (Some(_), Some(_)) => {
                return Err((
                    at("body_file"),
                    "give a body or a body_file, not both".into(),
                ));
            }
            (Some(body), None) => body.clone().into_bytes(),
            (None, Some(file)) => read_body(&at("body_file"), base, file)?,
            (None, None) => Vec::new(),
        };
        let timeout = match r.timeout.as_deref() {
            None => None,
            Some(text) => {
                let d = parse_duration(text).map_err(|why| (at("timeout"), why))?;
                if d.is_zero() {
                    return Err((at("timeout"), "must be longer than zero".into()));
                }
                Some(d)
            }
        };
        out.push(NamedRequest {
            name: r.name.clone(),
            weight,
            method,
            url,
            headers,
            body,
            timeout,
        });
    }
    for (i, r) in out.iter().enumerate() {
        check_templates(&format!("requests[{i}]"), r, data)?;
    }
    Ok(out)
}

/// The target's own request, as a one-request mix named `default`.
pub fn from_target(target: &Target) -> NamedRequest {
    NamedRequest {
        name: "default".into(),
        weight: 1.0,
        method: target.method.clone(),
        url: RequestUrl::Base,
        headers: target.headers.clone(),
        body: target.body.clone(),
        timeout: None,
    }
}

fn read_body(field: &str, base: &Path, file: &str) -> Result<Vec<u8>, FieldError> {
    let path = base.join(file);
    let size = std::fs::metadata(&path)
        .map_err(|e| (field.to_owned(), format!("{file}: cannot read: {e}")))?
        .len();
    if size > MAX_BODY_BYTES {
        return Err((
            field.to_owned(),
            format!(
                "{file} is {:.1} MiB; at most {} MiB",
                size as f64 / (1 << 20) as f64,
                MAX_BODY_BYTES >> 20
            ),
        ));
    }
    std::fs::read(&path).map_err(|e| (field.to_owned(), format!("{file}: cannot read: {e}")))
}

/// Every placeholder names a data column, and no data value can break a
/// header line. `field` names the request (`requests[1]`, or `target`).
pub fn check_templates(
    field: &str,
    r: &NamedRequest,
    data: Option<&Data>,
) -> Result<(), FieldError> {
    let columns: &[String] = data.map_or(&[], |d| &d.columns);
    let url_text = match &r.url {
        RequestUrl::Base => String::new(),
        RequestUrl::Absolute(u) | RequestUrl::Relative(u) | RequestUrl::Full(u) => u.clone(),
    };
    Template::parse(&url_text, columns).map_err(|e| (format!("{field}.url"), e.to_string()))?;
    if r.body.windows(2).any(|w| w == b"{{") {
        let text = String::from_utf8_lossy(&r.body);
        Template::parse(&text, columns).map_err(|e| (format!("{field}.body"), e.to_string()))?;
    }
    for (name, value) in &r.headers {
        let at = format!("{field}.headers.{name}");
        let t = Template::parse(value, columns).map_err(|e| (at.clone(), e.to_string()))?;
        if let Some(data) = data {
            for column in t.columns() {
                if let Some(row) = data
                    .rows
                    .iter()
                    .position(|row| row[column].contains(['\r', '\n']))
                {
                    return Err((
                        at,
                        format!(
                            "{}: row {} of column {} has a line break, which cannot go in a header",
                            data.file,
                            row + 1,
                            data.columns[column]
                        ),
                    ));
                }
            }
        }
        if name.eq_ignore_ascii_case("content-length")
            && (!t.is_literal() || r.body.windows(2).any(|w| w == b"{{"))
        {
            return Err((
                at,
                "Content-Length is computed from the filled-in body; remove it".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_resolve_against_the_region_url() {
        let base = url::Url::parse("http://h:8/api/v1/models?x=1").expect("url");
        assert_eq!(
            RequestUrl::Base.resolve(&base),
            "http://h:8/api/v1/models?x=1"
        );
        assert_eq!(
            RequestUrl::Absolute("/health".into()).resolve(&base),
            "http://h:8/health"
        );
        assert_eq!(
            RequestUrl::Relative("{{model}}:predict".into()).resolve(&base),
            "http://h:8/api/v1/{{model}}:predict"
        );
        let dir = url::Url::parse("http://h:8/api/").expect("url");
        assert_eq!(
            RequestUrl::Relative("predict".into()).resolve(&dir),
            "http://h:8/api/predict"
        );
        assert_eq!(
            RequestUrl::Full("http://other:9/x".into()).resolve(&base),
            "http://other:9/x"
        );
    }
}
