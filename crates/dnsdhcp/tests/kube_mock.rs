//! The Kubernetes target against kube-rs's MOCK service (`tower_test::mock::pair`): the exact
//! requests made, the delete-and-wait sequence and the mapping of API errors (403, 404, 400)
//! and exit statuses to operator messages. No server and no WebSocket is involved (a mock
//! cannot complete the upgrade); streaming is covered by `kube_fake_api.rs`.

use std::time::Duration;

use dnsdhcp::kube::{Cluster, KubeError, KubeTarget, ProgressMode, exit_code};
use http::{Method, Request, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};
use kube::client::Body;
use tower_test::mock::{Handle, SendResponse};

type MockHandle = Handle<Request<Body>, Response<Body>>;

const POD_PATH: &str = "/api/v1/namespaces/dns-dhcp/pods/unified-dns-dhcp-0";

fn cluster() -> (Cluster, MockHandle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(svc, "dns-dhcp");
    let mut c = Cluster::new(
        client,
        &KubeTarget {
            context: None,
            namespace: "dns-dhcp".into(),
            statefulset: "unified-dns-dhcp".into(),
            name: None,
        },
    );
    c.progress = ProgressMode::Quiet;
    c.timeouts.poll = Duration::from_millis(10);
    c.timeouts.request = Duration::from_secs(5);
    (c, handle)
}

fn json(code: u16, v: serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&v).unwrap()))
        .unwrap()
}

fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    json(
        code,
        serde_json::json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
            "message": message, "reason": reason, "code": code}),
    )
}

fn pod(uid: &str, ready: bool, containers: &[&str]) -> Response<Body> {
    let cs: Vec<_> = containers
        .iter()
        .map(|c| serde_json::json!({"name": c, "image": "x"}))
        .collect();
    json(
        200,
        serde_json::json!({"apiVersion":"v1","kind":"Pod",
            "metadata":{"name":"unified-dns-dhcp-0","namespace":"dns-dhcp","uid":uid},
            "spec":{"containers": cs},
            "status":{"phase":"Running","conditions":[{"type":"Ready","status": if ready {"True"} else {"False"}}]}}),
    )
}

async fn next(handle: &mut MockHandle) -> (Request<Body>, SendResponse<Response<Body>>) {
    tokio::time::timeout(Duration::from_secs(10), handle.next_request())
        .await
        .expect("a request in time")
        .expect("a request")
}

