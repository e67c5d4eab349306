//! The StatefulSet's pod: find it, check its containers, delete it and wait for its successor.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::DeleteParams;

use super::error::{KubeError, Req};
use super::progress::ProgressMode;

/// The pod's uid.
pub fn uid(pod: &Pod) -> Option<&str> {
    pod.metadata.uid.as_deref()
}

/// True when the pod's `Ready` condition is `True`.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The names of the pod's containers.
pub fn containers(pod: &Pod) -> Vec<String> {
    pod.spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default()
}

/// Fails with [`KubeError::MissingContainer`] unless the pod has `container`.
pub fn check_container(pod: &Pod, container: &str) -> Result<(), KubeError> {
    let have = containers(pod);
    if have.iter().any(|c| c == container) {
        Ok(())
    } else {
        Err(KubeError::MissingContainer {
            pod: pod.metadata.name.clone().unwrap_or_default(),
            container: container.to_owned(),
            available: have,
        })
    }
}

pub(crate) async fn get(
    api: &Api<Pod>,
    req: Req<'_>,
    timeout: Duration,
) -> Result<Option<Pod>, KubeError> {
    let r = tokio::time::timeout(timeout, api.get_opt(req.pod))
        .await
        .map_err(|_| KubeError::Timeout {
            step: format!("get pod {}/{}", req.namespace, req.pod),
            after: timeout,
        })?;
    r.map_err(|e| {
        Req {
            verb: "get",
            resource: "pods",
            ..req
        }
        .map(e)
    })
}

/// Deletes the pod whose uid is `old_uid`, then polls until a pod of the same name with another
/// uid is Ready (the StatefulSet controller recreates it). Returns that pod.
pub(crate) async fn delete_and_wait(
    api: &Api<Pod>,
    req: Req<'_>,
    old_uid: &str,
    request_timeout: Duration,
    wait: Duration,
    poll: Duration,
    progress: ProgressMode,
) -> Result<Pod, KubeError> {
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some(old_uid.to_owned()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    progress.step(format!("deleting pod {} (uid {old_uid})", req.pod));
    tokio::time::timeout(request_timeout, api.delete(req.pod, &dp))
        .await
        .map_err(|_| KubeError::Timeout {
            step: format!("delete pod {}/{}", req.namespace, req.pod),
            after: request_timeout,
        })?
        .map_err(|e| {
            Req {
                verb: "delete",
                resource: "pods",
                ..req
            }
            .map(e)
        })?;
    progress.step(format!(
        "waiting for StatefulSet {} to recreate {} and for it to be Ready",
        req.statefulset, req.pod
    ));
    let start = Instant::now();
    let mut last;
    loop {
        match get(api, req, request_timeout).await? {
            None => last = "gone (not recreated yet)".into(),
            Some(p) if uid(&p) == Some(old_uid) => last = "old pod still terminating".into(),
            Some(p) => {
                if is_ready(&p) {
                    progress.step(format!(
                        "pod {} is Ready again (uid {})",
                        req.pod,
                        uid(&p).unwrap_or("?")
                    ));
                    return Ok(p);
                }
                last = format!(
                    "recreated (uid {}), phase {}, not Ready",
                    uid(&p).unwrap_or("?"),
                    p.status
                        .as_ref()
                        .and_then(|s| s.phase.as_deref())
                        .unwrap_or("unknown")
                );
            }
        }
        if start.elapsed() >= wait {
            return Err(KubeError::Timeout {
                step: format!(
                    "waiting for pod {}/{} to be recreated and Ready (last seen: {last})",
                    req.namespace, req.pod
                ),
                after: wait,
            });
        }
        tokio::time::sleep(poll).await;
    }
}
