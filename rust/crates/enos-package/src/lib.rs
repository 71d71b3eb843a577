//! Resource packages: what the cloud (or a technician) sends the edge besides firmware — the
//! collector's configuration, point tables, device-model entries, certificates, later protocol
//! plugins — in one signed, versioned file (`docs/packages.md`).
//!
//! - [`format`]: the file (a JSON envelope: manifest text, its signature, the items' bytes) and
//!   the manifest (each item's name, type, version, sha256).
//! - [`verify`]: the checks before anything is staged: signature against the OEM's key on the
//!   read-only root, every digest, safe item paths, nothing unlisted.
//! - [`key`]: ed25519 keys as openssl writes them (PEM), and keys made for tests.
//! - [`version`]: dotted numeric versions, so an older package is refused.
//! - [`build`]: makes and signs a package (the `enos-package` tool, tests).

pub mod build;
pub mod format;
pub mod key;
pub mod verify;
pub mod version;

pub use format::{Item, ItemType, Manifest};
pub use verify::{verify, PackageError, Verified};
