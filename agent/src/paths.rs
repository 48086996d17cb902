//! Opening a path a job controls, as the agent (root): through no link at all (`openat2` with
//! `RESOLVE_NO_SYMLINKS`, or a walk one component at a time on kernels without it), and for a
//! task's own output file only when it is the very file the shim opened as the run-as user.

use crate::journal::FileId;
use nix::errno::Errno;
use nix::fcntl::{OFlag, ResolveFlag};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

/// How the agent opens output files: to read, never blocking (a FIFO), never a terminal.
fn flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NOFOLLOW
}

/// Opens an absolute path through no symbolic link and no `..`; a plain file only.
pub fn open_no_links(path: &Path) -> Option<File> {
    if !path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir)) {
        return None;
    }
    let how = nix::fcntl::OpenHow::new()
        .flags(flags())
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = match nix::fcntl::openat2(nix::fcntl::AT_FDCWD, path, how) {
        Ok(fd) => fd,
        Err(Errno::ENOSYS) => walk(path)?,
        Err(_) => return None,
    };
    let file = File::from(fd);
    file.metadata().is_ok_and(|m| m.is_file()).then_some(file)
}

/// Opens `path` as `open_no_links` does, and only if it is the file `id`.
pub fn open_identified(path: &Path, id: FileId) -> Option<File> {
    open_no_links(path).filter(|f| f.metadata().is_ok_and(|m| FileId::of(&m) == id))
}

/// The same through one `openat` per component, each refusing a link (kernels before 5.6).
fn walk(path: &Path) -> Option<OwnedFd> {
    use nix::sys::stat::Mode;
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut dir = nix::fcntl::open("/", dir_flags, Mode::empty()).ok()?;
    let names: Vec<_> =
        path.components().filter_map(|c| if let Component::Normal(n) = c { Some(n) } else { None }).collect();
    let (last, dirs) = names.split_last()?;
    for name in dirs {
        dir = nix::fcntl::openat(&dir, *name, dir_flags, Mode::empty()).ok()?;
    }
    nix::fcntl::openat(&dir, *last, flags(), Mode::empty()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_link_anywhere_on_the_path_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("out"), "mine").unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("via")).unwrap();
        std::os::unix::fs::symlink(real.join("out"), real.join("link")).unwrap();
        let direct = real.join("out");
        assert!(open_no_links(&direct).is_some());
        assert!(walk(&direct).is_some(), "the walk opens what openat2 opens");
        for refused in [dir.path().join("via/out"), real.join("link"), real.join("../real/out")] {
            assert!(open_no_links(&refused).is_none(), "{}", refused.display());
            assert!(walk(&refused).is_none() || refused.to_string_lossy().contains(".."), "{}", refused.display());
        }
        assert!(open_no_links(Path::new("relative/out")).is_none());
        assert!(open_no_links(dir.path()).is_none(), "a directory is no output file");
    }

    #[test]
    fn only_the_file_the_shim_opened_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        std::fs::write(&path, "first").unwrap();
        let id = FileId::of(&std::fs::metadata(&path).unwrap());
        assert!(open_identified(&path, id).is_some());
        // Replaced by another file at the same path (a rename, as a job could do).
        let other = dir.path().join("other");
        std::fs::write(&other, "someone else's").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert!(open_identified(&path, id).is_none());
    }
}
