//! The guest's reply file, `.s.PGSQL.5432.lock.out`, kept in host memory.
//!
//! On every exchange the runtime opens this file in the data directory (`fopen(...,
//! "w")`), in case the reply overflows the shared buffer, and closes it again at the end
//! of the exchange. Only when the reply did overflow has anything been written; then the
//! guest renames the file to `.s.PGSQL.5432.out`, which the host reads. On disk that
//! costs five system calls and five trips through Wasmtime's WASI layer per exchange
//! (docs/PERFORMANCE.md). [`ReplyFile`] is the same file as a byte vector: the WASI
//! functions in [`crate::wasi_overrides`] hand the guest descriptors on it, and the
//! rename leaves the bytes for [`ReplyFile::take_reply`].
//!
//! It behaves like a regular file for what the guest does with it: create, truncate,
//! write (also positioned or appending), read, seek, tell, stat, resize, sync, close,
//! unlink, and rename to the reply name. A rename to any other name, or of another file
//! onto this name, fails with `EXDEV` (the file lives on another "device"), as do other
//! calls the runtime never makes; nothing is silently dropped.

use std::collections::BTreeMap;

use wasmtime_wasi::p1::types::{Errno, Fdflags, Filetype, Oflags, Rights};

/// Name of the reply file in the data directory, as the guest spells it.
pub const REPLY_LOCK_FILE: &str = ".s.PGSQL.5432.lock.out";
/// Name the guest renames the reply file to when the reply overflowed.
pub const REPLY_FILE: &str = ".s.PGSQL.5432.out";

/// First guest descriptor number handed out for the file. Wasmtime's WASI context
/// numbers its descriptors from the lowest free one, so it never reaches this range.
pub const FIRST_FD: u32 = 0x4000_0000;
/// Descriptor numbers reserved for the file (one per simultaneously open handle).
const MAX_HANDLES: u32 = 64;

/// Rights a handle on the file can have.
const FILE_RIGHTS: Rights = Rights::FD_READ
    .union(Rights::FD_WRITE)
    .union(Rights::FD_SEEK)
    .union(Rights::FD_TELL)
    .union(Rights::FD_SYNC)
    .union(Rights::FD_DATASYNC)
    .union(Rights::FD_FDSTAT_SET_FLAGS)
    .union(Rights::FD_FILESTAT_GET)
    .union(Rights::FD_FILESTAT_SET_SIZE);

/// One open descriptor on a file's contents.
#[derive(Debug)]
struct Handle {
    inode: u64,
    position: u64,
    append: bool,
    read: bool,
    write: bool,
}

/// Attributes reported for a descriptor (`fd_fdstat_get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdStat {
    /// Descriptor flags (only `APPEND` is kept).
    pub flags: Fdflags,
    /// Rights of the descriptor.
    pub rights: Rights,
}

/// Attributes reported for the file (`fd_filestat_get`, `path_filestat_get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    /// A number unique to this file's contents while they exist.
    pub inode: u64,
    /// Size in bytes.
    pub size: u64,
}

/// The reply file's name, open handles and contents.
#[derive(Debug, Default)]
pub struct ReplyFile {
    /// Contents by inode number; an inode lives while a name or a handle refers to it.
    inodes: BTreeMap<u64, Vec<u8>>,
    next_inode: u64,
    /// The inode under [`REPLY_LOCK_FILE`], when the file exists.
    named: Option<u64>,
    /// The inode renamed to [`REPLY_FILE`] and not yet taken by the host.
    reply: Option<u64>,
    handles: BTreeMap<u32, Handle>,
}

/// Result of a call on the file: a WASI error number on failure.
pub type FileResult<T> = Result<T, Errno>;

impl ReplyFile {
    /// True when `fd` is one of this file's descriptors.
    pub fn owns(fd: u32) -> bool {
        (FIRST_FD..FIRST_FD + MAX_HANDLES).contains(&fd)
    }

    /// True when `name` (a path relative to the data directory) is the reply file.
    pub fn is_name(name: &[u8]) -> bool {
        name == REPLY_LOCK_FILE.as_bytes()
    }

