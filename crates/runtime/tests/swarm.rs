//! The Swarm runtime on a real three-node Swarm built on this machine by
//! `scripts/swarm` (dockerd instances in network namespaces; the host's
//! engine untouched). Root and the built static applab-node are needed;
//! without them this fails, it does not skip.

use applab_runtime::swarm::{SwarmConfig, SwarmRuntime};
use applab_runtime::{ContainerSpec, Endpoint, Labels, NetworkSpec, Runtime};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn swarm(args: &[&str]) {
    let st = Command::new("bash")
        .arg(repo().join("scripts/swarm"))
        .args(args)
        .status()
        .expect("bash scripts/swarm");
    assert!(st.success(), "scripts/swarm {args:?} failed");
}

/// The Swarm, removed whole when the test ends (passed or not).
struct Harness;

impl Harness {
    fn up() -> Harness {
        swarm(&["down"]);
        swarm(&["up", "3"]);
        Harness
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        swarm(&["down"]);
    }
}

const GROUP: &str = "test.student";

fn labels(student: &str) -> Labels {
    Labels::from([
        ("test.swarm".to_string(), "1".to_string()),
        (GROUP.to_string(), student.to_string()),
    ])
}

/// A FROM-scratch image of the static applab-node alone.
fn context() -> Vec<u8> {
    let node = repo().join("target/x86_64-unknown-linux-musl/release/applab-node");
    assert!(
        node.exists(),
        "{} is missing: build the workspace first (bash scripts/build)",
        node.display()
    );
    let mut b = tar::Builder::new(Vec::new());
    let dockerfile =
        b"FROM scratch\nCOPY applab-node /bin/applab-node\nENTRYPOINT [\"/bin/applab-node\"]\n";
    let mut h = tar::Header::new_gnu();
    h.set_size(dockerfile.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "Dockerfile", &dockerfile[..])
        .unwrap();
    b.append_path_with_name(&node, "applab-node").unwrap();
    b.into_inner().unwrap()
}

fn spec(student: &str, name: &str, role: &str, ip: &str, image: &str) -> ContainerSpec {
    ContainerSpec {
        name: format!("swt-{student}-{name}"),
        hostname: name.into(),
        image: image.into(),
        cmd: vec![role.into()],
        labels: labels(student),
        endpoints: vec![Endpoint {
            network: format!("swt-{student}-lan"),
            aliases: vec![name.into()],
            ipv4: Some(ip.into()),
        }],
        memory_bytes: 64 << 20,
        nano_cpus: 500_000_000,
        pids: 64,
        cap_add: vec!["NET_BIND_SERVICE".into()],
        tmpfs: vec![],
        volumes: vec![(format!("swt-{student}-state"), "/data".into())],
    }
}

