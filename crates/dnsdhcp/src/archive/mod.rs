//! Backup archives: manifest, atomic writer, safe extraction, verification.