    /// `path_open` of the file: returns the new descriptor.
    pub fn open(&mut self, oflags: Oflags, rights: Rights, fdflags: Fdflags) -> FileResult<u32> {
        if oflags.contains(Oflags::DIRECTORY) {
            return Err(Errno::Notdir);
        }
        let inode = match self.named {
            Some(_) if oflags.contains(Oflags::CREAT | Oflags::EXCL) => return Err(Errno::Exist),
            Some(inode) => inode,
            None if oflags.contains(Oflags::CREAT) => {
                let inode = self.next_inode;
                self.next_inode += 1;
                self.inodes.insert(inode, Vec::new());
                self.named = Some(inode);
                inode
            }
            None => return Err(Errno::Noent),
        };
        let fd = (FIRST_FD..FIRST_FD + MAX_HANDLES)
            .find(|fd| !self.handles.contains_key(fd))
            .ok_or(Errno::Nfile)?;
        if oflags.contains(Oflags::TRUNC) {
            self.contents(inode).clear();
        }
        self.handles.insert(
            fd,
            Handle {
                inode,
                position: 0,
                append: fdflags.contains(Fdflags::APPEND),
                read: rights.contains(Rights::FD_READ),
                write: rights.contains(Rights::FD_WRITE),
            },
        );
        Ok(fd)
    }

    /// `fd_close`.
    pub fn close(&mut self, fd: u32) -> FileResult<()> {
        let handle = self.handles.remove(&fd).ok_or(Errno::Badf)?;
        self.forget_unused(handle.inode);
        Ok(())
    }

    /// `fd_write`: write the buffers at the handle's position (or the end when it
    /// appends) and advance it. Returns the bytes written.
    pub fn write(&mut self, fd: u32, buffers: &[&[u8]]) -> FileResult<u64> {
        let handle = self.writable(fd)?;
        let (inode, append, position) = (handle.inode, handle.append, handle.position);
        let contents = self.contents(inode);
        let at = if append {
            contents.len() as u64
        } else {
            position
        };
        let end = write_at(contents, at, buffers)?;
        if let Some(handle) = self.handles.get_mut(&fd) {
            handle.position = end;
        }
        Ok(end - at)
    }

    /// `fd_pwrite`: write the buffers at `offset`; the position does not move.
    pub fn pwrite(&mut self, fd: u32, buffers: &[&[u8]], offset: u64) -> FileResult<u64> {
        let inode = self.writable(fd)?.inode;
        let end = write_at(self.contents(inode), offset, buffers)?;
        Ok(end - offset)
    }

    /// `fd_read`: bytes from the handle's position (advanced past them), at most `max`.
    pub fn read(&mut self, fd: u32, max: u64) -> FileResult<Vec<u8>> {
        let (inode, position) = self.readable(fd)?;
        let bytes = read_at(self.contents(inode), position, max);
        if let Some(handle) = self.handles.get_mut(&fd) {
            handle.position += bytes.len() as u64;
        }
        Ok(bytes)
    }

    /// `fd_pread`: at most `max` bytes from `offset`; the position does not move.
    pub fn pread(&mut self, fd: u32, max: u64, offset: u64) -> FileResult<Vec<u8>> {
        let (inode, _) = self.readable(fd)?;
        Ok(read_at(self.contents(inode), offset, max))
    }

    /// `fd_seek`: `whence` 0 = set, 1 = current, 2 = end. Returns the new position.
    pub fn seek(&mut self, fd: u32, offset: i64, whence: u8) -> FileResult<u64> {
        let handle = self.handles.get(&fd).ok_or(Errno::Badf)?;
        let base = match whence {
            0 => 0,
            1 => handle.position,
            2 => self.inodes.get(&handle.inode).map_or(0, |c| c.len() as u64),
            _ => return Err(Errno::Inval),
        };
        let position = base
            .checked_add_signed(offset)
            .filter(|p| i64::try_from(*p).is_ok())
            .ok_or(Errno::Inval)?;
        if let Some(handle) = self.handles.get_mut(&fd) {
            handle.position = position;
        }
        Ok(position)
    }

    /// `fd_tell`.
    pub fn tell(&self, fd: u32) -> FileResult<u64> {
        Ok(self.handles.get(&fd).ok_or(Errno::Badf)?.position)
    }

    /// `fd_fdstat_get`.
    pub fn fdstat(&self, fd: u32) -> FileResult<FdStat> {
        let handle = self.handles.get(&fd).ok_or(Errno::Badf)?;
        let mut rights = FILE_RIGHTS;
        if !handle.read {
            rights.remove(Rights::FD_READ);
        }
        if !handle.write {
            rights.remove(Rights::FD_WRITE | Rights::FD_FILESTAT_SET_SIZE);
        }
        let mut flags = Fdflags::empty();
        if handle.append {
            flags |= Fdflags::APPEND;
        }
        Ok(FdStat { flags, rights })
    }

    /// `fd_fdstat_set_flags`: only `APPEND` changes anything (the file never blocks and
    /// lives in memory, so the sync flags have nothing to do).
    pub fn set_flags(&mut self, fd: u32, flags: Fdflags) -> FileResult<()> {
        let handle = self.handles.get_mut(&fd).ok_or(Errno::Badf)?;
        handle.append = flags.contains(Fdflags::APPEND);
        Ok(())
    }

