//! Knot DNS control-socket protocol (the protocol `knotc` speaks).
