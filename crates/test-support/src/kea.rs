//! A real `kea-dhcp4` in a temporary directory.