    /// `fd_filestat_get`.
    pub fn fd_stat(&self, fd: u32) -> FileResult<FileStat> {
        let handle = self.handles.get(&fd).ok_or(Errno::Badf)?;
        Ok(self.stat_of(handle.inode))
    }

    /// `path_filestat_get` of the file's name.
    pub fn path_stat(&self) -> FileResult<FileStat> {
        self.named.map(|i| self.stat_of(i)).ok_or(Errno::Noent)
    }

    /// `fd_filestat_set_size`.
    pub fn set_size(&mut self, fd: u32, size: u64) -> FileResult<()> {
        let inode = self.writable(fd)?.inode;
        let size = usize::try_from(size).map_err(|_| Errno::Fbig)?;
        self.contents(inode).resize(size, 0);
        Ok(())
    }

    /// `fd_sync` / `fd_datasync`: nothing to do in memory, but the descriptor must exist.
    pub fn sync(&self, fd: u32) -> FileResult<()> {
        self.handles.get(&fd).map(drop).ok_or(Errno::Badf)
    }

    /// `path_unlink_file` of the file's name.
    pub fn unlink(&mut self) -> FileResult<()> {
        let inode = self.named.take().ok_or(Errno::Noent)?;
        self.forget_unused(inode);
        Ok(())
    }

    /// `path_rename` of the file to `target` in the data directory: only the reply name
    /// is supported.
    pub fn rename(&mut self, target: &[u8]) -> FileResult<()> {
        if target != REPLY_FILE.as_bytes() {
            return Err(Errno::Xdev);
        }
        let inode = self.named.take().ok_or(Errno::Noent)?;
        if let Some(old) = self.reply.replace(inode) {
            self.forget_unused(old);
        }
        Ok(())
    }

    /// The contents the guest renamed to the reply name, if it did since the last call.
    pub fn take_reply(&mut self) -> Option<Vec<u8>> {
        let inode = self.reply.take()?;
        if self.referenced(inode) {
            Some(self.inodes.get(&inode).cloned().unwrap_or_default())
        } else {
            self.inodes.remove(&inode)
        }
    }

    fn readable(&self, fd: u32) -> FileResult<(u64, u64)> {
        let handle = self.handles.get(&fd).ok_or(Errno::Badf)?;
        if !handle.read {
            return Err(Errno::Badf);
        }
        Ok((handle.inode, handle.position))
    }

    /// The handle `fd`, if it was opened for writing.
    fn writable(&self, fd: u32) -> FileResult<&Handle> {
        let handle = self.handles.get(&fd).ok_or(Errno::Badf)?;
        if !handle.write {
            return Err(Errno::Badf);
        }
        Ok(handle)
    }

    fn stat_of(&self, inode: u64) -> FileStat {
        FileStat {
            inode,
            size: self.inodes.get(&inode).map_or(0, |c| c.len() as u64),
        }
    }

    fn contents(&mut self, inode: u64) -> &mut Vec<u8> {
        self.inodes.entry(inode).or_default()
    }

    fn referenced(&self, inode: u64) -> bool {
        self.named == Some(inode)
            || self.reply == Some(inode)
            || self.handles.values().any(|h| h.inode == inode)
    }

    fn forget_unused(&mut self, inode: u64) {
        if !self.referenced(inode) {
            self.inodes.remove(&inode);
        }
    }
}

/// The file type every descriptor on the file reports.
pub const FILETYPE: Filetype = Filetype::RegularFile;

fn write_at(contents: &mut Vec<u8>, at: u64, buffers: &[&[u8]]) -> FileResult<u64> {
    let total: usize = buffers.iter().map(|b| b.len()).sum();
    let start = usize::try_from(at).map_err(|_| Errno::Fbig)?;
    let end = start.checked_add(total).ok_or(Errno::Fbig)?;
    if contents.len() < end {
        contents.resize(end, 0);
    }
    let mut cursor = start;
    for buffer in buffers {
        contents[cursor..cursor + buffer.len()].copy_from_slice(buffer);
        cursor += buffer.len();
    }
    Ok(end as u64)
}

