//! The run's requests, ready to send: each either serialized once (no
//! placeholders) or parsed into templates rendered per request into the
//! connection's reused buffers. Also which request, and which data row,
//! each send takes.

use super::http1::{Http1Error, PreparedRequest, RequestHead};
use crate::plan::{DataOrder, DataSet, LoadPlan};
use crate::schedule::SplitMix64;
use crate::template::{Template, TemplateError};
use std::time::Duration;

/// One request of the mix.
#[derive(Debug)]
pub(crate) struct ReadyRequest {
    form: Form,
    /// The request's own timeout, else the run's.
    pub timeout: Duration,
}

#[derive(Debug)]
enum Form {
    /// The same bytes every time.
    Fixed(PreparedRequest),
    Templated(TemplatedRequest),
}

#[derive(Debug)]
struct TemplatedRequest {
    method: String,
    target: Template,
    /// Host, User-Agent, Accept and literal headers, serialized once.
    fixed_headers: String,
    headers: Vec<(String, Template)>,
    body: Template,
    /// Send Content-Length even for an empty body (POST, PUT, PATCH).
    always_length: bool,
    expects_body: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RequestSetError {
    #[error(transparent)]
    Http1(#[from] Http1Error),
    #[error("request {request:?}: {field}: {source}")]
    Template {
        request: String,
        field: String,
        source: TemplateError,
    },
    #[error("request {request:?}: header {header}: data row {row} puts a line break in it")]
    LineBreak {
        request: String,
        header: String,
        row: usize,
    },
    #[error(
        "request {0:?}: its Content-Length is computed from the filled-in body; remove the header"
    )]
    TemplatedLength(String),
    #[error("the requests' weights must be positive numbers")]
    Weights,
    #[error("the data rows do not all have {0} values")]
    Ragged(usize),
}

/// All requests of a run, their weights and the data that fills them.
#[derive(Debug)]
pub(crate) struct RequestSet {
    requests: Vec<ReadyRequest>,
    /// Cumulative weights, the last one 1.
    cumulative: Vec<f64>,
    data: Option<DataSet>,
}

impl RequestSet {
    pub(crate) fn new(plan: &LoadPlan) -> Result<Self, RequestSetError> {
        let columns: &[String] = plan.data.as_ref().map_or(&[], |d| &d.columns);
        if let Some(data) = &plan.data {
            if data.rows.iter().any(|r| r.len() != data.columns.len()) {
                return Err(RequestSetError::Ragged(data.columns.len()));
            }
        }
        let total: f64 = plan.requests.iter().map(|r| r.weight).sum();
        if plan.requests.is_empty()
            || plan
                .requests
                .iter()
                .any(|r| !(r.weight.is_finite() && r.weight > 0.0))
        {
            return Err(RequestSetError::Weights);
        }
        let mut cumulative = Vec::with_capacity(plan.requests.len());
        let mut running = 0.0;
        let mut requests = Vec::with_capacity(plan.requests.len());
        for r in &plan.requests {
            running += r.weight / total;
            cumulative.push(running);
            let field = |field: &str| {
                let request = r.name.clone();
                let field = field.to_owned();
                move |source| RequestSetError::Template {
                    request,
                    field,
                    source,
                }
            };
            let target = Template::parse(&r.target, columns).map_err(field("target"))?;
            let body_text = String::from_utf8_lossy(&r.body);
            let body = if r.body.is_empty() {
                Template::parse("", columns).map_err(field("body"))?
            } else {
                Template::parse(&body_text, columns).map_err(field("body"))?
            };
            let mut headers = Vec::with_capacity(r.headers.len());
            for (name, value) in &r.headers {
                let value =
                    Template::parse(value, columns).map_err(field(&format!("header {name}")))?;
                // A value from the data must not end the header early.
                if let Some(data) = &plan.data {
                    for column in value.columns() {
                        if let Some(row) = data
                            .rows
                            .iter()
                            .position(|row| row[column].contains(['\r', '\n']))
                        {
                            return Err(RequestSetError::LineBreak {
                                request: r.name.clone(),
                                header: name.clone(),
                                row,
                            });
                        }
                    }
                }
                headers.push((name.clone(), value));
            }
            let templated = !target.is_literal()
                || !body.is_literal()
                || headers.iter().any(|(_, v)| !v.is_literal());
            let head = RequestHead::new(r)?;
            if templated && head.user_length() {
                return Err(RequestSetError::TemplatedLength(r.name.clone()));
            }
            let form = if templated {
                let mut fixed_headers = head.fixed_headers();
                // Literal headers are serialized now; templated ones per send.
                headers.retain(|(name, value)| {
                    if value.is_literal() {
                        let mut text = Vec::new();
                        value.render(&[], &mut text);
                        fixed_headers
                            .push_str(&format!("{name}: {}\r\n", String::from_utf8_lossy(&text)));
                        false
                    } else {
                        true
                    }
                });
                Form::Templated(TemplatedRequest {
                    method: head.method().to_owned(),
                    target,
                    fixed_headers,
                    headers,
                    body,
                    always_length: head.always_length(),
                    expects_body: head.expects_body(),
                })
            } else {
                Form::Fixed(PreparedRequest::new(r)?)
            };
            requests.push(ReadyRequest {
                form,
                timeout: r.timeout.unwrap_or(plan.timeout),
            });
        }
        Ok(Self {
            requests,
            cumulative,
            data: plan.data.clone(),
        })
    }

