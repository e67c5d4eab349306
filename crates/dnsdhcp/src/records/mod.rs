//! Static records from Helm values: load, validate, plan, apply.
//!
//! One path for data, each step a function with plain inputs and outputs:
//! [`load_values`] → [`validate`] (+ [`check_zones_exist`]) → [`plan()`] / [`plan_zone`] →
//! [`apply_plan`]. [`plan_from_knot`] and [`apply`] put the steps together over a Knot control
//! connection. Which RRsets the tool manages is kept in the zone itself ([`ownership`]).

pub mod apply;
pub mod error;
pub mod model;
pub mod ownership;
pub mod plan;
pub mod ptr;
pub mod rr;
pub mod validate;
pub mod values;

pub use apply::{
    ApplyOptions, ApplyOutcome, apply, apply_plan, plan_from_knot, read_zone, server_zones,
};
pub use error::{Diagnostic, Diagnostics, RecordsError};
pub use model::{Desired, DesiredZone, Rrset, RrsetKey};
pub use plan::{
    Action, CurrentRecord, Plan, RrsetChange, SafetyLimit, ZonePlan, check_conflicts, plan,
    plan_zone, render_plan,
};
pub use validate::{check_zones_exist, validate};
pub use values::{DEFAULT_TTL, Values, load_values, parse_values};