fn read_at(contents: &[u8], at: u64, max: u64) -> Vec<u8> {
    let start = usize::try_from(at)
        .unwrap_or(usize::MAX)
        .min(contents.len());
    let len = usize::try_from(max).unwrap_or(usize::MAX);
    contents[start..start.saturating_add(len).min(contents.len())].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRITE: Rights = Rights::FD_WRITE.union(Rights::FD_SEEK);

    fn create(file: &mut ReplyFile) -> u32 {
        file.open(Oflags::CREAT | Oflags::TRUNC, WRITE, Fdflags::empty())
            .unwrap()
    }

    #[test]
    fn an_exchange_without_overflow_leaves_an_empty_file_and_no_reply() {
        let mut file = ReplyFile::default();
        for _ in 0..3 {
            let fd = create(&mut file);
            assert!(ReplyFile::owns(fd));
            assert_eq!(file.fdstat(fd).unwrap().flags, Fdflags::empty());
            assert_eq!(file.tell(fd).unwrap(), 0);
            file.close(fd).unwrap();
        }
        assert_eq!(file.path_stat().unwrap().size, 0);
        assert_eq!(file.take_reply(), None);
    }

    #[test]
    fn an_overflowing_reply_is_written_renamed_and_taken_once() {
        let mut file = ReplyFile::default();
        let fd = create(&mut file);
        assert_eq!(file.write(fd, &[b"abc", b"", b"de"]).unwrap(), 5);
        assert_eq!(file.write(fd, &[b"fg"]).unwrap(), 2);
        assert_eq!(file.seek(fd, 0, 1).unwrap(), 7);
        assert_eq!(file.fd_stat(fd).unwrap().size, 7);
        file.close(fd).unwrap();
        file.rename(REPLY_FILE.as_bytes()).unwrap();
        assert_eq!(file.path_stat(), Err(Errno::Noent));
        assert_eq!(file.take_reply().as_deref(), Some(&b"abcdefg"[..]));
        assert_eq!(file.take_reply(), None);
        assert!(file.inodes.is_empty(), "contents are freed once taken");
        // The next exchange starts from an empty file again.
        let fd = create(&mut file);
        assert_eq!(file.fd_stat(fd).unwrap().size, 0);
    }

    #[test]
    fn reopening_with_truncate_empties_and_without_keeps_contents() {
        let mut file = ReplyFile::default();
        let fd = create(&mut file);
        file.write(fd, &[b"hello"]).unwrap();
        file.close(fd).unwrap();
        let read = Rights::FD_READ;
        let fd = file.open(Oflags::empty(), read, Fdflags::empty()).unwrap();
        assert_eq!(file.read(fd, 3).unwrap(), b"hel");
        assert_eq!(file.read(fd, 10).unwrap(), b"lo");
        assert_eq!(file.pread(fd, 10, 1).unwrap(), b"ello");
        assert_eq!(
            file.write(fd, &[b"x"]),
            Err(Errno::Badf),
            "opened read-only"
        );
        file.close(fd).unwrap();
        let fd = create(&mut file);
        assert_eq!(file.fd_stat(fd).unwrap().size, 0);
    }

    #[test]
    fn positioned_appending_and_resizing_writes_behave_like_a_file() {
        let mut file = ReplyFile::default();
        let fd = create(&mut file);
        file.pwrite(fd, &[b"xy"], 3).unwrap();
        assert_eq!(file.tell(fd).unwrap(), 0, "pwrite keeps the position");
        assert_eq!(file.fd_stat(fd).unwrap().size, 5);
        file.write(fd, &[b"ab"]).unwrap();
        file.set_flags(fd, Fdflags::APPEND).unwrap();
        file.write(fd, &[b"!"]).unwrap();
        file.set_size(fd, 4).unwrap();
        assert_eq!(file.seek(fd, -1, 2).unwrap(), 3);
        assert_eq!(file.seek(fd, -10, 1), Err(Errno::Inval));
        file.close(fd).unwrap();
        file.rename(REPLY_FILE.as_bytes()).unwrap();
        assert_eq!(file.take_reply().as_deref(), Some(&b"ab\0x"[..]));
    }

    #[test]
    fn open_flags_and_names_are_checked() {
        let mut file = ReplyFile::default();
        let none = Fdflags::empty();
        assert_eq!(file.open(Oflags::empty(), WRITE, none), Err(Errno::Noent));
        assert_eq!(file.unlink(), Err(Errno::Noent));
        let fd = create(&mut file);
        assert_eq!(
            file.open(Oflags::CREAT | Oflags::EXCL, WRITE, none),
            Err(Errno::Exist)
        );
        assert_eq!(
            file.open(Oflags::DIRECTORY, WRITE, none),
            Err(Errno::Notdir)
        );
        assert_eq!(file.rename(b"elsewhere"), Err(Errno::Xdev));
        assert_eq!(file.close(fd + 1), Err(Errno::Badf));
        file.unlink().unwrap();
        // The open handle still works on the unlinked contents.
        assert_eq!(file.write(fd, &[b"z"]).unwrap(), 1);
        file.close(fd).unwrap();
        assert!(file.inodes.is_empty());
        assert!(ReplyFile::is_name(REPLY_LOCK_FILE.as_bytes()));
        assert!(!ReplyFile::is_name(REPLY_FILE.as_bytes()));
        assert!(!ReplyFile::owns(3));
    }
}
