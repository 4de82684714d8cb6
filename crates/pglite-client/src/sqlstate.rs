//! SQLSTATE error codes.

use std::borrow::Cow;
use std::fmt;

/// A five-character SQLSTATE code sent by the server with every error and notice.
///
/// Compare against the associated constants, e.g.
/// `err.code() == Some(&SqlState::UNIQUE_VIOLATION)`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SqlState(Cow<'static, str>);

impl SqlState {
    /// Wraps a code received from the server (or written by hand).
    pub fn from_code(code: &str) -> SqlState {
        SqlState(Cow::Owned(code.to_owned()))
    }

    const fn c(code: &'static str) -> SqlState {
        SqlState(Cow::Borrowed(code))
    }

    /// The five-character code, e.g. `"42601"`.
    pub fn code(&self) -> &str {
        &self.0
    }

    /// The two-character class of the code, e.g. `"42"` for syntax errors and
    /// access-rule violations.
    pub fn class(&self) -> &str {
        self.0.get(..2).unwrap_or(&self.0)
    }
}

impl fmt::Debug for SqlState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SqlState({})", self.0)
    }
}

impl fmt::Display for SqlState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident = $code:literal;)*) => {
        impl SqlState {
            $($(#[$doc])* pub const $name: SqlState = SqlState::c($code);)*
        }
    };
}

codes! {
    /// 00000 successful_completion
    SUCCESSFUL_COMPLETION = "00000";
    /// 01000 warning
    WARNING = "01000";
    /// 02000 no_data
    NO_DATA = "02000";
    /// 08000 connection_exception
    CONNECTION_EXCEPTION = "08000";
    /// 08003 connection_does_not_exist
    CONNECTION_DOES_NOT_EXIST = "08003";
    /// 08006 connection_failure
    CONNECTION_FAILURE = "08006";
    /// 08P01 protocol_violation
    PROTOCOL_VIOLATION = "08P01";
    /// 0A000 feature_not_supported
    FEATURE_NOT_SUPPORTED = "0A000";
    /// 21000 cardinality_violation
    CARDINALITY_VIOLATION = "21000";
    /// 22000 data_exception
    DATA_EXCEPTION = "22000";
    /// 22001 string_data_right_truncation
    STRING_DATA_RIGHT_TRUNCATION = "22001";
    /// 22003 numeric_value_out_of_range
    NUMERIC_VALUE_OUT_OF_RANGE = "22003";
    /// 22007 invalid_datetime_format
    INVALID_DATETIME_FORMAT = "22007";
    /// 22008 datetime_field_overflow
    DATETIME_FIELD_OVERFLOW = "22008";
    /// 22012 division_by_zero
    DIVISION_BY_ZERO = "22012";
    /// 22021 character_not_in_repertoire
    CHARACTER_NOT_IN_REPERTOIRE = "22021";
    /// 22023 invalid_parameter_value
    INVALID_PARAMETER_VALUE = "22023";
    /// 22P02 invalid_text_representation
    INVALID_TEXT_REPRESENTATION = "22P02";
    /// 22P04 bad_copy_file_format
    BAD_COPY_FILE_FORMAT = "22P04";
    /// 23000 integrity_constraint_violation
    INTEGRITY_CONSTRAINT_VIOLATION = "23000";
    /// 23502 not_null_violation
    NOT_NULL_VIOLATION = "23502";
    /// 23503 foreign_key_violation
    FOREIGN_KEY_VIOLATION = "23503";
    /// 23505 unique_violation
    UNIQUE_VIOLATION = "23505";
    /// 23514 check_violation
    CHECK_VIOLATION = "23514";
    /// 23P01 exclusion_violation
    EXCLUSION_VIOLATION = "23P01";
    /// 25000 invalid_transaction_state
    INVALID_TRANSACTION_STATE = "25000";
    /// 25001 active_sql_transaction
    ACTIVE_SQL_TRANSACTION = "25001";
    /// 25P01 no_active_sql_transaction
    NO_ACTIVE_SQL_TRANSACTION = "25P01";
    /// 25P02 in_failed_sql_transaction
    IN_FAILED_SQL_TRANSACTION = "25P02";
    /// 25006 read_only_sql_transaction
    READ_ONLY_SQL_TRANSACTION = "25006";
    /// 26000 invalid_sql_statement_name
    INVALID_SQL_STATEMENT_NAME = "26000";
    /// 28000 invalid_authorization_specification
    INVALID_AUTHORIZATION_SPECIFICATION = "28000";
    /// 28P01 invalid_password
    INVALID_PASSWORD = "28P01";
    /// 34000 invalid_cursor_name
    INVALID_CURSOR_NAME = "34000";
    /// 3D000 invalid_catalog_name (unknown database)
    INVALID_CATALOG_NAME = "3D000";
    /// 3F000 invalid_schema_name
    INVALID_SCHEMA_NAME = "3F000";
    /// 40000 transaction_rollback
    TRANSACTION_ROLLBACK = "40000";
    /// 40001 serialization_failure
    T_R_SERIALIZATION_FAILURE = "40001";
    /// 40P01 deadlock_detected
    T_R_DEADLOCK_DETECTED = "40P01";
    /// 42000 syntax_error_or_access_rule_violation
    SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION = "42000";
    /// 42501 insufficient_privilege
    INSUFFICIENT_PRIVILEGE = "42501";
    /// 42601 syntax_error
    SYNTAX_ERROR = "42601";
    /// 42602 invalid_name
    INVALID_NAME = "42602";
    /// 42703 undefined_column
    UNDEFINED_COLUMN = "42703";
    /// 42704 undefined_object
    UNDEFINED_OBJECT = "42704";
    /// 42710 duplicate_object
    DUPLICATE_OBJECT = "42710";
    /// 42712 duplicate_alias
    DUPLICATE_ALIAS = "42712";
    /// 42723 duplicate_function
    DUPLICATE_FUNCTION = "42723";
    /// 42725 ambiguous_function
    AMBIGUOUS_FUNCTION = "42725";
    /// 42702 ambiguous_column
    AMBIGUOUS_COLUMN = "42702";
    /// 42803 grouping_error
    GROUPING_ERROR = "42803";
    /// 42804 datatype_mismatch
    DATATYPE_MISMATCH = "42804";
    /// 42809 wrong_object_type
    WRONG_OBJECT_TYPE = "42809";
    /// 42883 undefined_function
    UNDEFINED_FUNCTION = "42883";
    /// 42P01 undefined_table
    UNDEFINED_TABLE = "42P01";
    /// 42P02 undefined_parameter
    UNDEFINED_PARAMETER = "42P02";
    /// 42P04 duplicate_database
    DUPLICATE_DATABASE = "42P04";
    /// 42P05 duplicate_prepared_statement
    DUPLICATE_PSTATEMENT = "42P05";
    /// 42P06 duplicate_schema
    DUPLICATE_SCHEMA = "42P06";
    /// 42P07 duplicate_table
    DUPLICATE_TABLE = "42P07";
    /// 42P18 indeterminate_datatype
    INDETERMINATE_DATATYPE = "42P18";
    /// 53000 insufficient_resources
    INSUFFICIENT_RESOURCES = "53000";
    /// 53100 disk_full
    DISK_FULL = "53100";
    /// 53200 out_of_memory
    OUT_OF_MEMORY = "53200";
    /// 53300 too_many_connections
    TOO_MANY_CONNECTIONS = "53300";
    /// 54000 program_limit_exceeded
    PROGRAM_LIMIT_EXCEEDED = "54000";
    /// 54001 statement_too_complex
    STATEMENT_TOO_COMPLEX = "54001";
    /// 55000 object_not_in_prerequisite_state
    OBJECT_NOT_IN_PREREQUISITE_STATE = "55000";
    /// 55P03 lock_not_available
    LOCK_NOT_AVAILABLE = "55P03";
    /// 57014 query_canceled
    QUERY_CANCELED = "57014";
    /// 57P01 admin_shutdown
    ADMIN_SHUTDOWN = "57P01";
    /// 57P02 crash_shutdown
    CRASH_SHUTDOWN = "57P02";
    /// 57P03 cannot_connect_now
    CANNOT_CONNECT_NOW = "57P03";
    /// 58000 system_error
    SYSTEM_ERROR = "58000";
    /// 58030 io_error
    IO_ERROR = "58030";
    /// P0001 raise_exception
    RAISE_EXCEPTION = "P0001";
    /// P0002 no_data_found
    NO_DATA_FOUND = "P0002";
    /// P0003 too_many_rows
    TOO_MANY_ROWS = "P0003";
    /// XX000 internal_error
    INTERNAL_ERROR = "XX000";
    /// XX001 data_corrupted
    DATA_CORRUPTED = "XX001";
}
