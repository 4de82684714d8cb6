//! Prepared statements and result-column descriptions.

use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use postgres_types::Type;

use crate::types::binary_result_supported;

/// Names of server-side statements whose last handle was dropped; the client sends a
/// `Close` for each with its next request.
pub(crate) type CloseQueue = Arc<Mutex<Vec<String>>>;

/// A result column of a statement.
#[derive(Clone, PartialEq, Eq)]
pub struct Column {
    name: String,
    type_: Type,
    table_oid: Option<u32>,
    column_id: Option<i16>,
    binary: bool,
}

impl Column {
    pub(crate) fn new(name: String, type_: Type, table_oid: u32, column_id: i16) -> Column {
        let binary = binary_result_supported(&type_);
        Column {
            name,
            type_,
            table_oid: (table_oid != 0).then_some(table_oid),
            column_id: (column_id != 0).then_some(column_id),
            binary,
        }
    }

    /// The column's name (its alias in the query, `?column?` when unnamed).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The column's type.
    pub fn type_(&self) -> &Type {
        &self.type_
    }

    /// The OID of the table the column comes from, if it is a plain table column.
    pub fn table_oid(&self) -> Option<u32> {
        self.table_oid
    }

    /// The column's attribute number in [`Column::table_oid`], if it is a table column.
    pub fn column_id(&self) -> Option<i16> {
        self.column_id
    }

    /// True if values of this column are transferred in PostgreSQL's binary format
    /// (false: text format, readable as `String`/`&str` only).
    pub fn is_binary(&self) -> bool {
        self.binary
    }

    /// The result-format code requested for this column in `Bind` (1 binary, 0 text).
    pub(crate) fn format_code(&self) -> i16 {
        i16::from(self.binary)
    }
}

impl fmt::Debug for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Column")
            .field("name", &self.name)
            .field("type", &self.type_)
            .field("table_oid", &self.table_oid)
            .field("column_id", &self.column_id)
            .finish()
    }
}

struct StatementInner {
    name: String,
    sql: String,
    params: Vec<Type>,
    columns: Arc<[Column]>,
    close_queue: Option<Weak<Mutex<Vec<String>>>>,
}

impl Drop for StatementInner {
    fn drop(&mut self) {
        if self.name.is_empty() {
            return;
        }
        if let Some(queue) = self.close_queue.as_ref().and_then(Weak::upgrade) {
            let mut queue = queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.push(std::mem::take(&mut self.name));
        }
    }
}

/// A statement prepared on the server (or, for [`Client::describe`], only described).
///
/// Cloning is cheap. When the last clone is dropped, the server-side statement is
/// closed with the client's next request.
///
/// [`Client::describe`]: crate::Client::describe
#[derive(Clone)]
pub struct Statement(Arc<StatementInner>);

impl Statement {
    pub(crate) fn new(
        name: String,
        sql: String,
        params: Vec<Type>,
        columns: Vec<Column>,
        close_queue: Option<&CloseQueue>,
    ) -> Statement {
        Statement(Arc::new(StatementInner {
            name,
            sql,
            params,
            columns: columns.into(),
            close_queue: close_queue.map(Arc::downgrade),
        }))
    }

    /// The server-side name; empty for an unnamed (described-only) statement, which the
    /// client re-parses each time it runs.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The SQL text.
    pub fn sql(&self) -> &str {
        &self.0.sql
    }

    /// The types of the statement's parameters (`$1`, `$2`, ...).
    pub fn params(&self) -> &[Type] {
        &self.0.params
    }

    /// The result columns (empty for statements that return no rows).
    pub fn columns(&self) -> &[Column] {
        &self.0.columns
    }

    pub(crate) fn columns_arc(&self) -> &Arc<[Column]> {
        &self.0.columns
    }

    /// True if the statement can run on the session whose close queue is `queue`:
    /// unnamed statements (parsed again each time) anywhere, named ones only where
    /// they were prepared.
    pub(crate) fn usable_on(&self, queue: &CloseQueue) -> bool {
        self.0.name.is_empty()
            || self
                .0
                .close_queue
                .as_ref()
                .is_some_and(|q| std::ptr::eq(q.as_ptr(), Arc::as_ptr(queue)))
    }
}

impl fmt::Debug for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Statement")
            .field("name", &self.0.name)
            .field("sql", &self.0.sql)
            .field("params", &self.0.params)
            .field("columns", &self.0.columns)
            .finish()
    }
}

/// What [`ToStatement`] resolves to. An implementation detail of [`ToStatement`].
#[doc(hidden)]
#[non_exhaustive]
pub enum StatementSource<'a> {
    /// SQL text, prepared through the client's statement cache.
    Sql(&'a str),
    /// An already prepared statement.
    Statement(&'a Statement),
}

/// Things `query`/`execute` accept as the statement: SQL text (`&str`, `String`) —
/// prepared and cached by the client — or a [`Statement`].
pub trait ToStatement {
    /// Tells the client how to obtain the statement.
    #[doc(hidden)]
    fn statement_source(&self) -> StatementSource<'_>;
}

impl ToStatement for str {
    fn statement_source(&self) -> StatementSource<'_> {
        StatementSource::Sql(self)
    }
}

impl ToStatement for String {
    fn statement_source(&self) -> StatementSource<'_> {
        StatementSource::Sql(self)
    }
}

impl ToStatement for Statement {
    fn statement_source(&self) -> StatementSource<'_> {
        StatementSource::Statement(self)
    }
}

impl<S: ToStatement + ?Sized> ToStatement for &S {
    fn statement_source(&self) -> StatementSource<'_> {
        (**self).statement_source()
    }
}
