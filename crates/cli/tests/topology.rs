//! Launching labs for real: isolation, per-student parameters, the
//! instructor verbs, teardown. Needs a Docker engine; fails without one.

mod common;

use common::{container_ids, objects_of_run, Server};
use std::collections::BTreeMap;

/// The host's IPv4 addresses other than loopback and the lab bridges' own
/// (as the kernel lists them).
fn host_addresses() -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr"])
        .output()
        .expect("ip(8) from iproute2");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.len() > 3 && !w[1].starts_with("al-"))
        .filter_map(|w| w[3].split('/').next().map(str::to_string))
        .filter(|a| !a.starts_with("127."))
        .collect()
}

/// Probe many (host, port) pairs from one node at once: host → exit code
/// of `tcp --probe` (0 open, 1 unreachable, 2 unresolvable).
fn probe(s: &Server, run: &str, student: &str, targets: &[(String, u16)]) -> BTreeMap<String, i64> {
    let mut script = String::new();
    for (i, (h, p)) in targets.iter().enumerate() {
        script.push_str(&format!(
            "(tcp --probe {h} {p} --timeout-ms 1500 >/dev/null 2>&1; echo \"{i} $?\") & "
        ));
    }
    script.push_str("wait");
    let (code, out) = s.exec(run, student, "ws", &["sh", "-c", &script]);
    assert_eq!(code, 0, "{out}");
    let mut res = BTreeMap::new();
    for l in out.lines() {
        let (i, c) = l.split_once(' ').unwrap();
        let (h, p) = &targets[i.parse::<usize>().unwrap()];
        res.insert(format!("{h}:{p}"), c.trim().parse().unwrap());
    }
    assert_eq!(res.len(), targets.len(), "{out}");
    res
}

#[test]
fn three_students_are_isolated_and_get_their_own_values() {
    // Listening on every address, as a real controller does: the refusal
    // must come from the controller itself, not from where it listens.
    let mut s = Server::start_public("10.221.0.0/20");
    let run = "iso";
    let ids = ["s1", "s2", "s3"];
    s.launch(run, "http-basics", &ids);
    let st = s.status(run);
    let mut ips: BTreeMap<&str, Vec<(String, u16)>> = BTreeMap::new();
    let mut sites: BTreeMap<&str, String> = BTreeMap::new();
    let mut params: BTreeMap<&str, serde_json::Value> = BTreeMap::new();
    for (i, id) in ids.iter().enumerate() {
        let stu = &st["students"][i];
        assert_eq!(stu["id"], *id);
        assert_eq!(stu["state"], "ready", "{stu}");
        for n in stu["nodes"].as_array().unwrap() {
            assert_eq!(n["healthy"], true, "{n}");
            let port = if n["role"] == "origin" { 80 } else { 7 };
            for ip in n["addresses"].as_object().unwrap().values() {
                ips.entry(id)
                    .or_default()
                    .push((ip.as_str().unwrap().to_string(), port));
            }
        }
        let p = s.json(&["params", id, "--run", run]);
        sites.insert(id, p["site"].as_str().unwrap().to_string());
        params.insert(id, p);
    }

    // Per-student parameters differ, and so do the pages they are served in.
    for (a, b) in [("s1", "s2"), ("s1", "s3"), ("s2", "s3")] {
        for k in ["site", "secret_word"] {
            assert_ne!(params[a][k], params[b][k], "{k} of {a} and {b}");
        }
    }
    let mut pages = BTreeMap::new();
    for id in ids {
        let req = format!("printf 'GET / HTTP/1.1\\nHost: www.{}.lab\\nConnection: close\\n\\n' | tcp www.{}.lab 80", sites[id], sites[id]);
        let (code, page) = s.exec(run, id, "ws", &["sh", "-c", &req]);
        assert_eq!(code, 0, "{page}");
        assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
        let word = params[id]["secret_word"].as_str().unwrap();
        assert!(
            page.contains(word),
            "{id}'s page must hold their word {word}: {page}"
        );
        assert!(
            page.matches("<img ").count() == 10,
            "ten objects referenced: {page}"
        );
        pages.insert(id, page);
    }
    assert_ne!(pages["s1"], pages["s2"]);

    // One and the same probe from every workstation.
    let api_port = s.port;
    let mut host_targets: Vec<(String, u16)> = host_addresses()
        .into_iter()
        .map(|a| (a, api_port))
        .collect();
    assert!(!host_targets.is_empty());
    // The controller answers on those addresses from the host itself...
    for (a, p) in &host_targets {
        assert!(
            std::net::TcpStream::connect((a.as_str(), *p)).is_ok(),
            "host reaches {a}:{p}"
        );
    }
    for id in ids {
        let mut targets: Vec<(String, u16)> = vec![
            ("origin".into(), 80),
            ("ws".into(), 7),
            (format!("www.{}.lab", sites[id]), 80),
        ];
        targets.extend(ips[id].iter().cloned());
        let others: Vec<&str> = ids.iter().copied().filter(|o| *o != id).collect();
        for o in &others {
            targets.extend(ips[o].iter().cloned());
            targets.push((format!("www.{}.lab", sites[o]), 80));
            targets.push((format!("applab-{run}-{o}-origin"), 80));
        }
        let (_, route) = s.exec(run, id, "ws", &["ip", "route"]);
        let gw = route
            .split_whitespace()
            .skip_while(|w| *w != "via")
            .nth(1)
            .expect("a gateway")
            .to_string();
        host_targets.push((gw, api_port));
        targets.extend(host_targets.iter().cloned());
        let res = probe(&s, run, id, &targets);
        for (h, p) in [("origin", 80), ("ws", 7)] {
            assert_eq!(
                res[&format!("{h}:{p}")],
                0,
                "{id} reaches its own {h}: {res:?}"
            );
        }
        assert_eq!(res[&format!("www.{}.lab:80", sites[id])], 0, "{res:?}");
        for (ip, p) in &ips[id] {
            assert_eq!(
                res[&format!("{ip}:{p}")],
                0,
                "{id} reaches its own {ip}: {res:?}"
            );
        }
        for o in &others {
            for (ip, p) in &ips[o] {
                assert_ne!(
                    res[&format!("{ip}:{p}")],
                    0,
                    "{id} must not reach {o}'s {ip}:{p}: {res:?}"
                );
            }
            assert_ne!(
                res[&format!("www.{}.lab:80", sites[o])],
                0,
                "{id} must not reach {o} by name"
            );
            assert_ne!(
                res[&format!("applab-{run}-{o}-origin:80")],
                0,
                "{id} must not reach {o}'s container name"
            );
        }
        // ... but never from a workstation, whichever host address it tries.
        for (a, p) in &host_targets {
            assert_ne!(
                res[&format!("{a}:{p}")],
                0,
                "{id} must not reach the controller at {a}:{p}: {res:?}"
            );
        }
        host_targets.pop();
    }
    s.ok(&["teardown", "--run", run]);
    assert_eq!(objects_of_run(run), Vec::<(String, String)>::new());
}

