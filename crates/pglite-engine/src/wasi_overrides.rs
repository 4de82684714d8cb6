//! WASI functions that serve the reply file ([`crate::reply_file`]) from memory and pass
//! every other call on to Wasmtime's WASI.
//!
//! [`add_to_linker`] shadows the `wasi_snapshot_preview1` functions the guest uses on
//! that file: the path functions when they name `.s.PGSQL.5432.lock.out` in the data
//! directory's preopen, the descriptor functions when the descriptor is one of the
//! file's (numbers from [`FIRST_FD`](crate::reply_file::FIRST_FD), which Wasmtime never
//! hands out). Everything else goes to the same code Wasmtime's own synchronous
//! bindings run (`wasmtime_wasi::p1::wasi_snapshot_preview1::*` under
//! `wasmtime_wasi::runtime::in_tokio`), so other files behave exactly as before.
//! Descriptor functions not shadowed here answer `EBADF` for the file's descriptors:
//! the runtime does not call them on it.

use wasmtime::{AsContextMut, Caller, Linker, Memory};
use wasmtime_wasi::p1::types::{Errno, Fdflags, Oflags, Rights};
use wasmtime_wasi::p1::wasi_snapshot_preview1 as p1;
use wasmtime_wasi::p1::wasi_snapshot_preview1::WasiSnapshotPreview1 as _;
use wasmtime_wasi::runtime::in_tokio;
use wiggle::GuestMemory;

use crate::EngineError;
use crate::guest::Host;
use crate::reply_file::{FILETYPE, FileResult, FileStat, ReplyFile};

/// The WASI module the guest imports.
const WASI: &str = "wasi_snapshot_preview1";

type Res = wasmtime::Result<i32>;

/// Run Wasmtime's own implementation of WASI function `$func`, as its synchronous
/// bindings do (`sync` for the functions Wasmtime implements without `async`).
macro_rules! forward {
    ($caller:ident, sync $func:ident($($arg:expr),*)) => {{
        let fuel = $caller.as_context_mut().hostcall_fuel();
        let memory = guest_memory(&mut $caller)?;
        let (data, host) = memory.data_and_store_mut(&mut $caller);
        host.wasi.set_hostcall_fuel(fuel);
        p1::$func(&mut host.wasi, &mut GuestMemory::Unshared(data), $($arg),*)
    }};
    ($caller:ident, $func:ident($($arg:expr),*)) => {{
        let fuel = $caller.as_context_mut().hostcall_fuel();
        let memory = guest_memory(&mut $caller)?;
        let (data, host) = memory.data_and_store_mut(&mut $caller);
        host.wasi.set_hostcall_fuel(fuel);
        let mut memory = GuestMemory::Unshared(data);
        in_tokio(p1::$func(&mut host.wasi, &mut memory, $($arg),*))
    }};
}

/// Shadow the WASI functions the reply file needs in `linker`, which must already hold
/// Wasmtime's WASI (`wasmtime_wasi::p1::add_to_linker_sync`).
pub fn add_to_linker(linker: &mut Linker<Host>) -> Result<(), EngineError> {
    linker.allow_shadowing(true);
    add_path_functions(linker)?;
    add_write_functions(linker)?;
    add_read_functions(linker)?;
    add_descriptor_functions(linker)?;
    linker.allow_shadowing(false);
    Ok(())
}

