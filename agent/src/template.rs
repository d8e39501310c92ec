//! `{{column}}` placeholders in a request's target, header values and body,
//! filled from a data row.
//!
//! A template is parsed once into literal pieces and column references, so
//! rendering is a few copies into a reused buffer. Values are inserted as
//! they are, except in the request target, where they are percent-encoded
//! (a value with a space or `?` must not change the request line).

use std::fmt::Write;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    /// Index of a data column.
    Column(usize),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("`{{{{` without a closing `}}}}`")]
    Unclosed,
    #[error("empty placeholder `{{{{}}}}`")]
    Empty,
    #[error("unknown placeholder {{{{{name}}}}}: {known}")]
    Unknown { name: String, known: String },
}

impl Template {
    /// Parses `text`; every placeholder must name one of `columns`.
    pub fn parse(text: &str, columns: &[String]) -> Result<Self, TemplateError> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                pieces.push(Piece::Literal(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or(TemplateError::Unclosed)?;
            let name = after[..close].trim();
            if name.is_empty() {
                return Err(TemplateError::Empty);
            }
            let column =
                columns
                    .iter()
                    .position(|c| c == name)
                    .ok_or_else(|| TemplateError::Unknown {
                        name: name.to_owned(),
                        known: if columns.is_empty() {
                            "the scenario has no data file".to_owned()
                        } else {
                            format!("the data's columns are {}", columns.join(", "))
                        },
                    })?;
            pieces.push(Piece::Column(column));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Literal(rest.to_owned()));
        }
        Ok(Self { pieces })
    }

    /// True when the template has no placeholder.
    pub fn is_literal(&self) -> bool {
        self.pieces.iter().all(|p| matches!(p, Piece::Literal(_)))
    }

    /// The columns the template uses.
    pub fn columns(&self) -> impl Iterator<Item = usize> + '_ {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Column(c) => Some(*c),
            Piece::Literal(_) => None,
        })
    }

    /// Appends the template filled from `row` to `out`.
    pub fn render(&self, row: &[String], out: &mut Vec<u8>) {
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.extend_from_slice(text.as_bytes()),
                Piece::Column(c) => {
                    out.extend_from_slice(row.get(*c).map_or(&[][..], |v| v.as_bytes()))
                }
            }
        }
    }

    /// Like [`Template::render`], percent-encoding the values (for the
    /// request target).
    pub fn render_encoded(&self, row: &[String], out: &mut Vec<u8>) {
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.extend_from_slice(text.as_bytes()),
                Piece::Column(c) => {
                    for &b in row.get(*c).map_or(&[][..], |v| v.as_bytes()) {
                        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                            out.push(b);
                        } else {
                            let mut hex = String::with_capacity(3);
                            let _ = write!(hex, "%{b:02X}");
                            out.extend_from_slice(hex.as_bytes());
                        }
                    }
                }
            }
        }
    }
}

/// `text` without its `{{…}}` placeholders (to check the literal parts).
pub fn outside_placeholders(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        match rest[open..].find("}}") {
            Some(close) => rest = &rest[open + close + 2..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Vec<String> {
        vec!["prompt".into(), "id".into()]
    }

    #[test]
    fn fills_placeholders_from_a_row() {
        let t = Template::parse(r#"{"id": {{id}}, "p": "{{ prompt }}"}"#, &columns()).expect("ok");
        assert!(!t.is_literal());
        assert_eq!(t.columns().collect::<Vec<_>>(), vec![1, 0]);
        let mut out = Vec::new();
        t.render(&["hello world".into(), "7".into()], &mut out);
        assert_eq!(out, br#"{"id": 7, "p": "hello world"}"#);
    }

    #[test]
    fn encodes_values_in_the_target() {
        let t = Template::parse("/search?q={{prompt}}&n={{id}}", &columns()).expect("ok");
        let mut out = Vec::new();
        t.render_encoded(&["a b/c?".into(), "1".into()], &mut out);
        assert_eq!(out, b"/search?q=a%20b%2Fc%3F&n=1");
    }

    #[test]
    fn literal_text_stays_as_is() {
        let t = Template::parse("plain {single} braces", &[]).expect("ok");
        assert!(t.is_literal());
        let mut out = Vec::new();
        t.render(&[], &mut out);
        assert_eq!(out, b"plain {single} braces");
    }

    #[test]
    fn strips_placeholders() {
        assert_eq!(outside_placeholders("/a/{{ id }}/b?q={{x}}"), "/a//b?q=");
    }

    #[test]
    fn refuses_bad_placeholders() {
        assert_eq!(
            Template::parse("{{id", &columns()),
            Err(TemplateError::Unclosed)
        );
        assert_eq!(
            Template::parse("{{ }}", &columns()),
            Err(TemplateError::Empty)
        );
        let e = Template::parse("{{promt}}", &columns()).expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "unknown placeholder {{promt}}: the data's columns are prompt, id"
        );
        let e = Template::parse("{{x}}", &[]).expect_err("no data");
        assert!(e.to_string().contains("no data file"), "{e}");
    }
}