#[test]
fn instructor_verbs_late_joiners_reset_stop_start_teardown() {
    let mut s = Server::start("10.222.0.0/20");
    let run = "life";
    let first = s.launch(run, "http-basics", &["a", "b"]);
    assert_eq!(first["added"].as_array().unwrap().len(), 2);
    let before = container_ids(run);
    assert_eq!(before.len(), 4, "{before:?}");

    // Launching again with a longer roster adds only the late student.
    let again = s.launch(run, "http-basics", &["a", "b", "c"]);
    let added: Vec<&str> = again["added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(added, ["c"]);
    assert_eq!(again["kept"], 2);
    assert!(again["added"][0]["password"].as_str().unwrap().len() >= 12);
    let after = container_ids(run);
    for (name, id) in &before {
        assert_eq!(after.get(name), Some(id), "{name} must be left untouched");
    }
    assert_eq!(after.len(), 6);
    let csvs: Vec<_> = std::fs::read_dir(s.data.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("credentials-life-")
        })
        .collect();
    assert_eq!(
        csvs.len(),
        2,
        "one credentials file per launch that added students"
    );

    // Credentials: listed without passwords; reissued on demand.
    let creds = s.json(&["credentials", "--run", run]);
    assert_eq!(creds["students"].as_array().unwrap().len(), 3);
    assert!(!creds.to_string().contains("password"));
    let out = s.data.path().join("reissued.csv");
    s.ok(&[
        "credentials",
        "--run",
        run,
        "--student",
        "b",
        "--reissue",
        "--out",
        out.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.lines().nth(1).unwrap().starts_with("life,b,"),
        "{text}"
    );

    // Stop and start one node.
    s.ok(&["stop", "b", "origin", "--run", run]);
    let st = s.status(run);
    let b = st["students"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == "b")
        .unwrap()
        .clone();
    let origin = b["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "origin")
        .unwrap();
    assert_eq!(origin["state"], "exited");
    assert_eq!(origin["stopped_on_purpose"], true);
    let (code, _) = s.exec(
        run,
        "b",
        "ws",
        &["tcp", "--probe", "origin", "80", "--timeout-ms", "1000"],
    );
    assert_ne!(code, 0, "a stopped origin does not answer");
    s.ok(&["start", "b", "origin", "--run", run]);
    let (code, _) = s.exec(run, "b", "ws", &["tcp", "--probe", "origin", "80"]);
    assert_eq!(code, 0);
    assert_eq!(
        container_ids(run)["applab-life-b-origin"],
        before["applab-life-b-origin"],
        "stop/start keeps the container"
    );

    // Reset recreates a's topology from scratch (new containers, new state) and nothing else.
    s.exec(run, "a", "ws", &["sh", "-c", "echo kept > /data/note"]);
    s.ok(&["reset", "a", "--run", run]);
    let reset = container_ids(run);
    assert_ne!(
        reset["applab-life-a-origin"],
        before["applab-life-a-origin"]
    );
    assert_ne!(reset["applab-life-a-ws"], before["applab-life-a-ws"]);
    assert_eq!(reset["applab-life-b-ws"], before["applab-life-b-ws"]);
    let (code, _) = s.exec(run, "a", "ws", &["cat", "/data/note"]);
    assert_ne!(code, 0, "state is gone after reset");
    let st = s.status(run);
    assert!(
        st["students"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["state"] == "ready"),
        "{st}"
    );

    // Teardown of one student, then of the run: nothing left.
    s.ok(&["teardown", "--student", "c", "--run", run]);
    assert!(objects_of_run(run)
        .iter()
        .all(|(_, n)| !n.starts_with("applab-life-c-")));
    s.ok(&["teardown", "--run", run]);
    assert_eq!(objects_of_run(run), Vec::<(String, String)>::new());
    let gone = s.cmd(&["status", "--run", run]);
    assert!(!gone.status.success());
}

/// `applab images build --json [ARGS]`, which must succeed.
fn build_images(args: &[&str]) -> serde_json::Value {
    common::require_docker();
    let out = std::process::Command::new(common::applab_bin())
        .args(["images", "build", "--json"])
        .args(args)
        .env("APPLAB_IMAGES", common::repo().join("images"))
        .env("APPLAB_NODE_BINARY", common::node_bin())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn images_are_small_tagged_by_digest_and_not_rebuilt() {
    build_images(&[]);
    let second = build_images(&[]);
    let roles: Vec<&str> = second
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "controller",
            "dns",
            "mail",
            "origin",
            "proxy",
            "workstation"
        ]
    );
    for img in second.as_array().unwrap() {
        assert_eq!(
            img["built"], false,
            "unchanged context is not rebuilt: {img}"
        );
        let tag = img["tag"].as_str().unwrap();
        assert!(tag.ends_with(&img["digest"].as_str().unwrap()[..16]));
        let size = std::process::Command::new("docker")
            .args(["image", "inspect", "-f", "{{.Size}}", tag])
            .output()
            .unwrap();
        let size: u64 = String::from_utf8_lossy(&size.stdout)
            .trim()
            .parse()
            .unwrap();
        // Lab images hold applab-node alone; the controller's holds applab,
        // which also carries the panel (pages, the terminal emulator, TLS).
        let limit = if tag.contains("controller") {
            20_000_000
        } else {
            15_000_000
        };
        assert!(size < limit, "{tag} is {size} bytes (limit {limit})");
        let version = std::process::Command::new("docker")
            .args([
                "image",
                "inspect",
                "-f",
                "{{.Id}}",
                img["version_tag"].as_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(version.status.success(), "the version tag exists too");
    }
}

#[test]
fn a_network_is_removed_even_while_its_last_container_is_going() {
    use applab_runtime::{
        docker::DockerRuntime, ContainerSpec, Endpoint, Labels, NetworkSpec, Runtime,
    };
    let images = build_images(&["--role", "workstation"]);
    let image = images[0]["tag"].as_str().unwrap().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let engine = DockerRuntime::connect().await.unwrap();
        let labels = Labels::from([("applab.run".to_string(), "netbusy".to_string())]);
        for round in 0..3 {
            let net = format!("applab-netbusy-{round}");
            engine
                .create_network(&NetworkSpec {
                    name: net.clone(),
                    subnet: format!("10.224.{round}.0/26"),
                    gateway: format!("10.224.{round}.1"),
                    bridge: format!("al-netbusy{round}"),
                    labels: labels.clone(),
                })
                .await
                .unwrap();
            let id = engine
                .create_container(&ContainerSpec {
                    name: format!("applab-netbusy-ws-{round}"),
                    hostname: "ws".into(),
                    image: image.clone(),
                    cmd: vec!["workstation".into()],
                    labels: labels.clone(),
                    endpoints: vec![Endpoint {
                        network: net.clone(),
                        aliases: vec![],
                        ipv4: None,
                    }],
                    memory_bytes: 32 << 20,
                    nano_cpus: 200_000_000,
                    pids: 32,
                    cap_add: vec!["NET_BIND_SERVICE".into()],
                    tmpfs: vec![],
                    volumes: vec![],
                })
                .await
                .unwrap();
            engine.start_container(&id).await.unwrap();
            // The engine answers "has active endpoints" while the container
            // is still going: the removal must wait it out, not fail.
            let (c, n) = tokio::join!(engine.remove_container(&id), async {
                tokio::time::sleep(std::time::Duration::from_millis(round * 5)).await;
                engine.remove_network(&net).await
            });
            c.unwrap();
            n.unwrap();
        }
        assert!(engine
            .list_networks(&[("applab.run", "netbusy")])
            .await
            .unwrap()
            .is_empty());
        assert!(engine
            .list_containers(&[("applab.run", "netbusy")])
            .await
            .unwrap()
            .is_empty());
    });
}
