//! The loader as a library (the binary and the tests use it): sources, readers, the per-object
//! load protocol, the status report, and the archive and export.

pub mod archive;
pub mod db;
pub mod load;
pub mod progress;
pub mod read;
pub mod source;
pub mod status;