fn add_path_functions(linker: &mut Linker<Host>) -> Result<(), EngineError> {
    linker.func_wrap(
        WASI,
        "path_open",
        |mut caller: Caller<'_, Host>,
         dirfd: i32,
         dirflags: i32,
         path: i32,
         path_len: i32,
         oflags: i32,
         rights_base: i64,
         rights_inheriting: i64,
         fdflags: i32,
         opened: i32|
         -> Res {
            if !names_reply_file(&mut caller, dirfd, path, path_len)? {
                return forward!(
                    caller,
                    path_open(
                        dirfd,
                        dirflags,
                        path,
                        path_len,
                        oflags,
                        rights_base,
                        rights_inheriting,
                        fdflags,
                        opened
                    )
                );
            }
            with_file(&mut caller, |data, file| {
                let oflags = u16::try_from(oflags)
                    .ok()
                    .and_then(Oflags::from_bits)
                    .ok_or(Errno::Inval)?;
                let rights = Rights::from_bits_truncate(rights_base as u64);
                let fdflags = u16::try_from(fdflags)
                    .ok()
                    .and_then(Fdflags::from_bits)
                    .ok_or(Errno::Inval)?;
                let fd = file.open(oflags, rights, fdflags)?;
                if let Err(e) = store(data, opened, &fd.to_le_bytes()) {
                    file.close(fd)?;
                    return Err(e);
                }
                Ok(())
            })
        },
    )?;
    linker.func_wrap(
        WASI,
        "path_filestat_get",
        |mut caller: Caller<'_, Host>,
         dirfd: i32,
         flags: i32,
         path: i32,
         path_len: i32,
         stat: i32|
         -> Res {
            if !names_reply_file(&mut caller, dirfd, path, path_len)? {
                return forward!(
                    caller,
                    path_filestat_get(dirfd, flags, path, path_len, stat)
                );
            }
            with_file(&mut caller, |data, file| {
                store_filestat(data, stat, file.path_stat()?)
            })
        },
    )?;
    linker.func_wrap(
        WASI,
        "path_unlink_file",
        |mut caller: Caller<'_, Host>, dirfd: i32, path: i32, path_len: i32| -> Res {
            if !names_reply_file(&mut caller, dirfd, path, path_len)? {
                return forward!(caller, path_unlink_file(dirfd, path, path_len));
            }
            with_file(&mut caller, |_, file| file.unlink())
        },
    )?;
    linker.func_wrap(
        WASI,
        "path_rename",
        |mut caller: Caller<'_, Host>,
         dirfd: i32,
         path: i32,
         path_len: i32,
         new_dirfd: i32,
         new_path: i32,
         new_path_len: i32|
         -> Res {
            let from_file = names_reply_file(&mut caller, dirfd, path, path_len)?;
            let onto_file = names_reply_file(&mut caller, new_dirfd, new_path, new_path_len)?;
            if !from_file && !onto_file {
                return forward!(
                    caller,
                    path_rename(dirfd, path, path_len, new_dirfd, new_path, new_path_len)
                );
            }
            let same_dir = new_dirfd as u32 == caller.data().pgdata_fd;
            with_file(&mut caller, |data, file| {
                if onto_file || !same_dir {
                    return Err(Errno::Xdev);
                }
                file.rename(guest_bytes(data, new_path, new_path_len)?)
            })
        },
    )?;
    Ok(())
}

fn add_write_functions(linker: &mut Linker<Host>) -> Result<(), EngineError> {
    linker.func_wrap(
        WASI,
        "fd_write",
        |mut caller: Caller<'_, Host>, fd: i32, iovs: i32, iovs_len: i32, written: i32| -> Res {
            if !ReplyFile::owns(fd as u32) {
                return forward!(caller, fd_write(fd, iovs, iovs_len, written));
            }
            with_file(&mut caller, |data, file| {
                write_from(data, iovs, iovs_len, written, |buffers| {
                    file.write(fd as u32, buffers)
                })
            })
        },
    )?;
    linker.func_wrap(
        WASI,
        "fd_pwrite",
        |mut caller: Caller<'_, Host>,
         fd: i32,
         iovs: i32,
         iovs_len: i32,
         offset: i64,
         written: i32|
         -> Res {
            if !ReplyFile::owns(fd as u32) {
                return forward!(caller, fd_pwrite(fd, iovs, iovs_len, offset, written));
            }
            with_file(&mut caller, |data, file| {
                write_from(data, iovs, iovs_len, written, |buffers| {
                    file.pwrite(fd as u32, buffers, offset as u64)
                })
            })
        },
    )?;
    linker.func_wrap(
        WASI,
        "fd_filestat_set_size",
        |mut caller: Caller<'_, Host>, fd: i32, size: i64| -> Res {
            if !ReplyFile::owns(fd as u32) {
                return forward!(caller, fd_filestat_set_size(fd, size));
            }
            with_file(&mut caller, |_, file| file.set_size(fd as u32, size as u64))
        },
    )?;
    for name in ["fd_sync", "fd_datasync"] {
        linker.func_wrap(
            WASI,
            name,
            move |mut caller: Caller<'_, Host>, fd: i32| -> Res {
                if !ReplyFile::owns(fd as u32) {
                    return if name == "fd_sync" {
                        forward!(caller, fd_sync(fd))
                    } else {
                        forward!(caller, fd_datasync(fd))
                    };
                }
                with_file(&mut caller, |_, file| file.sync(fd as u32))
            },
        )?;
    }
    Ok(())
}

fn add_read_functions(linker: &mut Linker<Host>) -> Result<(), EngineError> {
    linker.func_wrap(
        WASI,
        "fd_read",
        |mut caller: Caller<'_, Host>, fd: i32, iovs: i32, iovs_len: i32, read: i32| -> Res {
            if !ReplyFile::owns(fd as u32) {
                return forward!(caller, fd_read(fd, iovs, iovs_len, read));
            }
            with_file(&mut caller, |data, file| {
                read_into(data, iovs, iovs_len, read, |max| file.read(fd as u32, max))
            })
        },
    )?;
    linker.func_wrap(
        WASI,
        "fd_pread",
        |mut caller: Caller<'_, Host>,
         fd: i32,
         iovs: i32,
         iovs_len: i32,
         offset: i64,
         read: i32|
         -> Res {
            if !ReplyFile::owns(fd as u32) {
                return forward!(caller, fd_pread(fd, iovs, iovs_len, offset, read));
            }
            with_file(&mut caller, |data, file| {
                read_into(data, iovs, iovs_len, read, |max| {
                    file.pread(fd as u32, max, offset as u64)
                })
            })
        },
    )?;
    Ok(())
}

