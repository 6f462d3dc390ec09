//! rpm's SQLite `rpmdb.sqlite`: table Packages(hnum, blob). SQLite needs a file, so the
//! bytes read from the guest are written to a private temporary file (never a guest path
//! on the host) and opened read-only and immutable, in SQLite's defensive mode.

use rusqlite::{Connection, OpenFlags};

pub const MAGIC: &[u8] = b"SQLite format 3\0";

pub fn is_sqlite(data: &[u8]) -> bool {
    data.starts_with(MAGIC)
}

pub fn values(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if !is_sqlite(data) {
        return Err("not an SQLite database".into());
    }
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let path = dir.path().join("rpmdb.sqlite");
    std::fs::write(&path, data).map_err(|e| format!("temporary copy: {e}"))?;
    let uri = format!("file:{}?immutable=1", path.display());
    let conn = Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("open: {e}"))?;
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
        .map_err(|e| format!("defensive mode: {e}"))?;
    let mut stmt = conn
        .prepare("SELECT blob FROM Packages ORDER BY hnum")
        .map_err(|e| format!("query: {e}"))?;
    let rows = stmt
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .map_err(|e| format!("query: {e}"))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("row: {e}"))
}
