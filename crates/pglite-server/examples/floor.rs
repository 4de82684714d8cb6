// TEMPORARY experiment (not committed): the floor of a blocking, thread-per-connection server.
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use pglite_engine::{Engine, WasmEngine, WasmEngineOptions};

fn main() {
    let dir = std::env::args().nth(1).unwrap();
    let port = std::env::args().nth(2).unwrap();
    let engine = std::thread::Builder::new().stack_size(16 << 20).spawn(move || {
        WasmEngine::open(std::path::Path::new(&dir), &WasmEngineOptions::default().database("postgres")).unwrap()
    }).unwrap().join().unwrap();
    let startup: Vec<u8> = engine.startup_reply().to_vec();
    let engine = Arc::new(Mutex::new(engine));
    let l = std::net::TcpListener::bind(format!("127.0.0.1:{port}")).unwrap();
    eprintln!("listening");
    for s in l.incoming() {
        let mut s = s.unwrap();
        s.set_nodelay(true).unwrap();
        let engine = engine.clone();
        let startup = startup.clone();
        std::thread::Builder::new().stack_size(16 << 20).spawn(move || {
            let mut buf = vec![0u8; 65536];
            // startup packet
            let mut len = [0u8; 4];
            s.read_exact(&mut len).unwrap();
            let n = u32::from_be_bytes(len) as usize;
            let mut body = vec![0u8; n - 4];
            s.read_exact(&mut body).unwrap();
            if n == 8 { s.write_all(b"N").unwrap(); s.read_exact(&mut len).unwrap(); let n = u32::from_be_bytes(len) as usize; let mut body = vec![0u8; n-4]; s.read_exact(&mut body).unwrap(); }
            let mut out = vec![b'R', 0, 0, 0, 8, 0, 0, 0, 0];
            // skip non-S/K/Z? just forward everything after auth
            let mut i = 0;
            while i < startup.len() { let l = u32::from_be_bytes([startup[i+1],startup[i+2],startup[i+3],startup[i+4]]) as usize; if startup[i] != b'R' { out.extend_from_slice(&startup[i..i+1+l]); } i += 1 + l; }
            s.write_all(&out).unwrap();
            let mut pending: Vec<u8> = Vec::new();
            let mut reply = Vec::new();
            loop {
                let n = match s.read(&mut buf) { Ok(0) | Err(_) => return, Ok(n) => n };
                pending.extend_from_slice(&buf[..n]);
                // complete messages
                let mut end = 0;
                loop { if pending.len() < end + 5 { break; } let l = u32::from_be_bytes([pending[end+1],pending[end+2],pending[end+3],pending[end+4]]) as usize; if pending.len() < end + 1 + l { break; } end += 1 + l; }
                if end == 0 { continue; }
                if pending[0] == b'X' { return; }
                reply.clear();
                engine.lock().unwrap().exchange(&pending[..end], &mut reply).unwrap();
                pending.drain(..end);
                s.write_all(&reply).unwrap();
            }
        }).unwrap();
    }
}