fn add_descriptor_functions(linker: &mut Linker<Host>) -> Result<(), EngineError> {
    linker.func_wrap(
        WASI,
        "fd_close",
        |mut caller: Caller<'_, Host>, fd: i32| -> Res {
            if !ReplyFile::owns(fd as u32) {
                return forward!(caller, fd_close(fd));
            }
            with_file(&mut caller, |_, file| file.close(fd as u32))
        },
    )?;
    linker.func_wrap(
        WASI,
        "fd_seek",
        |mut caller: Caller<'_, Host>, fd: i32, offset: i64, whence: i32, position: i32| -> Res {
            if !ReplyFile::owns(fd as u32) {
                return forward!(caller, fd_seek(fd, offset, whence, position));
            }
            with_file(&mut caller, |data, file| {
                let whence = u8::try_from(whence).map_err(|_| Errno::Inval)?;
                let at = file.seek(fd as u32, offset, whence)?;
                store(data, position, &at.to_le_bytes())
            })
        },
    )?;
    linker.func_wrap(
        WASI,
        "fd_tell",
        |mut caller: Caller<'_, Host>, fd: i32, position: i32| -> Res {
            if !ReplyFile::owns(fd as u32) {
                return forward!(caller, sync fd_tell(fd, position));
            }
            with_file(&mut caller, |data, file| {
                let at = file.tell(fd as u32)?;
                store(data, position, &at.to_le_bytes())
            })
        },
    )?;
    linker.func_wrap(
        WASI,
        "fd_fdstat_get",
        |mut caller: Caller<'_, Host>, fd: i32, stat: i32| -> Res {
            if !ReplyFile::owns(fd as u32) {
                return forward!(caller, fd_fdstat_get(fd, stat));
            }
            with_file(&mut caller, |data, file| {
                let fdstat = file.fdstat(fd as u32)?;
                // struct fdstat: filetype u8, flags u16 at 2, rights base and
                // inheriting u64 at 8 and 16.
                let mut bytes = [0u8; 24];
                bytes[0] = FILETYPE as u8;
                bytes[2..4].copy_from_slice(&fdstat.flags.bits().to_le_bytes());
                bytes[8..16].copy_from_slice(&fdstat.rights.bits().to_le_bytes());
                bytes[16..24].copy_from_slice(&fdstat.rights.bits().to_le_bytes());
                store(data, stat, &bytes)
            })
        },
    )?;
    linker.func_wrap(
        WASI,
        "fd_fdstat_set_flags",
        |mut caller: Caller<'_, Host>, fd: i32, flags: i32| -> Res {
            if !ReplyFile::owns(fd as u32) {
                return forward!(caller, sync fd_fdstat_set_flags(fd, flags));
            }
            with_file(&mut caller, |_, file| {
                let flags = u16::try_from(flags)
                    .ok()
                    .and_then(Fdflags::from_bits)
                    .ok_or(Errno::Inval)?;
                file.set_flags(fd as u32, flags)
            })
        },
    )?;
    linker.func_wrap(
        WASI,
        "fd_filestat_get",
        |mut caller: Caller<'_, Host>, fd: i32, stat: i32| -> Res {
            if !ReplyFile::owns(fd as u32) {
                return forward!(caller, fd_filestat_get(fd, stat));
            }
            with_file(&mut caller, |data, file| {
                store_filestat(data, stat, file.fd_stat(fd as u32)?)
            })
        },
    )?;
    Ok(())
}

/// The guest's memory: the instance's export, remembered once instantiated.
fn guest_memory(caller: &mut Caller<'_, Host>) -> wasmtime::Result<Memory> {
    if let Some(memory) = caller.data().memory {
        return Ok(memory);
    }
    caller
        .get_export("memory")
        .and_then(|e| e.into_memory())
        .ok_or_else(|| wasmtime::format_err!("guest has no memory export"))
}

/// True when `dirfd` is the data directory's preopen and the path names the reply file.
fn names_reply_file(
    caller: &mut Caller<'_, Host>,
    dirfd: i32,
    path: i32,
    path_len: i32,
) -> wasmtime::Result<bool> {
    if dirfd as u32 != caller.data().pgdata_fd {
        return Ok(false);
    }
    let memory = guest_memory(caller)?;
    Ok(guest_bytes(memory.data(&*caller), path, path_len).is_ok_and(ReplyFile::is_name))
}

