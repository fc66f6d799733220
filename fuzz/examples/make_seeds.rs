//! Writes the seed corpus of the `loader` fuzz target into the folder given as the argument:
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example make_seeds -- fuzz/seeds/loader
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: make_seeds FOLDER");
        return ExitCode::from(2);
    };
    match tumbler_fuzz::write_seeds(&dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("writing seeds to {} failed: {error}", dir.display());
            ExitCode::FAILURE
        }
    }
}
