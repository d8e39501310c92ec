//! Data files that fill requests' `{{column}}` placeholders: CSV (a header
//! row names the columns) or JSONL (one object per line; its keys are the
//! columns). Read once by the coordinator, which ships each agent its rows,
//! so agents need no shared disk.

use super::validate::FieldError;
use stampede_agent::plan::DataOrder;
use std::path::Path;

/// Largest data file: every byte travels to the agents in their
/// assignments.
pub const MAX_DATA_BYTES: u64 = 32 << 20;
/// Most rows and columns a data file may have.
pub const MAX_ROWS: usize = 1_000_000;
pub const MAX_COLUMNS: usize = 256;

/// A data file's rows, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data {
    /// As written in the scenario (for messages and the report).
    pub file: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub order: DataOrder,
}

fn fail<T>(why: impl Into<String>) -> Result<T, FieldError> {
    Err(("data.file".into(), why.into()))
}

/// Reads `file` (relative to the scenario's folder `base`).
pub fn read(
    base: &Path,
    file: &str,
    format: Option<&str>,
    order: Option<&str>,
) -> Result<Data, FieldError> {
    let order = match order {
        None | Some("sequential") => DataOrder::Sequential,
        Some("random") => DataOrder::Random,
        Some("once") => DataOrder::Once,
        Some(other) => {
            return Err((
                "data.order".into(),
                format!("{other:?}: expected sequential, random or once"),
            ));
        }
    };
    let path = base.join(file);
    let format = match format {
        Some(f) => f.to_owned(),
        None => path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase(),
    };
    let size = std::fs::metadata(&path)
        .map_err(|e| ("data.file".to_owned(), format!("{file}: cannot read: {e}")))?
        .len();
    if size > MAX_DATA_BYTES {
        return fail(format!(
            "{file} is {:.1} MiB; at most {} MiB (the coordinator ships it to the agents)",
            size as f64 / (1 << 20) as f64,
            MAX_DATA_BYTES >> 20
        ));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ("data.file".to_owned(), format!("{file}: cannot read: {e}")))?;
    let (columns, rows) = match format.as_str() {
        "csv" => csv_rows(file, &text)?,
        "jsonl" | "ndjson" => jsonl_rows(file, &text)?,
        other => {
            return Err((
                "data.format".into(),
                format!("{other:?}: expected csv or jsonl (or name the file .csv or .jsonl)"),
            ));
        }
    };
    if rows.is_empty() {
        return fail(format!("{file} has no rows"));
    }
    if rows.len() > MAX_ROWS {
        return fail(format!(
            "{file} has {} rows; at most {MAX_ROWS}",
            rows.len()
        ));
    }
    if columns.len() > MAX_COLUMNS {
        return fail(format!(
            "{file} has {} columns; at most {MAX_COLUMNS}",
            columns.len()
        ));
    }
    for (i, c) in columns.iter().enumerate() {
        if c.trim().is_empty() || c.contains(['{', '}']) {
            return fail(format!(
                "{file}: column {} has no usable name ({c:?})",
                i + 1
            ));
        }
        if columns[..i].contains(c) {
            return fail(format!("{file}: column {c:?} appears twice"));
        }
    }
    Ok(Data {
        file: file.to_owned(),
        columns,
        rows,
        order,
    })
}

type Rows = (Vec<String>, Vec<Vec<String>>);

fn csv_rows(file: &str, text: &str) -> Result<Rows, FieldError> {
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| ("data.file".to_owned(), format!("{file}: {e}")))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        // The csv crate names the line of a short or long row.
        let record = record.map_err(|e| ("data.file".to_owned(), format!("{file}: {e}")))?;
        rows.push(record.iter().map(str::to_owned).collect());
    }
    Ok((columns, rows))
}

fn jsonl_rows(file: &str, text: &str) -> Result<Rows, FieldError> {
    let mut columns: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            (
                "data.file".to_owned(),
                format!("{file}:{line_no}: not JSON: {e}"),
            )
        })?;
        let serde_json::Value::Object(object) = value else {
            return fail(format!("{file}:{line_no}: each line must be a JSON object"));
        };
        let columns = columns.get_or_insert_with(|| object.keys().cloned().collect());
        if object.len() != columns.len() || columns.iter().any(|c| !object.contains_key(c)) {
            return fail(format!(
                "{file}:{line_no}: keys differ from the first line's ({})",
                columns.join(", ")
            ));
        }
        rows.push(
            columns
                .iter()
                .map(|c| match &object[c] {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
        );
    }
    Ok((columns.unwrap_or_default(), rows))
}

