//! Fixtures for tests that run real daemons. Dev-only: never a dependency of a library.
