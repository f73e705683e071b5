//! The version hash of a model (SPEC §6), computed exactly as OpenSSF model-signing v1.0
//! computes its root digest, so anyone can re-derive it without custody.
//!
//! A model is a directory or a single file. Every regular file is hashed with SHA-256 (the
//! same value `sha256sum` prints); the files are ordered by their POSIX path relative to the
//! model, compared component by component; the version hash is SHA-256 over the concatenated
//! raw 32-byte file digests. A single-file model is the one resource `.`, so its version hash
//! is `SHA-256(SHA-256(file))`.
//!
//! The rules follow `model_signing` 1.1.1 (`hashing.py`, `_serialization/file.py`,
//! `_serialization/serialization.py`, `manifest.py`, `_signing/signing.py`) rather than a
//! paraphrase of it:
//!
//! - Only the top-level entries `.git`, `.github`, `.gitattributes` and `.gitignore` (and
//!   everything below them) are left out. A nested `sub/.gitignore` is part of the model.
//! - Every entry is checked, ignored ones included: a symbolic link or a special file anywhere
//!   in the tree (even inside `.git/`) is refused, as `model_signing` refuses it.
//! - Order is by path components (Python's `PurePosixPath` ordering): `a/b` sorts before
//!   `a-b/x`, although `-` is a smaller byte than `/`. Equivalently: byte order of the path
//!   with `/` ranked below every other byte.
//!
//! Hashing is split into [`plan`] (walk and stat, cheap) and [`ModelPlan::hash`] (read every
//! byte once through a bounded buffer) so a caller can size a progress bar before the slow part.

use std::cmp::Ordering;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

/// Prefix of every digest custody writes; what follows is the `sha256sum` hex.
pub const SHA256_PREFIX: &str = "sha256:";

/// Top-level names a directory model leaves out, as `model_signing`'s default git ignore list.
pub const IGNORED_TOP_LEVEL_NAMES: [&str; 4] = [".git", ".gitattributes", ".github", ".gitignore"];

/// The manifest path of the only file of a single-file model (`model_signing` names it so).
pub const SINGLE_FILE_PATH: &str = ".";

/// Bytes read per call while hashing: large enough for throughput, small enough that a
/// multi-gigabyte weight file never needs more than this much memory.
const READ_BUFFER_BYTES: usize = 1 << 20;

/// Why a model could not be planned or hashed. Every variant names the path concerned.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model path, or a file that was planned, does not exist.
    #[error("{}: no such file or directory", path.display())]
    NotFound {
        /// The missing path.
        path: PathBuf,
    },
    /// A symbolic link: refused, as `model_signing` refuses it, because what it points at can
    /// change without the model changing.
    #[error("{}: is a symbolic link; a model may not contain symbolic links", path.display())]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// A socket, FIFO, device or other entry that is neither a regular file nor a directory.
    #[error("{}: is not a regular file or directory", path.display())]
    NotRegularFile {
        /// The entry.
        path: PathBuf,
    },
    /// The operating system refused to list or read the path.
    #[error("{}: cannot read: {source}", path.display())]
    Unreadable {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A directory with no file to hash once the ignored git entries are left out.
    #[error("{}: the model contains no files to hash", path.display())]
    Empty {
        /// The model directory.
        path: PathBuf,
    },
    /// A file whose path below the model is not UTF-8, so it has no POSIX manifest name
    /// that every tool agrees on.
    #[error("{}: file name is not valid UTF-8", path.display())]
    NonUtf8Name {
        /// The file.
        path: PathBuf,
    },
    /// A file was replaced, grew or shrank between planning and hashing.
    #[error("{}: changed while the model was being hashed", path.display())]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// A manifest entry whose path hashing could never have produced.
    #[error("manifest path {path:?} is not a relative POSIX path of a model file")]
    InvalidManifestPath {
        /// The offending path.
        path: String,
    },
    /// A manifest that lists the same path twice.
    #[error("manifest lists {path:?} more than once")]
    DuplicateManifestPath {
        /// The repeated path.
        path: String,
    },
    /// A manifest with no files.
    #[error("a manifest must list at least one file")]
    EmptyManifest,
}

