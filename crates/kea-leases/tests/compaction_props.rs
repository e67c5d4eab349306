//! Property: for any lease directory, the snapshot's compacted file is exactly the effective set
//! `load_effective` computes (written as LFC would), with the same malformed rows reported.

use std::fs;

use kea_leases::load::{Role, load_effective};
use kea_leases::snapshot::Snapshot;
use proptest::prelude::*;

const H11: &str = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context\n";
const H12: &str = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context,pool_id\n";

fn row_strategy() -> impl Strategy<Value = String> {
    (
        0u8..12,
        prop_oneof![
            Just("00:0c:01:02:03:04"),
            Just("0:C:1:2:3:4"),
            Just(""),
            Just("zz")
        ],
        prop_oneof![Just(""), Just("01:02"), Just("01")],
        prop_oneof![Just(0u32), Just(3600), Just(4_294_967_295)],
        prop_oneof![
            Just("h"),
            Just("Upper"),
            Just("a&#x2cb"),
            Just("&#X41&#x4a"),
            Just("")
        ],
        0u32..3,
        prop_oneof![
            Just(""),
            Just("{ \"a\": 1 }"),
            Just("{\"b\":[1&#x2c2]&#x2c\"a\":\"\\u00e9\"}"),
            Just("[ 1 ]")
        ],
        any::<bool>(),
    )
        .prop_map(|(a, hw, cid, valid, host, state, ctx, blank)| {
            if blank {
                return String::new();
            }
            format!(
                "10.0.0.{a},{hw},{cid},{valid},{},1,0,0,{host},{state},{ctx}",
                1_800_000_000u64 + u64::from(valid)
            )
        })
}

fn file_strategy() -> impl Strategy<Value = Option<(bool, Vec<String>)>> {
    proptest::option::of((
        any::<bool>(),
        proptest::collection::vec(row_strategy(), 0..15),
    ))
}

fn render(f: &Option<(bool, Vec<String>)>) -> Option<String> {
    f.as_ref().map(|(wide, rows)| {
        let mut s = String::from(if *wide { H12 } else { H11 });
        for r in rows {
            if r.is_empty() {
                s.push('\n');
            } else if *wide {
                s.push_str(&format!("{r},0\n"));
            } else {
                s.push_str(&format!("{r}\n"));
            }
        }
        s
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn compaction_equals_the_effective_set(
        completed in proptest::option::weighted(0.2, file_strategy().prop_filter_map("some", |f| f)),
        previous in file_strategy(),
        rotated in file_strategy(),
        current in file_strategy(),
    ) {
        let d = tempfile::tempdir().unwrap();
        let x = d.path().join("l.csv");
        for (role, f) in [
            (Role::Completed, completed),
            (Role::Previous, previous),
            (Role::Rotated, rotated),
            (Role::Current, current),
        ] {
            if let Some(text) = render(&f) {
                fs::write(role.path_for(&x), text).unwrap();
            }
        }
        let set = load_effective(&x).unwrap();
        let snap = Snapshot::take(&x).unwrap();
        let comp = snap.compact().unwrap();
        prop_assert_eq!(comp.errors(), &set.errors[..]);
        prop_assert_eq!(comp.lease_count(), set.leases.len());
        let mut ours = Vec::new();
        comp.write_to(&mut ours).unwrap();
        prop_assert_eq!(ours.len() as u64, comp.len());
        let mut want = Vec::new();
        set.write_to(&mut want).unwrap();
        prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&want));
    }
}
