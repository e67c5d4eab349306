//! Static records from Helm values: load, validate, plan, apply.
