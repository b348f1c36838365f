//! The `session_keys` table: the AES-256 keys of MCP session tokens (see
//! `crate::session_keys`). Rows are inserted on rotation and deleted once no live token
//! can need them. The database is readable by its owner only, like every other secret the
//! control plane holds.

use rusqlite::params;

use super::{Store, StoreError};

/// One stored key.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKeyRow {
    pub id: String,
    pub key: [u8; 32],
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds from which the key seals tokens.
    pub activates_at: i64,
}

impl std::fmt::Debug for SessionKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeyRow")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .finish()
    }
}

impl Store {
    /// Every stored key, newest first.
    pub fn load_session_keys(&self) -> Result<Vec<SessionKeyRow>, StoreError> {
        let conn = self.lock();
        let mut statement = conn.prepare(
            "SELECT id, key, created_at, activates_at FROM session_keys
             ORDER BY activates_at DESC, created_at DESC, id DESC",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })?;
        let mut keys = Vec::new();
        for row in rows {
            let (id, key, created_at, activates_at) = row?;
            let key = <[u8; 32]>::try_from(key.as_slice()).map_err(|_| StoreError::Corrupt {
                table: "session_keys",
                detail: format!("key {id} is {} bytes, not 32", key.len()),
            })?;
            keys.push(SessionKeyRow {
                id,
                key,
                created_at,
                activates_at,
            });
        }
        Ok(keys)
    }

    /// Add `new` and delete the keys named in `retired`, in one transaction.
    pub fn rotate_session_keys(
        &self,
        new: Option<&SessionKeyRow>,
        retired: &[String],
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        if let Some(new) = new {
            tx.execute(
                "INSERT INTO session_keys (id, key, created_at, activates_at) VALUES (?1, ?2, ?3, ?4)",
                params![new.id, new.key.as_slice(), new.created_at, new.activates_at],
            )?;
        }
        for id in retired {
            tx.execute("DELETE FROM session_keys WHERE id = ?1", params![id])?;
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, byte: u8, at: i64) -> SessionKeyRow {
        SessionKeyRow {
            id: id.into(),
            key: [byte; 32],
            created_at: at,
            activates_at: at + 10,
        }
    }

    #[test]
    fn keys_are_stored_newest_first_and_retired() {
        let temp = tempfile::tempdir().unwrap();
        let store = Store::open(temp.path()).unwrap();
        assert!(store.load_session_keys().unwrap().is_empty());
        store
            .rotate_session_keys(Some(&row("a", 1, 100)), &[])
            .unwrap();
        store
            .rotate_session_keys(Some(&row("b", 2, 200)), &[])
            .unwrap();
        assert_eq!(
            store.load_session_keys().unwrap(),
            [row("b", 2, 200), row("a", 1, 100)]
        );
        store
            .rotate_session_keys(Some(&row("c", 3, 300)), &["a".to_owned()])
            .unwrap();
        drop(store);
        let reopened = Store::open(temp.path()).unwrap();
        let ids: Vec<String> = reopened
            .load_session_keys()
            .unwrap()
            .into_iter()
            .map(|k| k.id)
            .collect();
        assert_eq!(ids, ["c", "b"]);
        // A duplicate id is refused and nothing of that rotation happens.
        assert!(
            reopened
                .rotate_session_keys(Some(&row("c", 4, 400)), &["b".to_owned()])
                .is_err()
        );
        assert_eq!(reopened.load_session_keys().unwrap().len(), 2);
        assert!(!format!("{:?}", row("a", 0xab, 1)).contains("171"));
    }
}
