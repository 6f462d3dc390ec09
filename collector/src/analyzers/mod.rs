//! One module per analyzer. Each declares its paths in `patterns()`.

pub mod accounts;
pub mod apk;
pub mod deb822;
pub mod dpkg;
pub mod kernel;
pub mod os_release;
pub mod rpm;