/// Can `from` (a container) open TCP port 80 at `to`?
async fn reaches(rt: &SwarmRuntime, from: &str, to: &str) -> bool {
    let cmd: Vec<String> = [
        "/bin/applab-node",
        "tool",
        "tcp",
        "--probe",
        "--timeout-ms",
        "1500",
        to,
        "80",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    rt.exec(from, &cmd)
        .await
        .map(|o| o.exit_code == 0)
        .unwrap_or(false)
}

async fn eventually(rt: &SwarmRuntime, from: &str, to: &str) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(15) {
        if reaches(rt, from, to).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn students_are_placed_apart_reach_their_own_nodes_and_a_lost_node_takes_no_new_work() {
    let _h = Harness::up();
    let run = "/run/applab-swarm";
    let cfg = SwarmConfig {
        manager: format!("{run}/n1.sock"),
        engines: (1..=3)
            .map(|k| (format!("n{k}"), format!("{run}/n{k}.sock")))
            .collect::<BTreeMap<_, _>>(),
        mtu: 1350,
        group_by: vec![GROUP.into()],
    };
    let rt = SwarmRuntime::connect(cfg)
        .await
        .expect("connect to the swarm");

    // Membership and health come from Swarm.
    let nodes = rt.nodes().await.unwrap();
    assert_eq!(
        nodes
            .iter()
            .map(|n| n.hostname.as_str())
            .collect::<Vec<_>>(),
        ["n1", "n2", "n3"]
    );
    assert!(nodes.iter().all(|n| n.ready && n.active), "{nodes:?}");
    assert!(nodes[0].manager);

    // One image, built on every node from one context.
    let tag = "applab-swarm-test/node:1".to_string();
    rt.build_image(
        context(),
        std::slice::from_ref(&tag),
        &Labels::new(),
        &|_| {},
    )
    .await
    .expect("build on every node");
    assert!(rt.image_exists(&tag).await.unwrap());

    // Three students: an overlay, a volume, an origin and a workstation each.
    let mut ids: BTreeMap<(String, &str), String> = BTreeMap::new();
    for (i, s) in ["s1", "s2", "s3"].iter().enumerate() {
        let net = 1 + i;
        rt.create_network(&NetworkSpec {
            name: format!("swt-{s}-lan"),
            subnet: format!("10.252.{net}.0/26"),
            gateway: format!("10.252.{net}.1"),
            bridge: String::new(),
            labels: labels(s),
        })
        .await
        .expect("overlay");
        rt.create_volume(&format!("swt-{s}-state"), &labels(s))
            .await
            .unwrap();
        for (name, role, host) in [("origin", "origin", 10), ("ws", "workstation", 20)] {
            let ip = format!("10.252.{net}.{host}");
            let id = rt
                .create_container(&spec(s, name, role, &ip, &tag))
                .await
                .expect("create");
            rt.start_container(&id).await.expect("start");
            ids.insert((s.to_string(), name), id);
        }
    }
    let node = |s: &str, n: &str| rt.node_of(&ids[&(s.to_string(), n)]).unwrap();
    // A student's topology on one node; students spread over the nodes.
    for s in ["s1", "s2", "s3"] {
        assert_eq!(node(s, "origin"), node(s, "ws"), "{s}'s nodes apart");
    }
    let mut placed: Vec<String> = ["s1", "s2", "s3"].iter().map(|s| node(s, "ws")).collect();
    placed.sort();
    assert_eq!(placed, ["n1", "n2", "n3"], "one student per node");

    // Each reaches its own origin by address and by name, through exec on
    // the node that holds it; none reaches another student's.
    for (i, s) in ["s1", "s2", "s3"].iter().enumerate() {
        let ws = &ids[&(s.to_string(), "ws")];
        let own = format!("10.252.{}.10", 1 + i);
        assert!(
            eventually(&rt, ws, &own).await,
            "{s} does not reach its origin"
        );
        assert!(reaches(&rt, ws, "origin").await, "{s}: not by name");
        let other = format!("10.252.{}.10", 1 + (i + 1) % 3);
        assert!(!reaches(&rt, ws, &other).await, "{s} reaches {other}");
    }
    let listed = rt.list_containers(&[("test.swarm", "1")]).await.unwrap();
    assert_eq!(listed.len(), 6, "every node's containers listed");

    // A node lost: Swarm marks it down, and new work goes elsewhere.
    let lost = node("s3", "ws");
    assert_ne!(lost, "n1", "the manager is not the one killed");
    swarm(&["kill", lost.trim_start_matches('n')]);
    let t = Instant::now();
    loop {
        let n = rt.nodes().await.unwrap();
        if n.iter().any(|n| n.hostname == lost && !n.ready) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{lost} never marked down: {n:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!(
        "{lost} marked down {:.1} s after its engine was killed",
        t.elapsed().as_secs_f64()
    );
    rt.create_network(&NetworkSpec {
        name: "swt-s4-lan".into(),
        subnet: "10.252.4.0/26".into(),
        gateway: "10.252.4.1".into(),
        bridge: String::new(),
        labels: labels("s4"),
    })
    .await
    .expect("overlay");
    rt.create_volume("swt-s4-state", &labels("s4"))
        .await
        .unwrap();
    let s4 = rt
        .create_container(&spec("s4", "ws", "workstation", "10.252.4.20", &tag))
        .await
        .expect("create s4");
    assert_ne!(
        rt.node_of(&s4).unwrap(),
        lost,
        "new work placed on a lost node"
    );
    // The lost node's containers are not listed (its engine does not answer).
    let listed = rt.list_containers(&[("test.swarm", "1")]).await.unwrap();
    assert_eq!(listed.len(), 5, "{listed:?}");

    // Everything removed from the nodes that answer.
    for c in &listed {
        rt.remove_container(&c.id).await.unwrap();
    }
    for n in rt.list_networks(&[("test.swarm", "1")]).await.unwrap() {
        let r = rt.remove_network(&n.id).await;
        if n.name == "swt-s3-lan" {
            // Its containers' attachments are on the lost node: refused,
            // and the refusal says why.
            match r {
                Err(applab_runtime::Error::Conflict(m)) => {
                    assert!(m.contains("may be down"), "{m}")
                }
                other => panic!("s3's overlay with its node down: {other:?}"),
            }
        } else {
            r.unwrap();
        }
    }
    for v in rt.list_volumes(&[("test.swarm", "1")]).await.unwrap() {
        rt.remove_volume(&v.name).await.unwrap();
    }
    let f = [("test.swarm", "1")];
    assert!(rt.list_containers(&f).await.unwrap().is_empty());
    assert!(rt.list_volumes(&f).await.unwrap().is_empty());
    let left: Vec<String> = rt
        .list_networks(&f)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(
        left,
        ["swt-s3-lan"],
        "only the lost node's student's overlay is left"
    );
}
