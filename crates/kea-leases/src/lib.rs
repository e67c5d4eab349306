//! Kea DHCPv4 memfile leases.
