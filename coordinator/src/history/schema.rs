//! The history database's identity and its versioned schema.
//!
//! `application_id` marks the file as ours: a SQLite file without it is
//! someone else's, and is refused rather than written to. `user_version`
//! counts the migrations applied; each migration runs once, in order, in
//! its own transaction, so a crash mid-migration leaves the old version.

use super::HistoryError;
use rusqlite::Connection;

/// `PRAGMA application_id` of a Stampede history file: "STMP" in ASCII.
pub const APPLICATION_ID: i32 = 0x5354_4d50;

/// The migrations, in order; the schema's version is how many were applied.
/// Never edit one that has shipped: add the next.
const MIGRATIONS: &[&str] = &[
    // 1: runs, and the intervals merged while each ran.
    "CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        scenario_name TEXT NOT NULL,
        scenario_file TEXT NOT NULL,
        scenario_text TEXT NOT NULL,
        labels TEXT NOT NULL DEFAULT '[]',
        git_sha TEXT,
        state TEXT NOT NULL,
        submitted_at_ms INTEGER NOT NULL,
        started_at_ms INTEGER,
        finished_at_ms INTEGER,
        error TEXT,
        requests INTEGER,
        achieved_rps REAL,
        p50_us INTEGER,
        p99_us INTEGER,
        error_rate REAL,
        report TEXT
     );
     CREATE INDEX runs_by_scenario ON runs (scenario_name, submitted_at_ms);
     CREATE TABLE intervals (
        run_id TEXT NOT NULL REFERENCES runs (id),
        idx INTEGER NOT NULL,
        start_s REAL NOT NULL,
        end_s REAL NOT NULL,
        warmup INTEGER NOT NULL,
        figures TEXT NOT NULL,
        latency_histogram BLOB NOT NULL,
        PRIMARY KEY (run_id, idx)
     );",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

fn pragma_i64(conn: &Connection, name: &str) -> rusqlite::Result<i64> {
    conn.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
}

/// Checks that `conn` is a Stampede history (or a new, empty file) and not a
/// damaged one, before anything is written to it.
pub fn check(conn: &Connection, path: &str) -> Result<(), HistoryError> {
    let corrupt = |why: String| HistoryError::Corrupt {
        path: path.to_owned(),
        why,
    };
    let application_id = pragma_i64(conn, "application_id").map_err(|e| corrupt(e.to_string()))?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
        .map_err(|e| corrupt(e.to_string()))?;
    if application_id == 0 && tables == 0 {
        return Ok(()); // a new database
    }
    if application_id != i64::from(APPLICATION_ID) {
        return Err(HistoryError::Foreign {
            path: path.to_owned(),
            application_id,
        });
    }
    let verdict: String = conn
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(|e| corrupt(e.to_string()))?;
    if verdict != "ok" {
        return Err(corrupt(verdict));
    }
    let version = pragma_i64(conn, "user_version").map_err(|e| corrupt(e.to_string()))?;
    if version > SCHEMA_VERSION {
        return Err(HistoryError::TooNew {
            path: path.to_owned(),
            version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Applies the migrations the file has not had yet.
pub fn migrate(conn: &mut Connection) -> Result<(), HistoryError> {
    let version = pragma_i64(conn, "user_version")?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        // Pragmas take no parameters; both values are our own integers.
        tx.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {};",
            index + 1
        ))?;
        tx.commit()?;
    }
    Ok(())
}
