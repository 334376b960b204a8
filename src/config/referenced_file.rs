//! Files a config names (certificates, keys, CA bundles, password files), read at load so
//! that a missing or unfit one is a config error rather than a surprise at run time.

use std::path::Path;

/// The largest file a config may point at: certificates, keys, CA bundles, password files.
const MAX_REFERENCED_FILE: u64 = 1 << 20;

/// Reads a file the config names (a certificate, a key, a password). Only a regular file of
/// at most 1 MiB: a path to a device or a pipe (a slip of the pen, or `/dev/zero`) is an
/// error, where a plain read would exhaust memory or wait forever for a writer.
pub fn read_referenced_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    // stat, not open: opening a FIFO blocks until someone writes to it.
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let too_big = || std::io::Error::other(format!("larger than {MAX_REFERENCED_FILE} bytes"));
    if meta.len() > MAX_REFERENCED_FILE {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_REFERENCED_FILE + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_REFERENCED_FILE {
        return Err(too_big());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::read_referenced_file;

    #[test]
    fn devices_pipes_and_huge_files_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let e = read_referenced_file(&fifo).expect_err("a FIFO");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = read_referenced_file(std::path::Path::new("/dev/zero")).expect_err("a device");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 2 << 20]).expect("write");
        let e = read_referenced_file(&big).expect_err("too big");
        assert!(e.to_string().contains("larger than"), "{e}");
        let ok = dir.path().join("ok");
        std::fs::write(&ok, "secret\n").expect("write");
        assert_eq!(read_referenced_file(&ok).expect("read"), b"secret\n");
    }
}
