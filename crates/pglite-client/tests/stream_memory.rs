//! Streams use memory independent of the number of rows: a counting global allocator
//! records the peak of live heap bytes while a million rows (about 110 MB of
//! `DataRow`s) stream through `query_raw` of both drivers, and 200,000 through the
//! simple-query stream and a cursor.
//!
//! One test function in its own binary, so no other test allocates meanwhile.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use support::server;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the counters
// are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let grow = new_size - layout.size();
                let live = LIVE.fetch_add(grow, Ordering::Relaxed) + grow;
                PEAK.fetch_max(live, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const ROWS: i32 = 1_000_000;
/// Rows for the simple-query stream and the cursor (same code path for the rows).
const FEWER_ROWS: i32 = 200_000;
const SQL: &str = "SELECT g, repeat('x', 100) AS pad FROM generate_series(1, $1) g";
/// Live heap growth allowed while streaming (the data is ~110 MB).
const BOUND: usize = 1 << 20;

/// Runs `f` and returns its result and the peak growth of live heap bytes above the
/// level when it started.
fn peak_growth<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let r = f();
    (r, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

#[test]
fn a_million_rows_stream_in_bounded_memory() {
    let mut client = server().connect();
    client.batch_execute("SELECT 1").unwrap();

    // The allocator does count: collecting 100,000 rows needs well over the bound.
    let (rows, collected) = peak_growth(|| {
        client
            .query(
                "SELECT g, repeat('x', 100) FROM generate_series(1, 100000) g",
                &[],
            )
            .unwrap()
            .len()
    });
    assert_eq!(rows, 100_000);
    assert!(
        collected > 10 * BOUND,
        "collecting grew the heap by {collected}"
    );

    let (sum, grown) = peak_growth(|| {
        let mut sum = 0i64;
        let mut bytes = 0usize;
        for row in client.query_raw(SQL, &[&ROWS]).unwrap() {
            let row = row.unwrap();
            sum += i64::from(row.get::<_, i32>(0));
            bytes += row.get::<_, &str>(1).len();
        }
        assert_eq!(bytes, 100 * ROWS as usize);
        sum
    });
    assert_eq!(sum, i64::from(ROWS) * i64::from(ROWS + 1) / 2);
    eprintln!("query_raw: peak heap growth {grown} bytes over {ROWS} rows");
    assert!(grown < BOUND, "query_raw grew the heap by {grown} bytes");

    let (count, grown) = peak_growth(|| {
        client
            .simple_query_raw(&format!(
                "SELECT g, repeat('x', 100) FROM generate_series(1, {FEWER_ROWS}) g"
            ))
            .unwrap()
            .filter(|m| matches!(m, Ok(pglite_client::SimpleQueryMessage::Row(_))))
            .count()
    });
    assert_eq!(count, FEWER_ROWS as usize);
    eprintln!("simple_query_raw: peak heap growth {grown} bytes");
    assert!(
        grown < BOUND,
        "simple_query_raw grew the heap by {grown} bytes"
    );

    let (count, grown) = peak_growth(|| {
        let mut tx = client.transaction().unwrap();
        let n = tx.cursor(SQL, &[&FEWER_ROWS], 5000).unwrap().count();
        tx.commit().unwrap();
        n
    });
    assert_eq!(count, FEWER_ROWS as usize);
    eprintln!("cursor (fetch 5000): peak heap growth {grown} bytes");
    assert!(grown < BOUND, "cursor grew the heap by {grown} bytes");

    #[cfg(feature = "tokio")]
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let url = format!("postgres://postgres@127.0.0.1:{}/postgres", server().port);
        let mut client = runtime
            .block_on(pglite_client::AsyncClient::connect_url(&url))
            .unwrap();
        let (sum, grown) = peak_growth(|| {
            runtime.block_on(async {
                let mut sum = 0i64;
                let mut stream = client.query_raw(SQL, &[&ROWS]).await.unwrap();
                while let Some(row) = stream.next().await {
                    sum += i64::from(row.unwrap().get::<_, i32>(0));
                }
                sum
            })
        });
        assert_eq!(sum, i64::from(ROWS) * i64::from(ROWS + 1) / 2);
        eprintln!("AsyncClient::query_raw: peak heap growth {grown} bytes");
        assert!(
            grown < BOUND,
            "async query_raw grew the heap by {grown} bytes"
        );
    }
}
