//! One patch run per image at a time, across processes and threads: an exclusive
//! `flock` on `<state dir>/locks/<hash of the image path>.lock`, held for the whole run and
//! released by the kernel when the process ends, however it ends. The file holds the
//! run id and pid of the holder, for the refusal message.

use coldpatch_catalog::StateDir;
use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};

use crate::PatchError;

pub struct ImageLock {
    _file: Flock<File>,
}

impl ImageLock {
    pub fn acquire(state: &StateDir, image: &str, run: &str) -> Result<ImageLock, PatchError> {
        let dir = state.ensure(state.locks())?;
        let name = hex::encode(&Sha256::digest(image.as_bytes())[..12]);
        let path = dir.join(format!("{name}.lock"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| PatchError::io(&path, e))?;
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(f) => f,
            Err((mut f, _)) => {
                let mut holder = String::new();
                let _ = f.read_to_string(&mut holder);
                return Err(PatchError::Busy {
                    image: image.to_string(),
                    holder: holder.trim().to_string(),
                });
            }
        };
        let note = format!("run {run} (pid {})", std::process::id());
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(note.as_bytes()));
        written.map_err(|e| PatchError::io(&path, e))?;
        Ok(ImageLock { _file: file })
    }
}