/// Which rows each of `agents` agents gets: disjoint parts (every
/// `agents`-th row) so no two agents send the same row, or, for too few
/// rows to go round with a repeating order, all of them to each.
pub fn partition(data: &Data, agents: usize) -> Vec<Vec<Vec<String>>> {
    partition_indices(data, agents)
        .into_iter()
        .map(|part| part.into_iter().map(|i| data.rows[i].clone()).collect())
        .collect()
}

/// [`partition`] as row indices (to split anything made per row alike).
pub fn partition_indices(data: &Data, agents: usize) -> Vec<Vec<usize>> {
    let agents = agents.max(1);
    let rows = data.rows.len();
    if rows < agents && data.order != DataOrder::Once {
        return vec![(0..rows).collect(); agents];
    }
    (0..agents)
        .map(|a| (a..rows).step_by(agents).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).expect("write");
    }

    #[test]
    fn reads_csv_and_jsonl() {
        let dir = tempfile::tempdir().expect("dir");
        write(
            dir.path(),
            "p.csv",
            "id,prompt\n1,\"hello, world\"\n2,bye\n",
        );
        let d = read(dir.path(), "p.csv", None, None).expect("csv");
        assert_eq!(d.columns, ["id", "prompt"]);
        assert_eq!(d.rows[0], ["1", "hello, world"]);
        write(
            dir.path(),
            "p.jsonl",
            "{\"prompt\": \"hi\", \"max_tokens\": 16}\n\n{\"max_tokens\": 32, \"prompt\": \"ho\"}\n",
        );
        let d = read(dir.path(), "p.jsonl", None, Some("once")).expect("jsonl");
        assert_eq!(d.columns, ["max_tokens", "prompt"]);
        assert_eq!(d.rows, [["16", "hi"], ["32", "ho"]]);
        assert_eq!(d.order, DataOrder::Once);
    }

    #[test]
    fn bad_files_say_where() {
        let dir = tempfile::tempdir().expect("dir");
        write(dir.path(), "short.csv", "a,b\n1,2\n3\n");
        let e = read(dir.path(), "short.csv", None, None).expect_err("ragged");
        assert!(
            e.1.contains("short.csv") && e.1.contains("line: 3"),
            "{e:?}"
        );
        write(dir.path(), "keys.jsonl", "{\"a\": 1}\n{\"b\": 2}\n");
        let e = read(dir.path(), "keys.jsonl", None, None).expect_err("keys");
        assert_eq!(e.1, "keys.jsonl:2: keys differ from the first line's (a)");
        write(dir.path(), "empty.csv", "a,b\n");
        let e = read(dir.path(), "empty.csv", None, None).expect_err("empty");
        assert!(e.1.contains("has no rows"), "{e:?}");
        let e = read(dir.path(), "missing.csv", None, None).expect_err("missing");
        assert!(e.1.starts_with("missing.csv: cannot read"), "{e:?}");
        write(dir.path(), "x.txt", "a\n1\n");
        let e = read(dir.path(), "x.txt", None, None).expect_err("format");
        assert_eq!(e.0, "data.format");
        let e = read(dir.path(), "short.csv", None, Some("shuffled")).expect_err("order");
        assert_eq!(e.0, "data.order");
        // Too big to ship: refused before it is read (a sparse file).
        let big = std::fs::File::create(dir.path().join("big.csv")).expect("create");
        big.set_len(MAX_DATA_BYTES + 1).expect("grow");
        let e = read(dir.path(), "big.csv", None, None).expect_err("too big");
        assert_eq!(
            e.1,
            "big.csv is 32.0 MiB; at most 32 MiB (the coordinator ships it to the agents)"
        );
    }

    #[test]
    fn agents_get_disjoint_parts() {
        let data = Data {
            file: "d.csv".into(),
            columns: vec!["n".into()],
            rows: (0..7).map(|i| vec![i.to_string()]).collect(),
            order: DataOrder::Once,
        };
        let parts = partition(&data, 3);
        let flat: Vec<String> = parts.iter().flatten().map(|r| r[0].clone()).collect();
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), [3, 2, 2]);
        assert_eq!(flat.len(), 7);
        let few = Data {
            order: DataOrder::Random,
            rows: vec![vec!["x".into()]],
            ..data
        };
        assert_eq!(partition(&few, 3), vec![vec![vec!["x".to_owned()]]; 3]);
    }
}