/// One file of a model: its manifest path, SHA-256 and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// POSIX path relative to the model directory, or `.` for a single-file model.
    pub path: String,
    /// SHA-256 of the file's bytes, the value `sha256sum` prints.
    pub sha256: [u8; 32],
    /// Size in bytes.
    pub size: u64,
}

impl FileDigest {
    /// The file's digest as SPEC §6 writes it: `sha256:<64 lowercase hex>`.
    pub fn digest(&self) -> String {
        format!("{SHA256_PREFIX}{}", hex::encode(self.sha256))
    }
}

/// A model version's content: the root digest and the per-file manifest it was derived from.
///
/// Always consistent: the files are in canonical order, unique, and `root` is derived from
/// them, whether the value came from hashing or from [`ModelDigest::from_files`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDigest {
    root: [u8; 32],
    files: Vec<FileDigest>,
}

impl ModelDigest {
    /// Rebuilds a digest from a stored manifest: validates every path, sorts the files into
    /// canonical order and derives the root.
    pub fn from_files(mut files: Vec<FileDigest>) -> Result<Self, ModelError> {
        if files.is_empty() {
            return Err(ModelError::EmptyManifest);
        }
        let single = files.len() == 1 && files[0].path == SINGLE_FILE_PATH;
        if !single {
            for file in &files {
                if !is_manifest_path(&file.path) {
                    return Err(ModelError::InvalidManifestPath {
                        path: file.path.clone(),
                    });
                }
            }
        }
        files.sort_by(|a, b| compare_paths(&a.path, &b.path));
        if let Some(pair) = files.windows(2).find(|w| w[0].path == w[1].path) {
            return Err(ModelError::DuplicateManifestPath {
                path: pair[0].path.clone(),
            });
        }
        let root = root_digest(&files);
        Ok(Self { root, files })
    }

    /// The model-signing root digest: SHA-256 over the file digests in canonical order.
    pub fn root(&self) -> &[u8; 32] {
        &self.root
    }

    /// The files in canonical order.
    pub fn files(&self) -> &[FileDigest] {
        &self.files
    }

    /// Whether this is a single-file model (its one resource is `.`).
    pub fn is_single_file(&self) -> bool {
        self.files.len() == 1 && self.files[0].path == SINGLE_FILE_PATH
    }

    /// Total size of the hashed files in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The version hash as custody records it: `sha256:<64 lowercase hex>` of the root.
    pub fn version_hash(&self) -> String {
        format!("{SHA256_PREFIX}{}", hex::encode(self.root))
    }

    /// The manifest as JSON, for evidence entries and exports:
    /// `{"version_hash": "sha256:…", "files": [{"path": …, "digest": "sha256:…", "size": …}]}`,
    /// files in canonical order.
    pub fn manifest_json(&self) -> serde_json::Value {
        let files: Vec<serde_json::Value> = self
            .files
            .iter()
            .map(|f| serde_json::json!({"path": f.path, "digest": f.digest(), "size": f.size}))
            .collect();
        serde_json::json!({"version_hash": self.version_hash(), "files": files})
    }
}

/// A file found by [`plan`], not yet read.
#[derive(Debug, Clone)]
pub struct PlannedFile {
    /// The manifest path (see [`FileDigest::path`]).
    pub path: String,
    /// Size in bytes when planned.
    pub size: u64,
    location: PathBuf,
    identity: FileIdentity,
}

impl PlannedFile {
    /// Where the file is on disk.
    pub fn location(&self) -> &Path {
        &self.location
    }
}

/// The outcome of walking a model: every file to hash, in canonical order, and the total size,
/// so a progress bar can be sized before any byte is read.
#[derive(Debug, Clone)]
pub struct ModelPlan {
    root: PathBuf,
    files: Vec<PlannedFile>,
    total_bytes: u64,
}

