//! Reconcile as a pure plan, then apply. `actions` decides what to do to
//! one student's topology from the plan, the engine's snapshot, the nodes
//! the instructor stopped and the student's generation, with no engine
//! call and no clock; `Controller::converge_locked` applies the result.
//! Every case the convergence test provokes with its SIGKILLs mid-launch
//! (created-never-started, stale image, foreign instance, missing network,
//! leftover volume, a kill at each step) is a unit test here.

use crate::plan::{self, StudentPlan};
use applab_runtime::{ContainerInfo, ContainerState, Labels, NetworkInfo, VolumeInfo};
use std::collections::{BTreeSet, HashMap};

/// What the engine holds, as listed once for a pass.
pub struct Engine<'a> {
    pub containers: &'a [ContainerInfo],
    pub networks: &'a [NetworkInfo],
    pub volumes: &'a [VolumeInfo],
}

/// The student a pass converges: their labels find their objects.
pub struct Student<'a> {
    pub run: &'a str,
    pub student: &'a str,
    pub generation: i64,
    pub stopped: &'a BTreeSet<String>,
}

/// A container to remove, and why (logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub id: String,
    pub name: String,
    pub why: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    Start,
    Stop,
    Keep,
}

/// What happens to one node of the plan (same order as `plan.nodes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeAction {
    /// No container: create it, fill its content, start it unless stopped.
    Create { start: bool },
    /// A container kept: finish what a crash left undone.
    Adopt {
        id: String,
        /// Indexes into the spec's endpoints the container is not on.
        connect: Vec<usize>,
        /// Created but never started: its content may not be in yet.
        fill: bool,
        power: Power,
    },
}

/// One pass's work, in the order it is applied: containers that do not
/// match go first (so their networks and volumes can be replaced), then
/// networks, volumes, and each node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Actions {
    pub remove_containers: Vec<Removal>,
    /// (id, name) of networks not in the plan, or doubled.
    pub remove_networks: Vec<(String, String)>,
    /// Indexes into `plan.networks`.
    pub create_networks: Vec<usize>,
    pub remove_volumes: Vec<String>,
    /// Indexes into `plan.nodes` whose volume is missing.
    pub create_volumes: Vec<usize>,
    pub nodes: Vec<NodeAction>,
}

/// Whether an engine object is this student's (its labels say so).
pub(crate) fn owned(labels: &Labels, run: &str, student: &str) -> bool {
    labels.get(plan::RUN).map(String::as_str) == Some(run)
        && labels.get(plan::STUDENT).map(String::as_str) == Some(student)
}

fn label<'a>(labels: &'a Labels, k: &str) -> &'a str {
    labels.get(k).map(String::as_str).unwrap_or("")
}

/// Why an existing container cannot stay as the node's, if it cannot.
fn replace_because(
    c: &ContainerInfo,
    plan: &StudentPlan,
    s: &Student,
    kept: &HashMap<String, &ContainerInfo>,
) -> Option<String> {
    let node = label(&c.labels, plan::NODE);
    let Some(want) = plan.nodes.iter().find(|n| n.node == node) else {
        return Some("no such node in the lab".into());
    };
    let generation = label(&c.labels, plan::GENERATION);
    if kept.contains_key(node) {
        Some("a second container for the node".into())
    } else if generation != s.generation.to_string() {
        Some(format!("generation {generation} replaced by a reset"))
    } else if c.image != want.spec.image {
        Some(format!(
            "image {} is not the current {}",
            c.image, want.spec.image
        ))
    } else if c.name != want.spec.name {
        Some(format!("name is not {}", want.spec.name))
    } else if !matches!(
        c.state,
        ContainerState::Created | ContainerState::Running | ContainerState::Exited
    ) {
        // Created but never started (a crash mid-set-up) is adopted and
        // finished, not replaced: a dead controller's start may still be
        // in flight, and removing would race with it.
        Some(format!("state {:?}", c.state))
    } else {
        None
    }
}

