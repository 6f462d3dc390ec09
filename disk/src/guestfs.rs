//! The safe wrapper over libguestfs (through `libguestfs-sys`): the only `unsafe` code in
//! the workspace. A [`Session`] owns one handle and so one appliance; it is not `Send`
//! (libguestfs handles must not be used from two threads at once).
//!
//! Every call goes through `check_*` helpers that turn libguestfs' error returns into
//! [`GuestfsError`] with the library's last error message, and free what libguestfs
//! allocated. Launching the appliance takes 20–60 s under TCG, so callers launch once and
//! do many operations.

#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::os::raw::c_char;
use std::path::Path;
use std::ptr;

use libguestfs_sys as sys;

/// From guestfs.h: `GUESTFS_ADD_DRIVE_OPTS_READONLY_BITMASK`, `..._FORMAT_BITMASK`,
/// `..._CACHEMODE_BITMASK` and `GUESTFS_E2FSCK_CORRECT_BITMASK` (macros bindgen cannot
/// translate).
const ADD_DRIVE_READONLY: u64 = 1 << 0;
const ADD_DRIVE_FORMAT: u64 = 1 << 1;
const ADD_DRIVE_CACHEMODE: u64 = 1 << 9;
const E2FSCK_CORRECT: u64 = 1 << 0;

#[derive(Debug, thiserror::Error)]
#[error("libguestfs {call}: {message}")]
pub struct GuestfsError {
    pub call: &'static str,
    pub message: String,
}

/// What `lstatns` reports for one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub ctime: i64,
}

pub struct Session {
    g: *mut sys::guestfs_h,
    /// Handles are not thread-safe: keep `Session` neither `Send` nor `Sync`.
    _not_send: PhantomData<*mut ()>,
}

fn cstring(call: &'static str, s: &str) -> Result<CString, GuestfsError> {
    CString::new(s).map_err(|_| GuestfsError {
        call,
        message: format!("argument {s:?} contains a NUL byte"),
    })
}

/// Owns a NULL-terminated array of C strings built from Rust strings.
struct CStrList {
    _owned: Vec<CString>,
    ptrs: Vec<*mut c_char>,
}

impl CStrList {
    fn new(call: &'static str, items: &[&str]) -> Result<CStrList, GuestfsError> {
        let owned = items
            .iter()
            .map(|s| cstring(call, s))
            .collect::<Result<Vec<_>, _>>()?;
        let mut ptrs: Vec<*mut c_char> = owned.iter().map(|c| c.as_ptr().cast_mut()).collect();
        ptrs.push(ptr::null_mut());
        Ok(CStrList {
            _owned: owned,
            ptrs,
        })
    }
}

impl Session {
    /// A new handle. The appliance runs under TCG unless `COLDPATCH_GUESTFS_KVM=1`: KVM hangs
    /// on the machines this was built on, and TCG is always available.
    pub fn new() -> Result<Session, GuestfsError> {
        // SAFETY: guestfs_create_flags has no preconditions; a NULL return is handled.
        let g = unsafe { sys::guestfs_create_flags(0) };
        if g.is_null() {
            return Err(GuestfsError {
                call: "create",
                message: "cannot create a handle (is libguestfs installed?)".into(),
            });
        }
        let s = Session {
            g,
            _not_send: PhantomData,
        };
        // Errors are reported through guestfs_last_error, not printed by libguestfs.
        // SAFETY: g is a valid handle; a NULL handler disables the default stderr printer.
        unsafe { sys::guestfs_set_error_handler(s.g, None, ptr::null_mut()) };
        if std::env::var("COLDPATCH_GUESTFS_KVM").as_deref() != Ok("1") {
            let settings = CStrList::new("set_backend_settings", &["force_tcg"])?;
            // SAFETY: g is valid; settings.ptrs is a NULL-terminated array of valid C strings
            // that outlives the call (libguestfs copies it).
            let r = unsafe { sys::guestfs_set_backend_settings(s.g, settings.ptrs.as_ptr()) };
            s.check_int("set_backend_settings", r)?;
        }
        Ok(s)
    }

