//! The engine's container records: one SQLite file (`containers.db` in the data root) in
//! WAL mode. Each change of a container is one statement, so a daemon killed at any
//! moment leaves every record either before or after its last change, never torn.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection};

use super::record::Record;
use super::ContainerError;

pub struct ContainerDb {
    conn: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS containers (
    id     TEXT PRIMARY KEY,
    name   TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL CHECK (json_valid(record))
) STRICT;
";

impl ContainerDb {
    pub fn open(path: &Path) -> Result<ContainerDb, ContainerError> {
        let conn = Connection::open(path).map_err(|e| db_error(path, e))?;
        conn.busy_timeout(Duration::from_secs(5))
            .and_then(|_| conn.pragma_update(None, "journal_mode", "WAL"))
            // NORMAL in WAL mode: a commit survives a killed daemon; only a power loss may
            // drop the last ones, never corrupt the file.
            .and_then(|_| conn.pragma_update(None, "synchronous", "NORMAL"))
            .and_then(|_| conn.execute_batch(SCHEMA))
            .map_err(|e| db_error(path, e))?;
        Ok(ContainerDb { conn })
    }

    pub fn load_all(&self) -> Result<Vec<Record>, ContainerError> {
        let mut stmt = self
            .conn
            .prepare("SELECT record FROM containers")
            .map_err(ContainerError::Db)?;
        let rows = stmt
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(ContainerError::Db)?;
        let mut records = Vec::new();
        for row in rows {
            let text = row.map_err(ContainerError::Db)?;
            match serde_json::from_str(&text) {
                Ok(record) => records.push(record),
                // One unreadable record must not keep the daemon (and every other
                // container) down.
                Err(e) => tracing::error!("skipping an unreadable container record: {e}"),
            }
        }
        Ok(records)
    }

    /// Inserts or replaces the record (the name is unique: a clash is a conflict).
    pub fn save(&self, record: &Record) -> Result<(), ContainerError> {
        let text = serde_json::to_string(record).expect("records serialise");
        self.conn
            .execute(
                "INSERT INTO containers (id, name, record) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, record = excluded.record",
                params![record.id, record.name, text],
            )
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    ContainerError::NameInUse {
                        name: record.name.clone(),
                        id: String::new(),
                    }
                }
                e => ContainerError::Db(e),
            })?;
        Ok(())
    }

    pub fn remove(&self, id: &str) -> Result<(), ContainerError> {
        self.conn
            .execute("DELETE FROM containers WHERE id = ?1", params![id])
            .map_err(ContainerError::Db)?;
        Ok(())
    }
}

fn db_error(path: &Path, e: rusqlite::Error) -> ContainerError {
    ContainerError::DbOpen {
        path: path.display().to_string(),
        source: e,
    }
}
