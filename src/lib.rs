//! pacer: add a column to a large, live table without downtime.
//!
//! The library is all of pacer but its command line (`src/main.rs`), so that the binary, the
//! demo and the tests share one implementation (the tests' throwaway servers are the demo's:
//! [`servers`]). Modules stay private: what the binary needs is re-exported in [`cli`], what the
//! integration tests need is [`servers`]; an item made `pub` here is one the compiler no longer
//! checks for dead code.

mod audit;
mod commands;
mod control;
mod demo;
mod engine;
mod format;
mod headless;
mod os;
mod plan;
mod probe;
mod sampler;
pub mod servers;

mod target;
mod tui;

pub use commands::TargetArgs;

/// What the command line dispatches to: one entry point per subcommand, with its options, and
/// the parsers its arguments use.
pub mod cli {
    pub use crate::commands::{AuditLog, EXIT_DONE, EXIT_FAILURE, Failure, init_logging};
    pub use crate::control::OnHangup;
    pub use crate::control::protocol::CtlCommand;
    pub use crate::format::thousands;
    pub use crate::plan::{ImpactBound, MAX_BATCH_SIZE, MIN_BATCH_SIZE, Phase, parse_duration};
    pub use crate::tui::app::parse_batch_size;

    /// The top-level error report (color-eyre).
    pub mod report {
        pub use crate::commands::report::{install, render};
    }
    /// `pacer plan`.
    pub mod plan {
        pub use crate::commands::plan::run;
    }
    /// `pacer run`.
    pub mod run {
        pub use crate::commands::run::{RunOptions, run, uses_tui};
    }
    /// `pacer status`.
    pub mod status {
        pub use crate::commands::status::run;
    }
    /// `pacer ctl …` and `pacer attach`.
    pub mod ctl {
        pub use crate::commands::ctl::{Which, attach, command, list, status};
    }
    /// `pacer demo` and its watchdog (`pacer demo-reaper`).
    pub mod demo {
        pub use crate::commands::demo::{DemoOptions, run};
        pub use crate::demo::Engine;
        pub use crate::demo::cluster::reap;
    }
}
