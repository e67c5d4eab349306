//! Network namespaces (and veth pairs) created and removed by tests. Needs root.