impl ModelPlan {
    /// The model path that was planned.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The files to hash, in canonical order.
    pub fn files(&self) -> &[PlannedFile] {
        &self.files
    }

    /// Sum of the planned file sizes.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Reads every planned file once and derives the version hash.
    ///
    /// `progress` is called with the number of bytes just hashed, so its arguments add up to
    /// [`ModelPlan::total_bytes`]. A file that was replaced or changed size since planning is
    /// refused ([`ModelError::Changed`]) rather than recorded with a digest of other bytes.
    pub fn hash(&self, progress: &mut dyn FnMut(u64)) -> Result<ModelDigest, ModelError> {
        let mut buffer = vec![0u8; READ_BUFFER_BYTES];
        let mut files = Vec::with_capacity(self.files.len());
        for planned in &self.files {
            let sha256 = hash_planned(planned, &mut buffer, progress)?;
            files.push(FileDigest {
                path: planned.path.clone(),
                sha256,
                size: planned.size,
            });
        }
        let root = root_digest(&files);
        Ok(ModelDigest { root, files })
    }
}

/// Walks the model at `path` (a directory or a single file) and lists what will be hashed.
///
/// Refuses symbolic links (the model path itself included), special files, unreadable
/// directories, non-UTF-8 file names and directories left with no file to hash.
pub fn plan(path: &Path) -> Result<ModelPlan, ModelError> {
    let meta = lstat(path)?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err(ModelError::Symlink {
            path: path.to_path_buf(),
        });
    }
    if kind.is_file() {
        let file = PlannedFile {
            path: SINGLE_FILE_PATH.to_owned(),
            size: meta.len(),
            location: path.to_path_buf(),
            identity: FileIdentity::of(&meta),
        };
        return Ok(ModelPlan {
            root: path.to_path_buf(),
            total_bytes: file.size,
            files: vec![file],
        });
    }
    if !kind.is_dir() {
        return Err(ModelError::NotRegularFile {
            path: path.to_path_buf(),
        });
    }

    let mut files = Vec::new();
    // Directories still to list, each with whether it lies under an ignored top-level entry.
    let mut pending = vec![(path.to_path_buf(), false)];
    while let Some((dir, ignored)) = pending.pop() {
        let unreadable = |source| ModelError::Unreadable {
            path: dir.clone(),
            source,
        };
        for entry in fs::read_dir(&dir).map_err(unreadable)? {
            let entry = entry.map_err(unreadable)?;
            let location = entry.path();
            let ignored = ignored || (dir == path && is_ignored_name(&entry.file_name()));
            let meta = lstat(&location)?;
            let kind = meta.file_type();
            if kind.is_symlink() {
                return Err(ModelError::Symlink { path: location });
            } else if kind.is_dir() {
                pending.push((location, ignored));
            } else if !kind.is_file() {
                return Err(ModelError::NotRegularFile { path: location });
            } else if !ignored {
                files.push(PlannedFile {
                    path: manifest_path(path, &location)?,
                    size: meta.len(),
                    identity: FileIdentity::of(&meta),
                    location,
                });
            }
        }
    }
    if files.is_empty() {
        return Err(ModelError::Empty {
            path: path.to_path_buf(),
        });
    }
    files.sort_by(|a, b| compare_paths(&a.path, &b.path));
    let total_bytes = files.iter().map(|f| f.size).sum();
    Ok(ModelPlan {
        root: path.to_path_buf(),
        files,
        total_bytes,
    })
}

/// [`plan`] then [`ModelPlan::hash`]: the version hash and manifest of the model at `path`.
pub fn hash_path(path: &Path, progress: &mut dyn FnMut(u64)) -> Result<ModelDigest, ModelError> {
    plan(path)?.hash(progress)
}

