//! What the code working inside the appliance reports, shared by the appliance session
//! (`guest.rs`) and the package managers (`pm/`): why an image's change failed, progress
//! events, and the guest tool's output kept to a bounded log.

use std::path::PathBuf;

use coldpatch_disk::guestfs::GuestfsError;

/// Output of the guest's package tool kept per image (the end, if it prints more).
pub const LOG_LIMIT: usize = 1 << 20;

/// Why an image's change in the appliance failed. The message is the whole reason (it is
/// what the run records for the image); none of these carries a separate cause.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("libguestfs: {0}")]
    Guestfs(#[from] GuestfsError),
    /// A host file the change needs could not be read or copied.
    #[error("{path}: {message}")]
    Host { path: PathBuf, message: String },
    /// The image cannot be changed as it is (layout, symlinks, a changed source).
    #[error("{0}")]
    Refused(String),
    /// The appliance as a whole failed, for every image in it.
    #[error("the appliance failed: {0}")]
    Appliance(String),
    #[error("{tool} in the guest failed (exit {status}): {tail}")]
    Tool {
        tool: &'static str,
        status: String,
        tail: String,
    },
}

/// Progress reports: (image, kind, message).
pub type Notify<'a> = dyn FnMut(Option<&str>, &str, &str) + 'a;

pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A `timing` event's message: "STAGE SECONDS s", what `bench/patch.sh` sums.
pub fn timing(stage: &str, secs: f64) -> String {
    format!("{stage} {secs:.1} s")
}

/// Appends to a log kept to its last [`LOG_LIMIT`] bytes.
pub fn push_log(log: &mut String, text: &str) {
    log.push_str(text);
    if log.len() > LOG_LIMIT {
        let cut = log.len() - LOG_LIMIT;
        let cut = (cut..log.len())
            .find(|&c| log.is_char_boundary(c))
            .unwrap_or(log.len());
        log.drain(..cut);
    }
}
