//! The netlink calls against this machine's kernel (root needed: CI runs
//! as root; without it these fail, they never skip). What the kernel holds
//! afterwards is read back with its own tools (`tc`, `nft`), so an encoding
//! both sides agree on by mistake cannot pass.

use applab_shaping::netlink::{self, QueueRule, Route, Tbf};
use std::net::Ipv4Addr;
use std::process::Command;

/// A new, empty network namespace for the calling thread.
fn fresh_netns() {
    // SAFETY: unshare on this thread only; the thread ends with the test.
    let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        r,
        0,
        "unshare(CLONE_NEWNET) needs root: {}",
        std::io::Error::last_os_error()
    );
}

#[test]
fn tbf_is_put_on_replaced_and_removed_through_rtnetlink() {
    std::thread::spawn(|| {
        fresh_netns();
        let mut r = Route::open().unwrap();
        let lo = r
            .links()
            .unwrap()
            .into_iter()
            .find(|l| l.name == "lo")
            .unwrap();
        let t = Tbf {
            rate_bps: 1_540_000,
            burst: 15_000,
            limit: 64_000,
        };
        r.replace_tbf(lo.index, &t).unwrap();
        assert_eq!(r.root_qdisc_kind(lo.index).unwrap().as_deref(), Some("tbf"));
        // Replacing is idempotent (every reconcile pass may ask again).
        r.replace_tbf(
            lo.index,
            &Tbf {
                rate_bps: 10_000_000,
                ..t
            },
        )
        .unwrap();
        assert_eq!(r.root_qdisc_kind(lo.index).unwrap().as_deref(), Some("tbf"));
        r.delete_root(lo.index).unwrap();
        assert_ne!(r.root_qdisc_kind(lo.index).unwrap().as_deref(), Some("tbf"));
    })
    .join()
    .unwrap();
}

#[test]
fn a_rate_reads_back_in_tc_as_asked() {
    // In the host namespace on a veth pair of our own, so `tc` can see it.
    let name = format!("alt{}", std::process::id() % 100_000);
    let ok = Command::new("ip")
        .args([
            "link",
            "add",
            &name,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{name}p"),
        ])
        .status()
        .expect("ip (iproute2)");
    assert!(ok.success());
    let index: u32 = std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let t = Tbf {
        rate_bps: 1_540_000,
        burst: 15_000,
        limit: 64_000,
    };
    let r = Route::open().and_then(|mut r| r.replace_tbf(index, &t));
    let shown = Command::new("tc")
        .args(["qdisc", "show", "dev", &name])
        .output()
        .unwrap();
    let _ = Command::new("ip").args(["link", "del", &name]).status();
    r.unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(
        shown.contains("tbf") && shown.contains("rate 1540Kbit"),
        "{shown}"
    );
    // tc shows the burst back from the kernel's time in ticks: 15,000 B
    // give 14,999 or 15,000 after the round trip through 64 ns ticks.
    assert!(
        shown.contains("burst 15000b") || shown.contains("burst 14999b"),
        "{shown}"
    );
}

#[test]
fn the_delay_lines_table_is_built_whole_and_removed() {
    let table = format!("applab_test_{}", std::process::id());
    let rules = [
        QueueRule {
            bridge: 1,
            src: Some(Ipv4Addr::new(10, 99, 0, 2)),
            dst: None,
            not_dst: Some(Ipv4Addr::new(10, 99, 0, 1)),
            queue: 31001,
        },
        QueueRule {
            bridge: 1,
            src: None,
            dst: Some(Ipv4Addr::new(10, 99, 0, 2)),
            not_dst: None,
            queue: 31001,
        },
    ];
    netlink::nft_replace_table(&table, &rules).unwrap();
    // Again, with one rule: the table holds exactly what was asked.
    netlink::nft_replace_table(&table, &rules[1..]).unwrap();
    let listed = Command::new("nft")
        .args(["list", "table", "ip", &table])
        .output()
        .expect("nft (nftables)");
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    netlink::nft_delete_table(&table).unwrap();
    assert!(
        listed.contains("hook prerouting priority mangle"),
        "{listed}"
    );
    assert!(listed.contains("ip daddr 10.99.0.2"), "{listed}");
    assert!(
        listed.contains("queue") && listed.contains("31001") && listed.contains("bypass"),
        "{listed}"
    );
    assert!(
        !listed.contains("ip saddr 10.99.0.2"),
        "the first rule is gone: {listed}"
    );
    let after = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&after.stdout).contains(&table));
    // Removing what is not there is no error (a fresh controller's start).
    netlink::nft_delete_table(&table).unwrap();
}

#[test]
fn a_thread_enters_another_processs_namespace() {
    // A child in a namespace of its own, with a veth end we can find.
    let mut child = Command::new("unshare")
        .args(["-n", "sleep", "30"])
        .spawn()
        .expect("unshare (util-linux)");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let links = netlink::in_netns(child.id(), || Route::open()?.links());
    let host = Route::open().unwrap().links().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let links = links.unwrap();
    assert_eq!(
        links.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        ["lo"],
        "the child's namespace, not ours ({} links here)",
        host.len()
    );
}