/// The pass for one student. Objects of other students, runs or
/// controllers (their labels differ) are never touched.
pub fn actions(plan: &StudentPlan, engine: &Engine, s: &Student) -> Actions {
    let mut out = Actions::default();
    // 1. Containers.
    let mut kept: HashMap<String, &ContainerInfo> = HashMap::new();
    for c in engine
        .containers
        .iter()
        .filter(|c| owned(&c.labels, s.run, s.student))
    {
        match replace_because(c, plan, s, &kept) {
            None => {
                kept.insert(label(&c.labels, plan::NODE).to_string(), c);
            }
            Some(why) => out.remove_containers.push(Removal {
                id: c.id.clone(),
                name: c.name.clone(),
                why,
            }),
        }
    }
    // 2. Networks: exactly one per lab network, with the plan's name and subnet.
    let mut have: BTreeSet<&str> = BTreeSet::new();
    for n in engine
        .networks
        .iter()
        .filter(|n| owned(&n.labels, s.run, s.student))
    {
        let lab_net = label(&n.labels, plan::NETWORK);
        let ok = plan.networks.iter().any(|p| {
            p.lab_network == lab_net
                && p.spec.name == n.name
                && n.subnet.as_deref() == Some(&p.spec.subnet)
        });
        if ok && have.insert(lab_net) {
            continue;
        }
        out.remove_networks.push((n.id.clone(), n.name.clone()));
    }
    out.create_networks = (0..plan.networks.len())
        .filter(|&i| !have.contains(plan.networks[i].lab_network.as_str()))
        .collect();
    // 3. Volumes: one per node and generation.
    let owned_vols: Vec<&VolumeInfo> = engine
        .volumes
        .iter()
        .filter(|v| owned(&v.labels, s.run, s.student))
        .collect();
    out.remove_volumes = owned_vols
        .iter()
        .filter(|v| !plan.nodes.iter().any(|n| n.volume == v.name))
        .map(|v| v.name.clone())
        .collect();
    out.create_volumes = (0..plan.nodes.len())
        .filter(|&i| !owned_vols.iter().any(|v| v.name == plan.nodes[i].volume))
        .collect();
    // 4. Each node.
    out.nodes = plan
        .nodes
        .iter()
        .map(|n| {
            let run = !s.stopped.contains(&n.node);
            match kept.get(&n.node) {
                None => NodeAction::Create { start: run },
                Some(c) => NodeAction::Adopt {
                    id: c.id.clone(),
                    connect: (0..n.spec.endpoints.len())
                        .filter(|&i| !c.networks.contains(&n.spec.endpoints[i].network))
                        .collect(),
                    fill: c.state == ContainerState::Created,
                    power: match (run, &c.state) {
                        (true, ContainerState::Running) => Power::Keep,
                        (true, _) => Power::Start,
                        (false, ContainerState::Running) => Power::Stop,
                        (false, _) => Power::Keep,
                    },
                },
            }
        })
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{NetworkPlan, NodePlan};
    use applab_lab::Role;
    use applab_runtime::{ContainerSpec, Endpoint, NetworkSpec};

    const RUN: &str = "r";
    const ST: &str = "s1";

    fn labels(extra: &[(&str, &str)]) -> Labels {
        let mut l = Labels::from([
            (plan::RUN.to_string(), RUN.to_string()),
            (plan::STUDENT.to_string(), ST.to_string()),
        ]);
        for (k, v) in extra {
            l.insert(k.to_string(), v.to_string());
        }
        l
    }

    /// Two nodes (origin, ws) on one network, generation 1.
    fn the_plan() -> StudentPlan {
        let node = |name: &str, role| NodePlan {
            node: name.into(),
            role,
            volume: format!("applab-r-s1-{name}-g1"),
            volume_labels: labels(&[(plan::NODE, name)]),
            spec: ContainerSpec {
                name: format!("applab-r-s1-{name}"),
                hostname: name.into(),
                image: "applab/origin:new".into(),
                cmd: vec![],
                labels: labels(&[(plan::NODE, name), (plan::GENERATION, "1")]),
                endpoints: vec![Endpoint {
                    network: "applab-r-s1-lan".into(),
                    aliases: vec![],
                    ipv4: None,
                }],
                memory_bytes: 0,
                nano_cpus: 0,
                pids: 0,
                cap_add: vec![],
                tmpfs: vec![],
                volumes: vec![],
            },
        };
        StudentPlan {
            networks: vec![NetworkPlan {
                lab_network: "lan".into(),
                spec: NetworkSpec {
                    name: "applab-r-s1-lan".into(),
                    subnet: "10.0.0.0/26".into(),
                    gateway: "10.0.0.1".into(),
                    bridge: "br-x".into(),
                    labels: labels(&[(plan::NETWORK, "lan")]),
                },
            }],
            nodes: vec![node("origin", Role::Origin), node("ws", Role::Workstation)],
            params: Default::default(),
        }
    }

    fn container(node: &str, state: ContainerState) -> ContainerInfo {
        ContainerInfo {
            id: format!("id-{node}"),
            name: format!("applab-r-s1-{node}"),
            image: "applab/origin:new".into(),
            state,
            labels: labels(&[(plan::NODE, node), (plan::GENERATION, "1")]),
            addresses: Default::default(),
            networks: vec!["applab-r-s1-lan".into()],
            macs: Default::default(),
            pid: None,
        }
    }

    fn network() -> NetworkInfo {
        NetworkInfo {
            id: "net-1".into(),
            name: "applab-r-s1-lan".into(),
            subnet: Some("10.0.0.0/26".into()),
            labels: labels(&[(plan::NETWORK, "lan")]),
        }
    }

    fn volume(node: &str, generation: u32) -> VolumeInfo {
        VolumeInfo {
            name: format!("applab-r-s1-{node}-g{generation}"),
            labels: labels(&[(plan::NODE, node)]),
        }
    }

    fn run(
        containers: &[ContainerInfo],
        networks: &[NetworkInfo],
        volumes: &[VolumeInfo],
        stopped: &[&str],
    ) -> Actions {
        let stopped: BTreeSet<String> = stopped.iter().map(|s| s.to_string()).collect();
        actions(
            &the_plan(),
            &Engine {
                containers,
                networks,
                volumes,
            },
            &Student {
                run: RUN,
                student: ST,
                generation: 1,
                stopped: &stopped,
            },
        )
    }

    fn complete() -> (Vec<ContainerInfo>, Vec<NetworkInfo>, Vec<VolumeInfo>) {
        (
            vec![
                container("origin", ContainerState::Running),
                container("ws", ContainerState::Running),
            ],
            vec![network()],
            vec![volume("origin", 1), volume("ws", 1)],
        )
    }

    #[test]
    fn nothing_there_creates_everything() {
        let a = run(&[], &[], &[], &[]);
        assert!(a.remove_containers.is_empty() && a.remove_networks.is_empty());
        assert_eq!(a.create_networks, [0]);
        assert_eq!(a.create_volumes, [0, 1]);
        assert_eq!(a.nodes, vec![NodeAction::Create { start: true }; 2]);
    }

    #[test]
    fn a_converged_topology_is_left_alone() {
        let (c, n, v) = complete();
        let a = run(&c, &n, &v, &[]);
        assert_eq!(
            a,
            Actions {
                nodes: vec![
                    NodeAction::Adopt {
                        id: "id-origin".into(),
                        connect: vec![],
                        fill: false,
                        power: Power::Keep
                    },
                    NodeAction::Adopt {
                        id: "id-ws".into(),
                        connect: vec![],
                        fill: false,
                        power: Power::Keep
                    },
                ],
                ..Default::default()
            }
        );
    }

    #[test]
    fn created_never_started_is_adopted_filled_and_started() {
        // Killed between create and start: not replaced (its start may be
        // in flight), its content put in, started.
        let (mut c, n, v) = complete();
        c[0].state = ContainerState::Created;
        c[0].networks.clear(); // killed before its network was connected
        let a = run(&c, &n, &v, &[]);
        assert!(a.remove_containers.is_empty());
        assert_eq!(
            a.nodes[0],
            NodeAction::Adopt {
                id: "id-origin".into(),
                connect: vec![0],
                fill: true,
                power: Power::Start
            }
        );
    }

    #[test]
    fn a_stale_image_a_reset_or_a_wrong_name_replaces_the_container() {
        for (change, why) in [
            (
                (|c: &mut ContainerInfo| c.image = "applab/origin:old".into())
                    as fn(&mut ContainerInfo),
                "image applab/origin:old is not the current applab/origin:new",
            ),
            (
                |c: &mut ContainerInfo| {
                    c.labels.insert(plan::GENERATION.into(), "0".into());
                },
                "generation 0 replaced by a reset",
            ),
            (
                |c: &mut ContainerInfo| c.name = "someone-else".into(),
                "name is not applab-r-s1-origin",
            ),
            (
                |c: &mut ContainerInfo| c.state = ContainerState::Other("dead".into()),
                "state Other(\"dead\")",
            ),
        ] {
            let (mut c, n, v) = complete();
            change(&mut c[0]);
            let a = run(&c, &n, &v, &[]);
            assert_eq!(a.remove_containers.len(), 1, "{why}");
            assert_eq!(a.remove_containers[0].why, why);
            assert_eq!(a.nodes[0], NodeAction::Create { start: true }, "{why}");
        }
    }

    #[test]
    fn a_second_container_for_a_node_and_a_node_not_in_the_lab_go() {
        let (mut c, n, v) = complete();
        let mut twin = container("ws", ContainerState::Running);
        twin.id = "id-ws-2".into();
        let mut stray = container("mail", ContainerState::Running);
        stray.name = "applab-r-s1-mail".into();
        c.extend([twin, stray]);
        let a = run(&c, &n, &v, &[]);
        let why: Vec<(&str, &str)> = a
            .remove_containers
            .iter()
            .map(|r| (r.id.as_str(), r.why.as_str()))
            .collect();
        assert_eq!(
            why,
            [
                ("id-ws-2", "a second container for the node"),
                ("id-mail", "no such node in the lab")
            ]
        );
    }

    #[test]
    fn another_controllers_or_students_objects_are_not_touched() {
        // Same names, other labels: a foreign instance's run of the same
        // name is invisible here (the engine's name conflict says so).
        let (mut c, mut n, mut v) = complete();
        for x in c.iter_mut() {
            x.labels.insert(plan::STUDENT.into(), "s2".into());
        }
        n[0].labels.insert(plan::RUN.into(), "other".into());
        v[0].labels.insert(plan::STUDENT.into(), "s2".into());
        let a = run(&c, &n, &v, &[]);
        assert!(a.remove_containers.is_empty() && a.remove_networks.is_empty());
        assert!(a.remove_volumes.is_empty());
        assert_eq!(a.create_networks, [0]);
        assert_eq!(a.create_volumes, [0]);
        assert_eq!(a.nodes, vec![NodeAction::Create { start: true }; 2]);
    }

    #[test]
    fn a_missing_network_is_created_and_joined() {
        let (mut c, _, v) = complete();
        for x in c.iter_mut() {
            x.networks.clear();
        }
        let a = run(&c, &[], &v, &[]);
        assert_eq!(a.create_networks, [0]);
        for n in &a.nodes {
            let NodeAction::Adopt { connect, .. } = n else {
                panic!("{n:?}")
            };
            assert_eq!(connect, &[0]);
        }
    }

    #[test]
    fn a_network_with_the_wrong_subnet_or_doubled_is_replaced() {
        let (c, mut n, v) = complete();
        let mut twin = network();
        twin.id = "net-2".into();
        n.push(twin);
        let a = run(&c, &n, &v, &[]);
        assert_eq!(
            a.remove_networks,
            [("net-2".into(), "applab-r-s1-lan".into())]
        );
        assert!(a.create_networks.is_empty());
        let (c, mut n, v) = complete();
        n[0].subnet = Some("10.9.9.0/26".into());
        let a = run(&c, &n, &v, &[]);
        assert_eq!(a.remove_networks.len(), 1);
        assert_eq!(a.create_networks, [0]);
    }

    #[test]
    fn a_leftover_volume_of_an_old_generation_goes_and_the_new_one_is_made() {
        let (c, n, mut v) = complete();
        v[1] = volume("ws", 0);
        let a = run(&c, &n, &v, &[]);
        assert_eq!(a.remove_volumes, ["applab-r-s1-ws-g0"]);
        assert_eq!(a.create_volumes, [1]);
    }

    #[test]
    fn stopped_nodes_stay_stopped_and_are_stopped_if_running() {
        let (mut c, n, v) = complete();
        let a = run(&c, &n, &v, &["ws"]);
        assert!(matches!(
            a.nodes[1],
            NodeAction::Adopt {
                power: Power::Stop,
                ..
            }
        ));
        c[1].state = ContainerState::Exited;
        let a = run(&c, &n, &v, &["ws"]);
        assert!(matches!(
            a.nodes[1],
            NodeAction::Adopt {
                power: Power::Keep,
                ..
            }
        ));
        let a = run(&[], &[], &[], &["ws"]);
        assert_eq!(a.nodes[1], NodeAction::Create { start: false });
        // Exited without being asked to stop (a crash): started again.
        let a = run(&c, &n, &v, &[]);
        assert!(matches!(
            a.nodes[1],
            NodeAction::Adopt {
                power: Power::Start,
                ..
            }
        ));
    }

    #[test]
    fn a_kill_at_each_step_converges_from_what_it_left() {
        // Each prefix of a launch's steps, as a SIGKILL leaves it; the next
        // pass does exactly the rest.
        let (full_c, full_n, full_v) = complete();
        let mut created = full_c.clone();
        for x in created.iter_mut() {
            x.state = ContainerState::Created;
        }
        let steps: [(&[ContainerInfo], &[NetworkInfo], &[VolumeInfo]); 5] = [
            (&[], &[], &[]),
            (&[], &full_n, &[]),
            (&[], &full_n, &full_v),
            (&created[..1], &full_n, &full_v),
            (&created, &full_n, &full_v),
        ];
        for (i, (c, n, v)) in steps.into_iter().enumerate() {
            let a = run(c, n, v, &[]);
            assert!(
                a.remove_containers.is_empty() && a.remove_networks.is_empty(),
                "step {i}"
            );
            assert!(a.remove_volumes.is_empty(), "step {i}");
            assert_eq!(a.create_networks.len(), 1 - n.len(), "step {i}");
            assert_eq!(a.create_volumes.len(), 2 - v.len(), "step {i}");
            for (k, node) in a.nodes.iter().enumerate() {
                match node {
                    NodeAction::Create { start: true } => assert!(k >= c.len(), "step {i}"),
                    NodeAction::Adopt {
                        fill: true,
                        power: Power::Start,
                        ..
                    } => assert!(k < c.len(), "step {i}"),
                    other => panic!("step {i}: {other:?}"),
                }
            }
        }
        let a = run(&full_c, &full_n, &full_v, &[]);
        assert!(a.nodes.iter().all(|n| matches!(
            n,
            NodeAction::Adopt {
                power: Power::Keep,
                ..
            }
        )));
    }
}
