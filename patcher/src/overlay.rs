//! Image files for versions, made with `qemu-img` (the tool that defines the format, and
//! the one qemu, libguestfs and every consumer of these files agree with): a qcow2
//! overlay on top of the current version, and a standalone copy of a version.

use std::path::Path;
use std::process::Command;

use crate::PatchError;

fn qemu_img(args: &[&str], what: &Path) -> Result<String, PatchError> {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .map_err(|e| PatchError::Tool {
            tool: "qemu-img",
            file: what.to_path_buf(),
            message: format!("cannot run: {e} (is qemu-utils installed?)"),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(PatchError::Tool {
            tool: "qemu-img",
            file: what.to_path_buf(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// A new qcow2 file whose backing file is `base` (by absolute path, with its format named
/// so nothing ever probes it). `base` is opened read-only and never written.
pub fn create(overlay: &Path, base: &Path, base_format: &str) -> Result<(), PatchError> {
    if let Some(dir) = overlay.parent() {
        std::fs::create_dir_all(dir).map_err(|e| PatchError::io(dir, e))?;
    }
    let base_s = base.to_string_lossy();
    let over_s = overlay.to_string_lossy();
    qemu_img(
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            &base_s,
            "-F",
            base_format,
            &over_s,
        ],
        overlay,
    )
    .map(drop)
}

/// A standalone qcow2 copy of `top` and everything under it, written to a temporary name
/// beside `out` and renamed into place when complete.
pub fn flatten(top: &Path, top_format: &str, out: &Path) -> Result<(), PatchError> {
    let tmp = out.with_extension("coldpatch-partial");
    let top_s = top.to_string_lossy();
    let tmp_s = tmp.to_string_lossy();
    let r = qemu_img(
        &[
            "convert", "-q", "-f", top_format, "-O", "qcow2", &top_s, &tmp_s,
        ],
        out,
    )
    .and_then(|_| {
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| PatchError::io(&tmp, e))
    })
    .and_then(|()| std::fs::rename(&tmp, out).map_err(|e| PatchError::io(out, e)));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// Writes an overlay's data to stable storage before it is recorded.
pub fn sync(file: &Path) -> Result<(), PatchError> {
    std::fs::File::open(file)
        .and_then(|f| f.sync_all())
        .map_err(|e| PatchError::io(file, e))
}

/// Points `file` at another backing file without reading either (`rebase -u`): for a
/// backing file known to hold the same guest data under another name.
pub fn rebase_unsafe(file: &Path, backing: &str, backing_format: &str) -> Result<(), PatchError> {
    let f = file.to_string_lossy();
    qemu_img(
        &[
            "rebase",
            "-q",
            "-u",
            "-b",
            backing,
            "-F",
            backing_format,
            &f,
        ],
        file,
    )
    .map(drop)
}

/// Rebases `file` onto `backing` keeping its guest view: every cluster where the old and
/// the new backing differ is copied into `file` first.
pub fn rebase_safe(file: &Path, backing: &Path, backing_format: &str) -> Result<(), PatchError> {
    let f = file.to_string_lossy();
    let b = backing.to_string_lossy();
    qemu_img(&["rebase", "-q", "-b", &b, "-F", backing_format, &f], file).map(drop)
}

/// The bytes a standalone qcow2 copy of `file` (with everything under it) would take.
pub fn measure(file: &Path, format: &str) -> Result<u64, PatchError> {
    let f = file.to_string_lossy();
    let out = qemu_img(
        &["measure", "--output=json", "-f", format, "-O", "qcow2", &f],
        file,
    )?;
    serde_json::from_str::<serde_json::Value>(&out)
        .ok()
        .and_then(|v| v.get("required").and_then(serde_json::Value::as_u64))
        .ok_or_else(|| PatchError::Tool {
            tool: "qemu-img",
            file: file.to_path_buf(),
            message: format!("measure printed no required size: {out}"),
        })
}

/// `qcow2` or `raw`, by the disk crate's detection (the only formats version files and
/// deltas rest on); a foreign format is refused with the conversion hint.
pub fn format_of(file: &Path) -> Result<&'static str, PatchError> {
    use std::io::Read;
    let mut head = Vec::with_capacity(512);
    std::fs::File::open(file)
        .and_then(|f| f.take(512).read_to_end(&mut head))
        .map_err(|e| PatchError::io(file, e))?;
    match coldpatch_disk::open::detect(&head) {
        Ok(coldpatch_disk::Format::Qcow2) => Ok("qcow2"),
        Ok(_) => Ok("raw"),
        Err(name) => Err(PatchError::Tool {
            tool: "qemu-img",
            file: file.to_path_buf(),
            message: format!(
                "a {name} file cannot back a qcow2 overlay here; convert it first: qemu-img convert -O qcow2 FILE OUT"
            ),
        }),
    }
}
