//! Serve a temporary database (or the directory given as the first argument) on
//! 127.0.0.1:5433 until Ctrl-C.
fn main() -> Result<(), pglite_server::ServerError> {
    let builder = pglite_server::Server::builder().listen("127.0.0.1:5433".parse().unwrap());
    let builder = match std::env::args().nth(1) {
        Some(dir) => builder.data_dir(dir),
        None => builder.temporary(),
    };
    let server = builder.build()?;
    eprintln!("{}", server.url());
    server.run()
}