async fn body_text(req: Request<Body>) -> String {
    let bytes = req.into_body().collect_bytes().await.unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn mock_get_pod_404_is_unknown_pod_or_namespace() {
    let (c, mut h) = cluster();
    let server = tokio::spawn(async move {
        let (req, send) = next(&mut h).await;
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.uri().path(), POD_PATH);
        send.send_response(status(
            404,
            "NotFound",
            "pods \"unified-dns-dhcp-0\" not found",
        ));
    });
    let err = c.pod(&["knot-auth"]).await.unwrap_err();
    server.await.unwrap();
    assert!(matches!(err, KubeError::PodNotFound { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("dns-dhcp/unified-dns-dhcp-0"), "{msg}");
    assert!(msg.contains("no such pod or namespace"), "{msg}");
}

#[tokio::test]
async fn mock_get_pod_403_names_get_pods() {
    let (c, mut h) = cluster();
    let server = tokio::spawn(async move {
        let (_, send) = next(&mut h).await;
        send.send_response(status(
            403,
            "Forbidden",
            "pods \"unified-dns-dhcp-0\" is forbidden: User \"bob\" cannot get resource \"pods\"",
        ));
    });
    let err = c.pod(&[]).await.unwrap_err();
    server.await.unwrap();
    match &err {
        KubeError::Forbidden {
            verb,
            resource,
            namespace,
            ..
        } => {
            assert_eq!(
                (*verb, *resource, namespace.as_str()),
                ("get", "pods", "dns-dhcp")
            );
        }
        other => panic!("expected Forbidden, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("may not get pods in namespace dns-dhcp"),
        "{err}"
    );
}

#[tokio::test]
async fn mock_missing_container_lists_the_pods_containers() {
    let (c, mut h) = cluster();
    let server = tokio::spawn(async move {
        let (_, send) = next(&mut h).await;
        send.send_response(pod("u1", true, &["knot-auth", "kea-dhcp-ddns"]));
    });
    let err = c.pod(&["knot-auth", "kea-dhcp4"]).await.unwrap_err();
    server.await.unwrap();
    assert_eq!(
        err.to_string(),
        "pod unified-dns-dhcp-0 has no container kea-dhcp4 (it has: knot-auth, kea-dhcp-ddns)"
    );
}

#[tokio::test]
async fn mock_exec_request_shape_and_403_names_create_pods_exec() {
    let (c, mut h) = cluster();
    let server = tokio::spawn(async move {
        let (req, send) = next(&mut h).await;
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.uri().path(), format!("{POD_PATH}/exec"));
        let q = req.uri().query().unwrap().to_owned();
        for part in [
            "stdout=true",
            "stderr=true",
            "container=knot-auth",
            "command=%2Fdnsdhcp%2Fbin%2Fdnsdhcp",
            "command=zones",
            "command=status",
            "command=--local",
        ] {
            assert!(q.contains(part), "{part} missing in {q}");
        }
        assert!(!q.contains("stdin=true"), "{q}");
        let proto = req.headers()["sec-websocket-protocol"].to_str().unwrap();
        assert_eq!(proto, "v5.channel.k8s.io, v4.channel.k8s.io");
        assert_eq!(req.headers()["upgrade"], "websocket");
        send.send_response(status(
            403,
            "Forbidden",
            "pods \"unified-dns-dhcp-0\" is forbidden: User \"bob\" cannot create resource \"pods/exec\"",
        ));
    });
    let err = c
        .run(
            "knot-auth",
            &["zones".into(), "status".into(), "--local".into()],
        )
        .await
        .unwrap_err();
    server.await.unwrap();
    match &err {
        KubeError::Forbidden { verb, resource, .. } => {
            assert_eq!((*verb, *resource), ("create", "pods/exec"));
        }
        other => panic!("expected Forbidden, got {other:?}"),
    }
    assert!(
        err.to_string().contains("may not create pods/exec"),
        "{err}"
    );
}

#[tokio::test]
async fn mock_exec_400_invalid_container_is_missing_container() {
    let (c, mut h) = cluster();
    let server = tokio::spawn(async move {
        let (_, send) = next(&mut h).await;
        send.send_response(status(
            400,
            "BadRequest",
            "container kea-dhcp4 is not valid for pod unified-dns-dhcp-0",
        ));
    });
    let err = c.run("kea-dhcp4", &["leases".into()]).await.unwrap_err();
    server.await.unwrap();
    assert!(matches!(err, KubeError::MissingContainer { .. }), "{err:?}");
}

#[tokio::test]
async fn mock_restart_pod_deletes_with_uid_precondition_and_waits_for_a_new_ready_pod() {
    let (c, mut h) = cluster();
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        let (req, send) = next(&mut h).await;
        seen.push(format!("{} {}", req.method(), req.uri().path()));
        send.send_response(pod("old-uid", true, &["knot-auth"]));

        let (req, send) = next(&mut h).await;
        seen.push(format!("{} {}", req.method(), req.uri().path()));
        assert_eq!(req.method(), Method::DELETE);
        let body = body_text(req).await;
        assert!(
            body.contains("\"uid\":\"old-uid\""),
            "precondition missing: {body}"
        );
        send.send_response(pod("old-uid", true, &["knot-auth"]));

        // Terminating, gone, recreated not Ready, Ready.
        for resp in [
            pod("old-uid", false, &["knot-auth"]),
            status(404, "NotFound", "not found"),
            pod("new-uid", false, &["knot-auth"]),
            pod("new-uid", true, &["knot-auth"]),
        ] {
            let (req, send) = next(&mut h).await;
            seen.push(format!("{} {}", req.method(), req.uri().path()));
            send.send_response(resp);
        }
        seen
    });
    let (old, new) = c.restart_pod().await.expect("restart");
    let seen = server.await.unwrap();
    assert_eq!(old, "old-uid");
    assert_eq!(new.metadata.uid.as_deref(), Some("new-uid"));
    let expected: Vec<String> = ["GET", "DELETE", "GET", "GET", "GET", "GET"]
        .iter()
        .map(|m| format!("{m} {POD_PATH}"))
        .collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn mock_delete_403_names_delete_pods() {
    let (c, mut h) = cluster();
    let server = tokio::spawn(async move {
        let (_, send) = next(&mut h).await;
        send.send_response(pod("u1", true, &["knot-auth"]));
        let (_, send) = next(&mut h).await;
        send.send_response(status(403, "Forbidden", "cannot delete resource \"pods\""));
    });
    let err = c.restart_pod().await.unwrap_err();
    server.await.unwrap();
    match &err {
        KubeError::Forbidden { verb, resource, .. } => {
            assert_eq!((*verb, *resource), ("delete", "pods"))
        }
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn mock_pod_not_recreated_times_out_with_a_clear_message() {
    let (mut c, mut h) = cluster();
    c.timeouts.pod_ready = Duration::from_millis(300);
    let server = tokio::spawn(async move {
        let (_, send) = next(&mut h).await;
        send.send_response(pod("u1", true, &["knot-auth"]));
        let (_, send) = next(&mut h).await;
        send.send_response(pod("u1", true, &["knot-auth"]));
        while let Some((_, send)) = h.next_request().await {
            send.send_response(status(404, "NotFound", "not found"));
        }
    });
    let err = c.restart_pod().await.unwrap_err();
    drop(c);
    server.abort();
    assert!(matches!(err, KubeError::Timeout { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("recreated and Ready"), "{msg}");
    assert!(msg.contains("gone (not recreated yet)"), "{msg}");
}

#[test]
fn exit_codes_from_exec_status() {
    let ok = Status {
        status: Some("Success".into()),
        ..Default::default()
    };
    assert_eq!(exit_code(&ok), Ok(0));
    let failed = Status {
        status: Some("Failure".into()),
        reason: Some("NonZeroExitCode".into()),
        message: Some("command terminated with non-zero exit code".into()),
        details: Some(StatusDetails {
            causes: Some(vec![StatusCause {
                reason: Some("ExitCode".into()),
                message: Some("3".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(exit_code(&failed), Ok(3));
    let internal = Status {
        status: Some("Failure".into()),
        reason: Some("InternalError".into()),
        message: Some("exec: \"/dnsdhcp/bin/dnsdhcp\": no such file".into()),
        ..Default::default()
    };
    assert_eq!(
        exit_code(&internal),
        Err("exec: \"/dnsdhcp/bin/dnsdhcp\": no such file".into())
    );
}

#[tokio::test]
async fn unknown_context_lists_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("config");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c1\n  cluster:\n    server: http://127.0.0.1:1\ncontexts:\n- name: prod\n  context:\n    cluster: c1\n    user: u1\nusers:\n- name: u1\n  user: {}\ncurrent-context: prod\n",
    )
    .unwrap();
    // SAFETY: the only test in this binary that touches the environment.
    unsafe { std::env::set_var("KUBECONFIG", &kc) };
    let target = KubeTarget {
        context: Some("staging".into()),
        namespace: "dns-dhcp".into(),
        statefulset: "unified-dns-dhcp".into(),
        name: None,
    };
    let err = Cluster::connect(&target)
        .await
        .err()
        .expect("unknown context");
    let msg = err.to_string();
    assert!(msg.contains("unknown context \"staging\""), "{msg}");
    assert!(msg.contains("prod"), "{msg}");
    // The known context connects (no request is made).
    let ok = Cluster::connect(&KubeTarget {
        context: Some("prod".into()),
        ..target
    })
    .await;
    assert!(ok.is_ok(), "{:?}", ok.err());
}

/// The in-pod work of Knot and Kea runs in the chart's `backup` container when the pod has it
/// (learnt from the look at the pod every command starts with), in the daemons' containers
/// otherwise (a release before it).
#[tokio::test]
async fn mock_in_pod_work_execs_in_the_backup_container_when_the_pod_has_it() {
    for (containers, knot_work, kea_work) in [
        (vec!["kea-dhcp4", "backup", "knot-auth"], "backup", "backup"),
        (vec!["kea-dhcp4", "knot-auth"], "knot-auth", "kea-dhcp4"),
    ] {
        let (c, mut h) = cluster();
        let names: Vec<String> = containers.iter().map(|s| s.to_string()).collect();
        let server = tokio::spawn(async move {
            let (req, send) = next(&mut h).await;
            assert_eq!((req.method(), req.uri().path()), (&Method::GET, POD_PATH));
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            send.send_response(pod("u1", true, &refs));
            let (req, send) = next(&mut h).await;
            assert_eq!(req.uri().path(), format!("{POD_PATH}/exec"));
            let q = req.uri().query().unwrap().to_owned();
            send.send_response(status(
                403,
                "Forbidden",
                "pods \"unified-dns-dhcp-0\" is forbidden: User \"bob\" cannot create resource \"pods/exec\"",
            ));
            q
        });
        c.pod(&["knot-auth", "kea-dhcp4"]).await.unwrap();
        let err = c
            .run("kea-dhcp4", &["leases".into(), "count".into()])
            .await
            .unwrap_err();
        let q = server.await.unwrap();
        assert!(matches!(err, KubeError::Forbidden { .. }), "{err:?}");
        assert!(q.contains(&format!("container={kea_work}")), "{q}");
        assert!(q.contains("command=%2Fdnsdhcp%2Fbin%2Fdnsdhcp"), "{q}");
        assert_eq!(c.container_for("knot-auth"), knot_work);
        assert_eq!(c.container_for("kea-dhcp4"), kea_work);
        assert_eq!(c.container_for("kea-dhcp-ddns"), "kea-dhcp-ddns");
    }
}