/// Run `op` on the reply file with the guest's memory; its error becomes the errno.
fn with_file(
    caller: &mut Caller<'_, Host>,
    op: impl FnOnce(&mut [u8], &mut ReplyFile) -> FileResult<()>,
) -> Res {
    let memory = guest_memory(caller)?;
    let (data, host) = memory.data_and_store_mut(caller);
    Ok(match op(data, &mut host.reply_file) {
        Ok(()) => Errno::Success as i32,
        Err(errno) => errno as i32,
    })
}

fn guest_bytes(data: &[u8], ptr: i32, len: i32) -> FileResult<&[u8]> {
    let start = ptr as u32 as usize;
    let end = start.checked_add(len as u32 as usize).ok_or(Errno::Fault)?;
    data.get(start..end).ok_or(Errno::Fault)
}

fn store(data: &mut [u8], ptr: i32, bytes: &[u8]) -> FileResult<()> {
    let start = ptr as u32 as usize;
    let end = start.checked_add(bytes.len()).ok_or(Errno::Fault)?;
    data.get_mut(start..end)
        .ok_or(Errno::Fault)?
        .copy_from_slice(bytes);
    Ok(())
}

/// Store a `size` (u32) result.
fn store_size(data: &mut [u8], ptr: i32, n: u64) -> FileResult<()> {
    let n = u32::try_from(n).map_err(|_| Errno::Overflow)?;
    store(data, ptr, &n.to_le_bytes())
}

/// Store a `filestat`: dev, ino, filetype (u8 at 16), nlink, size, atim, mtim, ctim.
fn store_filestat(data: &mut [u8], ptr: i32, stat: FileStat) -> FileResult<()> {
    let mut bytes = [0u8; 64];
    bytes[8..16].copy_from_slice(&stat.inode.to_le_bytes());
    bytes[16] = FILETYPE as u8;
    bytes[24..32].copy_from_slice(&1u64.to_le_bytes());
    bytes[32..40].copy_from_slice(&stat.size.to_le_bytes());
    store(data, ptr, &bytes)
}

/// The (address, length) pairs of an `iovec`/`ciovec` array.
fn iovecs(data: &[u8], iovs: i32, iovs_len: i32) -> FileResult<Vec<(usize, usize)>> {
    let count = iovs_len as u32 as usize;
    let table = guest_bytes(
        data,
        iovs,
        i32::try_from(count.checked_mul(8).ok_or(Errno::Overflow)?).map_err(|_| Errno::Fault)?,
    )?;
    table
        .chunks_exact(8)
        .map(|entry| {
            let ptr = u32::from_le_bytes(entry[..4].try_into().expect("4 bytes")) as usize;
            let len = u32::from_le_bytes(entry[4..].try_into().expect("4 bytes")) as usize;
            let end = ptr.checked_add(len).ok_or(Errno::Fault)?;
            if end > data.len() {
                return Err(Errno::Fault);
            }
            Ok((ptr, len))
        })
        .collect()
}

/// Write the guest's `ciovec` buffers with `write` and store the byte count it returns
/// at `written`.
fn write_from(
    data: &mut [u8],
    iovs: i32,
    iovs_len: i32,
    written: i32,
    write: impl FnOnce(&[&[u8]]) -> FileResult<u64>,
) -> FileResult<()> {
    let n = write(&gather(data, iovs, iovs_len)?)?;
    store_size(data, written, n)
}

/// Fill the guest's `iovec` buffers with what `read` returns for their total capacity
/// and store the byte count at `read_out`.
fn read_into(
    data: &mut [u8],
    iovs: i32,
    iovs_len: i32,
    read_out: i32,
    read: impl FnOnce(u64) -> FileResult<Vec<u8>>,
) -> FileResult<()> {
    let targets = iovecs(data, iovs, iovs_len)?;
    let bytes = read(capacity(&targets))?;
    scatter(data, &targets, &bytes);
    store_size(data, read_out, bytes.len() as u64)
}

fn gather(data: &[u8], iovs: i32, iovs_len: i32) -> FileResult<Vec<&[u8]>> {
    Ok(iovecs(data, iovs, iovs_len)?
        .into_iter()
        .map(|(ptr, len)| &data[ptr..ptr + len])
        .collect())
}

fn capacity(targets: &[(usize, usize)]) -> u64 {
    targets.iter().map(|&(_, len)| len as u64).sum()
}

fn scatter(data: &mut [u8], targets: &[(usize, usize)], mut bytes: &[u8]) {
    for &(ptr, len) in targets {
        let n = len.min(bytes.len());
        data[ptr..ptr + n].copy_from_slice(&bytes[..n]);
        bytes = &bytes[n..];
    }
}
