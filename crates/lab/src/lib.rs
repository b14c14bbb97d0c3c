//! Lab files (`labs/<lab>/lab.toml`): what a lab is made of.
//!
//! A lab declares its nodes (each running one role of `applab-node`), the
//! networks they attach to, per-student parameters and the tasks a student
//! reads. [`Lab::load`] reads and validates a lab folder and reports every
//! problem as `file:line:col: message`; [`params`] derives each student's
//! values from the run's secret; [`template`] fills them into task text and
//! served content. The format is documented in `docs/lab-format.md`.

pub mod check;
mod check_validate;
mod model;
pub mod params;
mod raw;
pub mod template;
mod validate;

/// The role configs and units live in `applab-roles` (the nodes read them
/// without the lab's validation); the lab re-exports them for its users.
pub use applab_roles as roles;
pub use applab_roles::{parse_duration_us, parse_rate_bps, parse_size};
pub use check_validate::expected_value;
pub use model::*;
pub use validate::{is_template_file, Diagnostic, Diagnostics};
