//! Static records from Helm values: load, validate, plan, apply.
//!
//! One path for data, each step a function with plain inputs and outputs:
//! [`load_values`] → [`validate`] (+ [`check_zones_exist`]) → [`plan()`] / [`plan_zone`] →
//! [`apply_plan`]. [`plan_from_knot`] and [`apply`] put the steps together over a Knot control
//! connection. Which RRsets the tool manages is kept in the zone itself ([`ownership`]).
//!
//! Values keys read (everything else is ignored): `zones[].name`, `zones[].defaultTtl` (TTL of
//! records that give none; default [`DEFAULT_TTL`] = 3600), `staticRecords[]` as a one-line
//! string `owner [ttl] [IN] TYPE rdata` or a map `name`, `zone`, `type`, `ttl`, `data`, `ptr`.
//! A record belongs to its `zone`; without one, an absolute owner (trailing dot) goes to the
//! most specific listed zone containing it and a relative owner to the first zone. Values
//! written for the original chart are read too: each `segments[]` entry's `domain` and the
//! reverse zones of its `ipv4.network` / `ipv6.network` are zones, and its `staticRecords`
//! belong to its `domain`. A `staticRecords` key anywhere else is an error naming it.

pub mod apply;
pub mod error;
pub mod model;
mod order;
pub mod ownership;
mod par;
pub mod plan;
pub mod ptr;
pub mod rr;
mod simple_list;
pub mod validate;
pub mod values;

pub use apply::{
    Applied, ApplyOptions, ApplyOutcome, Connector, Prefetched, apply, apply_assessed, apply_plan,
    apply_plan_with, apply_values, apply_with, plan_from_knot, plan_prefetched, prefetch_mentioned,
    read_zone, server_zones,
};
pub use error::{Diagnostic, Diagnostics, RecordsError};
pub use model::{Desired, DesiredZone, Rrset, RrsetKey, Rrsets};
pub use plan::{
    Action, CurrentRecord, CurrentRef, LimitExceeded, Plan, RrsetChange, SafetyLimit, SafetyReport,
    ZonePlan, ZoneRecords, check_conflicts, plan, plan_zone, plan_zone_records, plan_zone_stream,
    render_plan,
};
pub use validate::{check_zones_exist, validate};
pub use values::{DEFAULT_TTL, SourceFile, Values, load_values, parse_values, read_values_files};
