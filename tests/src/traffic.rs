//! Traffic probes with busybox (ping, nc), run inside namespaces.

use std::time::Duration;

use crate::cmd::Background;
use crate::netns::Netns;
use crate::wait::wait_for;

/// One echo request from `ns` to `addr` (IPv4 or IPv6), waiting up to 1 s.
/// Use it to show that something is blocked: a failure costs one second.
pub fn ping_once(ns: &Netns, addr: &str) -> bool {
    ns.exec("busybox", &["ping", "-c", "1", "-W", "1", addr])
        .success()
}

/// True if `addr` answers within a few tries. Retrying matters: the very
/// first IPv6 echo on a fresh link is often lost to neighbour discovery.
pub fn ping_ok(ns: &Netns, addr: &str) -> bool {
    (0..3).any(|_| ping_once(ns, addr))
}

/// A TCP echo server on `port` (all addresses, IPv4 and IPv6) inside `ns`,
/// returned once it listens; killed when dropped. It keeps accepting, so a
/// test can connect, change the network and connect again.
#[track_caller]
pub fn tcp_listen(ns: &Netns, port: u16) -> Background {
    let port_arg = port.to_string();
    // Plain `nc -l` exits after one connection; `-ll` needs `-e`.
    let mut server = ns.spawn("busybox", &["nc", "-ll", "-p", &port_arg, "-e", "/bin/cat"]);
    let filter = format!("sport = :{port}");
    wait_for(
        &format!("TCP listener on port {port} in {}", ns.name()),
        Duration::from_secs(5),
        || {
            assert!(
                server.is_running(),
                "TCP listener exited:\n{}",
                server.stderr()
            );
            !ns.exec_ok("ss", &["-Hltn", &filter]).trim().is_empty()
        },
    );
    server
}

/// True if a TCP connection from `ns` to `addr:port` carries data both ways:
/// a line sent to the [`tcp_listen`] echo server comes back. Gives up after
/// 2 s to connect (a dropped SYN gets no answer) and 5 s in all.
pub fn tcp_connect_ok(ns: &Netns, addr: &str, port: u16) -> bool {
    const TOKEN: &str = "kvmnet-e2e-echo";
    // busybox nc takes bare IPv6 addresses, no brackets.
    let out = ns.sh(&format!(
        "echo {TOKEN} | timeout 5 busybox nc -w 2 {addr} {port}"
    ));
    out.success() && out.stdout().contains(TOKEN)
}