    pub(crate) fn get(&self, index: usize) -> &ReadyRequest {
        &self.requests[index.min(self.requests.len() - 1)]
    }

    /// The bytes to send for request `index` with data row `row`, rendered
    /// into `buf` (and `scratch`, for the body) when it is templated.
    pub(crate) fn bytes<'a>(
        &'a self,
        index: usize,
        row: Option<usize>,
        buf: &'a mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) -> &'a [u8] {
        match &self.get(index).form {
            Form::Fixed(prepared) => prepared.as_bytes(),
            Form::Templated(t) => {
                let values: &[String] = match (&self.data, row) {
                    (Some(data), Some(row)) => data.rows.get(row).map_or(&[], Vec::as_slice),
                    _ => &[],
                };
                scratch.clear();
                t.body.render(values, scratch);
                buf.clear();
                buf.extend_from_slice(t.method.as_bytes());
                buf.push(b' ');
                t.target.render_encoded(values, buf);
                buf.extend_from_slice(b" HTTP/1.1\r\n");
                buf.extend_from_slice(t.fixed_headers.as_bytes());
                for (name, value) in &t.headers {
                    buf.extend_from_slice(name.as_bytes());
                    buf.extend_from_slice(b": ");
                    value.render(values, buf);
                    buf.extend_from_slice(b"\r\n");
                }
                if !scratch.is_empty() || t.always_length {
                    buf.extend_from_slice(b"Content-Length: ");
                    buf.extend_from_slice(itoa(scratch.len()).as_bytes());
                    buf.extend_from_slice(b"\r\n");
                }
                buf.extend_from_slice(b"\r\n");
                buf.extend_from_slice(scratch);
                buf
            }
        }
    }

    /// The request is the same every send (no placeholders).
    pub(crate) fn is_fixed(&self, index: usize) -> bool {
        matches!(self.get(index).form, Form::Fixed(_))
    }

    pub(crate) fn expects_body(&self, index: usize) -> bool {
        match &self.get(index).form {
            Form::Fixed(p) => p.expects_body(),
            Form::Templated(t) => t.expects_body,
        }
    }

    /// Number of requests in the mix.
    pub(crate) fn len(&self) -> usize {
        self.requests.len()
    }

    fn rows(&self) -> usize {
        self.data.as_ref().map_or(0, |d| d.rows.len())
    }
}

/// A small decimal formatter that does not allocate.
fn itoa(mut n: usize) -> ItoaBuf {
    let mut buf = ItoaBuf {
        bytes: [0; 20],
        start: 20,
    };
    loop {
        buf.start -= 1;
        buf.bytes[buf.start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return buf;
        }
    }
}

struct ItoaBuf {
    bytes: [u8; 20],
    start: usize,
}

impl ItoaBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

/// One connection's choices: which request of the mix, which data row.
#[derive(Debug)]
pub(crate) struct Picker {
    rng: SplitMix64,
    /// Next row (sequential and once orders).
    next_row: usize,
    stride: usize,
}

