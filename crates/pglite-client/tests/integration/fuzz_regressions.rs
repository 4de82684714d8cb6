//! Bugs found by fuzzing (crates/pglite-client/fuzz), reproduced with values a real
//! server sends. The byte-level cases are unit tests beside the fixes (protocol.rs,
//! text.rs, row.rs).

use pglite_client::ErrorKind;
use pglite_client::rust_decimal::Decimal;

/// rust_decimal's `FromSql` panicked on numerics of 10^32 and more; reading one as
/// `Decimal` is now a conversion error and the value is still there as text.
#[test]
fn numerics_beyond_decimal_are_a_conversion_error() {
    let mut client = crate::connect();
    let row = client
        .query_one(
            "SELECT 1e32::numeric AS big, ARRAY[1, 1e36]::numeric[] AS bigs, \
             79228162514264337593543950335::numeric AS max",
            &[],
        )
        .unwrap();
    let err = row.try_get::<_, Decimal>("big").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conversion);
    assert!(err.to_string().contains("out of range"), "{err}");
    assert_eq!(
        row.get_text("big").as_deref(),
        Some("100000000000000000000000000000000")
    );
    assert!(row.try_get::<_, Vec<Decimal>>("bigs").is_err());
    assert_eq!(row.get::<_, Decimal>("max"), Decimal::MAX);
}
