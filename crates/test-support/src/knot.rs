//! A real `knotd` in a temporary directory.