/// The canonical order of manifest paths: component by component, each compared as bytes
/// (which for UTF-8 is code point order, as Python compares strings).
pub fn compare_paths(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

/// The model name `model_signing` puts in a statement's subject: the last component of the
/// model path, or of its absolute form when the path ends in `.` or `..`.
pub fn default_model_name(path: &Path) -> Result<String, ModelError> {
    let name = match path.file_name() {
        Some(name) => name.to_os_string(),
        None => {
            let absolute = fs::canonicalize(path).map_err(|source| io_error(path, source))?;
            absolute.file_name().unwrap_or_default().to_os_string()
        }
    };
    name.into_string().map_err(|_| ModelError::NonUtf8Name {
        path: path.to_path_buf(),
    })
}

/// SHA-256 over the concatenated raw file digests, in the order given.
fn root_digest(files: &[FileDigest]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file.sha256);
    }
    hasher.finalize().into()
}

fn hash_planned(
    planned: &PlannedFile,
    buffer: &mut [u8],
    progress: &mut dyn FnMut(u64),
) -> Result<[u8; 32], ModelError> {
    let path = &planned.location;
    let changed = || ModelError::Changed { path: path.clone() };
    let mut file = File::open(path).map_err(|source| io_error(path, source))?;
    let meta = file.metadata().map_err(|source| io_error(path, source))?;
    if !meta.is_file() || FileIdentity::of(&meta) != planned.identity || meta.len() != planned.size
    {
        return Err(changed());
    }
    let mut hasher = Sha256::new();
    let mut read_total = 0u64;
    loop {
        let n = match file.read(buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(ModelError::Unreadable {
                    path: path.clone(),
                    source,
                });
            }
        };
        read_total += n as u64;
        if read_total > planned.size {
            return Err(changed());
        }
        hasher.update(&buffer[..n]);
        progress(n as u64);
    }
    if read_total != planned.size {
        return Err(changed());
    }
    Ok(hasher.finalize().into())
}

/// `symlink_metadata`, with errors mapped to the model error that names the path.
fn lstat(path: &Path) -> Result<Metadata, ModelError> {
    fs::symlink_metadata(path).map_err(|source| io_error(path, source))
}

fn io_error(path: &Path, source: io::Error) -> ModelError {
    if source.kind() == io::ErrorKind::NotFound {
        ModelError::NotFound {
            path: path.to_path_buf(),
        }
    } else {
        ModelError::Unreadable {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn is_ignored_name(name: &std::ffi::OsStr) -> bool {
    IGNORED_TOP_LEVEL_NAMES
        .iter()
        .any(|ignored| name == *ignored)
}

/// The POSIX path of `location` relative to the model directory `root`.
fn manifest_path(root: &Path, location: &Path) -> Result<String, ModelError> {
    let non_utf8 = || ModelError::NonUtf8Name {
        path: location.to_path_buf(),
    };
    let relative = location.strip_prefix(root).map_err(|_| non_utf8())?;
    let mut parts = Vec::new();
    for component in relative.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str().ok_or_else(non_utf8)?),
            _ => return Err(non_utf8()),
        }
    }
    Ok(parts.join("/"))
}

/// Whether `path` is a name hashing a directory could produce: relative, `/`-separated,
/// without empty, `.` or `..` components, and not under an ignored top-level entry.
fn is_manifest_path(path: &str) -> bool {
    let first = path.split('/').next().unwrap_or_default();
    !IGNORED_TOP_LEVEL_NAMES.contains(&first)
        && !path.contains('\0')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

/// What a planned file was, so hashing can tell if the path now names another file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    #[cfg(unix)]
    device: u64,
    #[cfg(unix)]
    inode: u64,
}