    fn last_error(&self, call: &'static str) -> GuestfsError {
        // SAFETY: g is valid; the returned string (or NULL) is owned by the handle and valid
        // until the next call on it, and we copy it at once.
        let msg = unsafe {
            let p = sys::guestfs_last_error(self.g);
            if p.is_null() {
                "unknown error".to_string()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        GuestfsError { call, message: msg }
    }

    fn check_int(&self, call: &'static str, r: i32) -> Result<i32, GuestfsError> {
        if r == -1 {
            Err(self.last_error(call))
        } else {
            Ok(r)
        }
    }

    /// Takes ownership of a malloc'd C string returned by libguestfs.
    fn take_string(&self, call: &'static str, p: *mut c_char) -> Result<String, GuestfsError> {
        if p.is_null() {
            return Err(self.last_error(call));
        }
        // SAFETY: p is a non-NULL, NUL-terminated string malloc'd by libguestfs; we copy it
        // and free it exactly once.
        unsafe {
            let s = CStr::from_ptr(p).to_string_lossy().into_owned();
            libc::free(p.cast());
            Ok(s)
        }
    }

    /// Takes ownership of a malloc'd, NULL-terminated array of malloc'd C strings.
    fn take_list(
        &self,
        call: &'static str,
        p: *mut *mut c_char,
    ) -> Result<Vec<String>, GuestfsError> {
        if p.is_null() {
            return Err(self.last_error(call));
        }
        let mut out = Vec::new();
        // SAFETY: p is a NULL-terminated array from libguestfs; each element and the array
        // itself are freed exactly once, after being copied.
        unsafe {
            let mut i = 0;
            loop {
                let e = *p.add(i);
                if e.is_null() {
                    break;
                }
                out.push(CStr::from_ptr(e).to_string_lossy().into_owned());
                libc::free(e.cast());
                i += 1;
            }
            libc::free(p.cast());
        }
        Ok(out)
    }

    fn add_drive(
        &mut self,
        path: &Path,
        readonly: bool,
        format: &str,
        cachemode: Option<&str>,
    ) -> Result<(), GuestfsError> {
        let file = cstring("add_drive", &path.to_string_lossy())?;
        let fmt = cstring("add_drive", format)?;
        let cache = cstring("add_drive", cachemode.unwrap_or(""))?;
        let mut bitmask = ADD_DRIVE_READONLY | ADD_DRIVE_FORMAT;
        if cachemode.is_some() {
            bitmask |= ADD_DRIVE_CACHEMODE;
        }
        let opts = sys::guestfs_add_drive_opts_argv {
            bitmask,
            readonly: i32::from(readonly),
            format: fmt.as_ptr(),
            iface: ptr::null(),
            name: ptr::null(),
            label: ptr::null(),
            protocol: ptr::null(),
            server: ptr::null(),
            username: ptr::null(),
            secret: ptr::null(),
            cachemode: cache.as_ptr(),
            discard: ptr::null(),
            copyonread: 0,
            blocksize: 0,
        };
        // SAFETY: g is valid; file, fmt, cache and opts live across the call; only the
        // fields named in the bitmask are read.
        let r = unsafe { sys::guestfs_add_drive_opts_argv(self.g, file.as_ptr(), &opts) };
        self.check_int("add_drive", r).map(drop)
    }

    /// Adds an image read-only, with its format named so qemu never probes it.
    pub fn add_drive_ro(&mut self, path: &Path, format: &str) -> Result<(), GuestfsError> {
        self.add_drive(path, true, format, None)
    }

    /// Adds a qcow2 overlay writable. The cache mode is "unsafe" (the guest's flushes are
    /// not passed to the host): the overlay is thrown away if anything fails, and a
    /// successful run ends with [`Session::shutdown`], which writes everything out, before
    /// the caller syncs the file and verifies it.
    pub fn add_overlay_rw(&mut self, path: &Path) -> Result<(), GuestfsError> {
        self.add_drive(path, false, "qcow2", Some("unsafe"))
    }

    /// Adds a qcow2 overlay writable with the cache mode "writeback": the guest's flushes
    /// reach the file, so after the guest has synced a filesystem it stopped writing
    /// (remounted read-only), the host can read the file natively while the appliance
    /// still runs (a replay reference, `patcher/src/replay.rs`).
    pub fn add_overlay_rw_flushed(&mut self, path: &Path) -> Result<(), GuestfsError> {
        self.add_drive(path, false, "qcow2", Some("writeback"))
    }

    /// Virtual CPUs of the appliance (before launch). Under TCG a second CPU lets dpkg's
    /// decompressor and unpacker run side by side.
    pub fn set_smp(&mut self, n: i32) -> Result<(), GuestfsError> {
        // SAFETY: g is valid.
        let r = unsafe { sys::guestfs_set_smp(self.g, n) };
        self.check_int("set_smp", r).map(drop)
    }

    /// Stops the appliance and waits for qemu to write out and close every drive; the
    /// error is reported (closing the handle would only log it).
    pub fn shutdown(&mut self) -> Result<(), GuestfsError> {
        // SAFETY: g is valid.
        let r = unsafe { sys::guestfs_shutdown(self.g) };
        self.check_int("shutdown", r).map(drop)
    }

    /// Runs an int-returning libguestfs call that takes one string argument.
    fn with_str(
        &mut self,
        call: &'static str,
        arg: &str,
        f: unsafe extern "C" fn(*mut sys::guestfs_h, *const c_char) -> i32,
    ) -> Result<i32, GuestfsError> {
        let a = cstring(call, arg)?;
        // SAFETY: g is valid; a lives across the call; f is a libguestfs function taking
        // (handle, string) that does not keep the pointer.
        let r = unsafe { f(self.g, a.as_ptr()) };
        self.check_int(call, r)
    }

    /// Runs a string-returning libguestfs call that takes one string argument.
    fn str_with_str(
        &mut self,
        call: &'static str,
        arg: &str,
        f: unsafe extern "C" fn(*mut sys::guestfs_h, *const c_char) -> *mut c_char,
    ) -> Result<String, GuestfsError> {
        let a = cstring(call, arg)?;
        // SAFETY: as in with_str; the result is taken over by take_string.
        let p = unsafe { f(self.g, a.as_ptr()) };
        self.take_string(call, p)
    }

    pub fn mount(&mut self, device: &str, mountpoint: &str) -> Result<(), GuestfsError> {
        let d = cstring("mount", device)?;
        let m = cstring("mount", mountpoint)?;
        // SAFETY: g is valid; d and m live across the call.
        let r = unsafe { sys::guestfs_mount(self.g, d.as_ptr(), m.as_ptr()) };
        self.check_int("mount", r).map(drop)
    }

    pub fn umount_all(&mut self) -> Result<(), GuestfsError> {
        // SAFETY: g is valid.
        let r = unsafe { sys::guestfs_umount_all(self.g) };
        self.check_int("umount_all", r).map(drop)
    }

    pub fn sync(&mut self) -> Result<(), GuestfsError> {
        // SAFETY: g is valid.
        let r = unsafe { sys::guestfs_sync(self.g) };
        self.check_int("sync", r).map(drop)
    }

    /// The index of the drive (in the order added) that holds a device or partition.
    pub fn drive_of(&mut self, device: &str) -> Result<usize, GuestfsError> {
        let whole = if self.with_str("is_whole_device", device, sys::guestfs_is_whole_device)? == 1
        {
            device.to_string()
        } else {
            self.str_with_str("part_to_dev", device, sys::guestfs_part_to_dev)?
        };
        let i = self.with_str("device_index", &whole, sys::guestfs_device_index)?;
        Ok(usize::try_from(i).unwrap_or(usize::MAX))
    }

    /// The drives' block devices, in the order they were added.
    pub fn list_devices(&mut self) -> Result<Vec<String>, GuestfsError> {
        // SAFETY: g is valid; the list is taken over by take_list.
        let p = unsafe { sys::guestfs_list_devices(self.g) };
        self.take_list("list_devices", p)
    }

    /// Every partition of every drive.
    pub fn list_partitions(&mut self) -> Result<Vec<String>, GuestfsError> {
        // SAFETY: g is valid; the list is taken over by take_list.
        let p = unsafe { sys::guestfs_list_partitions(self.g) };
        self.take_list("list_partitions", p)
    }

    /// The filesystem UUID on a device ("" if none).
    pub fn vfs_uuid(&mut self, device: &str) -> Result<String, GuestfsError> {
        self.str_with_str("vfs_uuid", device, sys::guestfs_vfs_uuid)
    }

    /// The filesystem label on a device ("" if none).
    pub fn vfs_label(&mut self, device: &str) -> Result<String, GuestfsError> {
        self.str_with_str("vfs_label", device, sys::guestfs_vfs_label)
    }

    /// The partition number of a partition device (`/dev/sda5` -> 5).
    pub fn part_to_partnum(&mut self, partition: &str) -> Result<i32, GuestfsError> {
        self.with_str("part_to_partnum", partition, sys::guestfs_part_to_partnum)
    }

    /// Renames a guest file (within the guest).
    pub fn mv(&mut self, from: &str, to: &str) -> Result<(), GuestfsError> {
        let f = cstring("mv", from)?;
        let t = cstring("mv", to)?;
        // SAFETY: g is valid; f and t live across the call.
        let r = unsafe { sys::guestfs_mv(self.g, f.as_ptr(), t.as_ptr()) };
        self.check_int("mv", r).map(drop)
    }

    /// The filesystem type on a device ("ext4", "xfs", "swap", …).
    pub fn vfs_type(&mut self, device: &str) -> Result<String, GuestfsError> {
        self.str_with_str("vfs_type", device, sys::guestfs_vfs_type)
    }

    /// `e2fsck -f -p`: a full check that repairs only what is safe without a person and
    /// fails on anything else.
    pub fn e2fsck(&mut self, device: &str) -> Result<(), GuestfsError> {
        let d = cstring("e2fsck", device)?;
        let opts = sys::guestfs_e2fsck_argv {
            bitmask: E2FSCK_CORRECT,
            correct: 1,
            forceall: 0,
        };
        // SAFETY: g is valid; d and opts live across the call.
        let r = unsafe { sys::guestfs_e2fsck_argv(self.g, d.as_ptr(), &opts) };
        self.check_int("e2fsck", r).map(drop)
    }

    /// The canonical form of a guest path, resolved inside the guest (the daemon chroots
    /// into the guest's root first).
    pub fn realpath(&mut self, path: &str) -> Result<String, GuestfsError> {
        self.str_with_str("realpath", path, sys::guestfs_realpath)
    }

    pub fn exists(&mut self, path: &str) -> Result<bool, GuestfsError> {
        Ok(self.with_str("exists", path, sys::guestfs_exists)? == 1)
    }

    pub fn is_symlink(&mut self, path: &str) -> Result<bool, GuestfsError> {
        Ok(self.with_str("is_symlink", path, sys::guestfs_is_symlink)? == 1)
    }

    pub fn is_dir(&mut self, path: &str) -> Result<bool, GuestfsError> {
        Ok(self.with_str("is_dir", path, sys::guestfs_is_dir)? == 1)
    }

    pub fn mkdir_p(&mut self, path: &str) -> Result<(), GuestfsError> {
        self.with_str("mkdir_p", path, sys::guestfs_mkdir_p)
            .map(drop)
    }

    pub fn rm_rf(&mut self, path: &str) -> Result<(), GuestfsError> {
        self.with_str("rm_rf", path, sys::guestfs_rm_rf).map(drop)
    }

    /// Copies a host file into the guest.
    pub fn upload(&mut self, host: &Path, guest: &str) -> Result<(), GuestfsError> {
        let h = cstring("upload", &host.to_string_lossy())?;
        let g = cstring("upload", guest)?;
        // SAFETY: the handle is valid; h and g live across the call.
        let r = unsafe { sys::guestfs_upload(self.g, h.as_ptr(), g.as_ptr()) };
        self.check_int("upload", r).map(drop)
    }

    /// Writes a guest file with the given content.
    pub fn write(&mut self, guest: &str, content: &[u8]) -> Result<(), GuestfsError> {
        let p = cstring("write", guest)?;
        // SAFETY: g is valid; p and content live across the call; the length is passed.
        let r = unsafe {
            sys::guestfs_write(self.g, p.as_ptr(), content.as_ptr().cast(), content.len())
        };
        self.check_int("write", r).map(drop)
    }

    pub fn chmod(&mut self, mode: u32, path: &str) -> Result<(), GuestfsError> {
        let p = cstring("chmod", path)?;
        let mode = i32::try_from(mode & 0o7777).unwrap_or(0o644);
        // SAFETY: g is valid; p lives across the call.
        let r = unsafe { sys::guestfs_chmod(self.g, mode, p.as_ptr()) };
        self.check_int("chmod", r).map(drop)
    }

    pub fn chown(&mut self, uid: u32, gid: u32, path: &str) -> Result<(), GuestfsError> {
        let p = cstring("chown", path)?;
        let (u, g) = (
            i32::try_from(uid).unwrap_or(0),
            i32::try_from(gid).unwrap_or(0),
        );
        // SAFETY: the handle is valid; p lives across the call.
        let r = unsafe { sys::guestfs_chown(self.g, u, g, p.as_ptr()) };
        self.check_int("chown", r).map(drop)
    }

    /// Runs a shell script in the appliance itself, not chrooted (libguestfs' `debug sh`;
    /// `$root` names the sysroot). The daemon runs one call at a time: this is how work
    /// in several mounted guests runs side by side, each in a `chroot` of its own. Returns
    /// standard output; a non-zero exit is an error carrying the output. The script should
    /// be short (the daemon copies it onto its stack): longer ones go into files first.
    pub fn appliance_sh(&mut self, script: &str) -> Result<String, GuestfsError> {
        let sub = cstring("debug", "sh")?;
        let args = CStrList::new("debug", &[script])?;
        // SAFETY: g is valid; sub and args live across the call; args is NULL-terminated;
        // the result is taken over by take_string.
        let p = unsafe { sys::guestfs_debug(self.g, sub.as_ptr(), args.ptrs.as_ptr()) };
        self.take_string("debug sh", p)
    }

    /// A directory in the appliance's own root under which a guest filesystem can be
    /// mounted beside others (`/a`, `/b`: several guests at once), or that holds files
    /// of the appliance's own (it is not on any guest's disk).
    pub fn mkmountpoint(&mut self, path: &str) -> Result<(), GuestfsError> {
        self.with_str("mkmountpoint", path, sys::guestfs_mkmountpoint)
            .map(drop)
    }

    pub fn launch(&mut self) -> Result<(), GuestfsError> {
        // SAFETY: g is valid.
        let r = unsafe { sys::guestfs_launch(self.g) };
        self.check_int("launch", r).map(drop)
    }

    /// Operating system roots found by libguestfs' inspection.
    pub fn inspect_os(&mut self) -> Result<Vec<String>, GuestfsError> {
        // SAFETY: g is valid and launched (libguestfs checks and errors otherwise).
        let p = unsafe { sys::guestfs_inspect_os(self.g) };
        self.take_list("inspect_os", p)
    }

    /// (mountpoint, device) pairs of an inspected root.
    pub fn inspect_get_mountpoints(
        &mut self,
        root: &str,
    ) -> Result<Vec<(String, String)>, GuestfsError> {
        let r = cstring("inspect_get_mountpoints", root)?;
        // SAFETY: g is valid; r lives across the call.
        let p = unsafe { sys::guestfs_inspect_get_mountpoints(self.g, r.as_ptr()) };
        let flat = self.take_list("inspect_get_mountpoints", p)?;
        Ok(flat
            .chunks_exact(2)
            .map(|c| (c[0].clone(), c[1].clone()))
            .collect())
    }

    pub fn mount_ro(&mut self, device: &str, mountpoint: &str) -> Result<(), GuestfsError> {
        let d = cstring("mount_ro", device)?;
        let m = cstring("mount_ro", mountpoint)?;
        // SAFETY: g is valid; d and m live across the call.
        let r = unsafe { sys::guestfs_mount_ro(self.g, d.as_ptr(), m.as_ptr()) };
        self.check_int("mount_ro", r).map(drop)
    }

    /// Names in a guest directory (no "." or "..").
    pub fn ls(&mut self, dir: &str) -> Result<Vec<String>, GuestfsError> {
        let d = cstring("ls", dir)?;
        // SAFETY: g is valid; d lives across the call.
        let p = unsafe { sys::guestfs_ls(self.g, d.as_ptr()) };
        self.take_list("ls", p)
    }

    /// `lstat` of many names in one directory in one round trip.
    pub fn lstatnslist(&mut self, dir: &str, names: &[&str]) -> Result<Vec<Stat>, GuestfsError> {
        let d = cstring("lstatnslist", dir)?;
        let list = CStrList::new("lstatnslist", names)?;
        // SAFETY: g is valid; d and list live across the call; list is NULL-terminated.
        let p = unsafe { sys::guestfs_lstatnslist(self.g, d.as_ptr(), list.ptrs.as_ptr()) };
        if p.is_null() {
            return Err(self.last_error("lstatnslist"));
        }
        // SAFETY: p points to a list of `len` entries owned by us until freed below with
        // the matching libguestfs free function.
        let out = unsafe {
            let l = &*p;
            let entries = if l.val.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(l.val, l.len as usize)
            };
            let v = entries
                .iter()
                .map(|e| Stat {
                    mode: e.st_mode as u32,
                    uid: e.st_uid as u32,
                    gid: e.st_gid as u32,
                    size: e.st_size.max(0) as u64,
                    mtime: e.st_mtime_sec,
                    ctime: e.st_ctime_sec,
                })
                .collect::<Vec<_>>();
            sys::guestfs_free_statns_list(p);
            v
        };
        Ok(out)
    }

    /// `stat` of a guest path, following symlinks inside the guest.
    pub fn stat(&mut self, path: &str) -> Result<Stat, GuestfsError> {
        let c = cstring("statns", path)?;
        // SAFETY: g is valid; c lives across the call.
        let p = unsafe { sys::guestfs_statns(self.g, c.as_ptr()) };
        if p.is_null() {
            return Err(self.last_error("statns"));
        }
        // SAFETY: p is a valid struct from libguestfs, freed once with its free function.
        unsafe {
            let e = &*p;
            let st = Stat {
                mode: e.st_mode as u32,
                uid: e.st_uid as u32,
                gid: e.st_gid as u32,
                size: e.st_size.max(0) as u64,
                mtime: e.st_mtime_sec,
                ctime: e.st_ctime_sec,
            };
            sys::guestfs_free_statns(p);
            Ok(st)
        }
    }

    pub fn readlink(&mut self, path: &str) -> Result<String, GuestfsError> {
        let c = cstring("readlink", path)?;
        // SAFETY: g is valid; c lives across the call.
        let p = unsafe { sys::guestfs_readlink(self.g, c.as_ptr()) };
        self.take_string("readlink", p)
    }

    /// Up to `count` bytes at `offset` of a guest file (libguestfs caps one call at 2 MiB).
    pub fn pread(
        &mut self,
        path: &str,
        count: usize,
        offset: u64,
    ) -> Result<Vec<u8>, GuestfsError> {
        let c = cstring("pread", path)?;
        let count = i32::try_from(count.min(2 << 20)).unwrap_or(2 << 20);
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let mut size: usize = 0;
        // SAFETY: g is valid; c lives across the call; size receives the buffer length.
        let p = unsafe { sys::guestfs_pread(self.g, c.as_ptr(), count, offset, &mut size) };
        if p.is_null() {
            return Err(self.last_error("pread"));
        }
        // SAFETY: p points to `size` bytes malloc'd by libguestfs, copied then freed once.
        let v = unsafe {
            let v = std::slice::from_raw_parts(p.cast::<u8>(), size).to_vec();
            libc::free(p.cast());
            v
        };
        Ok(v)
    }

    /// SHA-256 of every regular file under `dir`, computed inside the appliance and written
    /// to a host file as `sha256sum` lines; far faster than moving the bytes out.
    pub fn sha256_tree(&mut self, dir: &str, out: &Path) -> Result<(), GuestfsError> {
        let t = cstring("checksums_out", "sha256")?;
        let d = cstring("checksums_out", dir)?;
        let o = cstring("checksums_out", &out.to_string_lossy())?;
        // SAFETY: g is valid; all strings live across the call.
        let r = unsafe { sys::guestfs_checksums_out(self.g, t.as_ptr(), d.as_ptr(), o.as_ptr()) };
        self.check_int("checksums_out", r).map(drop)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: g is a valid handle owned by this Session and closed exactly once; close
        // also shuts the appliance down.
        unsafe { sys::guestfs_close(self.g) };
    }
}
