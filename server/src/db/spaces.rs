use chrono::{DateTime, Utc};
use gpulut_tables::space::BUILTIN_DOCUMENTS;
use gpulut_tables::{SearchSpace, SpaceError};

use super::Db;

/// A space as registered: its documents, from which [`SearchSpace`] is rebuilt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredSpace {
    pub name: String,
    pub spec: serde_json::Value,
    pub references: Option<serde_json::Value>,
    pub builtin: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl StoredSpace {
    pub fn parse(&self) -> Result<SearchSpace, SpaceError> {
        let refs = self.references.as_ref().map(|r| r.to_string());
        SearchSpace::from_documents(&self.spec.to_string(), refs.as_deref())
    }
}

/// The columns every query returns, in the row struct's order.
macro_rules! space_columns {
    () => {
        r#"name, spec, "references", builtin, created_at, updated_at"#
    };
}

impl Db {
    /// Registers (or refreshes) the spaces that ship with the binary and their distinct blocks,
    /// in one transaction. Idempotent, so every replica may run it at start.
    pub async fn register_builtin_spaces(&self) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for (spec, refs) in BUILTIN_DOCUMENTS {
            let space = SearchSpace::from_documents(spec, *refs)
                .expect("the embedded space documents validate");
            let spec: serde_json::Value =
                serde_json::from_str(spec).expect("the embedded spec is JSON");
            let refs: Option<serde_json::Value> =
                refs.map(|r| serde_json::from_str(r).expect("the embedded references are JSON"));
            sqlx::query(
                r#"INSERT INTO spaces (name, spec, "references", builtin) VALUES ($1, $2, $3, true)
                   ON CONFLICT (name) DO UPDATE
                   SET spec = EXCLUDED.spec, "references" = EXCLUDED."references", builtin = true
                   WHERE spaces.spec IS DISTINCT FROM EXCLUDED.spec
                      OR spaces."references" IS DISTINCT FROM EXCLUDED."references""#,
            )
            .bind(space.name())
            .bind(&spec)
            .bind(&refs)
            .execute(&mut *tx)
            .await?;
            for (position, b) in space.distinct_blocks().iter().enumerate() {
                sqlx::query(
                    "INSERT INTO space_blocks (space, block_key, part, position, block, params, macs)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (space, block_key) DO NOTHING",
                )
                .bind(space.name())
                .bind(b.block.key.as_str())
                .bind(b.part.as_str())
                .bind(position as i32)
                .bind(serde_json::to_value(&b.block).expect("a block serialises"))
                .bind(b.block.params as i64)
                .bind(b.block.macs as i64)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await
    }

    pub async fn spaces(&self) -> Result<Vec<StoredSpace>, sqlx::Error> {
        sqlx::query_as(concat!(
            "SELECT ",
            space_columns!(),
            " FROM spaces ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await
    }

    pub async fn space(&self, name: &str) -> Result<Option<StoredSpace>, sqlx::Error> {
        sqlx::query_as(concat!(
            "SELECT ",
            space_columns!(),
            " FROM spaces WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
    }
}