impl FileIdentity {
    #[cfg(unix)]
    fn of(meta: &Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            device: meta.dev(),
            inode: meta.ino(),
        }
    }

    #[cfg(not(unix))]
    fn of(_meta: &Metadata) -> Self {
        Self {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use tempfile::TempDir;

    fn sha256(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    fn write(dir: &Path, rel: &str, contents: &[u8]) {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
    }

    fn paths(digest: &ModelDigest) -> Vec<&str> {
        digest.files().iter().map(|f| f.path.as_str()).collect()
    }

    fn no_progress() -> impl FnMut(u64) {
        |_| {}
    }

    #[test]
    fn known_answer_single_file() {
        let dir = TempDir::new().unwrap();
        let file = dir.path().join("model.bin");
        fs::write(&file, b"abc").unwrap();
        let digest = hash_path(&file, &mut no_progress()).unwrap();
        assert!(digest.is_single_file());
        assert_eq!(paths(&digest), ["."]);
        assert_eq!(
            digest.files()[0].digest(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(digest.files()[0].size, 3);
        assert_eq!(*digest.root(), sha256(&sha256(b"abc")));
        assert_eq!(
            digest.version_hash(),
            format!("sha256:{}", hex::encode(sha256(&sha256(b"abc"))))
        );
    }

    #[test]
    fn empty_file_is_a_file() {
        let dir = TempDir::new().unwrap();
        write(dir.path(), "empty", b"");
        let digest = hash_path(dir.path(), &mut no_progress()).unwrap();
        assert_eq!(
            digest.files()[0].digest(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(paths(&digest), ["empty"]);
    }

    #[test]
    fn root_is_hash_of_concatenated_digests_in_component_order() {
        let dir = TempDir::new().unwrap();
        write(dir.path(), "a-b/x", b"1");
        write(dir.path(), "a/b", b"2");
        write(dir.path(), "a0", b"3");
        write(dir.path(), "B", b"4");
        write(dir.path(), "\u{e9}t\u{e9}", b"5");
        write(dir.path(), "a/c/d", b"6");
        let digest = hash_path(dir.path(), &mut no_progress()).unwrap();
        assert_eq!(
            paths(&digest),
            ["B", "a/b", "a/c/d", "a-b/x", "a0", "\u{e9}t\u{e9}"]
        );
        let mut concatenated = Vec::new();
        for contents in [b"4", b"2", b"6", b"1", b"3", b"5"] {
            concatenated.extend_from_slice(&sha256(contents));
        }
        assert_eq!(*digest.root(), sha256(&concatenated));
    }

    #[test]
    fn ordering_is_by_components_not_whole_strings() {
        assert_eq!(compare_paths("a/b", "a-b/x"), Ordering::Less);
        assert_eq!(compare_paths("a/b", "a.b"), Ordering::Less);
        assert_eq!(compare_paths("a/z", "a0"), Ordering::Less);
        assert_eq!(compare_paths("Z", "a"), Ordering::Less);
        assert_eq!(compare_paths("a/b/c", "a/bc"), Ordering::Less);
        assert_eq!(compare_paths("z", "\u{e9}"), Ordering::Less);
        assert_eq!(compare_paths("x", "x"), Ordering::Equal);
    }

    #[test]
    fn top_level_git_entries_are_ignored_and_nothing_else() {
        let dir = TempDir::new().unwrap();
        write(dir.path(), "model.safetensors", b"w");
        write(dir.path(), ".git/HEAD", b"ref");
        write(dir.path(), ".git/objects/ab/cdef", b"obj");
        write(dir.path(), ".github/workflows/ci.yml", b"ci");
        write(dir.path(), ".gitattributes", b"*.bin lfs");
        write(dir.path(), ".gitignore", b"*.tmp");
        write(dir.path(), "sub/.gitignore", b"nested");
        write(dir.path(), "sub/.git/config", b"nested git");
        write(dir.path(), ".gitkeep", b"");
        write(dir.path(), ".git-blame-ignore-revs", b"");
        write(dir.path(), ".hidden", b"h");
        let digest = hash_path(dir.path(), &mut no_progress()).unwrap();
        assert_eq!(
            paths(&digest),
            [
                ".git-blame-ignore-revs",
                ".gitkeep",
                ".hidden",
                "model.safetensors",
                "sub/.git/config",
                "sub/.gitignore",
            ]
        );
    }

    #[test]
    fn a_git_file_is_ignored_too() {
        let dir = TempDir::new().unwrap();
        write(dir.path(), ".git", b"gitdir: ../.git/worktrees/x");
        write(dir.path(), "w", b"w");
        let digest = hash_path(dir.path(), &mut no_progress()).unwrap();
        assert_eq!(paths(&digest), ["w"]);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_refused_everywhere() {
        use std::os::unix::fs::symlink;
        let dir = TempDir::new().unwrap();
        write(dir.path(), "model/w", b"w");
        let model = dir.path().join("model");

        symlink("w", model.join("link")).unwrap();
        let err = plan(&model).unwrap_err();
        assert!(
            matches!(&err, ModelError::Symlink { path } if path == &model.join("link")),
            "{err}"
        );
        assert!(err.to_string().contains("link"));
        fs::remove_file(model.join("link")).unwrap();

        fs::create_dir(model.join(".git")).unwrap();
        symlink("../w", model.join(".git/inside")).unwrap();
        assert!(matches!(plan(&model), Err(ModelError::Symlink { .. })));
        fs::remove_file(model.join(".git/inside")).unwrap();

        symlink(&model, dir.path().join("alias")).unwrap();
        assert!(matches!(
            plan(&dir.path().join("alias")),
            Err(ModelError::Symlink { .. })
        ));
        symlink(model.join("w"), dir.path().join("file-alias")).unwrap();
        assert!(matches!(
            plan(&dir.path().join("file-alias")),
            Err(ModelError::Symlink { .. })
        ));
        symlink(dir.path(), model.join("dir-link")).unwrap();
        assert!(matches!(plan(&model), Err(ModelError::Symlink { .. })));
    }

    #[cfg(unix)]
    #[test]
    fn special_files_are_refused() {
        let dir = TempDir::new().unwrap();
        write(dir.path(), "w", b"w");
        let socket = dir.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let err = plan(dir.path()).unwrap_err();
        assert!(
            matches!(&err, ModelError::NotRegularFile { path } if path == &socket),
            "{err}"
        );
        assert!(matches!(
            plan(&socket),
            Err(ModelError::NotRegularFile { .. })
        ));
    }

    #[test]
    fn empty_models_are_refused() {
        let dir = TempDir::new().unwrap();
        assert!(matches!(plan(dir.path()), Err(ModelError::Empty { .. })));
        fs::create_dir_all(dir.path().join("a/b/c")).unwrap();
        assert!(matches!(plan(dir.path()), Err(ModelError::Empty { .. })));
        write(dir.path(), ".git/HEAD", b"ref");
        write(dir.path(), ".gitignore", b"x");
        let err = plan(dir.path()).unwrap_err();
        assert!(matches!(err, ModelError::Empty { .. }));
        assert!(err.to_string().contains(&dir.path().display().to_string()));
    }

    #[test]
    fn missing_paths_are_named() {
        let dir = TempDir::new().unwrap();
        let missing = dir.path().join("nope");
        let err = hash_path(&missing, &mut no_progress()).unwrap_err();
        assert!(matches!(&err, ModelError::NotFound { path } if path == &missing));
        assert!(err.to_string().contains("nope"));
    }

    #[test]
    fn plan_sizes_progress_and_progress_adds_up() {
        let dir = TempDir::new().unwrap();
        let big = vec![7u8; READ_BUFFER_BYTES * 2 + 123];
        write(dir.path(), "big.bin", &big);
        write(dir.path(), "small", b"hello");
        let plan = plan(dir.path()).unwrap();
        assert_eq!(plan.total_bytes(), big.len() as u64 + 5);
        assert_eq!(plan.files().len(), 2);
        assert_eq!(plan.files()[0].location(), dir.path().join("big.bin"));
        let mut seen = 0u64;
        let mut calls = 0;
        let digest = plan
            .hash(&mut |n| {
                seen += n;
                calls += 1;
            })
            .unwrap();
        assert_eq!(seen, plan.total_bytes());
        assert!(calls >= 4, "streamed in bounded chunks, got {calls} calls");
        assert_eq!(digest.total_bytes(), plan.total_bytes());
        assert_eq!(digest.files()[0].sha256, sha256(&big));
    }

    #[test]
    fn files_changed_after_planning_are_refused() {
        let dir = TempDir::new().unwrap();
        write(dir.path(), "w", b"before");
        let planned = plan(dir.path()).unwrap();
        write(dir.path(), "w", b"after, longer");
        assert!(matches!(
            planned.hash(&mut no_progress()),
            Err(ModelError::Changed { .. })
        ));

        let planned = plan(dir.path()).unwrap();
        write(dir.path(), "other", b"after, longer");
        fs::rename(dir.path().join("other"), dir.path().join("w")).unwrap();
        assert!(matches!(
            planned.hash(&mut no_progress()),
            Err(ModelError::Changed { .. })
        ));

        let planned = plan(dir.path()).unwrap();
        fs::remove_file(dir.path().join("w")).unwrap();
        assert!(matches!(
            planned.hash(&mut no_progress()),
            Err(ModelError::NotFound { .. })
        ));
    }

    #[test]
    fn from_files_sorts_validates_and_matches_hashing() {
        let dir = TempDir::new().unwrap();
        write(dir.path(), "a/b", b"2");
        write(dir.path(), "a-b", b"1");
        let hashed = hash_path(dir.path(), &mut no_progress()).unwrap();
        let mut files = hashed.files().to_vec();
        files.reverse();
        assert_eq!(ModelDigest::from_files(files).unwrap(), hashed);

        let file = |path: &str| FileDigest {
            path: path.to_owned(),
            sha256: [0; 32],
            size: 0,
        };
        assert!(matches!(
            ModelDigest::from_files(vec![]),
            Err(ModelError::EmptyManifest)
        ));
        for bad in [
            "",
            "/abs",
            "a//b",
            "a/",
            "./a",
            "a/../b",
            ".git/x",
            ".gitignore",
        ] {
            assert!(
                matches!(
                    ModelDigest::from_files(vec![file(bad)]),
                    Err(ModelError::InvalidManifestPath { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            ModelDigest::from_files(vec![file("."), file("a")]),
            Err(ModelError::InvalidManifestPath { .. })
        ));
        assert!(matches!(
            ModelDigest::from_files(vec![file("a"), file("b"), file("a")]),
            Err(ModelError::DuplicateManifestPath { .. })
        ));
        let single = ModelDigest::from_files(vec![file(".")]).unwrap();
        assert!(single.is_single_file());
        assert_eq!(*single.root(), sha256(&[0; 32]));
    }

    #[test]
    fn manifest_json_lists_files_in_order() {
        let dir = TempDir::new().unwrap();
        write(dir.path(), "b", b"abc");
        write(dir.path(), "a/x", b"");
        let digest = hash_path(dir.path(), &mut no_progress()).unwrap();
        let json = digest.manifest_json();
        assert_eq!(json["version_hash"], digest.version_hash());
        assert_eq!(json["files"][0]["path"], "a/x");
        assert_eq!(json["files"][0]["size"], 0);
        assert_eq!(
            json["files"][1]["digest"],
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(json["files"][1]["size"], 3);
        assert_eq!(json.as_object().unwrap().len(), 2);
    }

    #[test]
    fn default_model_name_is_the_last_component() {
        let dir = TempDir::new().unwrap();
        write(dir.path(), "my-model/sub/w", b"w");
        let model = dir.path().join("my-model");
        assert_eq!(default_model_name(&model).unwrap(), "my-model");
        assert_eq!(default_model_name(&model.join("sub/w")).unwrap(), "w");
        assert_eq!(
            default_model_name(&model.join("sub").join("..")).unwrap(),
            "my-model"
        );
    }
}
