//! The `coldpatch` command: glue between the collector, the catalog and the terminal.
//! The only place that uses `anyhow`.

mod args;
mod catalogcmd;
mod cli;
mod inventorycmd;
mod keys;
mod labelcmd;
mod output;
mod patchcmd;
mod repocmd;
mod tokencmd;
mod versioncmd;
mod vulncmd;
mod workercmd;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => code,
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", output::chain(&e));
            // A catalog that cannot be opened at all exits 2, like a usage error: nothing
            // was read or written.
            if e.downcast_ref::<cli::Unavailable>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