impl Picker {
    /// For connection `connection` of `connections`: rows are taken in
    /// strides so the connections share the data without sharing state.
    pub(crate) fn new(seed: u64, connection: u32, connections: u32) -> Self {
        Self {
            rng: SplitMix64(seed ^ u64::from(connection).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            next_row: connection as usize,
            stride: connections.max(1) as usize,
        }
    }

    /// A request of the mix, drawn by weight.
    pub(crate) fn request(&mut self, set: &RequestSet) -> usize {
        if set.cumulative.len() <= 1 {
            return 0;
        }
        let u = self.rng.next_f64();
        set.cumulative
            .iter()
            .position(|&c| u < c)
            .unwrap_or(set.cumulative.len() - 1)
    }

    /// The data row for the next send: `Ok(None)` without data, `Err(())`
    /// when a `once` data set is used up for this connection.
    pub(crate) fn row(&mut self, set: &RequestSet) -> Result<Option<usize>, ()> {
        let Some(data) = &set.data else {
            return Ok(None);
        };
        let n = set.rows();
        if n == 0 {
            return Err(());
        }
        match data.order {
            DataOrder::Random => Ok(Some((self.rng.next_f64() * n as f64) as usize % n)),
            DataOrder::Sequential => {
                let row = self.next_row % n;
                self.next_row = row + self.stride;
                Ok(Some(row))
            }
            DataOrder::Once => {
                if self.next_row >= n {
                    return Err(());
                }
                let row = self.next_row;
                self.next_row += self.stride;
                Ok(Some(row))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::RequestTemplate;

    fn plan(requests: Vec<RequestTemplate>, data: Option<DataSet>) -> LoadPlan {
        LoadPlan {
            data,
            ..LoadPlan::for_tests(requests)
        }
    }

    fn request(name: &str, weight: f64, target: &str) -> RequestTemplate {
        let mut r = RequestTemplate::new(
            "POST",
            url::Url::parse("http://127.0.0.1:8080/").expect("url"),
        );
        r.name = name.into();
        r.weight = weight;
        r.target = target.into();
        r
    }

    fn data(order: DataOrder, rows: usize) -> DataSet {
        DataSet {
            columns: vec!["id".into(), "text".into()],
            rows: (0..rows)
                .map(|i| vec![i.to_string(), format!("row {i}")])
                .collect(),
            order,
        }
    }

    fn text(set: &RequestSet, index: usize, row: Option<usize>) -> String {
        let (mut buf, mut scratch) = (Vec::new(), Vec::new());
        String::from_utf8(set.bytes(index, row, &mut buf, &mut scratch).to_vec()).expect("utf-8")
    }

    #[test]
    fn renders_templates_with_a_correct_length() {
        let mut r = request("predict", 1.0, "/items/{{id}}?q={{text}}");
        r.headers = vec![
            ("x-id".into(), "{{id}}".into()),
            ("content-type".into(), "application/json".into()),
        ];
        r.body = br#"{"text": "{{text}}"}"#.to_vec();
        r.timeout = Some(Duration::from_millis(250));
        let set =
            RequestSet::new(&plan(vec![r], Some(data(DataOrder::Sequential, 3)))).expect("valid");
        let sent = text(&set, 0, Some(2));
        assert!(
            sent.starts_with("POST /items/2?q=row%202 HTTP/1.1\r\n"),
            "{sent}"
        );
        assert!(
            sent.contains("\r\ncontent-type: application/json\r\n"),
            "{sent}"
        );
        assert!(sent.contains("\r\nx-id: 2\r\n"), "{sent}");
        let body = r#"{"text": "row 2"}"#;
        assert!(
            sent.ends_with(&format!("Content-Length: {}\r\n\r\n{body}", body.len())),
            "{sent}"
        );
        assert_eq!(set.get(0).timeout, Duration::from_millis(250));
    }

    #[test]
    fn fixed_requests_are_serialized_once() {
        let set = RequestSet::new(&plan(vec![request("a", 1.0, "/a")], None)).expect("valid");
        let sent = text(&set, 0, None);
        assert!(sent.starts_with("POST /a HTTP/1.1\r\n"));
        assert!(sent.ends_with("Content-Length: 0\r\n\r\n"), "{sent}");
        assert_eq!(set.get(0).timeout, Duration::from_secs(3));
    }

    #[test]
    fn the_mix_follows_the_weights() {
        let set = RequestSet::new(&plan(
            vec![request("small", 80.0, "/s"), request("large", 20.0, "/l")],
            None,
        ))
        .expect("valid");
        let mut picker = Picker::new(1, 0, 1);
        let large = (0..20_000).filter(|_| picker.request(&set) == 1).count();
        // 4000 expected; the standard deviation is about 57.
        assert!((3_750..=4_250).contains(&large), "{large}");
    }

    #[test]
    fn rows_are_shared_out_by_order() {
        let set = |order| {
            RequestSet::new(&plan(
                vec![request("a", 1.0, "/{{id}}")],
                Some(data(order, 5)),
            ))
            .expect("valid")
        };
        // Sequential: two connections take alternate rows and wrap.
        let s = set(DataOrder::Sequential);
        let (mut a, mut b) = (Picker::new(0, 0, 2), Picker::new(0, 1, 2));
        let rows: Vec<_> = (0..4).map(|_| a.row(&s).expect("rows")).collect();
        assert_eq!(rows, [Some(0), Some(2), Some(4), Some(1)]);
        assert_eq!(b.row(&s), Ok(Some(1)));
        // Once: every row exactly once across the connections, then done.
        let s = set(DataOrder::Once);
        let mut seen = Vec::new();
        for c in 0..2 {
            let mut p = Picker::new(0, c, 2);
            while let Ok(Some(row)) = p.row(&s) {
                seen.push(row);
            }
        }
        seen.sort();
        assert_eq!(seen, [0, 1, 2, 3, 4]);
        // Random: in range.
        let s = set(DataOrder::Random);
        let mut p = Picker::new(9, 0, 1);
        assert!((0..100).all(|_| matches!(p.row(&s), Ok(Some(r)) if r < 5)));
    }

    #[test]
    fn refuses_header_injection_from_data() {
        let mut r = request("a", 1.0, "/");
        r.headers = vec![("x-text".into(), "{{text}}".into())];
        let mut d = data(DataOrder::Sequential, 2);
        d.rows[1][1] = "evil\r\nx-admin: 1".into();
        let e = RequestSet::new(&plan(vec![r], Some(d))).expect_err("line break");
        assert!(
            e.to_string().contains("data row 1 puts a line break"),
            "{e}"
        );
    }
}
