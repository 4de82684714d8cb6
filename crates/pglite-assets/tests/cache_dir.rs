//! The cache-directory rule and `install()`. One test function only: it
//! changes process environment variables, which other threads must not see
//! half-way (each integration-test file runs as its own process).

use std::path::PathBuf;

use pglite_assets::{cache_dir, install};

fn set(name: &str, value: Option<&std::ffi::OsStr>) {
    // SAFETY: this test binary has a single test, so no other thread reads
    // or writes the environment while this runs.
    unsafe {
        match value {
            Some(value) => std::env::set_var(name, value),
            None => std::env::remove_var(name),
        }
    }
}

#[test]
fn cache_dir_rule_and_install_use_it() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = |name: &str| scratch.path().join(name);

    set("PGLITE_CACHE_DIR", Some(dir("explicit").as_os_str()));
    set("XDG_CACHE_HOME", Some(dir("xdg").as_os_str()));
    set("HOME", Some(dir("home").as_os_str()));
    assert_eq!(cache_dir(), dir("explicit"));

    set("PGLITE_CACHE_DIR", Some("".as_ref()));
    assert_eq!(cache_dir(), dir("xdg").join("pglite"));

    // A relative XDG_CACHE_HOME is ignored, as the XDG spec says.
    set("XDG_CACHE_HOME", Some("relative/cache".as_ref()));
    assert_eq!(cache_dir(), dir("home").join(".cache").join("pglite"));

    set("XDG_CACHE_HOME", None);
    assert_eq!(cache_dir(), dir("home").join(".cache").join("pglite"));

    set("HOME", None);
    assert_eq!(cache_dir(), std::env::temp_dir().join("pglite-cache"));

    // install() puts the runtime under <cache dir>/runtime.
    set("PGLITE_CACHE_DIR", Some(dir("explicit").as_os_str()));
    let runtime = install().unwrap();
    let expected: PathBuf = dir("explicit").join("runtime");
    assert!(
        runtime.root().starts_with(&expected),
        "{:?}",
        runtime.root()
    );
    assert!(runtime.module_path().is_file());
    assert_eq!(install().unwrap(), runtime);
}
